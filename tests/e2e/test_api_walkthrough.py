"""The curl walkthrough of docs/api.md, step by step on the demo data (``lifecycle seed-demo``).

The worker's part (carrying out the leave, removing the data) is done by calling the
same use cases the actors call.
"""

from __future__ import annotations

from api_helpers import Caller, problem, token_for

from cli.demo import seed
from memberships import automatic, removal


def test_the_documented_walkthrough_holds_on_the_demo_data(client, uow_factory, clock):
    # Given the demo directory
    seed(uow_factory, clock)
    with uow_factory() as uow:
        ids = {
            email: uow.directory.find_user(email).id  # type: ignore[union-attr]
            for email in ("alice@woodgrove.example", "admin@contoso.example")
        }
    alice = Caller(client, {"Authorization": f"Bearer {token_for(ids['alice@woodgrove.example'])}"})
    admin = Caller(client, {"Authorization": f"Bearer {token_for(ids['admin@contoso.example'])}"})

    # 1. alice lists her organizations: home first, fabrikam not leavable
    items = alice.get("/v1/me/organizations").get_json()["items"]
    assert [(i["organization"]["domain"], i["canLeave"]) for i in items] == [
        ("woodgrove.example", False),
        ("contoso.example", True),
        ("fabrikam.example", False),
        ("northwind.example", True),
    ]
    # 2. alice leaves contoso.example
    left = alice.post(
        "/v1/me/organizations/contoso.example/leave",
        headers={"Idempotency-Key": "alice-leaves-contoso"},
    )
    assert (left.status_code, left.get_json()["state"]) == (202, "leave-pending")
    membership_id = left.get_json()["id"]
    # 3. the worker carries the leave out; polling shows soft-deleted
    with uow_factory() as uow:
        automatic.complete_leave(uow, clock, membership_id)
    polled = alice.get(left.headers["Location"]).get_json()
    assert polled["membership"]["state"] == "soft-deleted"
    # 4. fabrikam.example refuses, with its privacy contacts
    refused = alice.post("/v1/me/organizations/fabrikam.example/leave")
    assert problem(refused, 403, "leave-disabled")["contacts"] == {
        "privacyContactEmail": "privacy@fabrikam.example",
        "privacyStatementUrl": "https://fabrikam.example/privacy",
    }
    # 5. contoso's admin finds alice among the deleted users
    deleted = admin.get("/v1/organizations/contoso.example/deleted-users").get_json()["items"]
    assert [m["email"] for m in deleted] == ["alice@woodgrove.example"]
    # 6. and restores her, with her groups and app roles
    base = "/v1/organizations/contoso.example"
    etag = admin.get(f"{base}/memberships/{membership_id}").headers["ETag"]
    restored = admin.post(
        f"{base}/deleted-users/{membership_id}/restore", headers={"If-Match": etag}
    )
    assert restored.get_json()["state"] == "restored"
    assert sorted(g["name"] for g in restored.get_json()["grants"]) == ["Expenses.Reader", "Sales"]
    # 7. removes her again and deletes her permanently
    assert admin.delete(f"{base}/memberships/{membership_id}").get_json()["state"] == "soft-deleted"
    purged = admin.delete(f"{base}/deleted-users/{membership_id}")
    assert (purged.status_code, purged.get_json()["state"]) == (202, "purge-pending")
    # 8. once the worker removed the data, alice's poll answers 404
    with uow_factory() as uow:
        removal.remove_all_data(uow, clock, membership_id)
    problem(alice.get("/v1/me/organizations/contoso.example"), 404, "not-found")
    # and the admin sees a tombstone: ids, states and timestamps, nothing personal
    tombstone = admin.get(f"{base}/memberships/{membership_id}").get_json()
    assert tombstone["state"] == "purged"
    assert (tombstone["email"], tombstone["displayName"], tombstone["grants"]) == (None, None, [])
    assert tombstone["purgedAt"] is not None
    history = admin.get(f"{base}/memberships/{membership_id}/history").get_json()["items"]
    assert [e["action"] for e in history][-6:] == [
        "request_leave",
        "complete_leave",
        "restore",
        "remove",
        "purge",
        "finish_removal",
    ]
    # which name her by the membership's pseudonym only
    assert ids["alice@woodgrove.example"] not in str(tombstone) + str(history)
    assert tombstone["userId"] in {e["actor"] for e in history}
    # 9. the admin invites her back: a pending invitation, no membership yet
    invited = admin.post(
        f"{base}/guests", json={"email": "alice@woodgrove.example", "kind": "b2b-collaboration"}
    )
    assert (invited.status_code, invited.get_json()["status"]) == (201, "pending")
    problem(alice.get("/v1/me/organizations/contoso.example"), 404, "not-found")
    # 10. alice sees it and accepts: she is a guest of contoso again, in a new membership
    [invitation] = alice.get("/v1/me/invitations").get_json()["items"]
    accepted = alice.post(f"/v1/me/invitations/{invitation['id']}/accept")
    assert (accepted.status_code, accepted.get_json()["state"]) == (201, "active")
    assert accepted.get_json()["id"] != membership_id
    back = alice.get("/v1/me/organizations/contoso.example").get_json()
    assert back["membership"]["state"] == "active"

"""Self-service over HTTP: listing my organizations, polling one, leaving, and the refusals."""

from __future__ import annotations

from datetime import timedelta

from api_helpers import problem

from memberships import automatic, removal


def test_my_organizations_list_the_home_organization_first_and_never_leavable(api, world):
    # Given ann, at home in home.example and a guest of bare, closed and open
    # When she lists her organizations
    response = api("ann").get("/v1/me/organizations")
    # Then home comes first, cannot be left, and the others follow by name
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [i["organization"]["domain"] for i in items] == [
        "home.example",
        "bare.example",
        "closed.example",
        "open.example",
    ]
    home, bare, closed, opened = items
    assert home["isHome"] is True
    assert home["canLeave"] is False
    assert home["leaveBlockedReason"] == "home-organization"
    assert home["membership"]["kind"] == "home"
    # And a guest organization that disallows leaving says why
    assert closed["canLeave"] is False
    assert closed["leaveBlockedReason"] == "leave-disabled"
    # And the others can be left
    assert (bare["canLeave"], opened["canLeave"]) == (True, True)
    assert opened["leaveBlockedReason"] is None
    assert opened["organization"] == {
        "id": world.orgs["open"],
        "domain": "open.example",
        "displayName": "Open",
    }
    assert opened["membership"]["state"] == "active"
    assert opened["membership"]["kind"] == "b2b-collaboration"


def test_a_user_without_a_home_organization_lists_only_guest_organizations(api):
    # Given pat, a personal account (no home organization), a direct-connect guest of open
    response = api("pat").get("/v1/me/organizations")
    # Then the list has open only, leavable
    items = response.get_json()["items"]
    assert [(i["organization"]["domain"], i["isHome"], i["canLeave"]) for i in items] == [
        ("open.example", False, True)
    ]


def test_one_organization_is_addressed_by_id_or_by_domain(api, world):
    # When ann asks for open by its id and by its domain (any case)
    by_id = api("ann").get(f"/v1/me/organizations/{world.orgs['open']}")
    by_domain = api("ann").get("/v1/me/organizations/OPEN.example")
    # Then both answer the same membership
    assert by_id.status_code == by_domain.status_code == 200
    assert by_id.get_json() == by_domain.get_json()
    assert by_id.get_json()["membership"]["id"] == world.membership("open", "ann")


def test_an_organization_the_member_does_not_belong_to_is_not_found(api):
    # Given pat is not a member of closed.example; When she asks for it
    response = api("pat").get("/v1/me/organizations/closed.example")
    # Then 404, the same as for an organization that does not exist
    problem(response, 404, "not-found")
    problem(api("pat").get("/v1/me/organizations/nowhere.example"), 404, "not-found")


def test_leaving_is_accepted_with_202_and_a_location_to_poll(api, world, dispatcher):
    # When ann leaves open.example by its domain
    response = api("ann").post("/v1/me/organizations/open.example/leave")
    # Then it is accepted, the membership is leave-pending, and Location points to it by id
    assert response.status_code == 202
    body = response.get_json()
    assert body["state"] == "leave-pending"
    assert body["id"] == world.membership("open", "ann")
    assert body["leaveRequestedAt"] == "2026-01-05T09:00:00Z"
    assert response.headers["Location"] == f"/v1/me/organizations/{world.orgs['open']}"
    # And the worker is asked to carry the leave out, after the commit
    assert dispatcher.sent == [("complete_leave", world.membership("open", "ann"))]
    # And polling Location shows leave-pending; the list still shows it, not leavable
    polled = api("ann").get(response.headers["Location"])
    assert polled.get_json()["membership"]["state"] == "leave-pending"
    listed = {
        i["organization"]["domain"]: i
        for i in api("ann").get("/v1/me/organizations").get_json()["items"]
    }
    assert listed["open.example"]["canLeave"] is False
    assert listed["open.example"]["leaveBlockedReason"] == "transition-not-allowed"


def test_a_left_collaboration_membership_is_polled_through_soft_deletion_until_purged(api, world):
    # Given ann left open.example (B2B collaboration) and the worker carried it out
    location = api("ann").post("/v1/me/organizations/open.example/leave").headers["Location"]
    membership_id = world.membership("open", "ann")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, membership_id)
    # Then polling shows soft-deleted, restorable for the 30-day retention period
    soft = api("ann").get(location).get_json()["membership"]
    assert soft["state"] == "soft-deleted"
    assert soft["purgeDueAt"] == "2026-02-04T09:00:00Z"
    # And the list no longer shows it
    domains = [
        i["organization"]["domain"]
        for i in api("ann").get("/v1/me/organizations").get_json()["items"]
    ]
    assert "open.example" not in domains
    # When the retention period ends and removal starts, polling shows purge-pending
    world.clock.advance(timedelta(days=30))
    with world.uow() as uow:
        automatic.expire_retention(uow, world.clock, membership_id)
    assert api("ann").get(location).get_json()["membership"]["state"] == "purge-pending"
    # And once the data is removed, the membership is purged and polling answers 404
    with world.uow() as uow:
        removal.remove_all_data(uow, world.clock, membership_id)
    problem(api("ann").get(location), 404, "not-found")


def test_a_direct_connect_member_who_leaves_goes_straight_to_data_removal(api, world):
    # Given pat, a B2B direct connect guest of open, leaves
    location = api("pat").post("/v1/me/organizations/open.example/leave").headers["Location"]
    # When the worker carries the leave out
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, world.membership("open", "pat"))
    # Then there is no soft-deleted period: data removal has started, due in 30 days
    membership = api("pat").get(location).get_json()["membership"]
    assert membership["state"] == "purge-pending"
    assert membership["softDeletedAt"] is None
    assert membership["removalDueBy"] == "2026-02-04T09:00:00Z"


def test_the_home_organization_cannot_be_left(api):
    # When ann tries to leave her home organization
    response = api("ann").post("/v1/me/organizations/home.example/leave")
    # Then 403 with reason home-organization and a message naming the admin
    body = problem(response, 403, "home-organization")
    assert body["reason"] == "home-organization"
    assert "admin" in body["detail"]
    assert body["contacts"] == {}


def test_an_organization_that_disallows_leaving_refuses_with_its_privacy_contacts(
    api, world, dispatcher
):
    # When ann tries to leave closed.example, whose external user leave setting is "no"
    response = api("ann").post("/v1/me/organizations/closed.example/leave")
    # Then 403 leave-disabled, with the contacts to ask instead
    body = problem(response, 403, "leave-disabled")
    assert body["reason"] == "leave-disabled"
    assert body["contacts"] == {
        "privacyContactEmail": "privacy@closed.example",
        "privacyStatementUrl": "https://closed.example/p",
    }
    assert "admin or privacy contact" in body["detail"]
    # And nothing changed, nothing was sent
    after = api("ann").get("/v1/me/organizations/closed.example").get_json()
    assert after["membership"]["state"] == "active"
    assert dispatcher.sent == []


def test_a_member_disabled_in_that_organization_cannot_leave_on_their_own(api):
    # Given dis, whose account is disabled in open.example
    response = api("dis").post("/v1/me/organizations/open.example/leave")
    # Then 403 account-disabled, with open's contacts
    body = problem(response, 403, "account-disabled")
    assert body["reason"] == "account-disabled"
    assert body["contacts"]["privacyContactEmail"] == "privacy@open.example"


def test_a_member_disabled_at_home_cannot_leave_on_their_own(api):
    # Given off, whose account is disabled in the home organization
    response = api("off").post("/v1/me/organizations/open.example/leave")
    # Then 403 account-disabled
    assert problem(response, 403, "account-disabled")["reason"] == "account-disabled"


def test_an_organization_without_a_privacy_profile_refuses_with_no_contacts(api, world):
    # Given bare.example has no privacy profile and the external user leave setting "no"
    from sqlalchemy import update

    from store.models import Organization

    with world.uow() as uow:
        uow.session.execute(
            update(Organization)
            .where(Organization.id == world.orgs["bare"])
            .values(external_user_leave_allowed=False)
        )
        uow.commit()
    # When ann tries to leave it
    response = api("ann").post("/v1/me/organizations/bare.example/leave")
    body = problem(response, 403, "leave-disabled")
    # Then the problem has no contacts to show, only the advice to ask the admin
    assert body["contacts"] == {}
    assert "admin" in body["detail"]


def test_leaving_twice_is_a_conflict_with_the_membership_state(api):
    # Given ann already left open.example
    api("ann").post("/v1/me/organizations/open.example/leave")
    # When she leaves again
    response = api("ann").post("/v1/me/organizations/open.example/leave")
    # Then 409: a leave-pending membership cannot be left again
    body = problem(response, 409, "transition-not-allowed")
    assert body["state"] == "leave-pending"


def test_a_refused_leave_is_audited_with_the_request_id(api, world):
    # When ann's refused leave carries a request id
    response = api("ann").post(
        "/v1/me/organizations/closed.example/leave", headers={"X-Request-ID": "req-leave-1"}
    )
    assert response.headers["X-Request-ID"] == "req-leave-1"
    # Then the audit log has the denial with that request id
    from memberships import reading
    from memberships.principal import SYSTEM

    with world.uow() as uow:
        events = reading.list_audit_events(uow, world.clock, SYSTEM, "closed.example").items
    denial = [e for e in events if e.action == "request_leave"]
    assert [(e.outcome, e.reason, e.request_id) for e in denial] == [
        ("denied", "leave-disabled", "req-leave-1")
    ]


def test_a_leave_with_a_stale_if_match_is_refused(api, world):
    # Given ann read her membership in open (ETag), then an admin changed it
    read = api("ann").get("/v1/me/organizations/open.example")
    etag = read.headers["ETag"]
    assert etag == f'"{read.get_json()["membership"]["version"]}"'
    membership_id = world.membership("open", "ann")
    api("gadmin").delete(f"/v1/organizations/open.example/memberships/{membership_id}")
    api("gadmin").post(f"/v1/organizations/open.example/deleted-users/{membership_id}/restore")
    # When she leaves with the old ETag, Then 412 and nothing changes
    stale = api("ann").post("/v1/me/organizations/open.example/leave", headers={"If-Match": etag})
    problem(stale, 412, "precondition-failed")
    current = api("ann").get("/v1/me/organizations/open.example")
    assert current.get_json()["membership"]["state"] == "restored"
    # When she leaves with the current ETag, Then the leave is accepted
    fresh = api("ann").post(
        "/v1/me/organizations/open.example/leave", headers={"If-Match": current.headers["ETag"]}
    )
    assert fresh.status_code == 202
    assert fresh.headers["ETag"] == f'"{fresh.get_json()["version"]}"'

"""Organization admin over HTTP: settings, removal, restore, permanent delete, guests, reads."""

from __future__ import annotations

from datetime import timedelta

from api_helpers import problem

OPEN = "/v1/organizations/open.example"


def test_an_admin_reads_the_organization_with_its_privacy_profile_and_settings(api, world):
    response = api("gadmin").get(f"/v1/organizations/{world.orgs['open']}")
    assert response.status_code == 200
    assert response.get_json() == {
        "id": world.orgs["open"],
        "domain": "open.example",
        "displayName": "Open",
        "privacyProfile": {
            "contactEmail": "privacy@open.example",
            "statementUrl": "https://open.example/privacy",
        },
        "hasPrivacyProfile": True,
        "settings": {"externalCollaboration": {"externalUserLeaveAllowed": True}},
    }


def test_both_admin_roles_may_administer_their_organization(api):
    # Global administrator and external identity provider administrator alike
    for admin in ("gadmin", "idpadmin"):
        assert api(admin).get(f"{OPEN}/settings/external-collaboration").get_json() == {
            "externalUserLeaveAllowed": True
        }


def test_the_privacy_profile_is_validated_then_stored(api):
    # When an admin gives a bad e-mail, a non-http URL, or a URL over 255 characters
    bad = [
        {"contactEmail": "not-an-email", "statementUrl": "https://open.example/p"},
        {"contactEmail": "p@open.example", "statementUrl": "ftp://open.example/p"},
        {"contactEmail": "p@open.example", "statementUrl": "https://o.example/" + "x" * 240},
    ]
    for body in bad:
        # Then each is refused with 422 invalid-input
        problem(api("gadmin").put(f"{OPEN}/privacy-profile", json=body), 422, "invalid-input")
    # When the profile is valid, it is stored (the e-mail normalized)
    response = api("gadmin").put(
        f"{OPEN}/privacy-profile",
        json={"contactEmail": "Privacy@Open.example", "statementUrl": "https://open.example/new"},
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "contactEmail": "privacy@open.example",
        "statementUrl": "https://open.example/new",
    }


def test_the_leave_setting_cannot_change_without_a_privacy_profile(api):
    # Given bare.example has no privacy profile; When its admin disallows leaving
    response = api("bareadmin").patch(
        "/v1/organizations/bare.example/settings/external-collaboration",
        json={"externalUserLeaveAllowed": False},
    )
    # Then 409 privacy-profile-required, and the setting is unchanged
    problem(response, 409, "privacy-profile-required")
    after = api("bareadmin").get("/v1/organizations/bare.example/settings/external-collaboration")
    assert after.get_json() == {"externalUserLeaveAllowed": True}
    # When the admin adds a privacy profile first, the change is accepted
    api("bareadmin").put(
        "/v1/organizations/bare.example/privacy-profile",
        json={"contactEmail": "privacy@bare.example", "statementUrl": "https://bare.example/p"},
    )
    response = api("bareadmin").patch(
        "/v1/organizations/bare.example/settings/external-collaboration",
        json={"externalUserLeaveAllowed": False},
    )
    assert response.get_json() == {"externalUserLeaveAllowed": False}
    # And members can no longer leave on their own
    refused = api("ann").post("/v1/me/organizations/bare.example/leave")
    assert problem(refused, 403, "leave-disabled")["contacts"] == {
        "privacyContactEmail": "privacy@bare.example",
        "privacyStatementUrl": "https://bare.example/p",
    }


def test_removing_a_collaboration_guest_soft_deletes_it_for_the_retention_period(api, world):
    membership_id = world.membership("open", "ann")
    # When an admin removes ann from open
    response = api("gadmin").delete(f"{OPEN}/memberships/{membership_id}")
    # Then 202, soft-deleted, restorable until 30 days from now, with the new version as ETag
    assert response.status_code == 202
    body = response.get_json()
    assert body["state"] == "soft-deleted"
    assert body["softDeletedAt"] == "2026-01-05T09:00:00Z"
    assert body["purgeDueAt"] == "2026-02-04T09:00:00Z"
    assert response.headers["ETag"] == f'"{body["version"]}"'
    # And it is listed among the deleted users
    deleted = api("gadmin").get(f"{OPEN}/deleted-users").get_json()
    assert [m["id"] for m in deleted["items"]] == [membership_id]
    assert deleted["nextCursor"] is None


def test_removing_a_direct_connect_guest_starts_data_removal_at_once(api, world, dispatcher):
    membership_id = world.membership("open", "pat")
    response = api("gadmin").delete(f"{OPEN}/memberships/{membership_id}")
    assert response.status_code == 202
    assert response.get_json()["state"] == "purge-pending"
    assert response.get_json()["removalDueBy"] == "2026-02-04T09:00:00Z"
    assert dispatcher.sent == [("remove_data", membership_id)]
    # And it never appears among the restorable deleted users
    assert api("gadmin").get(f"{OPEN}/deleted-users").get_json()["items"] == []


def test_a_home_account_cannot_be_removed_as_a_guest(api, world):
    # Given gadmin's own home membership in open
    with world.uow() as uow:
        home = uow.memberships.live_membership(world.users["gadmin"], world.orgs["open"])
        assert home is not None
        home_id = home.id
    problem(api("gadmin").delete(f"{OPEN}/memberships/{home_id}"), 403, "home-organization")


def test_restore_brings_back_exactly_the_grants_it_had(api, world):
    membership_id = world.membership("open", "ann")
    api("gadmin").delete(f"{OPEN}/memberships/{membership_id}")
    world.clock.advance(timedelta(days=29))
    # When an admin restores it within the retention period
    response = api("gadmin").post(f"{OPEN}/deleted-users/{membership_id}/restore")
    # Then 200, restored, with the same grants, and the purge is no longer due
    assert response.status_code == 200
    body = response.get_json()
    assert body["state"] == "restored"
    assert body["purgeDueAt"] is None
    assert sorted((g["kind"], g["name"]) for g in body["grants"]) == [
        ("app-role", "Reader"),
        ("group", "Sales"),
    ]
    # And ann sees open again, and may leave it again
    mine = api("ann").get("/v1/me/organizations/open.example").get_json()
    assert (mine["membership"]["state"], mine["canLeave"]) == ("restored", True)


def test_restore_after_the_retention_period_is_refused(api, world):
    membership_id = world.membership("open", "ann")
    api("gadmin").delete(f"{OPEN}/memberships/{membership_id}")
    # When the admin tries to restore it after purgeDueAt
    world.clock.advance(timedelta(days=30))
    response = api("gadmin").post(f"{OPEN}/deleted-users/{membership_id}/restore")
    # Then 409 restore-window-closed, saying when the window closed
    body = problem(response, 409, "restore-window-closed")
    assert body["purgeDueAt"] == "2026-02-04T09:00:00Z"


def test_permanent_delete_is_irrevocable(api, world, dispatcher):
    membership_id = world.membership("open", "ann")
    api("gadmin").delete(f"{OPEN}/memberships/{membership_id}")
    # When an admin deletes it permanently
    response = api("gadmin").delete(f"{OPEN}/deleted-users/{membership_id}")
    # Then 202 purge-pending, data removal is sent
    assert response.status_code == 202
    assert response.get_json()["state"] == "purge-pending"
    assert ("remove_data", membership_id) in dispatcher.sent
    # And it cannot be restored any more
    again = api("gadmin").post(f"{OPEN}/deleted-users/{membership_id}/restore")
    problem(again, 409, "transition-not-allowed")


def test_only_a_soft_deleted_membership_can_be_restored_or_deleted_permanently(api, world):
    membership_id = world.membership("open", "ann")
    problem(
        api("gadmin").post(f"{OPEN}/deleted-users/{membership_id}/restore"),
        409,
        "transition-not-allowed",
    )
    problem(
        api("gadmin").delete(f"{OPEN}/deleted-users/{membership_id}"),
        409,
        "transition-not-allowed",
    )


def test_a_stale_if_match_is_refused_and_a_current_one_accepted(api, world):
    membership_id = world.membership("open", "ann")
    read = api("gadmin").get(f"{OPEN}/memberships/{membership_id}")
    etag = read.headers["ETag"]
    assert etag == f'"{read.get_json()["version"]}"'
    # Given someone else changed the membership after it was read
    api("gadmin").delete(f"{OPEN}/memberships/{membership_id}")
    # When the admin restores with the old ETag, Then 412 and nothing changes
    stale = api("gadmin").post(
        f"{OPEN}/deleted-users/{membership_id}/restore", headers={"If-Match": etag}
    )
    problem(stale, 412, "precondition-failed")
    current = api("gadmin").get(f"{OPEN}/memberships/{membership_id}")
    assert current.get_json()["state"] == "soft-deleted"
    # When the admin uses the current ETag, Then the restore goes through
    fresh = api("gadmin").post(
        f"{OPEN}/deleted-users/{membership_id}/restore",
        headers={"If-Match": current.headers["ETag"]},
    )
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == f'"{fresh.get_json()["version"]}"'


def test_if_match_that_is_not_one_of_our_etags_never_matches(api, world):
    membership_id = world.membership("open", "ann")
    for value in ('"abc"', 'W/"1"'):
        response = api("gadmin").delete(
            f"{OPEN}/memberships/{membership_id}", headers={"If-Match": value}
        )
        problem(response, 412, "precondition-failed")
    for value in ("1", '"1", "2"'):
        response = api("gadmin").delete(
            f"{OPEN}/memberships/{membership_id}", headers={"If-Match": value}
        )
        problem(response, 400, "bad-request")
    # If-Match: * means whatever the current version is
    star = api("gadmin").delete(f"{OPEN}/memberships/{membership_id}", headers={"If-Match": "*"})
    assert star.status_code == 202


def test_an_admin_invites_a_guest_and_a_second_pending_invitation_is_refused(api, world):
    # When closed's admin invites pat as a collaboration guest, by e-mail
    response = api("cadmin").post(
        "/v1/organizations/closed.example/guests",
        json={"email": "Pat@Mail.example", "kind": "b2b-collaboration"},
    )
    # Then 201 with a pending invitation, the e-mail as sent, and no membership yet
    assert response.status_code == 201
    body = response.get_json()
    assert (body["status"], body["kind"], body["email"]) == (
        "pending",
        "b2b-collaboration",
        "Pat@Mail.example",
    )
    listed = api("cadmin").get("/v1/organizations/closed.example/memberships").get_json()
    assert world.users["pat"] not in [m["userId"] for m in listed["items"]]
    # When the same address is invited again while that one is pending, Then 409
    again = api("cadmin").post(
        "/v1/organizations/closed.example/guests",
        json={"email": "pat@mail.example", "kind": "b2b-direct-connect"},
    )
    problem(again, 409, "already-exists")


def test_guest_input_is_validated(api):
    url = "/v1/organizations/closed.example/guests"
    # An unknown kind, a missing field, an unknown field, not an e-mail: 422 naming the field
    cases = [
        ({"email": "pat@mail.example", "kind": "home"}, "kind"),
        ({"kind": "b2b-collaboration"}, "email"),
        ({"email": "pat@mail.example", "kind": "b2b-collaboration", "role": "x"}, "role"),
        ({"email": "not-an-address", "kind": "b2b-collaboration"}, "email"),
    ]
    for body, field in cases:
        found = problem(api("cadmin").post(url, json=body), 422, "invalid-input")
        fields = [e["field"] for e in found.get("errors", [])] + [found.get("field")]
        assert field in fields


def test_unknown_fields_and_wrong_types_are_rejected(api):
    url = f"{OPEN}/settings/external-collaboration"
    for body in (
        {"externalUserLeaveAllowed": False, "extra": 1},
        {"external_user_leave_allowed": False},
        {"externalUserLeaveAllowed": "no"},
        [],
    ):
        problem(api("gadmin").patch(url, json=body), 422, "invalid-input")


def test_malformed_json_is_a_400_and_a_non_json_body_a_415(api):
    url = f"{OPEN}/privacy-profile"
    broken = api("gadmin").put(url, data='{"contactEmail": ', content_type="application/json")
    problem(broken, 400, "malformed-json")
    form = api("gadmin").put(url, data="contactEmail=x", content_type="text/plain")
    problem(form, 415, "unsupported-media-type")


def test_membership_history_and_the_audit_log_record_every_decision(api, world):
    membership_id = world.membership("open", "ann")
    api("gadmin").delete(f"{OPEN}/memberships/{membership_id}", headers={"X-Request-ID": "rm-1"})
    api("gadmin").post(f"{OPEN}/deleted-users/{membership_id}/restore")
    # The membership's history: added, removed, restored, with who and from/to states
    history = api("gadmin").get(f"{OPEN}/memberships/{membership_id}/history").get_json()
    steps = [(e["action"], e["fromState"], e["toState"]) for e in history["items"]]
    assert steps[-2:] == [
        ("remove", "active", "soft-deleted"),
        ("restore", "soft-deleted", "restored"),
    ]
    removed = history["items"][-2]
    assert (removed["actor"], removed["requestId"]) == (world.users["gadmin"], "rm-1")
    # each with who acted as people read it: the admin by e-mail, the provisioning service
    assert removed["actorLabel"] == "gadmin@mail.example"
    assert history["items"][0]["actorLabel"] == "the service"
    # The organization's audit log has them too
    audit = api("gadmin").get(f"{OPEN}/audit-events?limit=200").get_json()
    assert {"remove", "restore"} <= {e["action"] for e in audit["items"]}
    assert all(e["organizationId"] == world.orgs["open"] for e in audit["items"])


def test_membership_filters_by_state_and_kind(api, world):
    api("gadmin").delete(f"{OPEN}/memberships/{world.membership('open', 'ann')}")
    soft = api("gadmin").get(f"{OPEN}/memberships?state=soft-deleted").get_json()["items"]
    assert [m["id"] for m in soft] == [world.membership("open", "ann")]
    direct = api("gadmin").get(f"{OPEN}/memberships?kind=b2b-direct-connect").get_json()["items"]
    assert [m["id"] for m in direct] == [world.membership("open", "pat")]
    problem(api("gadmin").get(f"{OPEN}/memberships?state=gone"), 422, "invalid-input")
    problem(api("gadmin").get(f"{OPEN}/memberships?limit=0"), 422, "invalid-input")
    problem(api("gadmin").get(f"{OPEN}/memberships?cursor=%%%"), 422, "invalid-input")

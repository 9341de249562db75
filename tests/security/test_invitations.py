"""Adding a guest is an invitation the person accepts: the admin learns nothing about the
person, and the membership exists only once they say yes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from api_helpers import problem
from pages_helpers import text_of

from memberships import automatic, removal
from settings import Settings

GUESTS = "/v1/organizations/closed.example/guests"
INVITATION_FIELDS = {
    "id",
    "organizationId",
    "email",
    "kind",
    "status",
    "createdAt",
    "expiresAt",
    "respondedAt",
}


def _invite(api, email: str, kind: str = "b2b-collaboration", admin: str = "cadmin"):
    org = {"cadmin": "closed", "gadmin": "open"}[admin]
    return api(admin).post(
        f"/v1/organizations/{org}.example/guests", json={"email": email, "kind": kind}
    )


def _members(api, admin: str = "cadmin", org: str = "closed") -> list[str]:
    listed = api(admin).get(f"/v1/organizations/{org}.example/memberships?limit=200").get_json()
    return [m["userId"] for m in listed["items"] if m["state"] != "purged"]


def test_an_invitation_reveals_nothing_about_the_person(api, world):
    # When closed's admin invites a known user and an address nobody has
    known = _invite(api, "Pat@Mail.example")
    unknown = _invite(api, "nobody@mail.example")
    # Then both are the same kind of answer: 201, a pending invitation with the address as
    # sent, and nothing else (no user id, no name)
    for response, email in ((known, "Pat@Mail.example"), (unknown, "nobody@mail.example")):
        assert response.status_code == 201
        body = response.get_json()
        assert set(body) == INVITATION_FIELDS
        assert (body["email"], body["status"], body["respondedAt"]) == (email, "pending", None)
    assert "Pat" not in json.dumps(known.get_json()).replace("Pat@Mail", "")
    assert world.users["pat"] not in known.get_data(as_text=True)
    # And it is valid for 30 days by default
    expires = datetime.fromisoformat(known.get_json()["expiresAt"].replace("Z", "+00:00"))
    assert expires == world.clock() + timedelta(days=30)
    # And no membership was made
    assert world.users["pat"] not in _members(api)


def test_the_person_sees_the_invitation_and_accepting_makes_the_membership(api, world):
    invitation = _invite(api, "pat@mail.example").get_json()
    # When pat lists their invitations, Then closed's is there; ann sees none of it
    mine = api("pat").get("/v1/me/invitations").get_json()["items"]
    assert [(i["id"], i["organization"]["domain"]) for i in mine] == [
        (invitation["id"], "closed.example")
    ]
    assert api("ann").get("/v1/me/invitations").get_json()["items"] == []
    # And ann cannot answer it for pat
    problem(api("ann").post(f"/v1/me/invitations/{invitation['id']}/accept"), 404, "not-found")
    # When pat accepts
    accepted = api("pat").post(f"/v1/me/invitations/{invitation['id']}/accept")
    # Then the membership exists, active, and the invitation is accepted
    assert accepted.status_code == 201
    assert (accepted.get_json()["state"], accepted.get_json()["kind"]) == (
        "active",
        "b2b-collaboration",
    )
    assert world.users["pat"] in _members(api)
    listed = api("cadmin").get("/v1/organizations/closed.example/invitations").get_json()
    assert [i["status"] for i in listed["items"]] == ["accepted"]
    assert api("pat").get("/v1/me/invitations").get_json()["items"] == []
    # And accepting again is refused
    again = api("pat").post(f"/v1/me/invitations/{invitation['id']}/accept")
    assert problem(again, 409, "invitation-closed")["invitationStatus"] == "accepted"


def test_declining_makes_nothing(api, world):
    invitation = _invite(api, "pat@mail.example").get_json()
    declined = api("pat").post(f"/v1/me/invitations/{invitation['id']}/decline")
    assert declined.get_json()["status"] == "declined"
    assert world.users["pat"] not in _members(api)
    problem(
        api("pat").post(f"/v1/me/invitations/{invitation['id']}/accept"), 409, "invitation-closed"
    )


def test_an_admin_lists_and_revokes_invitations(api, world):
    invitation = _invite(api, "pat@mail.example").get_json()
    revoked = api("cadmin").delete(
        f"/v1/organizations/closed.example/invitations/{invitation['id']}"
    )
    assert revoked.get_json()["status"] == "revoked"
    # Then pat no longer sees it and cannot accept it
    assert api("pat").get("/v1/me/invitations").get_json()["items"] == []
    problem(
        api("pat").post(f"/v1/me/invitations/{invitation['id']}/accept"), 409, "invitation-closed"
    )
    # And revoking again is refused; another organization's admin cannot even find it
    problem(
        api("cadmin").delete(f"/v1/organizations/closed.example/invitations/{invitation['id']}"),
        409,
        "invitation-closed",
    )
    problem(
        api("gadmin").delete(f"/v1/organizations/open.example/invitations/{invitation['id']}"),
        404,
        "not-found",
    )


def test_a_second_invitation_waits_for_the_first_to_be_answered_or_to_expire(api, world):
    first = _invite(api, "pat@mail.example").get_json()
    problem(_invite(api, "PAT@mail.example", "b2b-direct-connect"), 409, "already-exists")
    # When the first expires
    world.clock.advance(timedelta(days=30, seconds=1))
    listed = api("cadmin").get("/v1/organizations/closed.example/invitations").get_json()
    assert [(i["id"], i["status"]) for i in listed["items"]] == [(first["id"], "expired")]
    # Then it can no longer be accepted, nor is it listed to pat
    assert api("pat").get("/v1/me/invitations").get_json()["items"] == []
    refused = api("pat").post(f"/v1/me/invitations/{first['id']}/accept")
    assert problem(refused, 409, "invitation-closed")["invitationStatus"] == "expired"
    # And a new one may be sent
    assert _invite(api, "pat@mail.example").status_code == 201


def test_accepting_when_already_a_member_is_refused(api, world):
    # Given ann, already a guest of closed, is invited to it
    invitation = _invite(api, "ann@mail.example").get_json()
    refused = api("ann").post(f"/v1/me/invitations/{invitation['id']}/accept")
    problem(refused, 409, "already-exists")
    # And cadmin, whose home is closed
    home = _invite(api, "cadmin@mail.example").get_json()
    problem(api("cadmin").post(f"/v1/me/invitations/{home['id']}/accept"), 409, "already-exists")


def test_someone_purged_is_back_only_once_they_accept_again(api, world):
    # Given ann left open and was purged
    membership_id = world.membership("open", "ann")
    api("ann").post("/v1/me/organizations/open.example/leave")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, membership_id)
    api("gadmin").delete(f"/v1/organizations/open.example/deleted-users/{membership_id}")
    with world.uow() as uow:
        removal.remove_all_data(uow, world.clock, membership_id)
    # When open's admin invites her again, Then she is not a member yet
    invitation = _invite(api, "ann@mail.example", admin="gadmin").get_json()
    assert world.users["ann"] not in _members(api, "gadmin", "open")
    # When she accepts, Then she is back, in a new membership
    back = api("ann").post(f"/v1/me/invitations/{invitation['id']}/accept").get_json()
    assert back["id"] != membership_id and back["state"] == "active"
    assert world.users["ann"] in _members(api, "gadmin", "open")


def test_every_step_is_audited_and_the_invitee_is_named_by_a_pseudonym(api, world):
    accepted = _invite(api, "pat@mail.example").get_json()
    declined = _invite(api, "dis@mail.example").get_json()
    revoked = _invite(api, "off@mail.example").get_json()
    membership = api("pat").post(f"/v1/me/invitations/{accepted['id']}/accept").get_json()
    api("dis").post(f"/v1/me/invitations/{declined['id']}/decline")
    api("cadmin").delete(f"/v1/organizations/closed.example/invitations/{revoked['id']}")
    events = api("cadmin").get("/v1/organizations/closed.example/audit-events?limit=200")
    steps = [
        (e["action"], e["actor"]) for e in events.get_json()["items"] if "invit" in e["action"]
    ]
    cadmin = world.users["cadmin"]
    with world.uow() as uow:
        from store.models import Membership

        pseudonym = uow.session.get(Membership, membership["id"]).pseudonym
    assert steps == [
        ("invite_guest", cadmin),
        ("invite_guest", cadmin),
        ("invite_guest", cadmin),
        ("accept_invitation", pseudonym),
        ("decline_invitation", declined["id"]),
        ("revoke_invitation", cadmin),
    ]


def test_the_organizations_page_shows_invitations_to_accept_or_decline(api, visitor, world):
    # Given two invitations for pat
    _invite(api, "pat@mail.example")
    _invite(api, "pat@mail.example", admin="gadmin")
    # (pat is already a guest of open: that one is refused when accepted)
    assert visitor.sign_in(world.users["pat"]).status_code == 303
    page = visitor.get("/account/organizations")
    assert "Invitations" in text_of(page) and "Closed" in text_of(page)
    invitations = api("pat").get("/v1/me/invitations").get_json()["items"]
    by_org = {i["organization"]["domain"]: i["id"] for i in invitations}
    # When pat accepts closed's from the page
    accepted = visitor.submit(
        "/account/organizations", f"/account/invitations/{by_org['closed.example']}/accept"
    )
    # Then they land on it as a member
    assert accepted.status_code == 303
    assert "welcome" in text_of(visitor.follow(accepted)).lower()
    assert world.users["pat"] in _members(api)
    # When pat declines open's, Then it is gone from the page
    declined = visitor.submit(
        "/account/organizations", f"/account/invitations/{by_org['open.example']}/decline"
    )
    assert declined.status_code == 303
    assert "Invitations" not in text_of(visitor.follow(declined))


def test_the_invitation_lifetime_is_a_setting():
    assert Settings.from_env({}).invitation_ttl == timedelta(days=30)
    assert Settings.from_env({"INVITATION_TTL": "7d"}).invitation_ttl == timedelta(days=7)

"""A purged guest is gone: the tombstone, its history and the organization's audit log
name them only by a pseudonym unique to the membership, and once their last membership
anywhere is purged their account's e-mail and name are erased too. Both purge paths:
one membership at a time, and a chunk at once (set-based)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from memberships import automatic, removal
from store.models import Membership, User


def _purge(api: Any, world: Any, org: str, user: str, *, leave: bool, chunked: bool) -> str:
    """Take ``user``'s membership of ``org`` to purged: they leave themselves (or an admin
    removes them), an admin deletes it permanently, data removal runs to the end."""
    membership_id = world.membership(org, user)
    base = f"/v1/organizations/{org}.example"
    admin = {"open": "gadmin", "closed": "cadmin"}[org]
    if leave:
        assert api(user).post(f"/v1/me/organizations/{org}.example/leave").status_code == 202
        with world.uow() as uow:
            automatic.complete_leave(uow, world.clock, membership_id)
    else:
        assert api(admin).delete(f"{base}/memberships/{membership_id}").status_code in (200, 202)
    state = _row(world, membership_id).state
    if state == "soft-deleted":
        assert api(admin).delete(f"{base}/deleted-users/{membership_id}").status_code == 202
    with world.uow() as uow:
        if chunked:
            while not removal.remove_chunk_batch(uow, world.clock, [membership_id]).done:
                pass
        else:
            removal.remove_all_data(uow, world.clock, membership_id)
    assert _row(world, membership_id).state == "purged"
    return membership_id


def _row(world: Any, membership_id: str) -> Membership:
    with world.uow() as uow:
        row = uow.session.get(Membership, membership_id)
        assert row is not None
        uow.session.expunge(row)
        return row


def _user(world: Any, user: str) -> User:
    with world.uow() as uow:
        row = uow.session.get(User, world.users[user])
        assert row is not None
        uow.session.expunge(row)
        return row


@pytest.mark.parametrize("chunked", [False, True], ids=["one-by-one", "chunk"])
def test_nothing_the_organization_reads_names_a_purged_guest(api, world, chunked):
    # Given ann, a guest of open, leaves (so she is the actor of her own request_leave)
    # and is then purged
    membership_id = _purge(api, world, "open", "ann", leave=True, chunked=chunked)
    admin = api("gadmin")
    base = "/v1/organizations/open.example"
    # When open's admin reads the tombstone, its history and the audit log
    tombstone = admin.get(f"{base}/memberships/{membership_id}").get_json()
    history = admin.get(f"{base}/memberships/{membership_id}/history").get_json()
    audit = admin.get(f"{base}/audit-events?limit=200").get_json()
    listed = admin.get(f"{base}/memberships?limit=200").get_json()
    text = json.dumps([tombstone, history, audit, listed]).lower()
    # Then none of it holds her id, e-mail or name
    for secret in (world.users["ann"], "ann@mail.example", '"ann"'):
        assert secret not in text, secret
    # And the tombstone shows her membership's pseudonym where the user id was, which is
    # also how the audit log names her when she acted
    pseudonym = tombstone["userId"]
    assert pseudonym == _row(world, membership_id).pseudonym
    mine = [e for e in history["items"] if e["action"] == "request_leave"]
    assert [e["actor"] for e in mine] == [pseudonym]
    # And the admins' own ids stay
    assert world.users["gadmin"] in {e["actor"] for e in history["items"]}


def test_each_membership_has_its_own_pseudonym_that_leads_nowhere_else(api, world):
    # Given ann purged from open and from closed
    in_open = _purge(api, world, "open", "ann", leave=False, chunked=False)
    in_closed = _purge(api, world, "closed", "ann", leave=False, chunked=True)
    open_name = api("gadmin").get(f"/v1/organizations/open.example/memberships/{in_open}")
    closed_name = api("cadmin").get(f"/v1/organizations/closed.example/memberships/{in_closed}")
    # Then the two tombstones name two different pseudonyms
    names = {open_name.get_json()["userId"], closed_name.get_json()["userId"]}
    assert len(names) == 2
    # And neither is any user's id, nor is any tombstone still linked to a user
    with world.uow() as uow:
        assert not names & set(uow.session.scalars(select(User.id)))
        linked = uow.session.scalars(
            select(Membership.user_id).where(Membership.id.in_([in_open, in_closed]))
        ).all()
    assert linked == [None, None]


@pytest.mark.parametrize("chunked", [False, True], ids=["one-by-one", "chunk"])
def test_the_last_purge_anywhere_erases_the_accounts_email_and_name(api, world, chunked):
    # Given pat (no home organization) is a guest of open only
    # When that membership is purged
    _purge(api, world, "open", "pat", leave=True, chunked=chunked)
    # Then pat's account keeps no e-mail and no name
    pat = _user(world, "pat")
    assert (pat.email, pat.display_name) == (None, None)
    # And ann, purged from open but still at home and in closed, keeps hers
    _purge(api, world, "open", "ann", leave=True, chunked=chunked)
    assert _user(world, "ann").email == "ann@mail.example"


def test_a_purge_forgets_the_invitation_that_made_the_membership(api, world):
    # Given pat accepted cadmin's invitation to closed
    invitation = api("cadmin").post(
        "/v1/organizations/closed.example/guests",
        json={"email": "pat@mail.example", "kind": "b2b-collaboration"},
    )
    accepted = api("pat").post(f"/v1/me/invitations/{invitation.get_json()['id']}/accept")
    world.memberships[("closed", "pat")] = accepted.get_json()["id"]
    # When that membership is purged
    _purge(api, world, "closed", "pat", leave=False, chunked=False)
    # Then closed's invitations no longer show pat's address
    listed = api("cadmin").get("/v1/organizations/closed.example/invitations").get_json()
    assert "pat@mail.example" not in json.dumps(listed)


# ---- the whole database after a purge ------------------------------------------------------

NAME = "Zebediah Quarrington"
EMAIL = "zq.guest@mail.example"
# What the rules keep of a person whose last membership is purged: the account row's id
# (its e-mail and name are erased), nothing else — but for the 30 days the person is shown
# what happened, their own notices addressed to that account (organization, kind, date; no
# link to the tombstone), which the sweep then forgets.
KEPT_FOR_GOOD = {("users", "id")}
KEPT = KEPT_FOR_GOOD | {("notices", "user_id")}


def _every_value(world: Any) -> list[tuple[str, str, str]]:
    """(table, column, value as text) of every non-null value of every table the database
    has, read off the database itself (not the models)."""
    from sqlalchemy import inspect, text

    found = []
    with world.uow() as uow:
        connection = uow.session.connection()
        for table in inspect(connection).get_table_names():
            result = connection.execute(text(f'SELECT * FROM "{table}"'))
            columns = list(result.keys())
            for row in result:
                found.extend(
                    (table, column, str(value))
                    for column, value in zip(columns, row, strict=True)
                    if value is not None
                )
    return found


def _delivery_echoing(world: Any, endpoint_id: str, membership_id: str, email: str) -> None:
    """A failed delivery of an event of ``membership_id`` whose receiver answered with
    ``email`` in its reply (kept as the delivery's ``last_error``)."""
    from store.models import Event, WebhookDelivery

    now = world.clock()
    with world.uow() as uow:
        event = Event(
            event_id="msg_test_echo",
            type="membership.restored",
            organization_id=world.orgs["open"],
            membership_id=membership_id,
            occurred_at=now,
            payload="{}",
            dispatched_at=now,
        )
        uow.session.add(event)
        uow.session.flush()
        uow.session.add(
            WebhookDelivery(
                endpoint_id=endpoint_id,
                event_id=event.id,
                state="pending",
                attempts=1,
                last_status_code=422,
                last_error=f"HTTP 422: no account {email} here",
                created_at=now,
            )
        )
        uow.commit()


@pytest.mark.parametrize("chunked", [False, True], ids=["one-by-one", "chunk"])
def test_after_a_purge_no_table_holds_the_persons_id_email_or_name(api, world, chunked):
    from memberships import provisioning, webhook_endpoints
    from memberships.principal import SYSTEM

    # Given a person whose only membership anywhere is a guest one of open, with data,
    # and an endpoint of open that is told of every event
    with world.uow() as uow:
        person = provisioning.create_user(uow, world.clock, SYSTEM, EMAIL, NAME, None).id
    world.users["zq"] = person
    with world.uow() as uow:
        world.memberships[("open", "zq")] = provisioning.add_guest(
            uow, world.clock, SYSTEM, world.orgs["open"], person, "b2b-collaboration"
        ).id
    with world.uow() as uow:
        provisioning.add_member_data(uow, world.clock, SYSTEM, world.orgs["open"], person, 40)
    with world.uow() as uow:
        webhook_endpoints.create_webhook(
            uow, world.clock, SYSTEM, "open.example", "https://93.184.215.14/hooks"
        )
        endpoint = webhook_endpoints.create_webhook(
            uow, world.clock, SYSTEM, "open.example", "https://93.184.215.14/app"
        )
    # And a receiver's reply kept as a delivery's last error echoed her e-mail
    _delivery_echoing(world, endpoint.id, world.memberships[("open", "zq")], EMAIL)
    # And the events of her leave carried her id and e-mail (what apps need to find her data)
    _purge(api, world, "open", "zq", leave=True, chunked=chunked)
    # When every value of every table is read
    values = _every_value(world)
    assert any(table == "events" for table, _, _ in values)
    # Then none holds her id, e-mail or name, but where the rules keep it
    found = sorted(
        {
            (table, column)
            for table, column, value in values
            if person in value or EMAIL in value.lower() or NAME.lower() in value.lower()
        }
    )
    assert set(found) <= KEPT, found
    assert ("users", "id") in found  # the account is still there, erased
    # And once the 30 days of her notices are over, the sweep forgets them too
    from datetime import timedelta

    from memberships.sweep import sweep

    world.clock.advance(timedelta(days=31))
    with world.uow() as uow:
        sweep(uow, world.clock)
    left = {
        (table, column)
        for table, column, value in _every_value(world)
        if person in value or EMAIL in value.lower() or NAME.lower() in value.lower()
    }
    assert left == KEPT_FOR_GOOD, left

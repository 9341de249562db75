"""A disabled account (at home, or in the organization where it holds its role) has no
admin or operator power, over the API and the pages, and the development sign-in
neither lists nor accepts it."""

from __future__ import annotations

from typing import Any

from api_helpers import problem
from pages_helpers import text_of
from sqlalchemy import update

from memberships import provisioning
from memberships.principal import SYSTEM
from store.models import Membership, User

OPEN = "/v1/organizations/open.example"


def _disable_user(world: Any, user: str) -> None:
    with world.uow() as uow:
        uow.session.execute(update(User).where(User.id == world.users[user]).values(enabled=False))
        uow.commit()


def _admin_attempts(api: Any, world: Any, user: str) -> list[Any]:
    caller = api(user)
    guest = world.membership("open", "pat")
    return [
        caller.get(f"{OPEN}/memberships"),
        caller.delete(f"{OPEN}/memberships/{guest}"),
        caller.delete(f"{OPEN}/deleted-users/{world.membership('open', 'ann')}"),
        caller.patch(
            f"{OPEN}/settings/external-collaboration", json={"externalUserLeaveAllowed": False}
        ),
        caller.post(
            f"{OPEN}/guests", json={"email": "x@mail.example", "kind": "b2b-collaboration"}
        ),
    ]


def test_an_admin_disabled_at_home_loses_every_admin_power_over_the_api(api, world):
    # Given gadmin, Global Administrator of open (their home), disabled there
    _disable_user(world, "gadmin")
    # When they list members, remove a guest, delete one permanently, change a setting, invite
    for response in _admin_attempts(api, world, "gadmin"):
        # Then each is refused, and says why
        assert "disabled" in problem(response, 403, "forbidden")["detail"]
    # And nothing changed: pat is still active
    listed = api("idpadmin").get(f"{OPEN}/memberships/{world.membership('open', 'pat')}")
    assert listed.get_json()["state"] == "active"


def test_an_admin_disabled_in_the_organization_of_the_role_loses_it_there_only(api, world, clock):
    # Given cadmin (home: closed) also holds Global Administrator in open, where their
    # guest account is disabled
    with world.uow() as uow:
        provisioning.add_guest(
            uow,
            clock,
            SYSTEM,
            "open.example",
            world.users["cadmin"],
            "b2b-collaboration",
            enabled=False,
        )
    with world.uow() as uow:
        provisioning.grant_role(
            uow, clock, SYSTEM, world.users["cadmin"], "global-administrator", "open.example"
        )
    # When they act as admin of open, Then every attempt is refused
    for response in _admin_attempts(api, world, "cadmin"):
        problem(response, 403, "forbidden")
    # And in closed, where they are enabled, they are still its admin
    assert api("cadmin").get("/v1/organizations/closed.example/memberships").status_code == 200


def test_a_disabled_operator_loses_the_operator_role(api, world):
    # Given ops, a platform operator, disabled at home
    assert api("ops").get("/v1/ops/timers").status_code == 200
    with world.uow() as uow:
        uow.session.execute(
            update(Membership)
            .where(Membership.user_id == world.users["ops"], Membership.kind == "home")
            .values(enabled=False)
        )
        uow.commit()
    # When they read the timers, Then it is refused
    problem(api("ops").get("/v1/ops/timers"), 403, "forbidden")


def test_a_disabled_admin_loses_the_admin_pages(visitor, world):
    # Given gadmin signed in to the pages, then disabled
    assert visitor.sign_in(world.users["gadmin"]).status_code == 303
    assert visitor.get("/admin/open.example/memberships").status_code == 200
    _disable_user(world, "gadmin")
    # When they open the admin pages, Then they are refused, and open is no longer offered
    for path in ("/admin/open.example/memberships", "/admin/open.example/settings"):
        assert visitor.get(path).status_code == 403, path
    assert "open.example" not in text_of(visitor.get("/admin/"))


def test_the_development_sign_in_neither_lists_nor_accepts_a_disabled_account(visitor, world):
    # Given gadmin disabled at home, and off (disabled at home from the start)
    _disable_user(world, "gadmin")
    # When the sign-in page is opened, Then neither is offered
    text = text_of(visitor.get("/sign-in"))
    assert "gadmin@mail.example" not in text and "off@mail.example" not in text
    assert "ann@mail.example" in text
    # When the form is posted with their ids anyway, Then no session starts
    for user in ("gadmin", "off"):
        response = visitor.sign_in(world.users[user])
        assert response.status_code == 303
        assert visitor.get("/account/organizations").status_code == 302, user

"""Bulk admin operations over HTTP: restore several deleted users, remove several guests.

Each id is decided on its own (all or nothing for that id), audited on its own, and
answered with the status and problem a single call would get.
"""

from __future__ import annotations

import uuid

from api_helpers import PROBLEM_PREFIX, problem

from memberships import admin
from memberships.views import AuditEventView

OPEN = "/v1/organizations/open.example"


def _remove(world, user: str) -> str:
    membership_id = world.membership("open", user)
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), world.orgs["open"], membership_id)
    return membership_id


def _trail(world, membership_id: str) -> list[AuditEventView]:
    with world.uow() as uow:
        return [AuditEventView.of(e) for e in uow.audit.trail(membership_id)]


def test_bulk_restore_restores_each_deleted_user_and_reports_the_others(api, world):
    # Given ann and off were removed from open; dis is still active; one id is unknown
    ann, off = _remove(world, "ann"), _remove(world, "off")
    dis, unknown = world.membership("open", "dis"), str(uuid.uuid4())
    # When the admin restores all four at once
    response = api("gadmin").post(
        f"{OPEN}/deleted-users:restore", json={"ids": [ann, dis, off, unknown, ann]}
    )
    # Then there is one outcome per distinct id, in the order given
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [i["id"] for i in items] == [ann, dis, off, unknown]
    by_id = {i["id"]: i for i in items}
    # ann and off are restored (with the membership as a single restore answers it)
    for restored in (ann, off):
        assert by_id[restored]["status"] == 200 and by_id[restored]["problem"] is None
        assert by_id[restored]["membership"]["state"] == "restored"
    # dis is refused with the usual code, and nothing of hers changed
    assert by_id[dis]["status"] == 409 and by_id[dis]["membership"] is None
    assert by_id[dis]["problem"]["type"] == PROBLEM_PREFIX + "transition-not-allowed"
    assert by_id[unknown]["status"] == 404
    assert by_id[unknown]["problem"]["type"] == PROBLEM_PREFIX + "not-found"
    # and each decision is in its own membership's audit trail
    assert [e.action for e in _trail(world, ann)][-1] == "restore"
    assert [e.action for e in _trail(world, off)][-1] == "restore"
    assert [(e.action, e.outcome) for e in _trail(world, dis)][-1] == ("restore", "denied")


def test_bulk_remove_removes_each_guest_and_refuses_the_home_membership(api, world):
    # Given ann and pat (direct connect) are guests of open; gadmin's own is a home one
    ann, pat = world.membership("open", "ann"), world.membership("open", "pat")
    with world.uow() as uow:
        home = uow.memberships.live_membership(world.users["gadmin"], world.orgs["open"]).id
    # When the admin removes the three
    response = api("gadmin").post(f"{OPEN}/memberships:remove", json={"ids": [ann, pat, home]})
    # Then ann is soft-deleted, pat's data removal starts, the home membership is refused
    assert response.status_code == 200
    by_id = {i["id"]: i for i in response.get_json()["items"]}
    assert by_id[ann]["status"] == 202 and by_id[ann]["membership"]["state"] == "soft-deleted"
    assert by_id[pat]["membership"]["state"] == "purge-pending"
    assert by_id[home]["status"] == 403
    assert by_id[home]["problem"]["type"] == PROBLEM_PREFIX + "home-organization"
    assert [e.action for e in _trail(world, ann)][-1] == "remove"


def test_bulk_operations_take_1_to_500_ids_and_need_the_admin_role(api, world):
    ann = world.membership("open", "ann")
    # More than 500 ids, or none, are refused as a whole with 422 invalid-input
    many = [str(uuid.uuid4()) for _ in range(501)]
    problem(
        api("gadmin").post(f"{OPEN}/memberships:remove", json={"ids": many}), 422, "invalid-input"
    )
    problem(
        api("gadmin").post(f"{OPEN}/deleted-users:restore", json={"ids": []}), 422, "invalid-input"
    )
    problem(api("gadmin").post(f"{OPEN}/memberships:remove", json={}), 422, "invalid-input")
    # 500 are accepted (each unknown id answered on its own)
    response = api("gadmin").post(f"{OPEN}/deleted-users:restore", json={"ids": many[:500]})
    assert response.status_code == 200 and len(response.get_json()["items"]) == 500
    # A member who administers nothing is refused before any id is looked at, as if the
    # organization did not exist (admin paths reveal no organization's existence)
    problem(api("ann").post(f"{OPEN}/memberships:remove", json={"ids": [ann]}), 404, "not-found")
    with world.uow() as uow:
        assert uow.directory.find_user("ann@mail.example") is not None
    assert [e.action for e in _trail(world, ann)][-1] != "remove"

"""Cursor pagination over a few hundred rows: every row exactly once, in a stable order."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from api_helpers import database_rows, problem
from sqlalchemy import insert

from store.models import AuditEvent, Membership, User

GUESTS = 330
SOFT_DELETED = 120


@pytest.fixture
def crowded(world):
    """open.example with 330 more guests, 120 of them soft-deleted, and 330 audit events."""
    now = world.clock()
    users = [
        {
            "id": str(uuid.uuid4()),
            "email": f"guest{i}@crowd.example",
            "display_name": f"Guest {i}",
            "created_at": now,
        }
        for i in range(GUESTS)
    ]
    memberships = [
        {
            "id": str(uuid.uuid4()),
            "user_id": u["id"],
            "organization_id": world.orgs["open"],
            "kind": "b2b-collaboration",
            "state": "soft-deleted" if i < SOFT_DELETED else "active",
            "soft_deleted_at": now if i < SOFT_DELETED else None,
            "purge_due_at": now + timedelta(days=30) if i < SOFT_DELETED else None,
            "email": u["email"],
            "display_name": u["display_name"],
            "created_at": now,
        }
        for i, u in enumerate(users)
    ]
    events = [
        {
            "occurred_at": now,
            "organization_id": world.orgs["open"],
            "membership_id": m["id"],
            "actor": "system",
            "action": "add_guest",
            "outcome": "allowed",
            "to_state": "active",
        }
        for m in memberships
    ]
    with world.uow() as uow:
        uow.session.execute(insert(User), users)
        uow.session.execute(insert(Membership), memberships)
        uow.session.execute(insert(AuditEvent), events)
        uow.commit()
    return memberships


def walk(caller, url: str, limit: int) -> tuple[list[dict], int]:
    """Follow nextCursor to the end; the items and the number of pages."""
    items, pages, cursor = [], 0, None
    while True:
        sep = "&" if "?" in url else "?"
        page_url = f"{url}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = caller.get(page_url)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            return items, pages


def test_memberships_are_paged_each_exactly_once(api, world, crowded):
    # open has 6 memberships of the world (4 guests, 2 admins at home) plus the crowd
    items, pages = walk(api("gadmin"), "/v1/organizations/open.example/memberships", 37)
    ids = [m["id"] for m in items]
    assert len(ids) == len(set(ids)) == GUESTS + 6
    assert {m["id"] for m in crowded} <= set(ids)
    assert ids == sorted(ids)
    assert pages == -(-len(ids) // 37)


def test_a_filtered_listing_pages_only_the_matching_rows(api, crowded):
    url = "/v1/organizations/open.example/memberships?state=soft-deleted"
    items, _ = walk(api("gadmin"), url, 50)
    expected = {m["id"] for m in crowded if m["state"] == "soft-deleted"}
    assert [m["id"] for m in items] == sorted(expected)


def test_deleted_users_are_paged_each_exactly_once(api, crowded):
    items, pages = walk(api("gadmin"), "/v1/organizations/open.example/deleted-users", 25)
    ids = [m["id"] for m in items]
    assert len(ids) == len(set(ids)) == SOFT_DELETED
    assert all(m["state"] == "soft-deleted" and m["purgeDueAt"] for m in items)
    assert pages == -(-SOFT_DELETED // 25)


def test_audit_events_are_paged_each_exactly_once_oldest_first(api, crowded):
    items, _ = walk(api("gadmin"), "/v1/organizations/open.example/audit-events", 200)
    event_ids = [e["id"] for e in items]
    assert event_ids == sorted(set(event_ids))
    crowd = {m["id"] for m in crowded}
    assert sum(1 for e in items if e["membershipId"] in crowd) == GUESTS


def test_a_page_cannot_ask_for_more_than_200(api):
    response = api("gadmin").get("/v1/organizations/open.example/memberships?limit=201")
    assert response.status_code == 422


LISTS = {
    "memberships": "state=&kind=&cursor=&limit=",
    "deleted-users": "cursor=&limit=",
    "audit-events": "cursor=&limit=",
}


@pytest.mark.parametrize("listing", LISTS)
def test_an_empty_query_value_means_the_parameter_was_not_given(api, crowded, listing):
    # Given open has more rows than the default page of 50
    url = f"/v1/organizations/open.example/{listing}"
    plain = api("gadmin").get(url)
    assert plain.status_code == 200
    assert len(plain.get_json()["items"]) == 50
    # When every parameter is sent empty, as the API outline writes it
    empty = api("gadmin").get(f"{url}?{LISTS[listing]}")
    # Then it is the first page with the default limit and no filter, as if none were given
    assert empty.status_code == 200, empty.get_data(as_text=True)
    assert empty.get_json() == plain.get_json()
    # And an empty value next to a given one leaves the given one in force
    next_page = api("gadmin").get(f"{url}?limit=&cursor={plain.get_json()['nextCursor']}")
    assert next_page.status_code == 200
    assert next_page.get_json()["items"][0] not in plain.get_json()["items"]


def test_an_empty_filter_lists_every_state_and_kind(api, crowded):
    url = "/v1/organizations/open.example/memberships"
    every, _ = walk(api("gadmin"), url, 200)
    unfiltered, _ = walk(api("gadmin"), f"{url}?state=&kind=", 200)
    assert [m["id"] for m in unfiltered] == [m["id"] for m in every]
    assert {m["state"] for m in unfiltered} == {"active", "soft-deleted"}
    assert {m["kind"] for m in unfiltered} == {"home", "b2b-collaboration", "b2b-direct-connect"}


@pytest.mark.parametrize(
    "query, field",
    [
        ("state=gone", "state"),
        ("state=%20", "state"),
        ("kind=guest", "kind"),
        ("cursor=%25%25%25", "cursor"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=many", "limit"),
        ("state=&kind=&cursor=&limit=many", "limit"),
    ],
)
def test_a_value_that_is_given_and_wrong_is_still_a_422_naming_it(api, world, query, field):
    # When a non-empty value is not valid (the others empty or absent)
    before = database_rows(world)
    response = api("gadmin").get(f"/v1/organizations/open.example/memberships?{query}")
    # Then 422 invalid-input naming that parameter only, and nothing changed
    body = problem(response, 422, "invalid-input")
    assert [(e["location"], e["field"]) for e in body["errors"]] == [("query", field)]
    assert database_rows(world) == before
    # The same holds on the other lists for the parameters they take
    if field in ("cursor", "limit"):
        for listing in ("deleted-users", "audit-events"):
            other = api("gadmin").get(f"/v1/organizations/open.example/{listing}?{query}")
            found = problem(other, 422, "invalid-input")
            assert [e["field"] for e in found["errors"]] == [field]


def test_the_openapi_document_says_empty_query_values_mean_not_given(anonymous):
    spec = anonymous.get("/openapi.json").get_json()
    queries = [
        (path, parameter)
        for path, item in spec["paths"].items()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    ]
    assert {p["name"] for _, p in queries} == {"cursor", "limit", "state", "kind", "status"}
    for path, parameter in queries:
        assert "empty value is the same as leaving" in parameter["description"], path

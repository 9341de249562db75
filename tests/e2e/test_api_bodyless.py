"""The operations that take no body — leave, remove, restore, delete permanently.

Nothing, or an empty JSON object, is accepted (curl sends no body). Any other body is
refused as every body is, before anything is decided: malformed JSON is ``400
malformed-json``; a field (every field is unknown here) is ``422 invalid-input`` naming
it; JSON that is not an object (``[]``, ``3``, ``null``) is ``422 invalid-input``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from api_helpers import database_rows, problem

OPEN = "/v1/organizations/open.example"


@dataclass(frozen=True)
class Operation:
    name: str
    caller: str
    method: str
    path: str  # {ann}: ann's membership in open
    soft_deleted_first: bool  # restore and delete permanently need a soft-deleted membership
    status: int
    state: str  # the membership's state once it succeeded


OPERATIONS = [
    Operation(
        "leave",
        "ann",
        "POST",
        "/v1/me/organizations/open.example/leave",
        False,
        202,
        "leave-pending",
    ),
    Operation(
        "remove", "gadmin", "DELETE", OPEN + "/memberships/{ann}", False, 202, "soft-deleted"
    ),
    Operation(
        "restore", "gadmin", "POST", OPEN + "/deleted-users/{ann}/restore", True, 200, "restored"
    ),
    Operation(
        "delete-permanently",
        "gadmin",
        "DELETE",
        OPEN + "/deleted-users/{ann}",
        True,
        202,
        "purge-pending",
    ),
]

REFUSED = [
    # (body, content type, status, code, the field named in `errors`)
    ("{bad", "application/json", 400, "malformed-json", None),
    ("{not json", "application/json", 400, "malformed-json", None),
    ('{"unknownField": 1}', "application/json", 422, "invalid-input", "unknownField"),
    ('{"unknown": true}', "application/json", 422, "invalid-input", "unknown"),
    ("[]", "application/json", 422, "invalid-input", "_schema"),
    ("3", "application/json", 422, "invalid-input", "_schema"),
    ('"leave"', "application/json", 422, "invalid-input", "_schema"),
    ("null", "application/json", 422, "invalid-input", "_schema"),
    ("leave=1", "application/x-www-form-urlencoded", 415, "unsupported-media-type", None),
]

ACCEPTED = [
    # (label, keyword arguments of the request)
    ("no body, no content type (curl)", {}),
    ("an empty body sent as JSON", {"data": "", "content_type": "application/json"}),
    ("an empty object", {"json": {}}),
    ("an empty object with spaces", {"data": " { }\n", "content_type": "application/json"}),
]


def _prepare(api, world, operation: Operation) -> tuple[str, str]:
    """Bring ann's membership in open where the operation applies; its URL and id."""
    membership_id = world.membership("open", "ann")
    if operation.soft_deleted_first:
        assert api("gadmin").delete(f"{OPEN}/memberships/{membership_id}").status_code == 202
    return operation.path.format(ann=membership_id), membership_id


def _state(world, membership_id: str) -> str:
    from sqlalchemy import select

    from store.models import Membership

    with world.uow() as uow:
        return uow.session.scalar(select(Membership.state).where(Membership.id == membership_id))


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.name)
def test_a_body_is_refused_before_anything_is_decided(api, world, dispatcher, operation):
    # Given ann's membership in open is where the operation applies
    url, membership_id = _prepare(api, world, operation)
    before, sent_before = database_rows(world), list(dispatcher.sent)
    for body, content_type, status, code, field in REFUSED:
        # When the operation is sent with a body it does not take
        response = api(operation.caller).request(
            operation.method, url, data=body, content_type=content_type
        )
        # Then it is refused with the same problem any body would get
        found = problem(response, status, code)
        if field is not None:
            assert [e["field"] for e in found["errors"]] == [field], (body, found)
            assert found["errors"][0]["location"] == "json"
        # And nothing changed in the database, and nothing was sent to the workers
        assert database_rows(world) == before, body
        assert dispatcher.sent == sent_before, body
    # When it is sent again without a body, Then it is carried out: only the body was wrong
    done = api(operation.caller).request(operation.method, url)
    assert done.status_code == operation.status, done.get_data(as_text=True)
    assert _state(world, membership_id) == operation.state


@pytest.mark.parametrize("accepted", ACCEPTED, ids=[label for label, _ in ACCEPTED])
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.name)
def test_no_body_or_an_empty_object_is_accepted(api, world, operation, accepted):
    # Given ann's membership in open is where the operation applies
    url, membership_id = _prepare(api, world, operation)
    # When the operation is sent with nothing, or with an empty JSON object
    _, kwargs = accepted
    response = api(operation.caller).request(operation.method, url, **kwargs)
    # Then it is carried out
    assert response.status_code == operation.status, response.get_data(as_text=True)
    assert response.get_json()["state"] == operation.state
    assert _state(world, membership_id) == operation.state


def test_malformed_json_claims_no_idempotency_key(api, world):
    # Given ann sends a leave with malformed JSON and an Idempotency-Key
    leave = "/v1/me/organizations/open.example/leave"
    key = {"Idempotency-Key": "leave-open-1"}
    before = database_rows(world)
    broken = api("ann").post(leave, data="{bad", content_type="application/json", headers=key)
    # Then 400 malformed-json, and the key was not claimed: nothing changed at all
    problem(broken, 400, "malformed-json")
    assert "Idempotent-Replayed" not in broken.headers
    assert database_rows(world) == before
    # When she sends it again, fixed, with the same key, Then it is carried out
    first = api("ann").post(leave, headers=key)
    assert first.status_code == 202
    # And its retry is a replay of that answer, as before
    replay = api("ann").post(leave, headers=key)
    assert (replay.status_code, replay.get_data()) == (202, first.get_data())
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_an_empty_object_with_an_idempotency_key_replays_as_before(api, world):
    # Given an admin restored ann sending {} with an Idempotency-Key
    ann = world.membership("open", "ann")
    api("gadmin").delete(f"{OPEN}/memberships/{ann}")
    restore = f"{OPEN}/deleted-users/{ann}/restore"
    key = {"Idempotency-Key": "restore-ann-1"}
    first = api("gadmin").post(restore, json={}, headers=key)
    assert first.status_code == 200
    # When the retry spells the same empty object differently, Then it is a replay
    replay = api("gadmin").post(
        restore, data=" {\n} ", content_type="application/json", headers=key
    )
    assert (replay.status_code, replay.get_data()) == (200, first.get_data())
    assert replay.headers["Idempotent-Replayed"] == "true"
    # And a body with a field is another request: that key is refused, nothing changes
    before = database_rows(world)
    reused = api("gadmin").post(restore, json={"unknownField": 1}, headers=key)
    problem(reused, 422, "idempotency-key-reused")
    assert database_rows(world) == before


def test_the_openapi_document_gives_every_mutation_a_body_that_refuses_unknown_fields(
    anonymous,
):
    spec = anonymous.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    mutations = {
        (path, method): operation
        for path, item in spec["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
        if method in ("post", "put", "patch", "delete")
    }
    # with the webhooks' four, PATCH /v1/me/preferences, the removal requests' three, a
    # delivery's retry, an app's confirmUrl and an admin's confirmation of an app's removal
    assert len(mutations) == 23
    for (path, method), operation in mutations.items():
        # Every mutation declares its JSON body, whose schema refuses unknown fields
        body = operation["requestBody"]
        ref = body["content"]["application/json"]["schema"]["$ref"]
        schema = schemas[ref.rsplit("/", 1)[-1]]
        assert schema["additionalProperties"] is False, (path, method)
        # And documents the refusals: malformed JSON, a body that is not JSON, a wrong value
        assert {"400", "415", "422"} <= set(operation["responses"]), (path, method)
        if ref.endswith("/NoBody"):
            # The operations that take none: an optional, empty object
            assert not body.get("required")
            assert schema["properties"] == {}
    bodyless = {key for key, op in mutations.items() if "NoBody" in str(op["requestBody"])}
    assert bodyless == {
        ("/v1/me/organizations/{org}/leave", "post"),
        ("/v1/organizations/{org}/memberships/{membership_id}", "delete"),
        ("/v1/organizations/{org}/deleted-users/{membership_id}/restore", "post"),
        ("/v1/organizations/{org}/deleted-users/{membership_id}", "delete"),
        ("/v1/me/invitations/{invitation_id}/accept", "post"),
        ("/v1/me/invitations/{invitation_id}/decline", "post"),
        ("/v1/organizations/{org}/invitations/{invitation_id}", "delete"),
        ("/v1/organizations/{org}/removal-requests/{request_id}/approve", "post"),
        ("/v1/organizations/{org}/webhooks/{webhook_id}", "delete"),
        ("/v1/organizations/{org}/webhooks/{webhook_id}/rotate-secret", "post"),
        ("/v1/organizations/{org}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", "post"),
        ("/v1/removal-confirmations/{token}", "post"),
    }

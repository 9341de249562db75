"""An organization's webhook endpoints: admins only, the secret shown once (at creation
and rotation), URLs refused that would let the service reach its own network (without
the development flag), unknown event types refused by name, every change audited with
no secret in the audit log."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest
from api_helpers import database_rows, problem
from sqlalchemy import select

from store.models import AuditEvent, WebhookEndpoint

HOOKS = "/v1/organizations/open.example/webhooks"
PUBLIC_URL = "https://93.184.215.14/hooks"  # a public address: checked without a DNS lookup
ENDPOINT_FIELDS = {
    "id",
    "organizationId",
    "url",
    "description",
    "events",
    "confirmsRemoval",
    "enabled",
    "disabledReason",
    "failingSince",
    "createdAt",
    "updatedAt",
}


@pytest.fixture
def private_ok(make_app):
    """An app with ``WEBHOOK_ALLOW_PRIVATE_NETWORKS=1`` (development and tests)."""
    return make_app(webhook_allow_private_networks=True).test_client()


def _create(api, **body):
    return api("gadmin").post(HOOKS, json={"url": PUBLIC_URL, **body})


def _stored(world, webhook_id: str) -> WebhookEndpoint:
    with world.uow() as uow:
        row = uow.session.get(WebhookEndpoint, webhook_id)
        assert row is not None
        uow.session.expunge(row)
        return row


def test_an_admin_adds_an_endpoint_and_sees_its_secret_only_then(api, world):
    # When open's admin adds an endpoint for two event types
    created = _create(
        api,
        events=["membership.purged", "membership.soft_deleted"],
        description="CRM",
        confirmsRemoval=True,
    )
    # Then it is made, with its fields and a Standard Webhooks secret
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert set(body) == ENDPOINT_FIELDS | {"secret"}
    assert (body["url"], body["description"], body["confirmsRemoval"]) == (PUBLIC_URL, "CRM", True)
    assert body["events"] == ["membership.purged", "membership.soft_deleted"]
    assert (body["enabled"], body["disabledReason"], body["failingSince"]) == (True, None, None)
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    assert secret == _stored(world, body["id"]).secret
    # And no other answer shows the secret
    admin = api("gadmin")
    listed = admin.get(HOOKS).get_json()
    shown = admin.get(f"{HOOKS}/{body['id']}").get_json()
    patched = admin.patch(f"{HOOKS}/{body['id']}", json={"description": "CRM 2"}).get_json()
    for answer in (listed, shown, patched):
        assert secret not in json.dumps(answer) and "whsec_" not in json.dumps(answer)
    assert [set(i) for i in listed["items"]] == [ENDPOINT_FIELDS]
    assert set(shown) == ENDPOINT_FIELDS and patched["description"] == "CRM 2"
    # And the audit log has the change, naming the endpoint, with no secret
    with world.uow() as uow:
        audited = uow.session.execute(
            select(AuditEvent.action, AuditEvent.reason, AuditEvent.actor).where(
                AuditEvent.action.like("%webhook%")
            )
        ).all()
    assert [(a, r) for a, r, _ in audited] == [
        ("create_webhook", body["id"]),
        ("update_webhook", body["id"]),
    ]
    assert {actor for _, _, actor in audited} == {world.users["gadmin"]}


def test_every_event_type_is_the_default_and_unknown_ones_are_refused_by_name(api, world):
    # An endpoint without events gets every type
    assert _create(api).get_json()["events"] is None
    # Unknown types are refused, each named
    before = database_rows(world)
    refused = _create(api, events=["membership.purged", "membership.created", "org.x"])
    body = problem(refused, 422, "invalid-input")
    assert "membership.created" in body["detail"] and "org.x" in body["detail"]
    assert body["errors"][0]["field"] == "events"
    # And an empty list too
    problem(_create(api, events=[]), 422, "invalid-input")
    assert database_rows(world) == before


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://10.1.2.3/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hooks",
        "https://[::1]/hooks",
        "http://93.184.215.14/hooks",
        "https://user:pw@93.184.215.14/hooks",
        "not a url",
    ],
)
def test_urls_that_reach_private_networks_are_refused_when_saved(api, world, url):
    # Given the service runs without WEBHOOK_ALLOW_PRIVATE_NETWORKS
    before = database_rows(world)
    # When an admin adds (or changes an endpoint to) such a URL
    refused = api("gadmin").post(HOOKS, json={"url": url})
    # Then it is refused, naming the field, and nothing is stored
    body = problem(refused, 422, "invalid-input")
    assert body["errors"] == [{"location": "json", "field": "url", "message": body["detail"]}]
    assert database_rows(world) == before
    created = _create(api).get_json()
    changed = api("gadmin").patch(f"{HOOKS}/{created['id']}", json={"url": url})
    problem(changed, 422, "invalid-input")
    assert _stored(world, created["id"]).url == PUBLIC_URL


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["::1"],
        ["::ffff:127.0.0.1"],
        ["10.0.0.7"],
        ["169.254.169.254"],
        ["224.0.0.1"],
        ["93.184.215.14", "127.0.0.1"],  # one public address is not enough
    ],
    ids=str,
)
def test_a_name_resolving_to_loopback_or_a_private_address_is_refused_when_saved(addresses):
    import socket

    from memberships.errors import InvalidInput
    from memberships.webhook_urls import check_webhook_url

    # Given a host name that resolves to such addresses
    def resolve(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        assert host == "hooks.app.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    url = "https://hooks.app.example/lifecycle"
    # When it is checked without the development flag, Then it is refused naming the address
    with pytest.raises(InvalidInput) as refused:
        check_webhook_url(url, allow_private_networks=False, resolve=resolve)
    assert refused.value.extra["field"] == "url"
    assert addresses[-1] in refused.value.detail
    # And with WEBHOOK_ALLOW_PRIVATE_NETWORKS it is accepted, with the addresses to connect to
    checked = check_webhook_url(url, allow_private_networks=True, resolve=resolve)
    assert checked.addresses == tuple(addresses)


def test_the_development_flag_lets_local_receivers_in(private_ok, world):
    from api_helpers import token_for

    headers = {"Authorization": f"Bearer {token_for(world.users['gadmin'])}"}
    created = private_ok.post(HOOKS, json={"url": "http://127.0.0.1:9/hooks"}, headers=headers)
    assert created.status_code == 201, created.get_data(as_text=True)


def test_disable_enable_and_what_an_endpoint_shows_of_its_state(api, world):
    created = _create(api).get_json()
    url = f"{HOOKS}/{created['id']}"
    admin = api("gadmin")
    # When an admin disables it
    disabled = admin.patch(url, json={"enabled": False}).get_json()
    assert (disabled["enabled"], disabled["disabledReason"]) == (False, "Disabled by an admin.")
    # And it had been failing (as deliveries record)
    with world.uow() as uow:
        row = uow.session.get(WebhookEndpoint, created["id"])
        row.failing_since = world.clock() - timedelta(days=5)
        row.disabled_reason = "Every delivery failed for 5 days."
        uow.commit()
    shown = admin.get(url).get_json()
    assert shown["failingSince"] and shown["disabledReason"] == "Every delivery failed for 5 days."
    # When it is enabled again, why it was disabled and the failures are forgotten
    enabled = admin.patch(url, json={"enabled": True}).get_json()
    assert (enabled["enabled"], enabled["disabledReason"], enabled["failingSince"]) == (
        True,
        None,
        None,
    )
    # And a field sent as null that cannot be null is refused
    problem(admin.patch(url, json={"url": None}), 422, "invalid-input")
    problem(admin.patch(url, json={"secret": "whsec_x"}), 422, "invalid-input")
    # And description and events can be cleared
    cleared = admin.patch(url, json={"description": None, "events": None}).get_json()
    assert (cleared["description"], cleared["events"]) == (None, None)


def test_rotating_keeps_the_old_secret_for_a_day_and_shows_the_new_one_once(api, world):
    created = _create(api).get_json()
    # When the secret is rotated
    rotated = api("gadmin").post(f"{HOOKS}/{created['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.get_data(as_text=True)
    new = rotated.get_json()["secret"]
    # Then the new secret is shown, and the old one signs alongside it for 24 hours
    assert new.startswith("whsec_") and new != created["secret"]
    row = _stored(world, created["id"])
    assert (row.secret, row.previous_secret) == (new, created["secret"])
    assert row.previous_secret_expires_at == world.clock() + timedelta(hours=24)
    # And the audit log names the rotation without any secret
    with world.uow() as uow:
        text = json.dumps(
            [list(map(str, r)) for r in uow.session.execute(select(AuditEvent.__table__))]
        )
        reasons = uow.session.scalars(
            select(AuditEvent.reason).where(AuditEvent.action == "rotate_webhook_secret")
        ).all()
    assert reasons == [created["id"]] and "whsec_" not in text


def test_delete_and_what_other_callers_are_told(api, world):
    created = _create(api).get_json()
    url = f"{HOOKS}/{created['id']}"
    # Another organization's admin, and a member, are told it does not exist
    for caller in ("cadmin", "ann"):
        problem(api(caller).get(url), 404, "not-found")
        problem(api(caller).delete(url), 404, "not-found")
    # closed's admin cannot reach open's endpoint through closed either
    problem(
        api("cadmin").get(f"/v1/organizations/closed.example/webhooks/{created['id']}"),
        404,
        "not-found",
    )
    # When open's admin deletes it, it is gone
    deleted = api("gadmin").delete(url)
    assert deleted.status_code == 200 and deleted.get_json()["id"] == created["id"]
    problem(api("gadmin").get(url), 404, "not-found")
    assert api("gadmin").get(HOOKS).get_json()["items"] == []


def test_the_operations_are_in_the_openapi_document(client):
    document = client.get("/openapi.json").get_json()
    operations = {
        op["operationId"]
        for path, item in document["paths"].items()
        if "/webhooks" in path
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }
    assert {
        "createWebhook",
        "listWebhooks",
        "getWebhook",
        "updateWebhook",
        "deleteWebhook",
        "rotateWebhookSecret",
    } <= operations
    shown = document["components"]["schemas"]["WebhookEndpoint"]["properties"]
    assert "secret" not in shown


def test_timestamps_are_utc(api):
    body = _create(api).get_json()
    assert datetime.fromisoformat(body["createdAt"].replace("Z", "+00:00")).utcoffset() == (
        timedelta(0)
    )


def test_a_leave_through_the_api_writes_exactly_one_event(api, world):
    # Given ann leaves open over the API, and asks again (refused: already leaving)
    from store.models import Event

    assert api("ann").post("/v1/me/organizations/open.example/leave").status_code == 202
    assert api("ann").post("/v1/me/organizations/open.example/leave").status_code == 409
    # Then exactly one event was written, for the committed leave only
    with world.uow() as uow:
        events = uow.session.execute(select(Event.type, Event.membership_id)).all()
    assert events == [("membership.leave_pending", world.membership("open", "ann"))]

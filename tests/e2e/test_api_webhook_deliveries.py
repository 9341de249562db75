"""Webhook deliveries and app confirmations over HTTP: listing and retrying deliveries,
the membership's removal progress, the confirmUrl (no credentials, once), and the
admin's manual confirmation."""

from __future__ import annotations

from api_helpers import problem

from memberships.webhook_delivery import DELIVER_ACTOR, fan_out
from store.models import WebhookDelivery
from tests.integration.test_webhook_delivery import add_endpoint, add_event

OPEN = "/v1/organizations/open.example"


def test_an_admin_lists_and_retries_a_webhooks_deliveries(api, world, dispatcher):
    endpoint = add_endpoint(world, "https://crm.example/hook")
    events = [add_event(world) for _ in range(3)]
    with world.uow() as uow:
        fan_out(uow, world.clock)
    # When the admin lists the deliveries two at a time
    first = api("gadmin").get(f"{OPEN}/webhooks/{endpoint}/deliveries?limit=2")
    assert first.status_code == 200
    page = first.get_json()
    rest = api("gadmin").get(
        f"{OPEN}/webhooks/{endpoint}/deliveries?limit=2&cursor={page['nextCursor']}"
    )
    items = page["items"] + rest.get_json()["items"]
    # Then every delivery is there once, pending, with its event
    assert sorted(i["eventId"] for i in items) == sorted(events)
    one = items[0]
    assert one["state"] == "pending" and one["attempts"] == 0
    assert one["eventType"] == "membership.soft_deleted" and one["webhookId"] == endpoint
    assert set(one) >= {"lastStatusCode", "lastError", "nextAttemptAt"}
    # When the delivery failed and the admin retries it
    with world.uow() as uow:
        row = uow.session.get(WebhookDelivery, one["id"])
        assert row is not None
        row.state, row.next_attempt_at, row.last_error = "failed", None, "HTTP 500"
        uow.commit()
    dispatcher.sent.clear()
    retried = api("gadmin").post(f"{OPEN}/webhooks/{endpoint}/deliveries/{one['id']}/retry")
    # Then it is pending again, due now, and sent to the workers
    assert retried.status_code == 202, retried.get_json()
    assert retried.get_json()["state"] == "pending"
    assert dispatcher.sent == [(DELIVER_ACTOR, one["id"])]
    # Another organization's admin learns nothing; an unknown delivery is not found
    problem(api("cadmin").get(f"{OPEN}/webhooks/{endpoint}/deliveries"), 404, "not-found")
    problem(
        api("gadmin").post(f"{OPEN}/webhooks/{endpoint}/deliveries/nope/retry"), 404, "not-found"
    )


def test_removal_progress_confirm_url_and_manual_confirmation(api, client, world):
    crm = add_endpoint(world, "https://crm.example/hook", confirms_removal=True)
    files = add_endpoint(world, "https://files.example/hook", confirms_removal=True)
    pat = world.membership("open", "pat")
    version = api("gadmin").get(f"{OPEN}/memberships/{pat}").headers["ETag"]
    removed = api("gadmin").delete(f"{OPEN}/memberships/{pat}", headers={"If-Match": version})
    assert removed.status_code == 202
    # The membership shows its removal: rows and the apps, none confirmed
    shown = api("gadmin").get(f"{OPEN}/memberships/{pat}").get_json()
    assert shown["state"] == "purge-pending"
    assert shown["removal"]["rows"] == {"removed": 0, "total": 30}
    apps = {a["webhookId"]: a for a in shown["removal"]["apps"]}
    assert set(apps) == {crm, files}
    assert apps[crm]["confirmedAt"] is None and apps[crm]["url"] == "https://crm.example/hook"
    # An app confirms through a confirmUrl (minted for a delivery attempt)
    from memberships import removal_confirmations
    from store.models import RemovalAppConfirmation

    with world.uow() as uow:
        row = uow.session.query(RemovalAppConfirmation).filter_by(webhook_id=crm).one()
        url = removal_confirmations.issue_confirm_url(uow, row, "https://life.example")
        uow.commit()
    path = url.removeprefix("https://life.example")
    confirmed = client.post(path)  # no credentials
    assert confirmed.status_code == 200, confirmed.get_json()
    assert confirmed.get_json()["webhookId"] == crm
    problem(client.post(path), 404, "not-found")  # single use
    # The admin confirms the other app by hand, with a note
    body = {"webhookId": files, "note": "Files were deleted by their operators."}
    manual = api("gadmin").post(f"{OPEN}/memberships/{pat}/removal-confirmations", json=body)
    assert manual.status_code == 201, manual.get_json()
    assert manual.get_json()["confirmedVia"] == "manual"
    problem(
        api("gadmin").post(f"{OPEN}/memberships/{pat}/removal-confirmations", json=body),
        409,
        "already-exists",
    )
    shown = api("gadmin").get(f"{OPEN}/memberships/{pat}").get_json()
    assert all(a["confirmedAt"] for a in shown["removal"]["apps"])

"""Connected apps confirm removal (docs/webhooks.md): a membership entering
purge-pending waits for every app with ``confirmsRemoval``; its confirmUrl works once;
an answer ``{"removed": true}`` confirms, ``202`` does not; an admin may confirm by hand
(audited); an app that never confirms keeps it purge-pending and overdue."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from memberships import admin, operations, reading, removal_confirmations
from memberships.errors import AlreadyExists, InvalidInput, NotFound
from memberships.principal import SYSTEM
from memberships.redrive import redrive_stalled
from memberships.removal import remove_all_data, remove_chunk_batch, remove_data_batch
from memberships.webhook_delivery import DeliveryConfig, deliver, fan_out
from store.models import AuditEvent, Event, Membership, RemovalAppConfirmation, WebhookDelivery
from tests.integration.test_webhook_delivery import add_endpoint, add_event
from tests.support.receiver import Reply, running

if TYPE_CHECKING:
    from conftest import World

DEV = DeliveryConfig(allow_private_networks=True, public_base_url="https://life.example", timeout=5)


def remove_pat(world: World) -> str:
    """pat is a direct-connect guest of open: removal starts at once (purge-pending)."""
    membership_id = world.membership("open", "pat")
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    return membership_id


def purge_pending_event(world: World, membership_id: str) -> str:
    """The membership's ``membership.purge_pending`` event: the outbox's, or one written here
    where the outbox writes none."""
    with world.uow() as uow:
        found = uow.session.scalar(
            select(Event.event_id).where(
                Event.membership_id == membership_id, Event.type == "membership.purge_pending"
            )
        )
    return found or add_event(world, "membership.purge_pending", membership_id)


def delivery_of(world: World, event_id: str) -> WebhookDelivery:
    with world.uow() as uow:
        found = uow.session.scalar(
            select(WebhookDelivery)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .where(Event.event_id == event_id)
        )
        assert found is not None
        uow.session.expunge(found)
        return found


def state_of(world: World, membership_id: str) -> str:
    with world.uow() as uow:
        row = uow.session.get(Membership, membership_id)
        assert row is not None
        return row.state


def confirmations(world: World, membership_id: str) -> list[RemovalAppConfirmation]:
    with world.uow() as uow:
        rows = list(
            uow.session.scalars(
                select(RemovalAppConfirmation).where(
                    RemovalAppConfirmation.membership_id == membership_id
                )
            )
        )
        uow.session.expunge_all()
        return rows


def test_apps_as_of_the_start_of_removal_must_confirm(world: World) -> None:
    # Given two apps that confirm removal, one that does not, one disabled
    app = add_endpoint(world, "https://crm.example/hook", confirms_removal=True)
    other = add_endpoint(world, "https://files.example/hook", confirms_removal=True)
    add_endpoint(world, "https://chat.example/hook")
    add_endpoint(world, "https://old.example/hook", confirms_removal=True, enabled=False)
    # When pat's removal starts, and an app is added afterwards
    membership_id = remove_pat(world)
    add_endpoint(world, "https://late.example/hook", confirms_removal=True)
    # Then exactly the two enabled confirming apps of that moment are waited for
    rows = confirmations(world, membership_id)
    assert sorted(r.webhook_id for r in rows) == sorted([app, other])
    assert all(r.confirmed_at is None for r in rows)
    # and the own data removal finishes without purging: it waits on the apps
    with world.uow() as uow:
        progress = remove_all_data(uow, world.clock, membership_id)
    assert progress.waiting_on_apps and progress.done
    # (the batch that found nothing left reports it as it is: purge-pending, all 30 rows)
    assert (progress.state, progress.removed_now, progress.removed_total) == (
        "purge-pending",
        0,
        30,
    )
    assert state_of(world, membership_id) == "purge-pending"
    with world.uow() as uow:
        view = reading.get_membership(
            uow, world.clock, world.principal("gadmin"), "open.example", membership_id
        )
    assert view.removal is not None
    assert (view.removal.rows_removed, view.removal.rows_total) == (30, 30)
    assert [a.confirmed_at for a in view.removal.apps] == [None, None]


def test_an_app_that_never_confirms_keeps_the_membership_purge_pending_and_overdue(
    world: World, dispatcher, policy
) -> None:
    add_endpoint(world, "https://crm.example/hook", confirms_removal=True)
    membership_id = remove_pat(world)
    with world.uow() as uow:
        remove_all_data(uow, world.clock, membership_id)
    with world.uow() as uow:
        report = operations.timers_report(uow, world.clock, SYSTEM)
    assert (report.waiting_on_apps, report.waiting_on_apps_overdue) == (1, 0)
    # When the removal window passes with no confirmation
    world.clock.advance(policy.removal_window + timedelta(days=1))
    dispatcher.sent.clear()
    with world.uow() as uow:
        redriven = redrive_stalled(uow, world.clock)
    with world.uow() as uow:
        report = operations.timers_report(uow, world.clock, SYSTEM)
    # Then it is still purge-pending, counted waiting and overdue, and not re-driven
    # over and over (nothing but the app's answer can move it on)
    assert state_of(world, membership_id) == "purge-pending"
    assert (report.waiting_on_apps, report.waiting_on_apps_overdue) == (1, 1)
    assert report.overdue_removals == 1
    assert redriven["remove_data"] == 0 and dispatcher.sent == []


def test_the_confirm_url_confirms_once_and_the_removal_finishes(world: World, dispatcher) -> None:
    app = add_endpoint(world, "http://placeholder/hook", confirms_removal=True)
    membership_id = remove_pat(world)
    event_id = purge_pending_event(world, membership_id)
    with running([Reply(202)]) as receiver:
        with world.uow() as uow:
            from store.models import WebhookEndpoint

            endpoint = uow.session.get(WebhookEndpoint, app)
            assert endpoint is not None
            endpoint.url = receiver.url()
            uow.commit()
        with world.uow() as uow:
            fan_out(uow, world.clock)
        delivery = delivery_of(world, event_id)
        with world.uow() as uow:
            attempt = deliver(uow, world.clock, delivery.id, DEV)
        [request] = receiver.received
    # The delivery carries confirmUrl under PUBLIC_BASE_URL; 202 is delivered, not confirmed
    assert attempt is not None and attempt.state == "delivered"
    assert not attempt.confirmed_removal
    assert request.headers["webhook-id"] == event_id
    url = request.json()["data"]["confirmUrl"]
    assert url.startswith("https://life.example/v1/removal-confirmations/")
    token = url.rsplit("/", 1)[1]
    [row] = confirmations(world, membership_id)
    assert row.confirmed_at is None
    # Only a hash of the token is stored
    assert row.token_hash is not None and token not in row.token_hash
    with world.uow() as uow:
        remove_all_data(uow, world.clock, membership_id)
    assert state_of(world, membership_id) == "purge-pending"
    # When the app calls its confirmUrl
    dispatcher.sent.clear()
    with world.uow() as uow:
        confirmed = removal_confirmations.confirm_by_token(uow, world.clock, token)
    assert confirmed.confirmed_via == "url"
    # Then the removal is sent on, and finishing it purges the membership
    assert dispatcher.sent == [("remove_data", membership_id)]
    with world.uow() as uow:
        remove_data_batch(uow, world.clock, membership_id)
    assert state_of(world, membership_id) == "purged"
    # and the URL does not work a second time
    with world.uow() as uow, pytest.raises(NotFound):
        removal_confirmations.confirm_by_token(uow, world.clock, token)
    with world.uow() as uow, pytest.raises(NotFound):
        removal_confirmations.confirm_by_token(uow, world.clock, "made-up-token")


def test_answering_removed_true_confirms_in_the_delivery(world: World) -> None:
    with running([Reply(200, json.dumps({"removed": True}).encode())]) as receiver:
        add_endpoint(world, receiver.url(), confirms_removal=True)
        membership_id = remove_pat(world)
        event_id = purge_pending_event(world, membership_id)
        with world.uow() as uow:
            fan_out(uow, world.clock)
        delivery = delivery_of(world, event_id)
        with world.uow() as uow:
            attempt = deliver(uow, world.clock, delivery.id, DEV)
    assert attempt is not None and attempt.confirmed_removal
    [row] = confirmations(world, membership_id)
    assert row.confirmed_via == "delivery" and row.confirmed_at is not None
    with world.uow() as uow:
        remove_all_data(uow, world.clock, membership_id)
    assert state_of(world, membership_id) == "purged"


def test_an_admin_confirms_by_hand_audited_with_who_and_why(world: World) -> None:
    app = add_endpoint(world, "https://crm.example/hook", confirms_removal=True)
    membership_id = remove_pat(world)
    gadmin = world.principal("gadmin")
    with world.uow() as uow, pytest.raises(InvalidInput):
        removal_confirmations.confirm_manually(
            uow, world.clock, gadmin, "open.example", membership_id, app, "  "
        )
    with world.uow() as uow, pytest.raises(NotFound):  # another organization's admin
        removal_confirmations.confirm_manually(
            uow, world.clock, world.principal("cadmin"), "open.example", membership_id, app, "x"
        )
    last = world.last_audit_id()
    note = "The CRM team deleted the record by hand (ticket 4711)."
    with world.uow() as uow:
        removal_confirmations.confirm_manually(
            uow, world.clock, gadmin, "open.example", membership_id, app, note
        )
    [row] = confirmations(world, membership_id)
    assert (row.confirmed_via, row.confirmed_by, row.note) == ("manual", gadmin.id, note)
    [entry] = [e for e in world.audit_after(last) if e.action == "confirm_removal"]
    assert entry.actor == gadmin.id and entry.outcome == "allowed"
    assert entry.reason == f"manual:{app}" and entry.membership_id == membership_id
    with world.uow() as uow, pytest.raises(AlreadyExists):
        removal_confirmations.confirm_manually(
            uow, world.clock, gadmin, "open.example", membership_id, app, note
        )
    with world.uow() as uow:
        remove_all_data(uow, world.clock, membership_id)
    assert state_of(world, membership_id) == "purged"


def test_the_chunked_finish_waits_on_apps_too(world: World) -> None:
    # Given two purge-pending memberships of open, one waiting on an app's confirmation
    app = add_endpoint(world, "https://crm.example/hook", confirms_removal=True)
    waiting = remove_pat(world)
    with world.uow() as uow:
        from store.models import WebhookEndpoint

        endpoint = uow.session.get(WebhookEndpoint, app)
        assert endpoint is not None
        endpoint.enabled = False
        uow.commit()
    free = world.soft_delete("open", "off")
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", free)
    # When a chunk erases both
    while True:
        with world.uow() as uow:
            progress = remove_chunk_batch(uow, world.clock, [waiting, free])
        if progress.done:
            break
    # Then the one without apps is purged; the other waits, and its work is done for now
    assert progress.waiting_on_apps == (waiting,)
    assert state_of(world, free) == "purged"
    assert state_of(world, waiting) == "purge-pending"
    # (its 30 rows counted, the time of the last batch kept, and its confirmation told
    # that the service's own data is gone)
    with world.uow() as uow:
        row = uow.session.get(Membership, waiting)
        assert row is not None
        assert (row.removed_rows, row.last_progress_at) == (30, world.clock())
    assert [c.rows_removed_at for c in confirmations(world, waiting)] == [world.clock()]
    with world.uow() as uow:
        denied = uow.session.scalars(
            select(AuditEvent).where(
                AuditEvent.outcome == "denied", AuditEvent.membership_id == waiting
            )
        ).all()
    assert denied == []


def test_a_lost_finish_message_is_re_driven_once_every_app_confirmed(
    world: World, dispatcher, policy
) -> None:
    app = add_endpoint(world, "https://crm.example/hook", confirms_removal=True)
    membership_id = remove_pat(world)
    with world.uow() as uow:
        remove_all_data(uow, world.clock, membership_id)
    with world.uow() as uow:
        removal_confirmations.confirm_manually(
            uow, world.clock, world.principal("gadmin"), "open.example", membership_id, app, "ok"
        )
    # When the message the confirmation sent is lost
    dispatcher.sent.clear()
    world.clock.advance(policy.redrive_after + timedelta(seconds=1))
    with world.uow() as uow:
        redriven = redrive_stalled(uow, world.clock)
    # Then the sweep's re-drive sends the removal again, and it finishes
    assert redriven["remove_data"] == 1
    assert ("remove_data", membership_id) in dispatcher.sent
    with world.uow() as uow:
        remove_data_batch(uow, world.clock, membership_id)
    assert state_of(world, membership_id) == "purged"

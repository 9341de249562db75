"""Webhook delivery (docs/webhooks.md): the fan-out of the outbox, signed
attempts a real receiver gets, back-off and the sweep's re-drive, no redirects, the
request-forgery rule at delivery time, giving up, and disabling a failing endpoint."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from memberships.clock import utc_now
from memberships.sweep import sweep
from memberships.webhook_delivery import (
    DELIVER_ACTOR,
    DeliveryConfig,
    backoff,
    deliver,
    fan_out,
    redrive_due,
)
from store.models import Event, WebhookDelivery, WebhookEndpoint
from tests.support.receiver import Reply, running

if TYPE_CHECKING:
    from conftest import World

DEV = DeliveryConfig(allow_private_networks=True, timeout=5)
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # base64 of 24 bytes


def add_endpoint(world: World, url: str, **fields: Any) -> str:
    now = world.clock()
    with world.uow() as uow:
        endpoint = WebhookEndpoint(
            organization_id=world.orgs["open"],
            url=url,
            secret=fields.pop("secret", SECRET),
            created_at=now,
            updated_at=now,
            **fields,
        )
        uow.session.add(endpoint)
        uow.commit()
        return endpoint.id


def add_event(
    world: World,
    type: str = "membership.soft_deleted",
    membership_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    now = world.clock()
    event_id = f"msg_{uuid.uuid4().hex}"
    payload = {
        "type": type,
        "timestamp": now.isoformat(),
        "data": data or {"membershipId": membership_id, "toState": type.split(".")[1]},
    }
    with world.uow() as uow:
        uow.session.add(
            Event(
                event_id=event_id,
                type=type,
                organization_id=world.orgs["open"],
                membership_id=membership_id,
                occurred_at=now,
                payload=json.dumps(payload),
            )
        )
        uow.commit()
    return event_id


def deliveries(world: World) -> list[WebhookDelivery]:
    with world.uow() as uow:
        rows = list(uow.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        uow.session.expunge_all()
        return rows


def only_delivery(world: World) -> WebhookDelivery:
    found = deliveries(world)
    assert len(found) == 1
    return found[0]


def test_an_event_is_fanned_out_once_per_matching_enabled_endpoint(world: World, dispatcher):
    # Given three endpoints of open: every type, only purges, and a disabled one
    every = add_endpoint(world, "https://a.example/hook")
    add_endpoint(world, "https://b.example/hook", events=json.dumps(["membership.purged"]))
    add_endpoint(world, "https://c.example/hook", enabled=False, disabled_reason="by an admin")
    event_id = add_event(world)
    # When the fan-out runs (twice: the second finds nothing left)
    with world.uow() as uow:
        assert fan_out(uow, world.clock) == (1, 1)
    with world.uow() as uow:
        assert fan_out(uow, world.clock) == (0, 0)
    # Then one pending delivery exists, for the endpoint that takes every type, it was sent
    # on to the workers, and the event is marked dispatched
    delivery = only_delivery(world)
    assert (delivery.endpoint_id, delivery.state) == (every, "pending")
    assert dispatcher.sent == [(DELIVER_ACTOR, delivery.id)]
    with world.uow() as uow:
        event = uow.session.scalar(select(Event).where(Event.event_id == event_id))
        assert event is not None and event.dispatched_at is not None


@pytest.mark.parametrize("rotating", [False, True], ids=["one-secret", "during-rotation"])
def test_a_delivery_is_signed_as_standard_webhooks_verifies_it(world: World, rotating: bool):
    new_secret = "whsec_" + "c2VjcmV0LXR3by1mb3ItdGhlLXJvdGF0aW9uLXRlc3Q="
    with running() as receiver:
        fields: dict[str, Any] = {}
        if rotating:
            fields = {
                "secret": new_secret,
                "previous_secret": SECRET,
                "previous_secret_expires_at": utc_now() + timedelta(hours=24),
            }
        add_endpoint(world, receiver.url(), **fields)
        event_id = add_event(world)
        with world.uow() as uow:
            fan_out(uow, world.clock)
        with world.uow() as uow:
            # signed now: the verifier refuses timestamps over 5 minutes off
            attempt = deliver(uow, utc_now, only_delivery(world).id, DEV)
        assert attempt is not None and attempt.state == "delivered"
        [request] = receiver.received
    # Then the receiver got the stored payload with the headers of the specification, and
    # the standardwebhooks package verifies the signature (with each secret in a rotation)
    assert request.headers["webhook-id"] == event_id
    assert request.headers["content-type"] == "application/json"
    assert request.json()["type"] == "membership.soft_deleted"
    for secret in (new_secret, SECRET) if rotating else (SECRET,):
        assert Webhook(secret).verify(request.body, request.headers)["type"] == (
            "membership.soft_deleted"
        )
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == (2 if rotating else 1)
    assert all(s.startswith("v1,") for s in signatures)
    with pytest.raises(WebhookVerificationError):  # a tampered body does not verify
        Webhook(SECRET).verify(request.body + b" ", request.headers)


def test_a_failing_receiver_is_retried_with_back_off_under_the_same_id(
    world: World, dispatcher
) -> None:
    # Given a receiver that fails twice (a 500, then a 503) and then answers 204
    replies = [Reply(500, b"database down"), Reply(503), Reply(204)]
    with running(replies) as receiver:
        endpoint = add_endpoint(world, receiver.url())
        event_id = add_event(world)
        with world.uow() as uow:
            fan_out(uow, world.clock)
        delivery_id = only_delivery(world).id
        # When the first attempt fails
        with world.uow() as uow:
            first = deliver(uow, world.clock, delivery_id, DEV)
        assert first is not None and first.state == "pending"
        row = only_delivery(world)
        # Then it waits for its back-off: attempts 1, the status and error kept
        assert (row.attempts, row.last_status_code) == (1, 500)
        assert row.last_error is not None and "database down" in row.last_error
        assert row.next_attempt_at is not None
        wait = row.next_attempt_at - world.clock()
        assert timedelta(seconds=5) <= wait <= timedelta(seconds=10)
        # and is not sent again before it is due, even when a duplicate message arrives
        with world.uow() as uow:
            assert deliver(uow, world.clock, delivery_id, DEV) is None
        dispatcher.sent.clear()
        with world.uow() as uow:
            assert redrive_due(uow, world.clock) == 0
        # When its time comes, the sweep sends it again (once, until redrive_after passes)
        world.clock.advance(wait)
        with world.uow() as uow:
            report = sweep(uow, world.clock)
        assert report.deliveries_sent == 1
        assert dispatcher.sent == [(DELIVER_ACTOR, delivery_id)]
        with world.uow() as uow:
            assert redrive_due(uow, world.clock) == 0
        with world.uow() as uow:
            second = deliver(uow, world.clock, delivery_id, DEV)
        assert second is not None and second.state == "pending"
        second_wait = only_delivery(world).next_attempt_at - world.clock()  # type: ignore[operator]
        assert timedelta(seconds=10) <= second_wait <= timedelta(seconds=20)
        with world.uow() as uow:
            assert uow.deliveries.claim_due(world.clock(), world.clock(), 10) == []
        world.clock.advance(second_wait)
        with world.uow() as uow:
            third = deliver(uow, world.clock, delivery_id, DEV)
        assert third is not None and third.state == "delivered"
        ids = [r.headers["webhook-id"] for r in receiver.received]
    # Then the receiver saw three attempts of the same webhook-id, the delivery is
    # delivered after three attempts, and the endpoint is no longer failing
    assert ids == [event_id] * 3
    row = only_delivery(world)
    assert (row.state, row.attempts, row.last_status_code, row.last_error) == (
        "delivered",
        3,
        204,
        None,
    )
    with world.uow() as uow:
        found = uow.session.get(WebhookEndpoint, endpoint)
        assert found is not None and found.failing_since is None and found.enabled


def test_back_off_grows_exponentially_with_jitter_and_is_capped() -> None:
    assert backoff(1, lambda: 0.0) == timedelta(seconds=5)
    assert backoff(1, lambda: 0.999) < timedelta(seconds=10)
    assert backoff(4, lambda: 0.0) == timedelta(seconds=40)
    assert backoff(60, lambda: 0.0) == timedelta(hours=3)


def test_a_redirect_is_not_followed(world: World) -> None:
    with (
        running([Reply(200)]) as target,
        running([Reply(302, headers={"location": target.url("/elsewhere")})]) as receiver,
    ):
        add_endpoint(world, receiver.url())
        add_event(world)
        with world.uow() as uow:
            fan_out(uow, world.clock)
        with world.uow() as uow:
            attempt = deliver(uow, world.clock, only_delivery(world).id, DEV)
        assert target.received == []
    assert attempt is not None and attempt.state == "pending"
    assert attempt.status_code == 302
    assert attempt.error is not None and "redirect" in attempt.error


@pytest.mark.parametrize("address", ["127.0.0.1", "10.20.30.40", "169.254.169.254"])
def test_a_name_resolving_to_loopback_or_a_private_address_is_refused_at_delivery(
    world: World, address: str
) -> None:
    # Given an endpoint whose name resolved to a public address when it was saved, and
    # resolves to loopback, a private or a link-local address now (DNS rebinding); the
    # development flag is off
    with running() as receiver:
        add_endpoint(world, f"https://hooks.rebind.example:{receiver.port}/hook")
        add_event(world)
        with world.uow() as uow:
            fan_out(uow, world.clock)

        def rebound(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        with world.uow() as uow:
            attempt = deliver(
                uow,
                world.clock,
                only_delivery(world).id,
                DeliveryConfig(allow_private_networks=False),
                resolve=rebound,
            )
        # Then nothing is sent, and the attempt failed saying why
        assert receiver.received == []
    assert attempt is not None and attempt.state == "pending"
    row = only_delivery(world)
    assert row.last_error is not None
    assert row.last_error.startswith("Refused before sending")
    assert address in row.last_error


def test_a_delivery_is_given_up_after_the_retry_period(world: World, policy) -> None:
    with running([Reply(500)]) as receiver:
        add_endpoint(world, receiver.url())
        add_event(world)
        with world.uow() as uow:
            fan_out(uow, world.clock)
        delivery_id = only_delivery(world).id
        with world.uow() as uow:
            deliver(uow, world.clock, delivery_id, DEV)
        # When the next attempt comes after WEBHOOK_RETRY_FOR (3 days) and fails too
        world.clock.advance(policy.webhook_retry_for)
        with world.uow() as uow:
            attempt = deliver(uow, world.clock, delivery_id, DEV)
    # Then the delivery is failed, with nothing more due
    assert attempt is not None and attempt.state == "failed"
    row = only_delivery(world)
    assert (row.state, row.next_attempt_at, row.attempts) == ("failed", None, 2)
    with world.uow() as uow:
        assert redrive_due(uow, world.clock) == 0


def test_an_endpoint_failing_for_the_disable_period_is_disabled(world: World, policy) -> None:
    with running([Reply(500)]) as receiver:
        endpoint = add_endpoint(world, receiver.url())
        add_event(world)
        with world.uow() as uow:
            fan_out(uow, world.clock)
        first = only_delivery(world).id
        with world.uow() as uow:
            deliver(uow, world.clock, first, DEV)
        with world.uow() as uow:
            found = uow.session.get(WebhookEndpoint, endpoint)
            assert found is not None and found.failing_since == world.clock()
        # A day before the period ends, a new event fails too: still enabled
        world.clock.advance(policy.webhook_disable_after - timedelta(days=1))
        add_event(world, "membership.restored")
        with world.uow() as uow:
            fan_out(uow, world.clock)
        later = [d.id for d in deliveries(world) if d.id != first][0]
        with world.uow() as uow:
            assert deliver(uow, world.clock, later, DEV).endpoint_disabled is False  # type: ignore[union-attr]
        # When an attempt fails once the period has passed
        world.clock.advance(timedelta(days=1))
        with world.uow() as uow:
            attempt = deliver(uow, world.clock, later, DEV)
    # Then the endpoint is disabled, saying why, and its pending deliveries are failed
    assert attempt is not None and attempt.endpoint_disabled
    with world.uow() as uow:
        found = uow.session.get(WebhookEndpoint, endpoint)
        assert found is not None and not found.enabled
        assert found.disabled_reason is not None
        assert "failed for 5 days" in found.disabled_reason
        assert "HTTP 500" in found.disabled_reason
    assert {d.state for d in deliveries(world)} == {"failed"}
    # and new events are no longer fanned out to it
    add_event(world, "membership.purged")
    with world.uow() as uow:
        assert fan_out(uow, world.clock) == (1, 0)


def test_two_workers_never_take_the_same_attempt(world: World) -> None:
    add_endpoint(world, "https://a.example/hook")
    add_event(world)
    with world.uow() as uow:
        fan_out(uow, world.clock)
    delivery_id = only_delivery(world).id
    now = world.clock()
    with world.uow() as uow:
        assert uow.deliveries.claim_attempt(delivery_id, now, now + timedelta(minutes=1))
        uow.commit()
    with world.uow() as uow:
        assert not uow.deliveries.claim_attempt(delivery_id, now, now + timedelta(minutes=1))
    # A worker killed mid-attempt: the attempt is due again once its hold has passed
    world.clock.advance(timedelta(minutes=2))
    with world.uow() as uow:
        assert uow.deliveries.claim_due(world.clock(), world.clock(), 10) == [delivery_id]


def test_a_change_asks_for_the_fan_out_after_its_commit_only_where_an_endpoint_exists(
    world: World, dispatcher
) -> None:
    from memberships.decisions import apply_event
    from memberships.principal import SYSTEM
    from store.models import Membership

    # Without an endpoint, removing a guest sends nothing about webhooks
    world.soft_delete("open", "off")
    assert [a for a, _ in dispatcher.sent if a == "fan_out_events"] == []
    # With one, the change's commit is followed by a fan-out message
    add_endpoint(world, "https://crm.example/hook")
    membership_id = world.soft_delete("open", "ann")
    assert ("fan_out_events", membership_id) in dispatcher.sent
    # A change that is rolled back asks for nothing
    dispatcher.sent.clear()
    with world.uow() as uow:
        membership = uow.session.get(Membership, membership_id)
        apply_event(uow, world.clock(), SYSTEM, membership, "restore")
        uow.rollback()
        uow.commit()  # the next commit of the same unit of work carries nothing of it
    assert dispatcher.sent == []


def test_two_workers_racing_for_one_delivery_send_it_once(world: World) -> None:
    import threading
    import time

    with running([Reply(204)]) as receiver:
        original = receiver.handler()

        class Slow(original):  # type: ignore[misc, valid-type]
            def _answer(self) -> None:
                time.sleep(0.3)
                super()._answer()

            do_POST = _answer  # noqa: N815

        assert receiver.server is not None
        receiver.server.RequestHandlerClass = Slow
        add_endpoint(world, receiver.url())
        add_event(world)
        with world.uow() as uow:
            fan_out(uow, world.clock)
        delivery_id = only_delivery(world).id
        start = threading.Barrier(2)
        outcomes: list[object] = []

        def worker() -> None:
            start.wait()
            with world.uow() as uow:
                outcomes.append(deliver(uow, world.clock, delivery_id, DEV))

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(receiver.received) == 1
    assert sorted(o is None for o in outcomes) == [False, True]
    assert only_delivery(world).attempts == 1


def test_an_attempt_gives_up_waiting_after_the_timeout_and_is_retried(world: World) -> None:
    from memberships.webhook_delivery import TIMEOUT_SECONDS

    # Given deliveries wait 10 s for an answer (here shortened), and a receiver that
    # accepts the connection and never answers
    assert TIMEOUT_SECONDS == DeliveryConfig().timeout == 10.0
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        add_endpoint(world, f"http://127.0.0.1:{silent.getsockname()[1]}/hook")
        add_event(world)
        with world.uow() as uow:
            fan_out(uow, world.clock)
        # When an attempt is made
        config = DeliveryConfig(allow_private_networks=True, timeout=0.5)
        with world.uow() as uow:
            attempt = deliver(uow, world.clock, only_delivery(world).id, config)
    # Then it failed saying so, and is due again after its back-off
    assert attempt is not None and attempt.state == "pending"
    row = only_delivery(world)
    assert (row.last_error, row.last_status_code) == ("No answer within 0.5 s.", None)
    assert row.next_attempt_at is not None and row.next_attempt_at > world.clock()

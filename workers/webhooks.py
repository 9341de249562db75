"""Webhook work on a worker: the fan-out of undispatched events and one delivery attempt,
each in its own unit of work (``memberships.webhook_delivery`` holds the rules)."""

from __future__ import annotations

import logging

from memberships.webhook_delivery import DeliveryConfig, deliver, fan_out
from workers.runtime import Runtime

log = logging.getLogger(__name__)


def delivery_config(runtime: Runtime) -> DeliveryConfig:
    settings = runtime.settings
    return DeliveryConfig(
        allow_private_networks=settings.webhook_allow_private_networks,
        public_base_url=settings.public_base_url,
    )


def fan_out_now(runtime: Runtime, request_id: str | None = None) -> tuple[int, int]:
    with runtime.uow(request_id) as uow:
        events, deliveries = fan_out(uow, runtime.clock)
    if events:
        log.info("events fanned out", extra={"events": events, "deliveries": deliveries})
    return events, deliveries


def deliver_one(runtime: Runtime, delivery_id: str, request_id: str | None = None) -> None:
    with runtime.uow(request_id) as uow:
        attempt = deliver(uow, runtime.clock, delivery_id, delivery_config(runtime))
    if attempt is None:
        log.info("nothing to send: delivered, failed, not due, or taken by another worker")
        return
    fields = {
        "attempt": attempt.attempt,
        "state": attempt.state,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "confirmed_removal": attempt.confirmed_removal,
    }
    if attempt.state == "delivered":
        log.info("webhook delivered", extra=fields)
    else:
        log.warning("webhook attempt failed", extra=fields)
    if attempt.endpoint_disabled:
        log.warning("webhook endpoint disabled after failing too long", extra=fields)

"""Webhook delivery: the outbox's events fanned out to the organizations' endpoints, each
delivery sent, signed, retried with back-off, and given up after ``webhook_retry_for``.

The database holds every delivery and when its next attempt is due
(``webhook_deliveries.next_attempt_at``); the broker only carries "send this one now".
``fan_out`` turns undispatched events into pending deliveries (one per enabled endpoint
whose filter takes the event) and ``redrive_due`` sends the due ones: both run in every
sweep tick, so a lost message, a flushed Redis or a killed worker loses nothing.

``deliver`` makes one attempt: it takes it with a compare-and-set (two workers never
send the same attempt), commits, checks the URL again against the request-forgery rule
(``memberships.webhook_urls``: against DNS rebinding it connects to the address that
check found), POSTs the event's stored payload signed as the Standard Webhooks
specification says (the ``standardwebhooks`` package signs: ``webhook-id`` is the
event's id on every attempt, ``webhook-timestamp`` the attempt's time, and during a
secret rotation ``webhook-signature`` carries a signature by each secret), then records
the outcome. 2xx is delivered; anything else, a network error or a refused address is a
failed attempt: the next one is due after an exponential back-off with jitter. An
endpoint none of whose attempts has succeeded for ``webhook_disable_after`` is
disabled, saying why.

A ``membership.purge_pending`` event sent to an endpoint with ``confirms_removal``
carries ``data.confirmUrl`` (``memberships.removal_confirmations``), and an answer of
``200`` with ``{"removed": true}`` confirms the removal there and then.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol

import certifi
import httpx
from standardwebhooks import Webhook

from memberships import removal_confirmations
from memberships.clock import Clock
from memberships.errors import InvalidInput
from memberships.webhook_urls import CheckedUrl, check_webhook_url
from store.models import Event, RemovalAppConfirmation, WebhookEndpoint
from store.unit_of_work import UnitOfWork
from store.webhook_deliveries import DELIVERED, FAILED, PENDING

log = logging.getLogger(__name__)

DELIVER_ACTOR = "deliver_webhook"
TIMEOUT_SECONDS = 10.0
# How long a worker holds an attempt it took (well above the timeout): should it die,
# the attempt is due again after this.
HOLD = timedelta(seconds=60)
# Back-off: BACKOFF_BASE × 2^(attempts − 1), at most BACKOFF_CAP, times a jitter in
# [0.5, 1.0).
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_CAP = timedelta(hours=6)
MAX_ERROR = 500
MAX_RESPONSE = 4096
PURGE_PENDING_EVENT = "membership.purge_pending"


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """What delivery needs from the settings (passed in by the workers)."""

    allow_private_networks: bool = False
    public_base_url: str = "http://127.0.0.1:8000"
    timeout: float = TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class Response:
    status_code: int
    body: bytes = b""


class Sender(Protocol):
    """POSTs a body to a checked URL (connecting to the address the check found)."""

    def __call__(
        self, checked: CheckedUrl, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> Response: ...


@cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context per process (loading the CA bundle costs ~0.1 s)."""
    return ssl.create_default_context(cafile=certifi.where())


def send_with_httpx(
    checked: CheckedUrl, headers: Mapping[str, str], body: bytes, timeout: float
) -> Response:
    """The real sender: httpx, no redirects followed, connecting to the first address the
    URL check resolved (the ``Host`` header and TLS server name stay the URL's host).

    A client per request, so no connection is pooled: a connection is keyed by the
    address, and one made for one host name must not carry another's request."""
    url = httpx.URL(checked.url)
    address = checked.addresses[0]
    extensions: dict[str, Any] = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = checked.host
    request_headers = dict(headers)
    request_headers["host"] = url.netloc.decode("ascii")
    with httpx.Client(
        timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls()
    ) as client:
        request = client.build_request(
            "POST",
            url.copy_with(host=address),
            headers=request_headers,
            content=body,
            extensions=extensions,
        )
        response = client.send(request, stream=True)
        try:
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) >= MAX_RESPONSE:
                    break
        finally:
            response.close()
    return Response(response.status_code, data[:MAX_RESPONSE])


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> timedelta:
    """The wait after failed attempt number ``attempts`` (1, 2, …): exponential, capped,
    with jitter."""
    exponent = min(max(attempts - 1, 0), 30)
    base = min(BACKOFF_CAP, BACKOFF_BASE * (2**exponent))
    return base * (0.5 + rng() / 2)


def signature_header(
    endpoint: WebhookEndpoint, msg_id: str, timestamp: datetime, body: str, now: datetime
) -> str:
    """``v1,<base64>`` by the endpoint's secret, and by its previous secret while a
    rotation lets it sign too (space-separated, as the specification allows)."""
    signatures = [Webhook(endpoint.secret).sign(msg_id, timestamp, body)]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    ):
        signatures.append(Webhook(endpoint.previous_secret).sign(msg_id, timestamp, body))
    return " ".join(signatures)


# ---- fan-out and the sweep's re-drive -----------------------------------------------------------


def fan_out(
    uow: UnitOfWork, clock: Clock, *, should_continue: Callable[[], bool] = lambda: True
) -> tuple[int, int]:
    """Every undispatched event, batch by batch (each committed): its deliveries made and
    sent to the workers after the commit. Returns (events, deliveries)."""
    limit = uow.policy.sweep_batch_size
    events = deliveries = 0
    while should_continue():
        claimed, ids = uow.deliveries.fan_out_batch(clock(), limit)
        if not claimed:
            uow.rollback()
            break
        _send_after_commit(uow, ids)
        uow.commit()
        events += claimed
        deliveries += len(ids)
        if claimed < limit:
            break
    return events, deliveries


def redrive_due(
    uow: UnitOfWork, clock: Clock, *, should_continue: Callable[[], bool] = lambda: True
) -> int:
    """Send every due pending delivery whose message was not sent within
    ``redrive_after`` (a back-off that ended, a lost message, a killed worker)."""
    limit = uow.policy.sweep_batch_size
    sent = 0
    while should_continue():
        now = clock()
        ids = uow.deliveries.claim_due(now, now - uow.policy.redrive_after, limit)
        if not ids:
            uow.rollback()
            break
        _send_after_commit(uow, ids)
        uow.commit()
        sent += len(ids)
        if len(ids) < limit:
            break
    return sent


def _send_after_commit(uow: UnitOfWork, ids: list[str]) -> None:
    if ids:
        request_id = uow.request_id
        dispatcher = uow.dispatcher
        uow.on_commit(lambda: dispatcher.send_many(DELIVER_ACTOR, ids, request_id))


# ---- one attempt --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt did."""

    delivery_id: str
    attempt: int
    state: str
    status_code: int | None = None
    error: str | None = None
    confirmed_removal: bool = False
    endpoint_disabled: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


def deliver(
    uow: UnitOfWork,
    clock: Clock,
    delivery_id: str,
    config: DeliveryConfig,
    sender: Sender = send_with_httpx,
    *,
    resolve: Callable[..., Any] | None = None,
) -> Attempt | None:
    """One attempt of a pending, due delivery; ``None`` when there is none to make (not
    pending, not due, or another worker holds it)."""
    now = clock()
    if not uow.deliveries.claim_attempt(delivery_id, now, now + HOLD):
        uow.rollback()
        return None
    delivery = uow.deliveries.get(delivery_id)
    assert delivery is not None  # just claimed
    endpoint = uow.webhooks.get(delivery.endpoint_id)
    event = uow.deliveries.event_of(delivery)
    assert endpoint is not None and event is not None  # foreign keys
    attempt = delivery.attempts
    if not endpoint.enabled:
        reason = f"The endpoint is disabled: {endpoint.disabled_reason or 'by an admin'}."
        uow.deliveries.record_attempt(
            delivery_id,
            attempt,
            state=FAILED,
            next_attempt_at=None,
            status_code=None,
            error=reason,
            delivered_at=None,
        )
        uow.commit()
        return Attempt(delivery_id, attempt, FAILED, error=reason)
    confirmation = _confirmation_for(uow, event, endpoint)
    body = _body(uow, event, confirmation, config, now)
    headers = {
        "content-type": "application/json",
        "user-agent": "membership-lifecycle-webhooks/1",
        "webhook-id": event.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature_header(endpoint, event.event_id, now, body, now),
    }
    # The attempt is taken (and a confirmUrl token, if any, stored) before anything is
    # sent: a worker killed mid-request leaves an attempt that is due again after HOLD.
    url, first_attempt_at = endpoint.url, delivery.first_attempt_at or now
    uow.commit()

    status: int | None = None
    error: str | None = None
    response: Response | None = None
    try:
        checked = check_webhook_url(
            url,
            allow_private_networks=config.allow_private_networks,
            **({"resolve": resolve} if resolve is not None else {}),
        )
        response = sender(checked, headers, body.encode("utf-8"), config.timeout)
        status = response.status_code
        if not 200 <= status < 300:
            error = _describe_status(response)
    except InvalidInput as refused:
        error = f"Refused before sending: {refused.detail}"
    except httpx.TimeoutException:
        error = f"No answer within {config.timeout:g} s."
    except httpx.HTTPError as failed:
        error = f"Could not connect or send: {type(failed).__name__}: {failed}"[:MAX_ERROR]
    except OSError as failed:
        error = f"Could not connect or send: {failed}"[:MAX_ERROR]

    end = clock()
    if error is None:
        return _delivered(uow, end, delivery_id, attempt, status, response, confirmation, headers)
    return _failed(
        uow,
        end,
        delivery_id,
        attempt,
        endpoint.id,
        status,
        error,
        first_attempt_at,
        headers,
    )


def _confirmation_for(
    uow: UnitOfWork, event: Event, endpoint: WebhookEndpoint
) -> RemovalAppConfirmation | None:
    if event.type != PURGE_PENDING_EVENT or not event.membership_id:
        return None
    return uow.deliveries.open_confirmation(event.membership_id, endpoint.id)


def _body(
    uow: UnitOfWork,
    event: Event,
    confirmation: RemovalAppConfirmation | None,
    config: DeliveryConfig,
    now: datetime,
) -> str:
    """The stored payload; with ``data.confirmUrl`` for an app that must confirm."""
    if confirmation is None:
        return event.payload
    payload = json.loads(event.payload)
    url = removal_confirmations.issue_confirm_url(uow, confirmation, config.public_base_url)
    payload.setdefault("data", {})["confirmUrl"] = url
    return json.dumps(payload, separators=(",", ":"))


def _describe_status(response: Response) -> str:
    text = response.body.decode("utf-8", "replace").strip()
    summary = f"HTTP {response.status_code}"
    if 300 <= response.status_code < 400:
        summary += " (a redirect: not followed)"
    return (f"{summary}: {text}" if text else summary)[:MAX_ERROR]


def _says_removed(response: Response | None) -> bool:
    if response is None or response.status_code != 200:
        return False
    try:
        answer = json.loads(response.body.decode("utf-8"))
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("removed") is True


def _delivered(
    uow: UnitOfWork,
    now: datetime,
    delivery_id: str,
    attempt: int,
    status: int | None,
    response: Response | None,
    confirmation: RemovalAppConfirmation | None,
    headers: Mapping[str, str],
) -> Attempt:
    recorded = uow.deliveries.record_attempt(
        delivery_id,
        attempt,
        state=DELIVERED,
        next_attempt_at=None,
        status_code=status,
        error=None,
        delivered_at=now,
    )
    delivery = uow.deliveries.reload(delivery_id)
    if delivery is not None:
        endpoint = uow.webhooks.reload(delivery.endpoint_id)
        if endpoint is not None and endpoint.failing_since is not None:
            endpoint.failing_since = None
            endpoint.updated_at = now
    confirmed = False
    if recorded and confirmation is not None and _says_removed(response):
        confirmed = removal_confirmations.confirm_by_delivery(uow, now, confirmation.id)
    uow.commit()
    return Attempt(
        delivery_id,
        attempt,
        DELIVERED,
        status,
        confirmed_removal=confirmed,
        headers=headers,
    )


def _failed(
    uow: UnitOfWork,
    now: datetime,
    delivery_id: str,
    attempt: int,
    endpoint_id: str,
    status: int | None,
    error: str,
    first_attempt_at: datetime,
    headers: Mapping[str, str],
) -> Attempt:
    policy = uow.policy
    give_up = now - first_attempt_at >= policy.webhook_retry_for
    state = FAILED if give_up else PENDING
    uow.deliveries.record_attempt(
        delivery_id,
        attempt,
        state=state,
        next_attempt_at=None if give_up else now + backoff(attempt),
        status_code=status,
        error=error,
        delivered_at=None,
    )
    disabled = False
    endpoint = uow.webhooks.reload(endpoint_id)
    if endpoint is not None and endpoint.enabled:
        if endpoint.failing_since is None:
            endpoint.failing_since = now
            endpoint.updated_at = now
        if now - endpoint.failing_since >= policy.webhook_disable_after:
            disabled = True
            endpoint.enabled = False
            endpoint.disabled_reason = (
                f"Every delivery failed for {_days(policy.webhook_disable_after)} (since "
                f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC); the last error: {error}"
            )[:MAX_ERROR]
            endpoint.updated_at = now
            uow.deliveries.fail_pending_of_endpoint(
                endpoint.id, f"The endpoint was disabled: {endpoint.disabled_reason}"
            )
            log.warning(
                "webhook endpoint disabled",
                extra={"endpoint_id": endpoint.id, "reason": endpoint.disabled_reason},
            )
    uow.commit()
    return Attempt(
        delivery_id, attempt, state, status, error, endpoint_disabled=disabled, headers=headers
    )


def _days(period: timedelta) -> str:
    days = period.total_seconds() / 86400
    return f"{days:g} days" if days >= 1 else f"{period.total_seconds():g} s"

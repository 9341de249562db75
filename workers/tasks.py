"""The actors, declared on a given broker: thin edges around one use case each.

An actor logs the id, opens a unit of work, calls one use case. Everything it
decides is in ``memberships``; what is left here is delivery: which message
means which use case, what a failure does (recorded on the membership, then
retried with backoff, or given up), and ``remove_data`` sending itself again
until nothing is left.

``remove_data_many`` runs committed batches over its chunk for up to
``CHUNK_WORK_SECONDS``, then sends itself again with what is still pending, so
no message holds a worker thread for long. A failure in a chunk is recorded on
the memberships it concerns: those a remover would not let finish when the error
names them, otherwise every membership of the chunk still ``purge-pending``
(purged ones and ones in other states are left alone). Dramatiq then retries the
whole message; what was finished is skipped.

``workers.actors`` declares these on the process's Redis broker for the
``dramatiq`` command; tests declare them on a ``StubBroker`` or a private Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq import Broker
from dramatiq.middleware import CurrentMessage, Interrupt

from memberships import message_handlers
from memberships import notices as member_notices
from memberships.errors import Forbidden, InvalidInput, NotFound
from memberships.failures import describe, record_failure
from store.unit_of_work import UnitOfWork, send_message
from workers.logs import log_context
from workers.mail import MailComposer
from workers.messages import (
    COMPLETE_LEAVE,
    DELIVER_WEBHOOK,
    FAN_OUT_EVENTS,
    REMOVE_DATA,
    REMOVE_DATA_MANY,
    SEND_MAIL,
    SEND_MAIL_MANY,
    SWEEP,
    MessageContract,
)
from workers.runtime import Runtime
from workers.sweeper import run_sweep
from workers.webhooks import deliver_one, fan_out_now

log = logging.getLogger(__name__)

# Retry-or-give-up, in one place. A failure that says the message itself is wrong will
# fail the same way again; anything else (a lost compare-and-set, a database or Redis
# hiccup, a remover's store being down) is worth retrying with backoff. Given-up
# messages go to the dead letters, and the sweep's re-drive sends the work again after
# REDRIVE_AFTER anyway: the database, not the retry count, decides what is left to do.
GIVE_UP_AT_ONCE: tuple[type[BaseException], ...] = (InvalidInput, NotFound, Forbidden)
MAX_RETRIES = 8
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 300_000
# How long one remove_data_many message keeps erasing before it hands the rest of its
# chunk to a new message (well inside its time limit; lets a stopping worker stop soon).
CHUNK_WORK_SECONDS = 20.0


def should_retry(retries: int, error: BaseException) -> bool:
    """Dramatiq's ``retry_when``: ``retries`` failures so far, ``error`` the last one."""
    return retries < MAX_RETRIES and not isinstance(error, GIVE_UP_AT_ONCE)


def _options(contract: MessageContract, **extra: Any) -> dict[str, Any]:
    return {
        "actor_name": contract.actor_name,
        "queue_name": contract.queue_name,
        "retry_when": should_retry,
        "min_backoff": MIN_BACKOFF_MS,
        "max_backoff": MAX_BACKOFF_MS,
        **extra,
    }


@dataclass(frozen=True)
class Actors:
    complete_leave: dramatiq.Actor[Any, Any]
    remove_data: dramatiq.Actor[Any, Any]
    remove_data_many: dramatiq.Actor[Any, Any]
    sweep: dramatiq.Actor[Any, Any]
    fan_out_events: dramatiq.Actor[Any, Any]
    deliver_webhook: dramatiq.Actor[Any, Any]
    send_mail: dramatiq.Actor[Any, Any]
    send_mail_many: dramatiq.Actor[Any, Any]


def _message_id() -> str | None:
    message = CurrentMessage.get_current_message()
    return message.message_id if message is not None else None


def _handling(
    runtime: Runtime, contract: MessageContract, membership_id: str, request_id: str | None
) -> AbstractContextManager[None]:
    """Log context for the message; on failure, record it on the membership and re-raise
    (Dramatiq's retries take it from there). A time limit interrupts with an
    ``Interrupt``, which is recorded too."""
    return _recording_failures(
        runtime,
        request_id,
        lambda uow, _error, text: record_failure(uow, membership_id, text),
        actor=contract.actor_name,
        membership_id=membership_id,
    )


def _handling_chunk(
    runtime: Runtime, membership_ids: Sequence[str], request_id: str | None
) -> AbstractContextManager[None]:
    """``_handling`` for a chunk: the failure is recorded on the memberships it concerns
    (those the error names, else every one of the chunk still purge-pending)."""

    def record(uow: UnitOfWork, error: BaseException, text: str) -> object:
        named = getattr(error, "extra", {}).get("membership_ids")
        return message_handlers.record_chunk_failure(uow, named or membership_ids, text)

    return _recording_failures(
        runtime,
        request_id,
        record,
        actor=REMOVE_DATA_MANY.actor_name,
        memberships=len(membership_ids),
        # Every line of the chunk's work names its memberships, so a grep for one id
        # finds its removal as it does for a single-membership message.
        membership_ids=list(membership_ids),
    )


@contextmanager
def _recording_failures(
    runtime: Runtime,
    request_id: str | None,
    record: Callable[[UnitOfWork, BaseException, str], object],
    **fields: Any,
) -> Iterator[None]:
    with log_context(request_id=request_id, message_id=_message_id(), **fields):
        try:
            yield
        except dramatiq.Retry:
            raise  # not a failure: the work is held elsewhere for now
        except (Exception, Interrupt) as error:
            text = describe(error)
            try:
                with runtime.uow(request_id) as uow:
                    recorded = record(uow, error, text)
            except Exception:
                log.exception("could not record the failure in the database")
                recorded = None
            log.error("work failed", extra={"recorded": recorded, "error": text})
            raise


def _retry_what_was_held(
    runtime: Runtime, membership_ids: Sequence[str], request_id: str | None
) -> None:
    """Raise ``dramatiq.Retry`` (Dramatiq's backoff, then the same message again) when some
    of the chunk are still purge-pending: their rows were held by another transaction when
    the chunk locked it, so no batch took them. Without it they would wait for the re-drive
    (``REDRIVE_AFTER``); a retry finds the others purged and leaves them alone."""
    with runtime.uow(request_id) as uow:
        held = message_handlers.held_elsewhere(uow, membership_ids)
    if held:
        log.info("part of the chunk was held elsewhere: retrying it", extra={"held": len(held)})
        raise dramatiq.Retry(f"{len(held)} memberships of the chunk were held elsewhere")


def declare_actors(broker: Broker, runtime: Runtime) -> Actors:
    """Declare the actors on ``broker``, bound to ``runtime``."""

    def complete_leave(membership_id: str, request_id: str | None = None) -> None:
        """Carry out an accepted leave (idempotent: nothing to do unless leave-pending)."""
        with _handling(runtime, COMPLETE_LEAVE, membership_id, request_id):
            log.info("carrying out a leave")
            with runtime.uow(request_id) as uow:
                view = message_handlers.carry_out_leave(uow, runtime.clock, membership_id)
            if view is None:
                log.info("nothing to do: not leave-pending")
            else:
                log.info("leave carried out", extra={"state": view.state})

    def remove_data(membership_id: str, request_id: str | None = None) -> None:
        """Erase one bounded batch, then send itself again until the membership is purged."""
        with _handling(runtime, REMOVE_DATA, membership_id, request_id):
            with runtime.uow(request_id) as uow:
                progress = message_handlers.remove_next_batch(
                    uow, runtime.clock, membership_id, runtime.removers
                )
            fields = {
                "state": progress.state,
                "removed_now": progress.removed_now,
                "removed_total": progress.removed_total,
            }
            if progress.done:
                log.info("data removal done", extra=fields)
                return
            log.info("data removal batch committed", extra=fields)
            send_message(runtime.dispatcher, REMOVE_DATA.actor_name, membership_id, request_id)

    def remove_data_many(membership_ids: list[str], request_id: str | None = None) -> None:
        """Erase the data of a chunk of memberships batch by batch and finish each one with
        nothing left; after ``CHUNK_WORK_SECONDS``, send the rest on as a new message."""
        with _handling_chunk(runtime, membership_ids, request_id):
            ids: Sequence[str] = membership_ids
            removed = purged = 0
            deadline = time.monotonic() + CHUNK_WORK_SECONDS
            while True:
                with runtime.uow(request_id) as uow:
                    progress = message_handlers.remove_next_chunk_batch(
                        uow, runtime.clock, ids, runtime.removers
                    )
                removed += progress.removed_now
                purged += len(progress.purged)
                ids = progress.pending
                if progress.done:
                    log.info("data removal done", extra={"removed": removed, "purged": purged})
                    _retry_what_was_held(runtime, membership_ids, request_id)
                    return
                if time.monotonic() > deadline:
                    break
            log.info(
                "data removal continues in a new message",
                extra={"removed": removed, "purged": purged, "pending": len(ids)},
            )
            runtime.dispatcher.send_many(REMOVE_DATA.actor_name, ids, request_id)

    def sweep(request_id: str | None = None) -> None:
        """One sweep of the durable timers on a worker (the scheduler runs its own)."""
        with log_context(actor=SWEEP.actor_name, request_id=request_id):
            run_sweep(runtime, request_id)

    def fan_out_events(hint: str, request_id: str | None = None) -> None:
        """Undispatched events become deliveries, each sent on as a message."""
        with log_context(actor=FAN_OUT_EVENTS.actor_name, request_id=request_id, hint=hint):
            fan_out_now(runtime, request_id)

    def deliver_webhook(delivery_id: str, request_id: str | None = None) -> None:
        """One attempt of one delivery (the back-off is kept in the database)."""
        with log_context(
            actor=DELIVER_WEBHOOK.actor_name, request_id=request_id, delivery_id=delivery_id
        ):
            deliver_one(runtime, delivery_id, request_id)

    composer = MailComposer()

    def deliver(mail_ids: list[str], request_id: str | None, contract: MessageContract) -> None:
        with log_context(actor=contract.actor_name, request_id=request_id, mails=len(mail_ids)):
            outcome = member_notices.deliver_mail(
                runtime.uow,
                runtime.clock,
                mail_ids,
                runtime.mail_sender,
                composer,
                runtime.settings.public_base_url,
            )
            log.info(
                "mail attempted",
                extra={
                    "sent": outcome.sent,
                    "retrying": outcome.retrying,
                    "failed": outcome.failed,
                    "skipped": outcome.skipped,
                },
            )

    def send_mail(mail_id: str, request_id: str | None = None) -> None:
        """One attempt at one mail of the outbox (nothing unless it is pending and due)."""
        deliver([mail_id], request_id, SEND_MAIL)

    def send_mail_many(mail_ids: list[str], request_id: str | None = None) -> None:
        """One attempt at each of these mails, over one SMTP connection."""
        deliver(list(mail_ids), request_id, SEND_MAIL_MANY)

    # The database holds each mail's retries (next_attempt_at, re-sent by the sweep): a
    # failure of the message itself is not retried by Dramatiq on top.
    no_retry = {"retry_when": lambda retries, error: False}
    # Webhook work is never retried by Dramatiq: the database holds each delivery's next
    # attempt and the sweep sends it when due (nothing waits in the broker).
    webhook_no_retry = {"retry_when": lambda retries, error: False, "max_age": 600_000}
    return Actors(
        fan_out_events=dramatiq.actor(
            broker=broker, **_options(FAN_OUT_EVENTS, time_limit=120_000, **webhook_no_retry)
        )(fan_out_events),
        deliver_webhook=dramatiq.actor(
            broker=broker, **_options(DELIVER_WEBHOOK, time_limit=60_000, **webhook_no_retry)
        )(deliver_webhook),
        send_mail=dramatiq.actor(
            broker=broker, **_options(SEND_MAIL, time_limit=120_000, **no_retry)
        )(send_mail),
        send_mail_many=dramatiq.actor(
            broker=broker, **_options(SEND_MAIL_MANY, time_limit=600_000, **no_retry)
        )(send_mail_many),
        complete_leave=dramatiq.actor(broker=broker, **_options(COMPLETE_LEAVE, time_limit=60_000))(
            complete_leave
        ),
        remove_data=dramatiq.actor(broker=broker, **_options(REMOVE_DATA, time_limit=300_000))(
            remove_data
        ),
        remove_data_many=dramatiq.actor(
            broker=broker, **_options(REMOVE_DATA_MANY, time_limit=300_000)
        )(remove_data_many),
        sweep=dramatiq.actor(
            broker=broker,
            **_options(
                SWEEP,
                time_limit=900_000,
                max_age=300_000,
                # The next tick is the retry: a failed sweep is not worth a backlog.
                retry_when=lambda retries, error: False,
            ),
        )(sweep),
    )

"""A unit of work: explicit commit, rollback by default, and ``on_commit`` callbacks.

Messages to the broker are registered with ``on_commit`` so that they are sent
only after the transaction that justifies them has committed: a crash before
the commit sends nothing, and a crash after it is healed by the sweep's
re-drive, never by a message about work that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from store.accounts import Accounts
from store.batch_operations import BatchOperations
from store.data_removal import DataRemoval
from store.idempotency import IdempotencyKeys
from store.invitations import Invitations
from store.listings import Listings
from store.notices import Notices
from store.outbox import Outbox
from store.policy import Policy as Policy
from store.provisioning import Provisioning
from store.queries import AuditLog, Directory, Memberships
from store.removal_requests import RemovalRequests
from store.repository import Repository
from store.session_keys import FAN_OUT_WANTED as FAN_OUT_WANTED
from store.session_keys import UNIT_OF_WORK as UNIT_OF_WORK
from store.transitions import Transitions
from store.webhook_deliveries import WebhookDeliveries
from store.webhook_endpoints import WebhookEndpoints

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Repository)


class Dispatcher(Protocol):
    """Sends work that is due now to the workers (ids only), with the id of the request or
    sweep tick that caused it, so the worker's logs and audit rows name it."""

    def send(self, actor_name: str, membership_id: str, request_id: str | None = None) -> None:
        """One message about one membership."""
        ...

    def send_many(
        self, actor_name: str, membership_ids: Sequence[str], request_id: str | None = None
    ) -> None:
        """The same work for many memberships, in as few round trips as the broker allows."""
        ...


def send_message(
    dispatcher: Dispatcher, actor_name: str, membership_id: str, request_id: str | None = None
) -> None:
    """Send one message through ``dispatcher`` after a commit."""
    dispatcher.send(actor_name, membership_id, request_id=request_id)


class NullDispatcher:
    """Sends nothing: the sweep's re-drive picks the work up (a unit of work built without
    a dispatcher)."""

    def send(self, actor_name: str, membership_id: str, request_id: str | None = None) -> None:
        log.debug("not sent (no dispatcher): %s %s", actor_name, membership_id)

    def send_many(
        self, actor_name: str, membership_ids: Sequence[str], request_id: str | None = None
    ) -> None:
        log.debug("not sent (no dispatcher): %s x%d", actor_name, len(membership_ids))


class RecordingDispatcher:
    """Keeps what would have been sent, for tests: (actor name, membership id) pairs."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, actor_name: str, membership_id: str, request_id: str | None = None) -> None:
        self.sent.append((actor_name, membership_id))

    def send_many(
        self, actor_name: str, membership_ids: Sequence[str], request_id: str | None = None
    ) -> None:
        for membership_id in membership_ids:
            self.send(actor_name, membership_id, request_id)


FAN_OUT_ACTOR = "fan_out_events"


class UnitOfWork:
    """One transaction. Use as a context manager; it rolls back unless ``commit`` was called.

    The use cases reach the database through the repositories it hands out (below), each
    made on first use and bound to this transaction's session.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        dispatcher: Dispatcher | None = None,
        policy: Policy | None = None,
        request_id: str | None = None,
        on_denial: Callable[[], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._on_denial = on_denial
        self.dispatcher: Dispatcher = dispatcher or NullDispatcher()
        self.policy = policy or Policy()
        self.request_id = request_id
        self._callbacks: list[Callable[[], None]] = []
        self._session: Session | None = None
        self._repositories: dict[type[Repository], Repository] = {}

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the unit of work is not open: use it as a context manager")
        return self._session

    def __enter__(self) -> UnitOfWork:
        self._session = self._session_factory()
        # The store's after-change hooks reach the policy and ``on_commit`` through the
        # session (``store.notices``: the mail it writes is sent after the commit).
        self._session.info[UNIT_OF_WORK] = self
        self._callbacks = []
        self._repositories = {}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.rollback()
        finally:
            self.session.close()
            self._session = None
            self._repositories = {}

    def _repository(self, kind: type[R]) -> R:
        found = self._repositories.get(kind)
        if found is None:
            found = self._repositories[kind] = kind(self.session)
        return found  # type: ignore[return-value]

    @property
    def directory(self) -> Directory:
        return self._repository(Directory)

    @property
    def memberships(self) -> Memberships:
        return self._repository(Memberships)

    @property
    def audit(self) -> AuditLog:
        return self._repository(AuditLog)

    @property
    def transitions(self) -> Transitions:
        return self._repository(Transitions)

    @property
    def batches(self) -> BatchOperations:
        return self._repository(BatchOperations)

    @property
    def data_removal(self) -> DataRemoval:
        return self._repository(DataRemoval)

    @property
    def removal_requests(self) -> RemovalRequests:
        return self._repository(RemovalRequests)

    @property
    def notices(self) -> Notices:
        return self._repository(Notices)

    @property
    def outbox(self) -> Outbox:
        return self._repository(Outbox)

    @property
    def webhooks(self) -> WebhookEndpoints:
        return self._repository(WebhookEndpoints)

    @property
    def deliveries(self) -> WebhookDeliveries:
        return self._repository(WebhookDeliveries)

    @property
    def accounts(self) -> Accounts:
        return self._repository(Accounts)

    @property
    def listings(self) -> Listings:
        return self._repository(Listings)

    @property
    def idempotency(self) -> IdempotencyKeys:
        return self._repository(IdempotencyKeys)

    @property
    def provisioning(self) -> Provisioning:
        return self._repository(Provisioning)

    @property
    def invitations(self) -> Invitations:
        return self._repository(Invitations)

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the next successful commit; dropped on rollback."""
        self._callbacks.append(callback)

    def send_after_commit(self, actor_name: str, membership_id: str) -> None:
        request_id = self.request_id
        self.on_commit(lambda: send_message(self.dispatcher, actor_name, membership_id, request_id))

    def denial_recorded(self) -> None:
        """Called once a refusal's audit entry is committed. The web edge passes
        ``on_denial`` to charge it to the caller's rate limit, so no caller can fill the
        permanent audit log with refusals faster than the limit allows."""
        if self._on_denial is not None:
            self._on_denial()

    def commit(self) -> None:
        fan_out = self.session.info.pop(FAN_OUT_WANTED, None)
        self.session.commit()
        callbacks, self._callbacks = self._callbacks, []
        if fan_out is not None:
            request_id = self.request_id
            callbacks.append(
                lambda: send_message(self.dispatcher, FAN_OUT_ACTOR, fan_out, request_id)
            )
        for callback in callbacks:
            try:
                callback()
            except Exception:
                # The transaction is committed; a lost message is re-driven by the sweep.
                log.exception("after-commit callback failed; the sweep will re-drive the work")

    def rollback(self) -> None:
        self._callbacks = []
        if self._session is not None:
            self._session.info.pop(FAN_OUT_WANTED, None)
            self._session.rollback()


UnitOfWorkFactory = Callable[[], UnitOfWork]

"""What a worker or scheduler process works with, built once from ``Settings``.

The database connection, the rules' durations (``Policy``), the clock, the data
removers and the dispatcher for follow-up work. Actors, the sweeper and the
scheduler take a ``Runtime``; tests build one directly with their own database
and a stub or recording dispatcher.

Removers are pluggable: besides the built-in ones (this service's own tables), a
deployment installs a package that declares entry points in the group
``membership_lifecycle.removers``; each names a ``Remover`` object, or a function
that returns one, and every worker process loads them at start.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from composition import policy_from
from memberships.clock import Clock, utc_now
from memberships.notices import MailSender
from memberships.removal import BUILT_IN_REMOVERS, Remover
from settings import Settings
from store.database import make_engine, make_session_factory
from store.unit_of_work import Dispatcher, Policy, UnitOfWork

log = logging.getLogger(__name__)

REMOVER_ENTRY_POINTS = "membership_lifecycle.removers"


def load_removers() -> tuple[Remover, ...]:
    """The built-in removers, then every one a deployment declared as an entry point.

    Raises whatever a declared entry point raises on loading: a worker that cannot
    erase a store it was told about must not start and report removals complete.
    """
    found: list[Remover] = list(BUILT_IN_REMOVERS)
    for point in entry_points(group=REMOVER_ENTRY_POINTS):
        loaded: Any = point.load()
        remover = loaded() if callable(loaded) and not hasattr(loaded, "remove_batch") else loaded
        log.info("data remover loaded", extra={"remover": remover.name, "entry_point": point.value})
        found.append(remover)
    return tuple(found)


@dataclass
class Runtime:
    settings: Settings
    dispatcher: Dispatcher
    clock: Clock = utc_now
    removers: Sequence[Remover] = field(default_factory=lambda: BUILT_IN_REMOVERS)
    session_factory_override: sessionmaker[Session] | None = None
    mail_sender_override: MailSender | None = None

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        # Built on first use, not at import: the dramatiq command imports the actors in
        # its parent process too, which must not hold database connections.
        if self.session_factory_override is not None:
            return self.session_factory_override
        return make_session_factory(make_engine(self.settings.database_url))

    @cached_property
    def policy(self) -> Policy:
        return policy_from(self.settings)

    @cached_property
    def mail_sender(self) -> MailSender:
        """SMTP at ``SMTP_URL`` (``workers.mail``); without it, every attempt fails and is
        retried."""
        from workers.mail import NoMailServer, SmtpSender

        if self.mail_sender_override is not None:
            return self.mail_sender_override
        if self.settings.smtp_url is None:
            return NoMailServer()
        return SmtpSender(self.settings.smtp_url, self.settings.mail_from)

    def uow(self, request_id: str | None = None) -> UnitOfWork:
        return UnitOfWork(self.session_factory, self.dispatcher, self.policy, request_id)

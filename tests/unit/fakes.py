"""An in-memory unit of work for the use cases' unit tests: no database, no SQL.

``FakeUnitOfWork`` has the public surface of ``store.unit_of_work.UnitOfWork`` that the
lifecycle use cases use (``memberships.decisions``, ``self_service``, ``admin``,
``automatic``) and fakes of the repositories they reach: ``directory``, ``memberships``,
``audit``, ``transitions`` and ``outbox``. Each fake answers from a ``FakeDatabase``
that several units of work may share.

Transactions are modelled as the unit of work promises them: ``commit`` keeps what was
written and only then runs the ``on_commit`` callbacks (the messages); ``rollback`` (and
leaving the ``with`` block without a commit) puts every row back as it was at the last
commit and drops the callbacks.

Rows are the ORM classes of ``store.models``, built in memory with every field set
explicitly (a database default never fills anything in here). What the store writes
after every state change (events, notices, removal requests, apps' confirmations) is not
modelled: those have their own integration tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from statemachines.membership import LISTED_STATES, MembershipKind
from store.models import (
    ADMIN_ROLES,
    AuditEvent,
    Grant,
    Membership,
    Organization,
    RoleAssignment,
    User,
)
from store.policy import Policy
from store.transitions import Transition
from store.unit_of_work import RecordingDispatcher

Row = Organization | User | Membership | Grant | RoleAssignment | AuditEvent
R = TypeVar("R", Organization, User, Membership, Grant, RoleAssignment, AuditEvent)


def values_of(row: Row) -> dict[str, Any]:
    """Every column of ``row``, by attribute name."""
    return {attr.key: getattr(row, attr.key) for attr in row.__mapper__.column_attrs}


def copy_of(row: R) -> R:
    """A separate object with the same column values (a row read earlier, say)."""
    return type(row)(**values_of(row))


def new_id() -> str:
    return str(uuid.uuid4())


# ---- the data -----------------------------------------------------------------------------------


@dataclass
class FakeDatabase:
    """The committed rows, by table."""

    organizations: dict[str, Organization] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    memberships: dict[str, Membership] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    roles: list[RoleAssignment] = field(default_factory=list)
    audit: list[AuditEvent] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        """Every row's values (and which rows exist), to go back to on rollback."""
        return (
            {
                name: {key: (row, values_of(row)) for key, row in getattr(self, name).items()}
                for name in ("organizations", "users", "memberships")
            }
            | {
                name: [(row, values_of(row)) for row in getattr(self, name)]
                for name in ("grants", "roles", "audit")
            }
            | {"events": [dict(e) for e in self.events]}
        )

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Every row as it was in ``snapshot``: the same objects, their old values; rows
        added since are gone."""
        for name in ("organizations", "users", "memberships"):
            rows = getattr(self, name)
            rows.clear()
            for key, (row, values) in snapshot[name].items():
                _set_values(row, values)
                rows[key] = row
        for name in ("grants", "roles", "audit"):
            rows = getattr(self, name)
            rows.clear()
            for row, values in snapshot[name]:
                _set_values(row, values)
                rows.append(row)
        self.events[:] = [dict(e) for e in snapshot["events"]]

    # -- rows with every field set --

    def add_organization(
        self,
        domain: str,
        *,
        leave_allowed: bool = True,
        privacy_profile: bool = True,
        created_at: datetime,
    ) -> Organization:
        org = Organization(
            id=new_id(),
            domain=domain,
            display_name=domain.split(".")[0].title(),
            privacy_contact_email=f"privacy@{domain}" if privacy_profile else None,
            privacy_statement_url=f"https://{domain}/privacy" if privacy_profile else None,
            external_user_leave_allowed=leave_allowed,
            created_at=created_at,
        )
        self.organizations[org.id] = org
        return org

    def add_user(
        self, name: str, home: Organization, *, created_at: datetime, enabled: bool = True
    ) -> User:
        """A user of ``home`` with their home membership there."""
        user = User(
            id=new_id(),
            email=f"{name}@{home.domain}",
            display_name=name.title(),
            home_organization_id=home.id,
            enabled=enabled,
            created_at=created_at,
            session_generation=0,
            email_own_changes=True,
        )
        self.users[user.id] = user
        self.add_membership(user, home, MembershipKind.HOME, created_at=created_at)
        return user

    def add_membership(
        self,
        user: User,
        org: Organization,
        kind: str,
        *,
        created_at: datetime,
        state: str = "active",
        version: int = 1,
        enabled: bool = True,
        soft_deleted_at: datetime | None = None,
        purge_due_at: datetime | None = None,
    ) -> Membership:
        membership = Membership(
            id=new_id(),
            user_id=user.id,
            pseudonym=new_id(),
            organization_id=org.id,
            kind=kind,
            enabled=enabled,
            state=state,
            version=version,
            email=user.email,
            display_name=user.display_name,
            created_at=created_at,
            leave_requested_at=None,
            soft_deleted_at=soft_deleted_at,
            purge_due_at=purge_due_at,
            restored_at=None,
            purge_started_at=None,
            removal_due_by=None,
            purged_at=None,
            removed_rows=0,
            last_progress_at=None,
            attempts=0,
            last_error=None,
        )
        self.memberships[membership.id] = membership
        return membership

    def add_grant(self, membership: Membership, name: str, *, granted_at: datetime) -> Grant:
        grant = Grant(
            id=new_id(),
            membership_id=membership.id,
            kind="app",
            name=name,
            granted_at=granted_at,
        )
        self.grants.append(grant)
        return grant

    def add_role(
        self, user: User, org: Organization | None, role: str, *, created_at: datetime
    ) -> RoleAssignment:
        assignment = RoleAssignment(
            id=new_id(),
            user_id=user.id,
            organization_id=org.id if org else None,
            role=role,
            created_at=created_at,
        )
        self.roles.append(assignment)
        return assignment


def _set_values(row: Row, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        setattr(row, key, value)


# ---- the repositories ---------------------------------------------------------------------------


class FakeDirectory:
    """``store.queries.Directory`` in memory."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db

    def user(self, user_id: str) -> User | None:
        return self.db.users.get(user_id)

    def organization(self, organization_id: str) -> Organization | None:
        return self.db.organizations.get(organization_id)

    def find_organization(self, ref: str) -> Organization | None:
        ref = (ref or "").strip().lower()
        found = self.db.organizations.get(ref)
        if found is not None:
            return found
        return next((o for o in self.db.organizations.values() if o.domain == ref), None)

    def roles_of(self, user_id: str, organization_id: str | None) -> set[str]:
        return {
            r.role
            for r in self.db.roles
            if r.user_id == user_id and r.organization_id == organization_id
        }

    def is_disabled(self, user_id: str, organization_id: str | None = None) -> bool:
        user = self.db.users.get(user_id)
        if user is None or not user.enabled:
            return True
        places = {user.home_organization_id, organization_id} - {None}
        return any(
            m.user_id == user_id
            and m.organization_id in places
            and m.state != "purged"
            and not m.enabled
            for m in self.db.memberships.values()
        )

    def acting_roles(self, user_id: str, organization_id: str | None) -> set[str]:
        roles = self.roles_of(user_id, organization_id)
        if roles and self.is_disabled(user_id, organization_id):
            return set()
        return roles

    def is_admin_of(self, user_id: str, organization_id: str) -> bool:
        return bool(self.acting_roles(user_id, organization_id) & set(ADMIN_ROLES))

    def is_operator(self, user_id: str) -> bool:
        return "operator" in self.acting_roles(user_id, None)


class FakeMemberships:
    """``store.queries.Memberships`` in memory."""

    def __init__(self, db: FakeDatabase, directory: FakeDirectory) -> None:
        self.db = db
        self.directory = directory

    def get(self, membership_id: str) -> Membership | None:
        return self.db.memberships.get(membership_id)

    def live_membership(self, user_id: str, organization_id: str) -> Membership | None:
        return next(
            (
                m
                for m in self.db.memberships.values()
                if m.user_id == user_id
                and m.organization_id == organization_id
                and m.state != "purged"
            ),
            None,
        )

    def live_membership_of(
        self, user_id: str, organization_ref: str
    ) -> tuple[User, Organization, Membership] | None:
        user = self.directory.user(user_id)
        org = self.directory.find_organization(organization_ref)
        membership = self.live_membership(user_id, org.id) if org else None
        if user is None or org is None or membership is None:
            return None
        return user, org, membership

    def listed_with_organizations(self, user_id: str) -> list[tuple[Membership, Organization]]:
        return [
            (m, self.db.organizations[m.organization_id])
            for m in self.db.memberships.values()
            if m.user_id == user_id and m.state in LISTED_STATES
        ]

    def grants_of(self, membership_id: str) -> list[Grant]:
        return sorted(
            (g for g in self.db.grants if g.membership_id == membership_id),
            key=lambda g: (g.kind, g.name),
        )


class FakeAuditLog:
    """``store.queries.AuditLog`` in memory: the entries in the order they were written."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db

    def append(
        self,
        *,
        occurred_at: datetime,
        actor: str,
        action: str,
        outcome: str = "allowed",
        organization_id: str | None = None,
        membership_id: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.db.audit.append(
            AuditEvent(
                id=len(self.db.audit) + 1,
                occurred_at=occurred_at,
                actor=actor,
                action=action,
                outcome=outcome,
                organization_id=organization_id,
                membership_id=membership_id,
                from_state=from_state,
                to_state=to_state,
                reason=reason,
                request_id=request_id,
            )
        )

    def trail(self, membership_id: str) -> list[AuditEvent]:
        return [e for e in self.db.audit if e.membership_id == membership_id]


class FakeTransitions:
    """``store.transitions.Transitions.move_one`` in memory: the compare-and-set on state
    and version, the entry fields, version + 1, and the allowed audit entry."""

    def __init__(self, db: FakeDatabase, audit: FakeAuditLog) -> None:
        self.db = db
        self.audit = audit

    def move_one(self, membership: Membership, transition: Transition) -> bool:
        stored = self.db.memberships.get(membership.id)
        if stored is None or (stored.state, stored.version) != (
            membership.state,
            membership.version,
        ):
            return False  # another decision moved the row on: nothing written
        _set_values(stored, {**transition.fields, "state": transition.to_state})
        stored.version += 1
        _set_values(membership, values_of(stored))  # as the UPDATE's RETURNING does
        self.audit.append(
            occurred_at=transition.now,
            actor=transition.actor,
            action=transition.event,
            organization_id=stored.organization_id,
            membership_id=stored.id,
            from_state=transition.from_state,
            to_state=transition.to_state,
            request_id=transition.request_id,
        )
        return True


class FakeOutbox:
    """``store.outbox.Outbox.record_event`` in memory: the events as given."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db

    def record_event(self, **event: Any) -> str:
        event_id = f"evt-{len(self.db.events) + 1}"
        self.db.events.append({"event_id": event_id, **event})
        return event_id


# ---- the unit of work ---------------------------------------------------------------------------


class FakeUnitOfWork:
    """``store.unit_of_work.UnitOfWork`` in memory (see the module's docstring)."""

    def __init__(
        self,
        db: FakeDatabase | None = None,
        *,
        policy: Policy | None = None,
        request_id: str | None = "request-1",
    ) -> None:
        self.db = db if db is not None else FakeDatabase()
        self.dispatcher = RecordingDispatcher()
        self.policy = policy or Policy()
        self.request_id = request_id
        self.committed = False
        self.denials = 0
        self.directory = FakeDirectory(self.db)
        self.memberships = FakeMemberships(self.db, self.directory)
        self.audit = FakeAuditLog(self.db)
        self.transitions = FakeTransitions(self.db, self.audit)
        self.outbox = FakeOutbox(self.db)
        self._callbacks: list[Callable[[], None]] = []
        self._committed_rows = self.db.snapshot()

    def __enter__(self) -> FakeUnitOfWork:
        self._callbacks = []
        self._committed_rows = self.db.snapshot()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()

    def on_commit(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def send_after_commit(self, actor_name: str, membership_id: str) -> None:
        request_id = self.request_id
        self.on_commit(lambda: self.dispatcher.send(actor_name, membership_id, request_id))

    def denial_recorded(self) -> None:
        self.denials += 1

    def commit(self) -> None:
        self._committed_rows = self.db.snapshot()
        self.committed = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def rollback(self) -> None:
        self._callbacks = []
        self.db.restore(self._committed_rows)


def audit_entries(db: FakeDatabase, membership: Membership) -> list[tuple[str, str, str | None]]:
    """(action, outcome, reason) of the membership's audit entries, oldest first."""
    return [(e.action, e.outcome, e.reason) for e in db.audit if e.membership_id == membership.id]


def sent(uow: FakeUnitOfWork) -> Sequence[tuple[str, str]]:
    """What the unit of work has sent: (actor name, membership id) pairs."""
    return uow.dispatcher.sent

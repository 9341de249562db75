"""The one writer of state changes: every move of a membership from one state to another.

A state change is a compare-and-set: the UPDATE matches the row's id, the state it
was read in and the version it was read at, bumps the version, stores the state and
what entering it sets (the entry fields ``statemachines.membership.entry_fields``
gives), and appends an ``allowed`` audit row per row it moved. Zero rows matched
means another decision won; that row is left alone and not audited.

Three entry points share those rules, with the statements behind them:

- ``compare_and_set`` / ``move_one``: one membership a use case has loaded (every
  request, every message about one membership).
- ``move_rows``: a batch of claimed rows (the sweep on SQLite, the chunked removal's
  finish), optionally with each row's removal progress in the same UPDATE. On
  PostgreSQL one statement per call; elsewhere an UPDATE and a bulk INSERT.
- ``move_claimed``: PostgreSQL only: the claim (a locking SELECT), the UPDATE and the
  audit INSERT as one statement, so the ids cross to Python once (the sweep's batch).

``_after_write`` is where the rows that follow every change are written, once, for
every path: the events (``store.outbox``), the apps that must confirm a removal
(``store.app_confirmations``), the end of open removal requests
(``store.removal_requests``) and the member's notices (``store.notices``). No other module updates
``memberships.state``; a test greps for one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    Update,
    and_,
    any_,
    bindparam,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy import text as sql
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from store import app_confirmations, notices, outbox, removal_requests, webhook_deliveries
from store.database import is_postgresql
from store.models import AuditEvent, Membership, UTCDateTime
from store.repository import Repository
from store.session_keys import FAN_OUT_WANTED

# What ``compare_and_set`` reads back: every column, by its attribute name.
_MEMBERSHIP_KEYS = tuple(Membership.__mapper__.column_attrs.keys())
_MEMBERSHIP_COLUMNS = tuple(getattr(Membership, key) for key in _MEMBERSHIP_KEYS)

_AUDIT_INSERT = insert(AuditEvent.metadata.tables[AuditEvent.__tablename__])


@dataclass(frozen=True, slots=True)
class Transition:
    """One lifecycle event applied by one actor at one time: what every row it moves gets."""

    event: str
    from_state: str
    to_state: str
    fields: Mapping[str, Any]
    """The entry fields of ``to_state``."""
    now: datetime
    actor: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed row: just what a set-based transition needs, with the version it was
    read at (the compare-and-set matches id, state and version, as every change does)."""

    id: str
    kind: str
    organization_id: str
    version: int


@dataclass(frozen=True, slots=True)
class Moved:
    """A row a batch moved: what its follow-up work needs (the state it entered)."""

    id: str
    to_state: str
    # Where the batch reached in the due order (the claim path): the next claim of the
    # same tick starts there.
    purge_due_at: datetime | None = None


def _after_write(session: Session, transition: Transition, moved: Sequence[str]) -> None:
    """Runs in the transaction of every state change, after its UPDATE and audit rows:
    the one place for the rows every change must be accompanied by. ``moved`` holds
    the ids of the rows that moved (possibly none)."""
    if not moved:
        return
    outbox.after_transition(session, transition, moved)
    app_confirmations.after_transition(session, transition, moved)
    # The transition's notices before the requests it ends: a request closed by a
    # removal is told in one mail with the removal's dates (store.notices).
    notices.after_transition(session, transition, moved)
    removal_requests.after_transition(session, transition, moved)
    _ask_for_fan_out(session, moved)


# Up to this many rows moved at once, a change asks for its events' fan-out right after
# its commit when the organization has an endpoint; larger batches (the sweep's) leave
# it to the sweep, which fans out in the same tick.
FAN_OUT_AFTER_COMMIT_UP_TO = 50


def _ask_for_fan_out(session: Session, moved: Sequence[str]) -> None:
    if len(moved) > FAN_OUT_AFTER_COMMIT_UP_TO or session.info.get(FAN_OUT_WANTED):
        return
    if webhook_deliveries.any_endpoint_for_memberships(session, moved):
        session.info[FAN_OUT_WANTED] = moved[0]


# ---- one row -----------------------------------------------------------------------------------


@cache
def _compare_and_set_statement(field_names: tuple[str, ...]) -> Update:
    """The compare-and-set UPDATE for the given entry fields, built once and reused with
    bound values: building the expression cost more than the statement's round trip."""
    column = Membership.__table__.c
    return (
        update(Membership)
        .where(
            and_(
                Membership.id == bindparam("cas_id", type_=column.id.type),
                Membership.state == bindparam("cas_state", type_=column.state.type),
                Membership.version == bindparam("cas_version", type_=column.version.type),
            )
        )
        .values(
            state=bindparam("cas_to_state", type_=column.state.type),
            version=Membership.version + 1,
            **{name: bindparam(f"cas_{name}", type_=column[name].type) for name in field_names},
        )
        .returning(*_MEMBERSHIP_COLUMNS)
        .execution_options(synchronize_session=False)
    )


def compare_and_set(
    session: Session,
    membership: Membership,
    to_state: str,
    **fields: Any,
) -> bool:
    """Move ``membership`` to ``to_state`` only if nobody changed it since it was read.

    The UPDATE matches on id, state and version; zero rows means another decision won.
    On success the row object takes the stored values from the UPDATE's ``RETURNING``
    (one round trip: no SELECT after it), as loaded, not as pending changes.
    """
    params = {f"cas_{name}": value for name, value in fields.items()}
    params.update(
        cas_id=membership.id,
        cas_state=membership.state,
        cas_version=membership.version,
        cas_to_state=to_state,
    )
    row = session.execute(_compare_and_set_statement(tuple(sorted(fields))), params).first()
    if row is None:
        return False
    for key, value in zip(_MEMBERSHIP_KEYS, row, strict=True):
        set_committed_value(membership, key, value)
    return True


def move_one(session: Session, membership: Membership, transition: Transition) -> bool:
    """``transition`` for one loaded membership: the compare-and-set, then its audit row.
    ``False`` (and nothing written) when the row changed since it was read."""
    if not compare_and_set(session, membership, transition.to_state, **transition.fields):
        return False
    session.execute(
        _AUDIT_INSERT,
        _audit_values(transition, membership.organization_id, membership.id),
    )
    _after_write(session, transition, (membership.id,))
    return True


def _audit_values(transition: Transition, organization_id: str, membership_id: str) -> dict:
    return {
        "occurred_at": transition.now,
        "actor": transition.actor,
        "action": transition.event,
        "outcome": "allowed",
        "organization_id": organization_id,
        "membership_id": membership_id,
        "from_state": transition.from_state,
        "to_state": transition.to_state,
        "request_id": transition.request_id,
    }


# ---- many rows ---------------------------------------------------------------------------------


def _id_array(name: str, ids: Sequence[str]) -> Any:
    # One array parameter on PostgreSQL, not thousands of bound values.
    return bindparam(name, list(ids), type_=ARRAY(String))


def move_rows(
    session: Session,
    transition: Transition,
    rows: Sequence[Claimed],
    *,
    progress: Mapping[str, int] | None = None,
) -> list[Moved]:
    """``transition`` for every claimed row still in its ``from_state`` at the version it
    was claimed at; the rows that moved, each with its audit row.

    ``progress`` (removed data rows per membership) is added to ``removed_rows`` and
    ``last_progress_at`` touched for the rows that move: on PostgreSQL in the same
    UPDATE (the chunked removal's finish writes each row once, not twice).
    """
    if not rows:
        return []
    if is_postgresql(session):
        return _move_rows_on_postgresql(session, transition, rows, progress)
    return _move_rows_generic(session, transition, rows, progress)


def move_claimed(session: Session, transition: Transition, claim: Select[Any]) -> list[Moved]:
    """PostgreSQL: ``claim`` (a locking SELECT of ``id`` and ``version``), the UPDATE and
    the audit INSERT as one statement: ``WITH claimed AS (SELECT …), moved AS (UPDATE …
    FROM claimed RETURNING …), audit AS (INSERT INTO audit_events … SELECT … FROM moved)
    SELECT … FROM moved``."""
    claimed = claim.cte("claimed")
    chosen = and_(Membership.id == claimed.c.id, Membership.version == claimed.c.version)
    return _update_and_audit(session, transition, chosen, {})


def _values(transition: Transition) -> dict[str, Any]:
    return {
        "state": transition.to_state,
        "version": Membership.version + 1,
        **transition.fields,
    }


def _move_rows_on_postgresql(
    session: Session,
    transition: Transition,
    rows: Sequence[Claimed],
    progress: Mapping[str, int] | None,
) -> list[Moved]:
    """One round trip: the ids, versions (and counts) travel as array parameters, not
    thousands of bound values. The second condition on the id lets the planner reach the
    rows through the primary key instead of hashing the whole table."""
    ids = [row.id for row in rows]
    id_array = _id_array("ids", ids)
    columns = [
        func.unnest(id_array).label("id"),
        func.unnest(
            bindparam("versions", [row.version for row in rows], type_=ARRAY(Integer))
        ).label("version"),
    ]
    if progress is not None:
        counts = [progress.get(i, 0) for i in ids]
        columns.append(func.unnest(bindparam("counts", counts, type_=ARRAY(Integer))).label("n"))
    batch = select(*columns).subquery("batch")
    chosen = and_(
        Membership.id == batch.c.id,
        Membership.version == batch.c.version,
        Membership.id == any_(id_array),
    )
    extra: dict[str, Any] = {}
    if progress is not None:
        extra = {
            "removed_rows": Membership.removed_rows + batch.c.n,
            "last_progress_at": transition.now,
        }
    return _update_and_audit(session, transition, chosen, extra)


def _update_and_audit(
    session: Session,
    transition: Transition,
    chosen: ColumnElement[bool],
    extra: Mapping[str, Any],
) -> list[Moved]:
    """One PostgreSQL statement: the UPDATE of the ``chosen`` rows still in ``from_state``
    feeds its RETURNING to the INSERT of their audit rows, and says what moved. The INSERT
    returns nothing: a data-modifying CTE runs to completion whether or not the statement
    reads it. Nothing passes through Python between the two. ``extra``: the columns the
    UPDATE sets beside those of the transition (a batch's progress; none for the sweep)."""
    t = transition
    moved = (
        update(Membership)
        .where(chosen, Membership.state == t.from_state)
        .values(**_values(t), **extra)
        .returning(Membership.id, Membership.organization_id, Membership.purge_due_at)
        .cte("moved")
    )
    audit = _audit_moved(moved, t).cte("audit")
    statement = select(moved.c.id, moved.c.purge_due_at).add_cte(audit)
    found = [Moved(str(row.id), t.to_state, row.purge_due_at) for row in session.execute(statement)]
    _after_write(session, t, [m.id for m in found])
    return found


def _audit_moved(moved: Any, t: Transition) -> Any:
    """The INSERT of one allowed audit row per row of ``moved`` (a CTE of an UPDATE that
    returns ``id`` and ``organization_id``): the set-based form of ``_audit_values``."""
    return insert(AuditEvent).from_select(
        [
            "occurred_at",
            "organization_id",
            "membership_id",
            "actor",
            "action",
            "outcome",
            "from_state",
            "to_state",
            "request_id",
        ],
        select(
            literal(t.now, UTCDateTime()),
            moved.c.organization_id,
            moved.c.id,
            literal(t.actor, String()),
            literal(t.event, String()),
            literal("allowed", String()),
            literal(t.from_state, String()),
            literal(t.to_state, String()),
            literal(t.request_id, String()),
        ).select_from(moved),
    )


def _move_rows_generic(
    session: Session,
    transition: Transition,
    rows: Sequence[Claimed],
    progress: Mapping[str, int] | None,
) -> list[Moved]:
    """An UPDATE … RETURNING (as the compare-and-set of one row, which every supported
    database has), the progress of the rows that moved (one executemany), then one bulk
    INSERT of the audit rows."""
    t = transition
    statement = (
        update(Membership)
        .where(
            tuple_(Membership.id, Membership.version).in_([(r.id, r.version) for r in rows]),
            Membership.state == t.from_state,
        )
        .values(**_values(t))
        .execution_options(synchronize_session=False)
    )
    moved = list(session.scalars(statement.returning(Membership.id)))
    if progress:
        record_removal_progress(session, t.now, {i: progress[i] for i in moved if progress.get(i)})
    organization_of = {row.id: row.organization_id for row in rows}
    if moved:
        session.execute(
            insert(AuditEvent), [_audit_values(t, organization_of[i], i) for i in moved]
        )
    _after_write(session, t, moved)
    return [Moved(i, t.to_state) for i in moved]


def record_removal_progress(session: Session, now: datetime, removed: Mapping[str, int]) -> None:
    """Add each membership's deleted rows to ``removed_rows`` and touch ``last_progress_at``
    (so the sweep does not re-drive a removal that is moving). Changes no state."""
    if not removed:
        return
    if is_postgresql(session):
        session.execute(
            sql(
                # The second condition on m.id lets the planner reach the rows through the
                # primary key instead of hashing the whole table.
                "UPDATE memberships AS m SET removed_rows = m.removed_rows + c.n, "
                "last_progress_at = :now FROM unnest(:ids, :counts) AS c(id, n) "
                "WHERE m.id = c.id AND m.id = ANY(:ids)"
            ).bindparams(
                _id_array("ids", list(removed)),
                bindparam("counts", list(removed.values()), type_=ARRAY(Integer)),
                bindparam("now", now, type_=UTCDateTime()),
            )
        )
        return
    table = cast(Table, Membership.__table__)
    session.connection().execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(removed_rows=table.c.removed_rows + bindparam("b_count"), last_progress_at=now),
        [{"b_id": m, "b_count": n} for m, n in removed.items()],
    )


class Transitions(Repository):
    """The one writer of state changes, on this unit of work's session (``uow.transitions``)."""

    def move_one(self, membership: Membership, transition: Transition) -> bool:
        """``transition`` for one loaded membership (``move_one``)."""
        return move_one(self.session, membership, transition)

    def move_rows(
        self,
        transition: Transition,
        rows: Sequence[Claimed],
        *,
        progress: Mapping[str, int] | None = None,
    ) -> list[Moved]:
        """``transition`` for claimed rows still at their claimed version (``move_rows``)."""
        return move_rows(self.session, transition, rows, progress=progress)

    def move_claimed(self, transition: Transition, claim: Select[Any]) -> list[Moved]:
        """PostgreSQL: claim, move and audit in one statement (``move_claimed``)."""
        return move_claimed(self.session, transition, claim)

    def record_removal_progress(self, now: datetime, removed: Mapping[str, int]) -> None:
        """Add removed data rows and touch ``last_progress_at`` (``record_removal_progress``)."""
        record_removal_progress(self.session, now, removed)

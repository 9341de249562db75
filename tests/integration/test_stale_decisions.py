"""Compare-and-set on the version: a decision based on a read that another decision has
overtaken is refused, even when the membership is back in the very state that was read.

Every state change matches the row's id, its state *and* the version it was read at. A
state check alone cannot tell "nobody touched it" from "restored and removed again since":
both are ``soft-deleted``. These tests put another writer's change exactly between the
read and the write, keeping the state and moving the version on, on every path that moves
a state: an admin's single decision, the set-based finish of a chunked data removal, and
the sweep's batch move.

The other writer is injected at the database edge (the first ``UPDATE`` of ``memberships``
the decision sends), not into any module: the tests stay true wherever the statement is
built. On SQLite a unit of work holds the write lock from its first statement, so the other
writer runs on the decision's own connection, as a writer that ignores the lock would; on
PostgreSQL a second test lets a real, concurrent admin restore and remove the guest again
between the first admin's read and write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Connection, Engine, event, select, text

from memberships import admin, sweep
from memberships.errors import Conflict
from memberships.principal import SYSTEM
from memberships.removal import remove_chunk_batch, remove_data_batch
from store.models import AuditEvent, Membership

if TYPE_CHECKING:  # at run time, "conftest" may name another directory's conftest module
    from conftest import World

RETENTION = timedelta(days=30)
UPDATE_OF_MEMBERSHIPS = re.compile(r"\bUPDATE\s+\"?memberships\"?\s", re.IGNORECASE)


@contextmanager
def before_the_first_update_of_memberships(
    engine: Engine, other_writer: Callable[[Connection], None]
) -> Iterator[list[str]]:
    """Run ``other_writer`` once, just before the first statement that updates
    ``memberships`` is sent; yields the statements it was run before (one, or none)."""
    seen: list[str] = []

    def hook(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if seen or not UPDATE_OF_MEMBERSHIPS.search(statement):
            return
        seen.append(statement)
        other_writer(conn)

    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", hook)


def move_version_on(membership_id: str) -> Callable[[Connection], None]:
    """Another writer's two decisions that end in the state they started from (a restore
    and a removal, say): the state is unchanged, the version two further on."""

    def write(conn: Connection) -> None:
        conn.execute(
            text("UPDATE memberships SET version = version + 2 WHERE id = :id"),
            {"id": membership_id},
        )

    return write


def _state_and_version(world: World, membership_id: str) -> tuple[str, int]:
    with world.uow() as uow:
        row = uow.session.get(Membership, membership_id)
        assert row is not None
        return row.state, row.version


def _audited(world: World, membership_id: str, action: str, outcome: str) -> list[str | None]:
    """The reasons of the membership's audit rows for ``action`` with ``outcome``."""
    with world.uow() as uow:
        return list(
            uow.session.scalars(
                select(AuditEvent.reason).where(
                    AuditEvent.membership_id == membership_id,
                    AuditEvent.action == action,
                    AuditEvent.outcome == outcome,
                )
            )
        )


def _allowed(world: World, membership_id: str, action: str) -> int:
    return len(_audited(world, membership_id, action, "allowed"))


def _denied(world: World, membership_id: str, action: str) -> list[str | None]:
    return _audited(world, membership_id, action, "denied")


# --- one decision ---------------------------------------------------------------------------


def test_a_permanent_delete_is_refused_when_the_guest_was_restored_and_removed_since_it_was_read(
    world: World, engine: Engine
) -> None:
    # Given ann soft-deleted (version 2)
    membership_id = world.soft_delete()
    assert _state_and_version(world, membership_id) == ("soft-deleted", 2)
    # When an admin's permanent delete reads her at version 2, and before it writes another
    # writer restores and removes her again (soft-deleted, version 4)
    with (
        before_the_first_update_of_memberships(engine, move_version_on(membership_id)) as seen,
        world.uow() as uow,
        pytest.raises(Conflict),
    ):
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    assert seen, "the decision never tried to write"
    # Then the stale delete is refused as a conflict and audited as such: she is still
    # soft-deleted, restorable, and no permanent delete was recorded as allowed (the other
    # writer's change, made on the decision's own connection, went with its rollback)
    assert _state_and_version(world, membership_id) == ("soft-deleted", 2)
    assert _allowed(world, membership_id, "purge") == 0
    assert _denied(world, membership_id, "purge") == ["conflict"]


# Two writers at once need PostgreSQL: SQLite serializes units of work.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_concurrent_restore_and_remove_overtakes_a_permanent_delete_on_postgresql(
    world: World, engine: Engine
) -> None:
    # Given ann soft-deleted (version 2)
    membership_id = world.soft_delete()

    def other_admin_restores_and_removes(_conn: Connection) -> None:
        other = world.principal("gadmin")
        with world.uow() as uow:
            admin.restore(uow, world.clock, other, "open.example", membership_id)
        with world.uow() as uow:
            admin.remove(uow, world.clock, other, "open.example", membership_id)

    # When an admin's permanent delete has read her, and a second admin restores her and
    # removes her again (two committed transactions) before the first one writes
    with (
        before_the_first_update_of_memberships(engine, other_admin_restores_and_removes) as seen,
        world.uow() as uow,
        pytest.raises(Conflict),
    ):
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    assert seen
    # Then the first admin's delete is refused: the guest is soft-deleted by the second
    # admin's decision, with the retention period that decision started
    assert _state_and_version(world, membership_id) == ("soft-deleted", 4)
    assert (_allowed(world, membership_id, "restore"), _allowed(world, membership_id, "purge")) == (
        1,
        0,
    )
    assert _denied(world, membership_id, "purge") == ["conflict"]


# --- the set-based paths ---------------------------------------------------------------------


def test_a_chunk_finish_leaves_a_membership_whose_version_moved_on_after_it_was_locked(
    world: World, engine: Engine
) -> None:
    # Given pat (direct connect) removed: purge-pending, 30 data rows, version 2
    pat = world.membership("open", "pat")
    with world.uow() as uow:
        admin.remove(uow, world.clock, SYSTEM, world.orgs["open"], pat)
    assert _state_and_version(world, pat) == ("purge-pending", 2)
    # When a chunk batch erases his rows and, before it finishes him, another writer moves
    # his version on without changing his state
    world.clock.advance(timedelta(seconds=1))
    with (
        before_the_first_update_of_memberships(engine, move_version_on(pat)) as seen,
        world.uow() as uow,
    ):
        progress = remove_chunk_batch(uow, world.clock, [pat])
    assert seen
    # Then the finish based on the old version does not happen: still purge-pending,
    # no finish recorded, and the 30 rows the batch erased are counted all the same
    assert pat not in progress.purged
    assert (progress.removed_now, progress.pending) == (30, (pat,))
    assert _state_and_version(world, pat) == ("purge-pending", 4)
    assert _allowed(world, pat, "finish_removal") == 0
    assert _removed_rows(world, pat) == 30
    # And the next batch, reading the row afresh, finishes him
    world.clock.advance(timedelta(seconds=1))
    with world.uow() as uow:
        again = remove_chunk_batch(uow, world.clock, [pat])
    assert again.purged == (pat,)
    assert _state_and_version(world, pat) == ("purged", 5)
    assert _allowed(world, pat, "finish_removal") == 1
    assert _removed_rows(world, pat) == 30  # each erased row counted once


# On PostgreSQL the claim and the move are one statement, the claimed rows locked by it:
# no writer can come between them (docs/TESTING.md lists that version check among the
# equivalent mutants). On SQLite they are two statements.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_sweep_leaves_a_membership_whose_version_moved_on_after_it_was_claimed(
    world: World, engine: Engine
) -> None:
    # Given ann soft-deleted (version 2) and her retention period over
    membership_id = world.soft_delete()
    world.clock.advance(RETENTION)
    # When the sweep claims her and, before it moves her on, another writer changes her
    # (same state, version 4)
    with (
        before_the_first_update_of_memberships(engine, move_version_on(membership_id)) as seen,
        world.uow() as uow,
    ):
        first = sweep.sweep(uow, world.clock)
    assert seen
    # Then that tick leaves her alone: not moved, not audited
    assert first.expired == 0
    assert _state_and_version(world, membership_id)[0] == "soft-deleted"
    assert _allowed(world, membership_id, "expire_retention") == 0
    # And the next tick, claiming her afresh, moves her on
    with world.uow() as uow:
        second = sweep.sweep(uow, world.clock)
    assert second.expired == 1
    assert _state_and_version(world, membership_id)[0] == "purge-pending"
    assert _allowed(world, membership_id, "expire_retention") == 1


def test_a_batch_records_no_progress_on_a_membership_finished_since_it_was_read(
    world: World, engine: Engine
) -> None:
    # Given pat (direct connect) removed: purge-pending, 30 data rows, no progress yet
    pat = world.membership("open", "pat")
    with world.uow() as uow:
        admin.remove(uow, world.clock, SYSTEM, world.orgs["open"], pat)
    assert _removed_rows(world, pat) == 0

    def finish_elsewhere(conn: Connection) -> None:
        conn.execute(text("UPDATE memberships SET state = 'purged' WHERE id = :id"), {"id": pat})

    # When a batch erases his rows and, before it records its progress, another writer
    # has finished him
    world.clock.advance(timedelta(seconds=1))
    with (
        before_the_first_update_of_memberships(engine, finish_elsewhere) as seen,
        world.uow() as uow,
    ):
        remove_data_batch(uow, world.clock, pat)
    assert seen
    # Then no progress is added to the finished membership
    assert _state_and_version(world, pat)[0] == "purged"
    assert _removed_rows(world, pat) == 0


def _removed_rows(world: World, membership_id: str) -> int:
    with world.uow() as uow:
        row = uow.session.get(Membership, membership_id)
        assert row is not None
        return row.removed_rows

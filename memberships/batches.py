"""Set-based lifecycle moves: many claimed memberships at once, as the sweep and the
chunked data removal need them.

``apply_event_to_batch`` asks the machine (``statemachines.membership.transition_table``)
where each claimed row goes, has the one transition writer
(``store.transitions.move_rows``) move them, and registers the work each new state
waits for (``FOLLOW_UP``) to be sent after the commit. A test proves this path and
``memberships.decisions.apply_event`` agree on every (state, event, kind).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from memberships.automatic import WORKER
from memberships.decisions import transition_for
from statemachines.membership import FOLLOW_UP, transition_table
from store.transitions import Claimed, Moved
from store.unit_of_work import UnitOfWork


def apply_event_to_batch(
    uow: UnitOfWork,
    now: datetime,
    event: str,
    from_state: str,
    rows: Sequence[Claimed],
    *,
    actor: str = WORKER.id,
    progress: Mapping[str, int] | None = None,
) -> list[Moved]:
    """Fire ``event`` on every claimed row in ``from_state``: one UPDATE per target state,
    one INSERT of audit rows, and the follow-up work registered for after the commit.

    The UPDATE is a compare-and-set: it matches each row's id, ``from_state`` and the
    version it was claimed at, so a row that changed since (only possible without row
    locks) is left alone and not audited. Rows whose kind the machine refuses ``event``
    for are skipped. The caller commits.
    """
    table = transition_table()
    by_target: dict[str, list[Claimed]] = defaultdict(list)
    for row in rows:
        target = table.get((from_state, event, row.kind))
        if target is not None:
            by_target[target].append(row)
    moved: list[Moved] = []
    for target, claimed in by_target.items():
        transition = transition_for(uow, now, actor, event, from_state, target)
        moved.extend(uow.transitions.move_rows(transition, claimed, progress=progress))
    follow_up_after_commit(uow, moved)
    return moved


def follow_up_after_commit(uow: UnitOfWork, moved: Sequence[Moved]) -> None:
    """The work each target state needs (``FOLLOW_UP``), sent once the batch commits."""
    follow_ups: dict[str, list[str]] = defaultdict(list)
    for m in moved:
        if m.to_state in FOLLOW_UP:
            follow_ups[FOLLOW_UP[m.to_state]].append(m.id)
    for actor_name, ids in follow_ups.items():
        send_after_commit(uow, actor_name, ids)


def send_after_commit(uow: UnitOfWork, actor_name: str, ids: Sequence[str]) -> None:
    request_id = uow.request_id
    uow.on_commit(lambda: uow.dispatcher.send_many(actor_name, ids, request_id))

"""Concurrent decisions on one membership, from two connections at once (PostgreSQL).

Two threads, each with its own unit of work, both read the soft-deleted row; a barrier
placed just before the compare-and-set's UPDATE makes sure neither writes before both
have read. Exactly one decision may win; the other must get ``conflict``, and the
audit log must show exactly one allowed transition. Each race is run several times.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from memberships import admin, automatic, provisioning
from memberships.errors import Conflict
from memberships.principal import SYSTEM, Principal
from store import transitions
from store.models import AuditEvent, Membership
from store.unit_of_work import RecordingDispatcher, UnitOfWork

if TYPE_CHECKING:  # at run time, "conftest" may name another directory's conftest module
    from conftest import FakeClock

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

ROUNDS = 6
RETENTION = timedelta(days=30)
TARGET = {"restore": "restored", "purge": "purge-pending", "expire_retention": "purge-pending"}


@dataclass
class Directory:
    uow: Callable[[], UnitOfWork]
    clock: FakeClock
    admin: Principal
    org_id: str


@pytest.fixture
def directory(uow_factory: Callable[[], UnitOfWork], clock: FakeClock) -> Directory:
    """An organization with an admin; each round adds its own soft-deleted guest."""
    with uow_factory() as uow:
        org = provisioning.create_organization(uow, clock, SYSTEM, "race.example", "Race")
    with uow_factory() as uow:
        boss = provisioning.create_user(uow, clock, SYSTEM, "boss@race.example", "Boss", org.id)
    with uow_factory() as uow:
        provisioning.grant_role(uow, clock, SYSTEM, boss.id, "global-administrator", org.id)
    return Directory(uow_factory, clock, Principal.user(boss.id), org.id)


def _soft_deleted_guest(directory: Directory, n: int) -> str:
    with directory.uow() as uow:
        guest = provisioning.create_user(
            uow, directory.clock, SYSTEM, f"guest{n}@mail.example", f"Guest {n}"
        )
    with directory.uow() as uow:
        membership = provisioning.add_guest(
            uow, directory.clock, SYSTEM, directory.org_id, guest.id, "b2b-collaboration"
        )
    with directory.uow() as uow:
        provisioning.add_grant(
            uow, directory.clock, SYSTEM, directory.org_id, guest.id, "group", "Crew"
        )
    with directory.uow() as uow:
        admin.remove(uow, directory.clock, directory.admin, directory.org_id, membership.id)
    return membership.id


def _decision(directory: Directory, action: str, membership_id: str) -> Callable[[], Any]:
    """One decision as its caller makes it, with the clock that caller would have: admins
    act within the retention period, the retention timer exactly at ``purge_due_at``."""
    due = directory.clock() + RETENTION

    def just_before_due() -> datetime:
        return due - timedelta(seconds=1)

    def at_due() -> datetime:
        return due

    def decide() -> Any:
        with directory.uow() as uow:
            match action:
                case "restore":
                    return admin.restore(
                        uow, just_before_due, directory.admin, directory.org_id, membership_id
                    )
                case "purge":
                    return admin.purge(
                        uow, just_before_due, directory.admin, directory.org_id, membership_id
                    )
                case "expire_retention":
                    return automatic.expire_retention(uow, at_due, membership_id)
        raise AssertionError(action)

    return decide


def _race(monkeypatch: pytest.MonkeyPatch, decisions: dict[str, Callable[[], Any]]) -> dict:
    """Run the decisions in parallel threads; both read the row before either writes."""
    barrier = threading.Barrier(len(decisions), timeout=15)
    waited = threading.local()
    real = transitions.compare_and_set

    def compare_and_set_after_everyone_read(
        session: Session, membership: Membership, to_state: str, **fields: Any
    ) -> bool:
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return real(session, membership, to_state, **fields)

    monkeypatch.setattr(transitions, "compare_and_set", compare_and_set_after_everyone_read)
    results: dict[str, Any] = {}

    def run(name: str, decide: Callable[[], Any]) -> None:
        try:
            results[name] = decide()
        except Exception as error:  # noqa: BLE001  (the outcome is what the test checks)
            results[name] = error

    threads = [threading.Thread(target=run, args=item) for item in decisions.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a decision hung"
    monkeypatch.setattr(transitions, "compare_and_set", real)
    return results


@pytest.mark.parametrize(
    ("first", "second"),
    [("restore", "purge"), ("restore", "expire_retention"), ("purge", "expire_retention")],
)
def test_exactly_one_of_two_concurrent_decisions_wins(
    directory: Directory,
    dispatcher: RecordingDispatcher,
    monkeypatch: pytest.MonkeyPatch,
    first: str,
    second: str,
) -> None:
    winners = []
    for n in range(ROUNDS):
        # Given a soft-deleted membership within its retention period
        membership_id = _soft_deleted_guest(directory, n)
        dispatcher.sent.clear()
        # When both decisions are made at once from two connections
        results = _race(
            monkeypatch,
            {
                first: _decision(directory, first, membership_id),
                second: _decision(directory, second, membership_id),
            },
        )
        # Then exactly one wins and the other gets a conflict, never a half-applied change
        won = [name for name, r in results.items() if not isinstance(r, Exception)]
        lost = [name for name, r in results.items() if isinstance(r, Exception)]
        assert len(won) == 1 and len(lost) == 1, results
        [winner], [loser] = won, lost
        assert isinstance(results[loser], Conflict), results[loser]
        assert results[winner].state == TARGET[winner]
        winners.append(winner)
        with directory.uow() as uow:
            row = uow.session.get(Membership, membership_id)
            assert row is not None
            assert (row.state, row.version) == (TARGET[winner], 3)
            # And the audit log shows one allowed transition, and the loser's denial
            entries = uow.session.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.membership_id == membership_id,
                    AuditEvent.action.in_((first, second)),
                )
                .order_by(AuditEvent.id)
            ).all()
            assert [
                (e.action, e.outcome, e.to_state) for e in entries if e.outcome == "allowed"
            ] == [(winner, "allowed", TARGET[winner])]
            assert [(e.action, e.reason) for e in entries if e.outcome == "denied"] == [
                (loser, "conflict")
            ]
        # And data removal is sent only when the purge side won
        expected = [("remove_data", membership_id)] if TARGET[winner] == "purge-pending" else []
        assert dispatcher.sent == expected
    assert len(winners) == ROUNDS

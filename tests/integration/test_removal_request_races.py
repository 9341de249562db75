"""Removal requests answered at the same moment as another decision, from two
connections at once (PostgreSQL): an approval against an admin's removal, and against a
decline. Exactly one wins, the other is refused (never a deadlock, never an error), and
the request says what really happened."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from memberships import admin, provisioning, removal_requests
from memberships.errors import Conflict, RemovalRequestClosed, TransitionNotAllowed
from memberships.principal import SYSTEM, Principal
from store.models import AuditEvent, Membership, RemovalRequest

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

ROUNDS = 6
REFUSALS = (Conflict, RemovalRequestClosed, TransitionNotAllowed)


def _asking_guest(world: Any, n: int) -> tuple[str, str]:
    """A new guest of closed.example (which does not let guests leave) with an open
    request; the membership's and the request's ids."""
    with world.uow() as uow:
        user = provisioning.create_user(
            uow, world.clock, SYSTEM, f"racer{n}@mail.example", f"Racer {n}"
        )
    with world.uow() as uow:
        membership = provisioning.add_guest(
            uow, world.clock, SYSTEM, world.orgs["closed"], user.id, "b2b-collaboration"
        )
    with world.uow() as uow:
        made = removal_requests.open_request(
            uow, world.clock, Principal.user(user.id), "closed.example"
        )
    return membership.id, made.id


def _race(*decisions: Callable[[], Any]) -> list[Any]:
    """Run the decisions at once; what each returned or raised."""
    barrier = threading.Barrier(len(decisions))
    outcomes: list[Any] = [None] * len(decisions)

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = decisions[i]()
        except Exception as error:  # the refusal is the outcome
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(decisions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def _read(world: Any, membership_id: str, request_id: str) -> tuple[str, str, str | None, int]:
    with world.uow() as uow:
        membership = uow.session.get(Membership, membership_id)
        request = uow.session.get(RemovalRequest, request_id)
        assert membership is not None and request is not None
        removes = uow.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.membership_id == membership_id,
                AuditEvent.action == "remove",
                AuditEvent.outcome == "allowed",
            )
        )
        return membership.state, request.status, request.closed_reason, int(removes or 0)


def test_an_approval_and_an_admin_removal_at_once_remove_once(world):
    boss = world.principal("cadmin")
    for n in range(ROUNDS):
        membership_id, request_id = _asking_guest(world, n)

        def approve(request_id: str = request_id) -> Any:
            with world.uow() as uow:
                return removal_requests.approve(
                    uow, world.clock, boss, "closed.example", request_id
                )

        def remove(membership_id: str = membership_id) -> Any:
            with world.uow() as uow:
                return admin.remove(uow, world.clock, boss, "closed.example", membership_id)

        outcomes = _race(approve, remove)
        failures = [o for o in outcomes if isinstance(o, Exception)]
        assert all(isinstance(f, REFUSALS) for f in failures), failures
        assert len(failures) <= 1, outcomes
        state, status, reason, removes = _read(world, membership_id, request_id)
        assert (state, removes) == ("soft-deleted", 1)
        approved = not isinstance(outcomes[0], Exception)
        assert (status, reason) == (
            ("approved", None) if approved else ("closed", "removed-by-organization")
        )


def test_an_approval_and_a_decline_at_once_answer_once(world):
    boss = world.principal("cadmin")
    for n in range(ROUNDS):
        membership_id, request_id = _asking_guest(world, 100 + n)

        def approve(request_id: str = request_id) -> Any:
            with world.uow() as uow:
                return removal_requests.approve(
                    uow, world.clock, boss, "closed.example", request_id
                )

        def decline(request_id: str = request_id) -> Any:
            with world.uow() as uow:
                return removal_requests.decline(
                    uow, world.clock, boss, "closed.example", request_id, "Not now."
                )

        outcomes = _race(approve, decline)
        failures = [o for o in outcomes if isinstance(o, Exception)]
        assert len(failures) == 1 and isinstance(failures[0], RemovalRequestClosed), outcomes
        state, status, _, removes = _read(world, membership_id, request_id)
        if isinstance(outcomes[1], Exception):  # the approval won
            assert (state, status, removes) == ("soft-deleted", "approved", 1)
        else:
            assert (state, status, removes) == ("active", "declined", 0)


def test_a_request_made_while_the_admin_removes_never_stays_open(world):
    boss = world.principal("cadmin")
    for n in range(ROUNDS):
        with world.uow() as uow:
            user = provisioning.create_user(
                uow, world.clock, SYSTEM, f"late{n}@mail.example", f"Late {n}"
            )
        with world.uow() as uow:
            membership = provisioning.add_guest(
                uow, world.clock, SYSTEM, world.orgs["closed"], user.id, "b2b-collaboration"
            )

        def ask(user_id: str = user.id) -> Any:
            with world.uow() as uow:
                return removal_requests.open_request(
                    uow, world.clock, Principal.user(user_id), "closed.example"
                )

        def remove(membership_id: str = membership.id) -> Any:
            with world.uow() as uow:
                return admin.remove(uow, world.clock, boss, "closed.example", membership_id)

        outcomes = _race(ask, remove)
        assert not isinstance(outcomes[1], Exception), outcomes
        # Either the request came first and the removal closed it, or it came too late
        # and was refused: it is never left open on a removed membership
        with world.uow() as uow:
            statuses = list(
                uow.session.scalars(
                    select(RemovalRequest.status).where(
                        RemovalRequest.membership_id == membership.id
                    )
                )
            )
        if isinstance(outcomes[0], Exception):
            assert isinstance(outcomes[0], TransitionNotAllowed) and statuses == []
        else:
            assert statuses == ["closed"]

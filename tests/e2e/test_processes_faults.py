"""Faults with the real processes: a worker killed with SIGKILL in the middle of a data
removal, Redis flushed with leaves and removals in flight, two schedulers sweeping the
same PostgreSQL database. Nothing is lost, nothing happens twice.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select
from test_processes_harness import (
    TEST_DATABASE_URL,
    Directory,
    Stack,
    private_database,
    redis_server,
    wait_for,
)

from memberships import self_service
from memberships.clock import utc_now
from memberships.principal import Principal
from store.models import AuditEvent, MemberData, Membership, Organization, User

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DIRECT, COLLABORATION = "b2b-direct-connect", "b2b-collaboration"


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL"),
        ),
    ],
)
def backend(request, tmp_path_factory):
    """A private Redis and database for the module: (database URL, Redis URL, directory)."""
    directory = tmp_path_factory.mktemp(f"faults-{request.param}")
    with (
        redis_server(directory) as redis_url,
        private_database(request.param, directory) as database_url,
    ):
        yield request.param, database_url, redis_url, directory


@pytest.fixture
def stack(backend, tmp_path):
    """Processes of this test only: each fault test starts and kills its own."""
    _, database_url, redis_url, _ = backend
    running = Stack(
        database_url,
        redis_url,
        tmp_path,
        {"REMOVAL_BATCH_SIZE": "10", "REDRIVE_AFTER": "2s"},
    )
    running.redis.flushall()
    yield running
    running.close()


def _leave(stack, org, user_id):
    with stack.uow() as uow:
        self_service.request_leave(uow, utc_now, Principal.user(user_id), org.org_id)


def _removed_rows(stack, membership_id):
    with stack.session_factory() as session:
        return session.get(Membership, membership_id).removed_rows


def _data_left(stack, membership_id):
    with stack.session_factory() as session:
        return session.scalar(
            select(func.count())
            .select_from(MemberData)
            .where(MemberData.membership_id == membership_id)
        )


def test_a_worker_killed_mid_removal_is_replaced_and_the_removal_finishes_audited_once(
    stack,
):
    # Given a direct-connect guest with 6000 data rows, removed 10 per batch
    org = Directory(stack)
    user, membership = org.guest(DIRECT, data_rows=6000)
    worker = stack.start_worker()
    stack.start_scheduler()
    # When they leave and the removal is under way
    _leave(stack, org, user)
    wait_for(
        lambda: _removed_rows(stack, membership) >= 200,
        30,
        "the removal to be under way",
        stack.logs,
    )
    # And the worker dies at once, parent and children (like its machine)
    worker.kill_9()
    stopped_at = _removed_rows(stack, membership)
    assert stack.state(membership) == "purge-pending"
    assert stopped_at < 6000, "the removal finished before the kill: make it larger"
    time.sleep(1)
    assert _removed_rows(stack, membership) == stopped_at, "nobody should be removing now"
    # When a new worker starts (the scheduler re-drives the stalled removal to it)
    stack.start_worker()
    # Then the removal resumes where it stopped and ends purged
    stack.wait_for_state(membership, "purged", timeout=90)
    assert _removed_rows(stack, membership) == 6000
    assert _data_left(stack, membership) == 0
    # And every transition is audited exactly once, with no lost race
    assert stack.transitions(membership) == [
        "add_guest",
        "request_leave",
        "complete_leave",
        "finish_removal",
    ]
    assert stack.denied(membership) == []


def test_flushing_redis_with_leaves_and_removals_in_flight_loses_nothing(stack):
    # Given collaboration and direct-connect guests, the direct ones with data to remove
    org = Directory(stack)
    direct = [org.guest(DIRECT, data_rows=1500) for _ in range(3)]
    collaboration = [org.guest(COLLABORATION, grants=1, data_rows=20) for _ in range(3)]
    late = [org.guest(DIRECT, data_rows=50), org.guest(COLLABORATION, data_rows=20)]
    stack.start_worker()
    stack.start_scheduler()
    # When they all leave, and Redis is flushed while removals are under way
    for user, _ in direct + collaboration:
        _leave(stack, org, user)
    wait_for(
        lambda: any(_removed_rows(stack, m) > 0 for _, m in direct),
        30,
        "a removal under way",
        stack.logs,
    )
    stack.redis.flushall()
    # And two more leave, their messages flushed before any worker can see them
    for user, _ in late:
        _leave(stack, org, user)
    stack.redis.flushall()
    # Then every membership still ends purged (the sweep re-drives what was lost)
    everyone = direct + collaboration + late
    for _, membership in everyone:
        stack.wait_for_state(membership, "purged", timeout=90)
    # And each one's transitions happened once, its rows removed once each
    for _, membership in direct + [late[0]]:
        assert stack.transitions(membership) == [
            "add_guest",
            "request_leave",
            "complete_leave",
            "finish_removal",
        ]
    for _, membership in collaboration + [late[1]]:
        assert stack.transitions(membership) == [
            "add_guest",
            "request_leave",
            "complete_leave",
            "expire_retention",
            "finish_removal",
        ]
    assert [_removed_rows(stack, m) for _, m in direct] == [1500, 1500, 1500]
    assert all(stack.denied(m) == [] for _, m in everyone)
    # And it was the scheduler's re-drive that sent the lost work again
    assert _redriven(stack) > 0


def _redriven(stack):
    """Messages the schedulers' sweeps say they re-sent (from their JSON log lines)."""
    total = 0
    for process in stack.processes:
        if process.name != "scheduler":
            continue
        for line in process.log.read_text().splitlines():
            if line.startswith("{") and '"redriven"' in line:
                total += sum(json.loads(line)["redriven"].values())
    return total


def _insert_due_memberships(stack, count, due_at, spread=timedelta(0)):
    """``count`` soft-deleted memberships, the first due at ``due_at`` and the others one
    after another over ``spread``."""
    now = utc_now()
    org_id = str(uuid.uuid4())
    users = [
        {
            "id": str(uuid.uuid4()),
            "email": f"{uuid.uuid4()}@x.example",
            "display_name": "U",
            "created_at": now,
        }
        for _ in range(count)
    ]
    memberships = [
        {
            "id": str(uuid.uuid4()),
            "user_id": u["id"],
            "organization_id": org_id,
            "kind": COLLABORATION,
            "state": "soft-deleted",
            "created_at": now,
            "soft_deleted_at": now,
            "purge_due_at": due_at + spread * i / count,
        }
        for i, u in enumerate(users)
    ]
    with stack.session_factory() as session, session.begin():
        session.execute(
            insert(Organization),
            [{"id": org_id, "domain": f"{org_id}.example", "display_name": "O", "created_at": now}],
        )
        session.execute(insert(User), users)
        session.execute(insert(Membership), memberships)
    return [m["id"] for m in memberships]


def test_two_scheduler_processes_on_postgresql_move_each_due_membership_exactly_once(
    backend, stack
):
    # Given two schedulers on one PostgreSQL database, sweeping in batches of 25
    if backend[0] != "postgresql":
        pytest.skip("concurrent sweepers need PostgreSQL (SKIP LOCKED)")
    first = stack.start_scheduler(SWEEP_BATCH_SIZE="25")
    second = stack.start_scheduler(SWEEP_BATCH_SIZE="25")
    for scheduler in (first, second):
        wait_for(lambda s=scheduler: "scheduler started" in s.log.read_text(), 20, "start")
    # When 800 memberships become due one after another over four seconds (four ticks of
    # each scheduler, whatever their phases: each tick finds some due)
    ids = _insert_due_memberships(
        stack, 800, utc_now() + timedelta(seconds=2), spread=timedelta(seconds=4)
    )
    # Then each is moved to purge-pending once, by one scheduler or the other
    with stack.session_factory() as session:

        def none_left():
            return not session.scalar(
                select(func.count())
                .select_from(Membership)
                .where(Membership.id.in_(ids), Membership.state == "soft-deleted")
            )

        wait_for(none_left, 60, "every due membership swept", stack.logs)
        rows = session.execute(
            select(AuditEvent.membership_id, func.count())
            .where(AuditEvent.action == "expire_retention", AuditEvent.membership_id.in_(ids))
            .group_by(AuditEvent.membership_id)
        ).all()
    assert len(rows) == 800 and {count for _, count in rows} == {1}
    # And both schedulers did part of the work: what each one's sweeps say they moved
    # (their JSON log lines, written once a tick ends) adds up to the 800, neither says zero
    wait_for(
        lambda: _expired(first) + _expired(second) >= 800, 20, "the ticks logged", stack.logs
    )
    expired = [_expired(first), _expired(second)]
    assert sum(expired) == 800 and min(expired) > 0, expired


def _expired(process):
    """Memberships one scheduler's sweeps say they moved on (from its JSON log lines)."""
    return sum(
        json.loads(line)["expired"]
        for line in process.log.read_text().splitlines()
        if line.startswith("{") and '"expired"' in line
    )

"""Faults with the real processes: a worker killed with SIGKILL in the middle of a data
removal, the broker losing its messages with leaves and removals in flight, a dead letter
retried by an operator, two schedulers sweeping the same PostgreSQL database. Nothing is
lost, nothing happens twice. On Redis, and on RabbitMQ when ``TEST_AMQP_URL`` is set.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pika
import pytest
from dramatiq import Message
from sqlalchemy import func, insert, select
from test_processes_harness import (
    STACKS,
    Directory,
    Stack,
    broker_url_for,
    private_database,
    redis_server,
    wait_for,
)

from memberships import self_service
from memberships.clock import utc_now
from memberships.principal import Principal
from store.models import AuditEvent, MemberData, Membership, Organization, User
from store.unit_of_work import RecordingDispatcher, UnitOfWork
from workers.runtime import policy_from

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DIRECT, COLLABORATION = "b2b-direct-connect", "b2b-collaboration"


@pytest.fixture(scope="module", params=STACKS)
def backend(request, tmp_path_factory):
    """A private Redis, database and broker for the module: (database, database URL, Redis
    URL, broker URL or None for Redis)."""
    database, broker = request.param
    directory = tmp_path_factory.mktemp(f"faults-{database}-{broker}")
    with (
        redis_server(directory) as redis_url,
        private_database(database, directory) as database_url,
    ):
        yield database, database_url, redis_url, broker_url_for(request, broker)


def _stack(backend, directory, **env):
    _, database_url, redis_url, broker_url = backend
    running = Stack(
        database_url,
        redis_url,
        directory,
        {"REMOVAL_BATCH_SIZE": "10", "REDRIVE_AFTER": "2s", **env},
        broker_url=broker_url,
    )
    running.redis.flushall()
    running.lose_messages()
    return running


@pytest.fixture
def stack(backend, tmp_path):
    """Processes of this test only: each fault test starts and kills its own."""
    running = _stack(backend, tmp_path)
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


def test_the_broker_losing_leaves_and_removals_in_flight_loses_nothing(stack):
    # Given collaboration and direct-connect guests, the direct ones with data to remove
    org = Directory(stack)
    direct = [org.guest(DIRECT, data_rows=1500) for _ in range(3)]
    collaboration = [org.guest(COLLABORATION, grants=1, data_rows=20) for _ in range(3)]
    late = [org.guest(DIRECT, data_rows=50), org.guest(COLLABORATION, data_rows=20)]
    stack.start_worker()
    stack.start_scheduler()
    # When they all leave, and the broker loses its messages while removals are under way
    for user, _ in direct + collaboration:
        _leave(stack, org, user)
    wait_for(
        lambda: any(_removed_rows(stack, m) > 0 for _, m in direct),
        30,
        "a removal under way",
        stack.logs,
    )
    stack.lose_messages()
    # And two more leave, their messages lost before any worker can see them
    for user, _ in late:
        _leave(stack, org, user)
    stack.lose_messages()
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


def _dead_letter(stack, queue, actor_name, membership_id, request_id):
    """Make a real dead letter the way the broker does when a worker gives up: the message
    is sent, taken from its queue and rejected (no worker may run yet)."""
    message = Message(
        queue_name=queue,
        actor_name=actor_name,
        args=(membership_id,),
        kwargs={"request_id": request_id},
        options={"retries": 20, "traceback": "Traceback\nOperationalError: database down"},
    )
    stack.broker.enqueue(message)
    if stack.broker_url is None:
        [raw] = stack.broker.do_fetch(queue, 1)
        stack.broker.do_nack(queue, Message.decode(raw).options["redis_message_id"])
        return
    connection = pika.BlockingConnection(pika.URLParameters(stack.broker_url))
    try:
        channel = connection.channel()
        method, _, _ = channel.basic_get(queue, auto_ack=False)
        assert method is not None, f"the message did not reach the {queue} queue"
        channel.basic_nack(method.delivery_tag, requeue=False)  # RabbitMQ moves it to .XQ
    finally:
        connection.close()


def test_an_operator_retries_a_dead_letter_and_the_worker_carries_it_out(backend, tmp_path):
    # Given no re-drive for an hour (so only the retried message can finish the leave)
    stack = _stack(backend, tmp_path, REDRIVE_AFTER="1h")
    try:
        org = Directory(stack)
        user, membership = org.guest(DIRECT, data_rows=40)
        # And a leave committed whose message died (a dead letter on the leaves queue)
        with UnitOfWork(
            stack.session_factory, RecordingDispatcher(), policy_from(stack.settings)
        ) as uow:
            self_service.request_leave(uow, utc_now, Principal.user(user), org.org_id)
        _dead_letter(stack, "leaves", "complete_leave", membership, "dead-letter-retried")
        # And a dead removal of a membership that is long gone
        _dead_letter(stack, "removals", "remove_data", str(uuid.uuid4()), "gone")
        # When the operator lists the dead letters of the leaves queue, Then it is there
        [listed] = json.loads(stack.lifecycle("dead-letters", "--queue", "leaves", "--json"))
        assert (listed["queue"], listed["actorName"], listed["args"]) == (
            "leaves",
            "complete_leave",
            [membership],
        )
        assert listed["error"] == "OperationalError: database down"
        # And with a worker running, nothing happens to the leave by itself
        worker = stack.start_worker()
        wait_for(lambda: "ready for action" in worker.log.read_text(), 60, "the worker")
        assert stack.state(membership) == "leave-pending"
        # When the operator retries it
        assert "1 dead letters retried" in stack.lifecycle(
            "dead-letters", "--retry", "--queue", "leaves"
        )
        # Then the worker carries it out to the end, the retried message's request id on
        # its audit row, and no dead letter is left
        stack.wait_for_state(membership, "purged", timeout=60)
        with stack.session_factory() as session:
            carried_by = session.scalar(
                select(AuditEvent.request_id).where(
                    AuditEvent.membership_id == membership,
                    AuditEvent.action == "complete_leave",
                    AuditEvent.outcome == "allowed",
                )
            )
        assert carried_by == "dead-letter-retried"
        assert json.loads(stack.lifecycle("dead-letters", "--queue", "leaves", "--json")) == []
        queues = json.loads(stack.lifecycle("queues", "--json"))
        assert queues["broker"] == stack.broker_kind
        dead = {q["name"]: q["deadLetters"] for q in queues["queues"]}
        assert dead == {
            "leaves": 0,
            "removals": 1,
            "timers": 0,
            "mail": 0,
            "webhooks": 0,
        }
        # And a purge drops the other dead letter
        assert json.loads(stack.lifecycle("dead-letters", "--purge", "--json")) == {"purged": 1}
        assert json.loads(stack.lifecycle("dead-letters", "--json")) == []
    finally:
        stack.close()


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
    wait_for(lambda: _expired(first) + _expired(second) >= 800, 20, "the ticks logged", stack.logs)
    expired = [_expired(first), _expired(second)]
    assert sum(expired) == 800 and min(expired) > 0, expired


def _expired(process):
    """Memberships one scheduler's sweeps say they moved on (from its JSON log lines)."""
    return sum(
        json.loads(line)["expired"]
        for line in process.log.read_text().splitlines()
        if line.startswith("{") and '"expired"' in line
    )

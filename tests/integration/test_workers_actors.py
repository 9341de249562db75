"""The actors on a StubBroker and a real database: each message runs its use case,
duplicates change nothing, failures are recorded on the membership and retried, and the
request id travels from the use case that sent the message into the worker's logs."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from dramatiq import Worker
from sqlalchemy import func, select

from memberships import self_service
from memberships.removal import BUILT_IN_REMOVERS
from settings import Settings
from store.models import AuditEvent, Grant, MemberData, Membership
from workers.broker import build_stub_broker
from workers.dispatch import BrokerDispatcher
from workers.messages import QUEUES
from workers.runtime import Runtime
from workers.tasks import MAX_RETRIES, declare_actors, should_retry


class Stack:
    """A stub broker with the actors declared on it, and a worker to run them."""

    def __init__(self, session_factory, clock, settings, removers=BUILT_IN_REMOVERS):
        self.broker = build_stub_broker()
        self.dispatcher = BrokerDispatcher(self.broker)
        self.runtime = Runtime(
            settings,
            self.dispatcher,
            clock=clock,
            removers=removers,
            session_factory_override=session_factory,
        )
        self.actors = declare_actors(self.broker, self.runtime)

    def uow(self, request_id=None):
        return self.runtime.uow(request_id)

    def run_until_idle(self, timeout_ms=20_000):
        worker = Worker(self.broker, worker_timeout=50, worker_threads=2)
        worker.start()
        try:
            # A message may send another (remove_data), so drain until every queue is still.
            for _ in range(1000):
                for queue in QUEUES:
                    self.broker.join(queue, timeout=timeout_ms, fail_fast=False)
                worker.join()
                if all(self.broker.queues[q].qsize() == 0 for q in self.broker.queues):
                    break
        finally:
            worker.stop()


@pytest.fixture
def stack(session_factory, clock):
    broker_stack = Stack(session_factory, clock, Settings(removal_batch_size=25))
    yield broker_stack
    broker_stack.broker.close()


def _leave(stack, world, user, org, request_id=None):
    with stack.uow(request_id) as uow:
        self_service.request_leave(uow, world.clock, world.principal(user), org + ".example")
    return world.membership(org, user)


def _transitions(session_factory, membership_id):
    with session_factory() as session:
        return [
            (e.action, e.to_state)
            for e in session.scalars(
                select(AuditEvent)
                .where(AuditEvent.membership_id == membership_id, AuditEvent.outcome == "allowed")
                .order_by(AuditEvent.id)
            )
            if e.to_state is not None
        ]


def test_complete_leave_soft_deletes_a_collaboration_guest(world, stack, session_factory):
    # Given ann asked to leave open (a leave-pending membership and a message)
    membership_id = _leave(stack, world, "ann", "open")
    # When the worker runs
    stack.run_until_idle()
    # Then she is soft-deleted with the purge due after the retention period
    with session_factory() as session:
        m = session.get(Membership, membership_id)
        assert m.state == "soft-deleted"
        assert m.purge_due_at == world.clock() + timedelta(days=30)
        assert session.scalar(select(func.count()).select_from(Grant)) == 2  # kept for restore


def test_a_direct_connect_leave_is_carried_out_and_its_data_removed_batch_by_batch(
    world, stack, session_factory
):
    # Given pat (direct connect, 30 data rows) leaves open, batches of 25
    membership_id = _leave(stack, world, "pat", "open")
    # When the worker runs until idle
    stack.run_until_idle()
    # Then the leave went straight to data removal, which took two batches, then purged
    with session_factory() as session:
        m = session.get(Membership, membership_id)
        assert m.state == "purged" and m.removed_rows == 30
        assert (m.email, m.display_name) == (None, None)
        left = session.scalar(
            select(func.count()).select_from(MemberData).where(MemberData.membership_id == m.id)
        )
        assert left == 0
    assert _transitions(session_factory, membership_id) == [
        ("add_guest", "active"),
        ("request_leave", "leave-pending"),
        ("complete_leave", "purge-pending"),
        ("finish_removal", "purged"),
    ]


def test_the_same_messages_delivered_several_times_have_no_double_effect(
    world, stack, session_factory
):
    # Given ann (collaboration) and pat (direct connect) left, and every message is
    # delivered three times more
    ann = _leave(stack, world, "ann", "open")
    pat = _leave(stack, world, "pat", "open")
    for _ in range(3):
        stack.actors.complete_leave.send(ann)
        stack.actors.complete_leave.send(pat)
        stack.actors.remove_data.send(pat)
    # When the worker (two threads) runs them all
    stack.run_until_idle()
    # Then each transition happened once, and the removal counted each row once
    assert [a for a, _ in _transitions(session_factory, ann)].count("complete_leave") == 1
    assert [a for a, _ in _transitions(session_factory, pat)] == [
        "add_guest",
        "request_leave",
        "complete_leave",
        "finish_removal",
    ]
    with session_factory() as session:
        assert session.get(Membership, pat).removed_rows == 30
        denied = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "denied")
        )
    assert denied == 0


class FlakyRemover:
    """A deployment's data store that is down for its first ``failures`` calls."""

    name = "flaky-store"

    def __init__(self, failures: int) -> None:
        self.failures = failures

    def remove_batch(self, session, membership_id, limit):
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("flaky-store is unreachable")
        return 0

    def remaining(self, session, membership_id):
        return 0


def test_a_failure_is_recorded_on_the_membership_and_the_message_retried(
    world, session_factory, clock
):
    # Given a deployment's store that fails once, and pat's leave carried out
    stack = Stack(
        session_factory,
        clock,
        Settings(removal_batch_size=100),
        removers=(*BUILT_IN_REMOVERS, FlakyRemover(failures=1)),
    )
    membership_id = _leave(stack, world, "pat", "open")
    with stack.uow() as uow:
        uow.session.get(Membership, membership_id)  # the leave is committed
    stack.actors.complete_leave.fn(membership_id)  # run inline: purge-pending now
    with session_factory() as session:
        assert session.get(Membership, membership_id).state == "purge-pending"
    # When remove_data fails once (backoff shortened for the test)
    stack.broker.flush_all()
    stack.actors.remove_data.send_with_options(args=(membership_id,), min_backoff=10)
    stack.run_until_idle()
    # Then the failure was recorded, the retry finished the removal, and the tombstone
    # keeps the attempt count but not the error text
    with session_factory() as session:
        m = session.get(Membership, membership_id)
        assert m.state == "purged"
        assert m.attempts == 1 and m.last_error is None
    stack.broker.close()


def test_a_failure_leaves_the_error_text_while_the_work_is_unfinished(
    world, session_factory, clock
):
    # Given a store that is always down
    stack = Stack(
        session_factory, clock, Settings(), removers=(*BUILT_IN_REMOVERS, FlakyRemover(10**6))
    )
    membership_id = _leave(stack, world, "pat", "open")
    stack.actors.complete_leave.fn(membership_id)
    # When remove_data runs (inline, as a worker thread would)
    with pytest.raises(ConnectionError):
        stack.actors.remove_data.fn(membership_id)
    # Then attempts and last_error say what happened, for operators
    with session_factory() as session:
        m = session.get(Membership, membership_id)
        assert m.state == "purge-pending" and m.attempts == 1
        assert m.last_error == "ConnectionError: flaky-store is unreachable"
    stack.broker.close()


def test_retry_policy_gives_up_on_a_wrong_message_and_after_max_retries():
    from memberships.errors import Conflict, NotFound

    # Given the retry rule, Then transient failures are retried up to MAX_RETRIES ...
    assert should_retry(0, Conflict("lost the race"))
    assert should_retry(MAX_RETRIES - 1, ConnectionError())
    assert not should_retry(MAX_RETRIES, ConnectionError())
    # ... and a message about nothing is given up at once
    assert not should_retry(0, NotFound("no such membership"))


def _run_logging_context(stack, caplog):
    """Run the queued messages, capturing ``workers.tasks`` records with their context."""
    from workers.logs import ContextFilter

    with caplog.at_level(logging.INFO, logger="workers.tasks"):
        context = ContextFilter()
        caplog.handler.addFilter(context)
        try:
            stack.run_until_idle()
        finally:
            caplog.handler.removeFilter(context)


def test_the_request_id_travels_into_the_worker_logs_and_audit(
    world, stack, session_factory, caplog
):
    # Given ann leaves during HTTP request "req-42"
    membership_id = _leave(stack, world, "ann", "open", request_id="req-42")
    # When the worker carries the leave out
    _run_logging_context(stack, caplog)
    # Then its log lines carry the membership and request ids
    done = [r for r in caplog.records if r.getMessage() == "leave carried out"]
    assert done and done[0].membership_id == membership_id and done[0].request_id == "req-42"
    # And the worker's audit row names the same request
    with session_factory() as session:
        event = session.scalar(
            select(AuditEvent).where(
                AuditEvent.membership_id == membership_id, AuditEvent.action == "complete_leave"
            )
        )
    assert event.request_id == "req-42"


def test_the_sweep_actor_runs_one_sweep_on_a_worker(world, stack, session_factory):
    # Given ann soft-deleted and her retention period over
    membership_id = _leave(stack, world, "ann", "open")
    stack.run_until_idle()
    world.clock.advance(timedelta(days=30, seconds=1))
    # When a sweep message is sent (lifecycle sweep --enqueue) and the worker runs
    stack.dispatcher.send_sweep(request_id="ops-1")
    stack.run_until_idle()
    # Then the sweep expired her retention and the follow-up removal purged her
    with session_factory() as session:
        assert session.get(Membership, membership_id).state == "purged"
    assert ("expire_retention", "purge-pending") in _transitions(session_factory, membership_id)


def _purge_pending_pair(world, stack):
    """ann (open: 2 grants, 120 data rows) and pat (30 data rows), both purge-pending, with
    their remove_data messages dropped so a test sends its own."""
    from memberships import admin
    from memberships.principal import SYSTEM

    ann, pat = world.membership("open", "ann"), world.membership("open", "pat")
    with stack.uow() as uow:
        admin.remove(uow, world.clock, SYSTEM, world.orgs["open"], ann)
    with stack.uow() as uow:
        admin.purge(uow, world.clock, SYSTEM, "open.example", ann)
    with stack.uow() as uow:
        admin.remove(uow, world.clock, SYSTEM, world.orgs["open"], pat)
    stack.broker.flush_all()
    return ann, pat


def test_many_removals_sent_at_once_travel_as_chunks_and_purge_each_membership_once(
    world, session_factory, clock
):
    # Given ann and pat purge-pending, an active membership, and chunks of 2 ids
    stack = Stack(session_factory, clock, Settings(removal_batch_size=40))
    stack.dispatcher.removal_chunk_size = 2
    ann, pat = _purge_pending_pair(world, stack)
    active = world.membership("bare", "ann")
    # When removal is sent for all three (as a sweep batch is), and delivered twice more
    for _ in range(3):
        stack.dispatcher.send_many("remove_data", [ann, pat, active], request_id="sweep-1")
    queued = list(stack.broker.queues["removals"].queue)
    assert len(queued) == 6  # 2 chunk messages per send
    stack.run_until_idle()
    # Then both are purged with their rows counted once and one finish each, the active
    # membership untouched, and no race lost
    with session_factory() as session:
        assert [session.get(Membership, m).removed_rows for m in (ann, pat)] == [122, 30]
        assert session.get(Membership, active).state == "active"
        denied = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "denied")
        )
        finishes = session.execute(
            select(AuditEvent.membership_id, AuditEvent.request_id).where(
                AuditEvent.action == "finish_removal"
            )
        ).all()
    assert denied == 0
    assert sorted(finishes) == sorted([(ann, "sweep-1"), (pat, "sweep-1")])
    for membership_id in (ann, pat):
        assert _transitions(session_factory, membership_id)[-1] == ("finish_removal", "purged")


def test_a_chunks_log_lines_name_its_memberships_and_the_request(
    world, session_factory, clock, caplog
):
    # Given ann and pat purge-pending, their removal sent as one chunk by sweep "sweep-7"
    stack = Stack(session_factory, clock, Settings(removal_batch_size=40))
    ann, pat = _purge_pending_pair(world, stack)
    stack.dispatcher.send_many("remove_data", [ann, pat], request_id="sweep-7")
    # When the worker carries the chunk out
    _run_logging_context(stack, caplog)
    # Then its log line names both memberships and the sweep's request id
    [done] = [r for r in caplog.records if r.getMessage() == "data removal done"]
    assert sorted(done.membership_ids) == sorted([ann, pat])
    assert (done.request_id, done.actor, done.purged) == ("sweep-7", "remove_data_many", 2)


def test_a_chunk_that_runs_out_of_time_sends_the_rest_on(world, session_factory, clock):
    # Given a chunk message with no time to spare (the budget is spent after one batch)
    from workers import tasks

    stack = Stack(session_factory, clock, Settings(removal_batch_size=40))
    ann, pat = _purge_pending_pair(world, stack)
    budget, tasks.CHUNK_WORK_SECONDS = tasks.CHUNK_WORK_SECONDS, -1.0
    try:
        stack.actors.remove_data_many.fn([ann, pat])
    finally:
        tasks.CHUNK_WORK_SECONDS = budget
    # Then one batch is committed and the rest of the chunk is sent on as a new message
    [message] = list(stack.broker.queues["removals"].queue)
    from dramatiq import Message

    sent = Message.decode(message)
    assert sent.actor_name == "remove_data_many"
    assert sorted(sent.args[0]) == sorted([ann, pat])
    with session_factory() as session:
        assert sum(session.get(Membership, m).removed_rows for m in (ann, pat)) == 40
    # And a worker finishes it from there
    stack.run_until_idle()
    with session_factory() as session:
        assert [session.get(Membership, m).state for m in (ann, pat)] == ["purged", "purged"]
    stack.broker.close()


def test_a_chunk_failure_is_recorded_on_its_purge_pending_memberships_and_retried(
    world, session_factory, clock
):
    # Given a store that fails once, and a chunk of ann, pat and an active membership
    stack = Stack(
        session_factory,
        clock,
        Settings(removal_batch_size=200),
        removers=(*BUILT_IN_REMOVERS, FlakyRemover(failures=1)),
    )
    ann, pat = _purge_pending_pair(world, stack)
    active = world.membership("bare", "ann")
    # When the chunk fails inline, Then the attempt and error are on the two purge-pending
    # memberships, not on the active one
    with pytest.raises(ConnectionError):
        stack.actors.remove_data_many.fn([ann, pat, active])
    with session_factory() as session:
        rows = [session.get(Membership, m) for m in (ann, pat, active)]
        assert [(r.attempts, r.last_error) for r in rows] == [
            (1, "ConnectionError: flaky-store is unreachable"),
            (1, "ConnectionError: flaky-store is unreachable"),
            (0, None),
        ]
    # When Dramatiq retries the message, Then the chunk is purged
    stack.actors.remove_data_many.send_with_options(args=([ann, pat, active],), min_backoff=10)
    stack.run_until_idle()
    with session_factory() as session:
        assert [session.get(Membership, m).state for m in (ann, pat)] == ["purged", "purged"]
        assert session.get(Membership, ann).attempts == 1
    stack.broker.close()


class StuckRemover:
    """Reports data for one membership that it never deletes."""

    name = "stuck-store"

    def __init__(self, membership_id):
        self.membership_id = membership_id

    def remove_batch(self, session, membership_id, limit):
        return 0

    def remaining(self, session, membership_id):
        return int(membership_id == self.membership_id)


def test_a_chunk_records_a_blocked_finish_only_on_the_memberships_it_blocks(
    world, session_factory, clock
):
    # Given a store that never lets go of pat's data
    stack = Stack(session_factory, clock, Settings(removal_batch_size=500))
    ann, pat = _purge_pending_pair(world, stack)
    stack.runtime.removers = (*BUILT_IN_REMOVERS, StuckRemover(pat))
    # When the chunk runs inline
    from memberships.errors import TransitionNotAllowed

    with pytest.raises(TransitionNotAllowed):
        stack.actors.remove_data_many.fn([ann, pat])
    # Then ann is purged, and the failure is on pat alone
    with session_factory() as session:
        assert session.get(Membership, ann).state == "purged"
        assert session.get(Membership, ann).attempts == 0
        blocked = session.get(Membership, pat)
        assert (blocked.state, blocked.attempts) == ("purge-pending", 1)
        assert "stuck-store" in blocked.last_error
    stack.broker.close()


def test_a_chunk_retries_what_another_transaction_held_instead_of_dropping_it(
    world, session_factory, clock, database_url
):
    # Given ann and pat purge-pending, and pat's row held by another transaction (a sweep's
    # claim passing over it, or a duplicate message) while the chunk takes its locks
    import dramatiq
    from sqlalchemy import select as sql_select

    if not database_url.startswith("postgresql"):
        pytest.skip("row locks that a chunk skips exist on PostgreSQL only")
    stack = Stack(session_factory, clock, Settings(removal_batch_size=1000))
    ann, pat = _purge_pending_pair(world, stack)
    holder = session_factory()
    holder.execute(sql_select(Membership.id).where(Membership.id == pat).with_for_update())
    try:
        # When the chunk's message runs, Then it finishes ann and asks to be retried
        with pytest.raises(dramatiq.Retry):
            stack.actors.remove_data_many.fn([ann, pat])
        with session_factory() as session:
            assert session.get(Membership, ann).state == "purged"
            assert session.get(Membership, pat).state == "purge-pending"
            assert session.get(Membership, pat).attempts == 0  # not a failure
    finally:
        holder.rollback()
        holder.close()
    # And the retry, once the row is free, finishes pat and leaves ann alone
    stack.actors.remove_data_many.fn([ann, pat])
    with session_factory() as session:
        assert [session.get(Membership, m).state for m in (ann, pat)] == ["purged", "purged"]
    assert _transitions(session_factory, ann).count(("finish_removal", "purged")) == 1
    stack.broker.close()


def test_webhook_work_runs_on_its_own_queue_after_the_change_commits(world, session_factory, clock):
    from memberships.webhook_delivery import DELIVER_ACTOR
    from store.models import Event, WebhookDelivery
    from tests.integration.test_webhook_delivery import add_endpoint
    from tests.support.receiver import running
    from workers.webhooks import delivery_config

    # Given a worker on a stub broker whose deliveries may reach this machine
    stack = Stack(session_factory, clock, Settings(webhook_allow_private_networks=True))
    try:
        # Then the fan-out and the delivery are actors of the `webhooks` queue, each sent
        # with the 10 s timeout and never retried by the broker (the database retries)
        for actor in (stack.actors.fan_out_events, stack.actors.deliver_webhook):
            assert actor.queue_name == "webhooks"
            assert actor.options["retry_when"](0, RuntimeError("x")) is False
        assert stack.actors.deliver_webhook.actor_name == DELIVER_ACTOR
        assert delivery_config(stack.runtime).timeout == 10.0
        with running() as receiver:
            # Given an endpoint of open
            add_endpoint(world, receiver.url())
            # When ann leaves: her leave's commit asks for the fan-out on `webhooks`
            _leave(stack, world, "ann", "open")
            assert stack.broker.queues["webhooks"].qsize() == 1
            # And the worker runs until idle
            stack.run_until_idle()
            received = [r.headers["webhook-id"] for r in receiver.received]
        # Then both events of her leave were delivered, once each, under their own ids
        with session_factory() as session:
            events = dict(session.execute(select(Event.event_id, Event.type)).all())
            states = session.scalars(select(WebhookDelivery.state)).all()
        assert sorted(events.values()) == ["membership.leave_pending", "membership.soft_deleted"]
        assert sorted(received) == sorted(events) and states == ["delivered", "delivered"]
    finally:
        stack.broker.close()

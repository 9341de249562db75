"""The lifecycle end to end with the real processes: the ``dramatiq`` worker and the
``lifecycle scheduler``, a private Redis (or RabbitMQ as the broker), RETENTION_PERIOD=2s
and SWEEP_INTERVAL=1s, on SQLite (and on PostgreSQL when TEST_DATABASE_URL is set).

The test process acts as the web edge would: it calls the use cases with a unit of work
whose messages go to the same Redis after the commit.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from test_processes_harness import (
    STACKS,
    Directory,
    Stack,
    broker_url_for,
    private_database,
    redis_server,
    wait_for,
)

from memberships import admin, self_service
from memberships.clock import utc_now
from memberships.errors import RestoreWindowClosed
from memberships.principal import Principal
from store.models import Grant, MemberData, Membership

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

COLLABORATION, DIRECT = "b2b-collaboration", "b2b-direct-connect"


@pytest.fixture(scope="module", params=STACKS)
def stack(request, tmp_path_factory):
    """One worker and one scheduler for the module, on a private database and broker."""
    database, broker = request.param
    directory = tmp_path_factory.mktemp(f"processes-{database}-{broker}")
    with (
        redis_server(directory) as redis_url,
        private_database(database, directory) as database_url,
    ):
        running = Stack(
            database_url,
            redis_url,
            directory,
            {"REMOVAL_BATCH_SIZE": "20"},
            broker_url=broker_url_for(request, broker),
        )
        try:
            running.start_worker()
            running.start_scheduler()
            yield running
        finally:
            running.close()


@pytest.fixture
def org(stack):
    return Directory(stack)


def _leave(stack, org, user_id, request_id=None):
    with stack.uow(request_id) as uow:
        self_service.request_leave(uow, utc_now, Principal.user(user_id), org.org_id)


def _admin(org):
    return Principal.user(org.admin_id)


def _left_behind(stack, membership_id):
    """Grants, data rows and personal fields still held for the membership."""
    with stack.session_factory() as session:
        m = session.get(Membership, membership_id)
        grants = session.scalar(
            select(func.count()).select_from(Grant).where(Grant.membership_id == membership_id)
        )
        data = session.scalar(
            select(func.count())
            .select_from(MemberData)
            .where(MemberData.membership_id == membership_id)
        )
        return grants, data, (m.email, m.display_name)


def test_a_collaboration_guest_leaves_is_restored_with_every_grant_then_leaves_and_is_purged(
    stack, org
):
    # Given a collaboration guest with 3 grants and 50 data rows
    user, membership = org.guest(COLLABORATION, grants=3, data_rows=50)
    # When they leave, Then the worker soft-deletes them
    _leave(stack, org, user, request_id="req-leave-1")
    stack.wait_for_state(membership, "soft-deleted", timeout=15)
    # When the admin restores them within the retention period, Then every grant is back
    with stack.uow() as uow:
        restored = admin.restore(uow, utc_now, _admin(org), org.org_id, membership)
    assert restored.state == "restored" and len(restored.grants) == 3
    # When they leave again and the retention period passes
    _leave(stack, org, user, request_id="req-leave-2")
    stack.wait_for_state(membership, "soft-deleted", timeout=15)
    # Then the scheduler starts the purge and the worker removes everything
    stack.wait_for_state(membership, "purged", timeout=30)
    assert _left_behind(stack, membership) == (0, 0, (None, None))
    # And the tombstone keeps the full audit trail, each step once
    assert stack.transitions(membership) == [
        "add_guest",
        "request_leave",
        "complete_leave",
        "restore",
        "request_leave",
        "complete_leave",
        "expire_retention",
        "finish_removal",
    ]
    with stack.session_factory() as session:
        tombstone = session.get(Membership, membership)
        assert tombstone.purged_at is not None and tombstone.removed_rows == 53


def test_a_direct_connect_guest_leaving_goes_straight_to_data_removal_and_is_purged(stack, org):
    # Given a direct-connect guest with 45 data rows (three batches of 20)
    user, membership = org.guest(DIRECT, grants=1, data_rows=45)
    # When they leave
    _leave(stack, org, user)
    # Then there is no soft-deleted period: removal starts at once and ends purged
    stack.wait_for_state(membership, "purged", timeout=20)
    assert stack.transitions(membership) == [
        "add_guest",
        "request_leave",
        "complete_leave",
        "finish_removal",
    ]
    assert _left_behind(stack, membership) == (0, 0, (None, None))


def _worker_samples(stack):
    worker = next(p for p in stack.processes if p.name == "worker")
    with urllib.request.urlopen(worker.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_worker_exports_per_actor_counts_and_durations_for_prometheus(stack, org):
    # Given a direct-connect guest who left and was purged by the worker process
    user, membership = org.guest(DIRECT, data_rows=10)
    _leave(stack, org, user)
    stack.wait_for_state(membership, "purged", timeout=30)
    # When Prometheus scrapes the worker's own exposition
    samples = _worker_samples(stack)
    # Then it counts the messages each actor processed, and their durations
    leaves = (("actor_name", "complete_leave"), ("queue_name", "leaves"))
    assert samples[("dramatiq_messages_total", leaves)] >= 1
    assert samples[("dramatiq_message_duration_milliseconds_count", leaves)] >= 1


def test_an_admins_permanent_delete_ends_purged(stack, org):
    # Given a guest the admin removed (soft-deleted, restorable for the retention period)
    _, membership = org.guest(COLLABORATION, grants=2, data_rows=10)
    with stack.uow() as uow:
        admin.remove(uow, utc_now, _admin(org), org.org_id, membership)
    # When the admin deletes them permanently at once
    with stack.uow() as uow:
        admin.purge(uow, utc_now, _admin(org), org.org_id, membership)
    # Then the worker removes the data and the membership is purged
    stack.wait_for_state(membership, "purged", timeout=20)
    assert stack.transitions(membership) == ["add_guest", "remove", "purge", "finish_removal"]
    assert _left_behind(stack, membership) == (0, 0, (None, None))


def test_a_restore_after_the_purge_due_time_is_refused_as_restore_window_closed(stack, org):
    # Given a guest the admin removed: purge due two seconds later
    _, membership = org.guest(COLLABORATION, grants=1)
    with stack.uow() as uow:
        removed = admin.remove(uow, utc_now, _admin(org), org.org_id, membership)
    # When the admin tries to restore after the due time (before any sweep took it)
    later = removed.purge_due_at + timedelta(milliseconds=1)
    with stack.uow() as uow, pytest.raises(RestoreWindowClosed):
        admin.restore(uow, lambda: later, _admin(org), org.org_id, membership)
    # Then the purge goes on regardless
    stack.wait_for_state(membership, "purged", timeout=20)
    # And once the scheduler's sweep has taken it, the answer is still that the window closed
    with stack.uow() as uow, pytest.raises(RestoreWindowClosed):
        admin.restore(uow, utc_now, _admin(org), org.org_id, membership)


def test_the_same_message_delivered_twice_to_the_worker_process_has_no_double_effect(stack, org):
    # Given a direct-connect guest's leave, and its messages sent twice more
    user, membership = org.guest(DIRECT, data_rows=30)
    _leave(stack, org, user)
    stack.dispatcher.send("complete_leave", membership)
    stack.dispatcher.send("complete_leave", membership)
    stack.dispatcher.send("remove_data", membership)
    # When the worker has handled them all
    stack.wait_for_state(membership, "purged", timeout=20)
    wait_for(lambda: _queues_idle(stack), 15, "the queues to drain", stack.logs)
    # Then each step happened once, and each row was counted once
    assert stack.transitions(membership).count("complete_leave") == 1
    assert stack.transitions(membership).count("finish_removal") == 1
    with stack.session_factory() as session:
        assert session.get(Membership, membership).removed_rows == 30
    assert stack.denied(membership) == []


def _queues_idle(stack):
    report = json.loads(stack.lifecycle("queues", "--json"))
    return all(q["ready"] == q["inFlight"] == q["delayed"] == 0 for q in report["queues"])


def test_operators_see_the_worker_and_the_timers_through_the_lifecycle_commands(stack, org):
    # Given a guest the admin removed (a purge due in two seconds)
    _, membership = org.guest(COLLABORATION)
    with stack.uow() as uow:
        admin.remove(uow, utc_now, _admin(org), org.org_id, membership)
    # When an operator looks at the timers right away
    timers = json.loads(stack.lifecycle("timers", "--json", "--limit", "50"))
    # Then the membership is among the next due purges
    assert membership in [e["membershipId"] for e in timers["nextDuePurges"]]
    # And the queues show the running worker, consuming every queue
    queues = json.loads(stack.lifecycle("queues", "--json"))
    assert queues["broker"] == stack.broker_kind
    assert len(queues["workers"]) == 1
    assert set(queues["workers"][0]["queues"]) == {
        "leaves",
        "removals",
        "timers",
        "mail",
        "webhooks",
    }
    # And once purged, nothing is due, overdue or stalled
    stack.wait_for_state(membership, "purged", timeout=20)
    after = json.loads(stack.lifecycle("timers", "--json"))
    assert after["byState"]["purged"] >= 1
    assert (after["overduePurges"], after["overdueRemovals"]) == (0, 0)


def test_a_stop_sent_to_the_whole_process_group_stops_worker_and_scheduler_cleanly(stack):
    # Given one more worker and scheduler (honcho and systemd signal whole process groups)
    worker = stack.start_worker()
    scheduler = stack.start_scheduler()
    wait_for(lambda: "ready for action" in worker.log.read_text(), 30, "the worker to boot")
    wait_for(lambda: "scheduler started" in scheduler.log.read_text(), 30, "the scheduler")
    # When each whole group gets SIGTERM (the worker's children get it twice at once)
    for process in (scheduler, worker):
        os.killpg(process.popen.pid, signal.SIGTERM)
    # Then both finish what they hold and exit 0, the worker without being "killed"
    assert scheduler.popen.wait(timeout=20) == 0
    assert worker.popen.wait(timeout=30) == 0
    assert "scheduler stopped" in scheduler.log.read_text()
    log = worker.log.read_text()
    assert "Worker has been shut down." in log and "Killing worker process" not in log

"""Worker heartbeats in the database: who is alive, and what each worker is running and
holding per queue (what the RabbitMQ queue report adds up as in flight and delayed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dramatiq import Message
from dramatiq.broker import MessageProxy

from store.models import WorkerHeartbeat
from workers.heartbeats import SEEN_WITHIN, WorkerHeartbeats, forget_old, workers_seen
from workers.queues_rabbitmq import RabbitmqQueues


def _message(queue: str) -> MessageProxy:
    return MessageProxy(Message(queue_name=queue, actor_name="a", args=(), kwargs={}, options={}))


def test_a_worker_beats_into_the_database_with_what_it_runs_and_holds(session_factory):
    # Given a worker that runs two removals, holds one leave for its retry's backoff,
    # and has finished one leave
    heartbeats = WorkerHeartbeats(lambda: session_factory)
    heartbeats._info = {"host": "h", "pid": 7, "queues": ["leaves", "removals"], "threads": 4}
    removals = [_message("removals"), _message("removals")]
    for m in removals:
        heartbeats.before_process_message(None, m)  # type: ignore[arg-type]
    held = _message("leaves.DQ")
    heartbeats.before_delay_message(None, held)  # type: ignore[arg-type]
    done = _message("leaves")
    heartbeats.before_process_message(None, done)  # type: ignore[arg-type]
    heartbeats.after_process_message(None, done)  # type: ignore[arg-type]
    # When it beats (twice: the row is updated, not duplicated)
    heartbeats.beat()
    heartbeats.beat()
    # Then operators see one worker, with those counts
    [seen] = workers_seen(session_factory)
    assert (seen.id, seen.pid, seen.queues) == (heartbeats.worker_id, 7, ("leaves", "removals"))
    assert seen.running == {"removals": 2}
    assert seen.delayed == {"leaves": 1}
    # And once the held one runs and finishes, nothing is counted any more
    heartbeats.before_process_message(None, held)  # type: ignore[arg-type]
    heartbeats.after_process_message(None, held)  # type: ignore[arg-type]
    for m in removals:
        heartbeats.after_skip_message(None, m)  # type: ignore[arg-type]
    heartbeats.beat()
    [seen] = workers_seen(session_factory)
    assert (seen.running, seen.delayed) == ({}, {})


def test_silent_workers_are_not_seen_and_long_gone_ones_are_forgotten(session_factory):
    now = datetime.now(UTC)
    with session_factory.begin() as session:
        for name, ago in (("fresh", 1), ("silent", 60), ("gone", 7200)):
            session.add(
                WorkerHeartbeat(
                    id=name,
                    host="h",
                    pid=1,
                    queues="[]",
                    threads=1,
                    in_flight="{}",
                    started_at=now - timedelta(hours=3),
                    seen_at=now - timedelta(seconds=ago),
                )
            )
    assert timedelta(seconds=60) > SEEN_WITHIN
    assert [w.id for w in workers_seen(session_factory, now)] == ["fresh"]
    assert forget_old(session_factory, now) == 1
    with session_factory() as session:
        assert {row.id for row in session.query(WorkerHeartbeat)} == {"fresh", "silent"}


def test_the_rabbitmq_report_adds_up_what_the_workers_run_and_hold():
    # Given two workers' counts (RabbitMQ cannot say what is unacknowledged)
    from workers.heartbeats import WorkerSeen

    workers = [
        WorkerSeen("a", "h", 1, ("leaves",), 4, 0.5, {"leaves": 2}, {"removals": 1}),
        WorkerSeen("b", "h", 2, ("leaves",), 4, 0.5, {"leaves": 1, "removals": 3}, {}),
    ]

    class Counted(RabbitmqQueues):
        def __init__(self) -> None:
            self.counts = {"leaves": 5, "leaves.DQ": 1, "removals.XQ": 2}

        def _declared(self, name: str) -> tuple[int, int]:
            return self.counts.get(name, 0), 0

        def close(self) -> None:
            pass

    stats = {q.name: q for q in Counted().queue_stats(["leaves", "removals"], workers)}
    # Then ready and dead letters come from the queues, in flight and held from the workers
    assert (stats["leaves"].ready, stats["leaves"].in_flight, stats["leaves"].delayed) == (5, 3, 1)
    assert (stats["removals"].in_flight, stats["removals"].delayed) == (3, 1)
    assert stats["removals"].dead_letters == 2

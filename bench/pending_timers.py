"""What waiting costs: ``--n`` soft-deleted memberships whose purge is 30 days away, kept
as due times in the database (our design), against the same purges sent the naive way, as
Dramatiq delayed messages, into the same Redis, measured in the same run.

The real processes: a private redis-server, a scratch PostgreSQL database seeded set-based
(``INSERT ... SELECT ... FROM generate_series``), the ``dramatiq`` worker and the
``lifecycle scheduler`` (from the Procfile, ``SWEEP_INTERVAL=1s``).

Our design: start the worker and the scheduler on the seeded database, let the scheduler
sweep for ``--sweep-seconds``; Redis ``used_memory`` (INFO memory) and the broker's
messages (every queue of the namespace: ready, in flight and delayed) before and after,
and the resident memory of the worker's process tree (the ``dramatiq`` parent and its
worker processes, from ``/proc``) at start and after the sweeping.

The naive design: the same ``n`` purges as ``remove_data`` messages delayed by 30 days
into the same Redis, while the same worker runs. The first one goes through
``RedisBroker.enqueue(message, delay=...)``; the others are built exactly as it builds
them (queue ``removals.DQ``, options ``redis_message_id`` and ``eta``) and written the
way its enqueue script writes them (``HSET`` into ``removals.DQ.msgs``, ``RPUSH`` onto
``removals.DQ``), 10,000 per pipelined round trip, so a million take seconds, not an
hour. Then Redis memory and messages, and the worker's memory after ``--settle-seconds``
(sampled every few seconds; Dramatiq's worker fetches delayed messages and keeps them in
memory until their ETA, up to 1,000 per worker thread and queue). Then the worker and the
scheduler stop and the private Redis is flushed.

    .venv/bin/python -m bench.pending_timers [--n 1000000] [--runs 1]

One run by default: the figures are sizes, not timings, so they barely move between
runs, and one run seeds a million rows and writes a million messages (``--runs 3`` for
the median of three).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import redis
from dramatiq import get_encoder
from dramatiq.common import dq_name
from sqlalchemy import create_engine, text

from settings import Settings
from store.database import make_engine, make_session_factory
from tests.support.harness import (
    Process,
    arguments,
    emit,
    median,
    redis_server,
    say,
    scheduler_argv,
    scratch_database,
    wait_for,
    worker_argv,
)
from workers.broker import NAMESPACE, build_broker
from workers.dispatch import message_for
from workers.heartbeats import workers_seen
from workers.messages import QUEUES, REMOVE_DATA
from workers.queues_redis import RedisQueues

RETENTION = timedelta(days=30)
ORGANIZATIONS = 100
PIPELINE_CHUNK = 10_000

SEED = [
    """
    INSERT INTO organizations (id, domain, display_name, privacy_contact_email,
                               privacy_statement_url, external_user_leave_allowed, created_at)
    SELECT gen_random_uuid()::text, 'org-' || i || '.bench.example', 'Org ' || i,
           'privacy@org-' || i || '.bench.example',
           'https://org-' || i || '.bench.example/privacy', true, now()
    FROM generate_series(0, :orgs - 1) AS i
    """,
    """
    INSERT INTO users (id, email, display_name, enabled, created_at)
    SELECT gen_random_uuid()::text, 'user-' || i || '@bench.example', 'User ' || i, true, now()
    FROM generate_series(0, :users - 1) AS i
    """,
    # Each user a guest of every organization, left a day ago: soft-deleted, the purge due
    # in 30 days less a day.
    """
    INSERT INTO memberships (id, user_id, organization_id, kind, state, version, email,
                             display_name, created_at, leave_requested_at, soft_deleted_at,
                             purge_due_at)
    SELECT gen_random_uuid()::text, u.id, o.id, 'b2b-collaboration', 'soft-deleted', 3,
           NULL, NULL, now() - interval '2 days', now() - interval '1 day',
           now() - interval '1 day', now() - interval '1 day' + :retention
    FROM users u CROSS JOIN organizations o
    LIMIT :n
    """,
]


def seed(database_url: str, n: int) -> None:
    engine = create_engine(database_url)
    params = {
        "n": n,
        "orgs": ORGANIZATIONS,
        "users": -(-n // ORGANIZATIONS),
        "retention": RETENTION,
    }
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(text(statement), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def pending(database_url: str) -> dict[str, int]:
    """Soft-deleted memberships, and how many of them are due now (must stay 0)."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE purge_due_at <= now()) "
                "FROM memberships WHERE state = 'soft-deleted'"
            )
        ).one()
    engine.dispose()
    return {"soft_deleted": int(row[0]), "due": int(row[1])}


# ---- what is measured -------------------------------------------------------------------


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def broker_messages(client: redis.Redis) -> dict[str, Any]:
    """Every message of the namespace's queues, by queue and kind, and not yet fetched from
    the delay queues."""
    stats = RedisQueues(Settings(), client=client).queue_stats(QUEUES)
    by_queue = {
        s.name: {"ready": s.ready, "in_flight": s.in_flight, "delayed": s.delayed} for s in stats
    }
    with client.pipeline(transaction=False) as pipe:
        for q in QUEUES:
            pipe.llen(f"{NAMESPACE}:{dq_name(q)}")
        unfetched = [int(v) for v in pipe.execute()]
    return {
        "total": sum(s.ready + s.in_flight + s.delayed for s in stats),
        "by_queue": by_queue,
        "delayed_not_fetched": sum(unfetched),
    }


def tree_rss_kib(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (VmRSS in /proc, KiB)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces and parentheses.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


def scheduler_ticks(log: Path) -> int:
    """The ticks the scheduler reported when it stopped."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if "scheduler stopped" in line:
            try:
                return int(json.loads(line).get("ticks", 0))
            except ValueError:
                found = re.search(r'"ticks":\s*(\d+)', line)
                return int(found.group(1)) if found else 0
    return 0


# ---- the naive design --------------------------------------------------------------------


def enqueue_naive(settings: Settings, membership_ids: list[str]) -> float:
    """Send a ``remove_data`` message delayed by the retention period per id; seconds taken."""
    began = time.perf_counter()
    broker = build_broker(settings)
    delay_ms = int(RETENTION.total_seconds() * 1000)
    broker.enqueue(message_for(REMOVE_DATA.actor_name, membership_ids[0]), delay=delay_ms)
    encoder = get_encoder()
    queue = dq_name(REMOVE_DATA.queue_name)
    key = f"{NAMESPACE}:{queue}"
    for start in range(1, len(membership_ids), PIPELINE_CHUNK):
        now_ms = int(time.time() * 1000)
        encoded: dict[str, bytes] = {}
        for membership_id in membership_ids[start : start + PIPELINE_CHUNK]:
            redis_id = str(uuid.uuid4())
            encoded[redis_id] = encoder.encode(
                {
                    "queue_name": queue,
                    "actor_name": REMOVE_DATA.actor_name,
                    "args": [membership_id],
                    "kwargs": {},
                    "options": {"redis_message_id": redis_id, "eta": now_ms + delay_ms},
                    "message_id": str(uuid.uuid4()),
                    "message_timestamp": now_ms,
                }
            )
        with broker.client.pipeline(transaction=False) as pipe:
            pipe.hset(f"{key}.msgs", mapping=encoded)  # type: ignore[arg-type]  # bytes values
            pipe.rpush(key, *encoded)
            pipe.execute()
    broker.close()
    return time.perf_counter() - began


def membership_ids(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        ids = [str(i) for i in conn.scalars(text("SELECT id FROM memberships"))]
    engine.dispose()
    return ids


# ---- one run -----------------------------------------------------------------------------


def one_run(
    database_url: str, redis_url: str, directory: Path, ids: list[str], options: Any, run: int
) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SWEEP_INTERVAL": "1s",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TEST_DATABASE_URL", None)
    settings = Settings.from_env(env)
    redis_before = used_memory(client)
    worker = Process("worker", worker_argv(), env, directory / f"worker-{run}.log")
    scheduler = Process("scheduler", scheduler_argv(), env, directory / f"scheduler-{run}.log")
    processes = [worker, scheduler]
    logs = lambda: "\n".join(p.tail() for p in processes)  # noqa: E731
    try:
        sessions = make_session_factory(make_engine(database_url))
        wait_for(lambda: workers_seen(sessions), 60, "the worker to report for work", logs)
        time.sleep(2)  # let the worker finish booting its threads
        rss_start = tree_rss_kib(worker.popen.pid)
        say(f"  ours: worker up ({rss_start} KiB), sweeping for {options.sweep_seconds}s")
        time.sleep(options.sweep_seconds)
        ours: dict[str, Any] = {
            "redis_used_memory_before": redis_before,
            "redis_used_memory_after": used_memory(client),
            "broker_messages": broker_messages(client),
            "worker_rss_kib_start": rss_start,
            "worker_rss_kib_after": tree_rss_kib(worker.popen.pid),
            "memberships": pending(database_url),
        }
        ours["redis_used_memory_growth"] = (
            ours["redis_used_memory_after"] - ours["redis_used_memory_before"]
        )
        ours["worker_rss_growth_kib"] = ours["worker_rss_kib_after"] - rss_start
        say(f"  ours: {json.dumps(ours)}")

        say(f"  naive: {len(ids)} remove_data messages delayed {RETENTION.days} days")
        naive: dict[str, Any] = {"worker_rss_kib_start": tree_rss_kib(worker.popen.pid)}
        naive["redis_used_memory_before"] = used_memory(client)
        naive["enqueue_seconds"] = round(enqueue_naive(settings, ids), 1)
        naive["redis_used_memory_after"] = used_memory(client)
        samples = []
        began = time.monotonic()
        while time.monotonic() - began < options.settle_seconds:
            time.sleep(min(5.0, options.settle_seconds))
            samples.append(tree_rss_kib(worker.popen.pid))
            say(f"    after {time.monotonic() - began:.0f}s: worker {samples[-1]} KiB")
        naive.update(
            settle_seconds=options.settle_seconds,
            worker_rss_kib_after=samples[-1],
            worker_rss_kib_peak=max(samples),
            broker_messages=broker_messages(client),
            redis_used_memory_end=used_memory(client),
        )
        naive["redis_used_memory_growth"] = (
            naive["redis_used_memory_after"] - naive["redis_used_memory_before"]
        )
        naive["worker_rss_growth_kib"] = (
            naive["worker_rss_kib_peak"] - naive["worker_rss_kib_start"]
        )
        naive["delayed_held_by_worker"] = (
            naive["broker_messages"]["total"] - naive["broker_messages"]["delayed_not_fetched"]
        )
        say(f"  naive: {json.dumps(naive)}")
    finally:
        for process in processes:
            process.stop()
    ours["scheduler_ticks"] = scheduler_ticks(scheduler.log)
    client.flushdb()
    ours["memberships_after"] = pending(database_url)
    client.close()
    return {"ours": ours, "naive": naive}


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], n=1_000_000, runs=1)
    parser.add_argument("--sweep-seconds", type=float, default=15.0, help="our design")
    parser.add_argument(
        "--settle-seconds", type=float, default=45.0, help="naive design: worker time to fetch"
    )
    options = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-timers-") as tmp,
        redis_server(Path(tmp)) as redis_url,
        scratch_database(options.database_url, Path(tmp), "bench_timers") as database_url,
    ):
        say(f"seeding {options.n} soft-deleted memberships, purge due in {RETENTION.days} days")
        began = time.perf_counter()
        seed(database_url, options.n)
        ids = membership_ids(database_url)
        say(f"  seeded in {time.perf_counter() - began:.1f}s")
        results = []
        for run in range(options.runs):
            say(f"run {run + 1}/{options.runs}")
            results.append(one_run(database_url, redis_url, Path(tmp), ids, options, run))
    emit(summary(options, results))


def summary(options: Any, results: list[dict[str, Any]]) -> dict[str, Any]:
    def med(side: str, key: str) -> int:
        return round(median([r[side][key] for r in results]))

    def messages(side: str) -> int:
        return round(median([r[side]["broker_messages"]["total"] for r in results]))

    ours = {
        "broker_messages": messages("ours"),
        "redis_used_memory_growth": med("ours", "redis_used_memory_growth"),
        "worker_rss_kib_start": med("ours", "worker_rss_kib_start"),
        "worker_rss_kib_after": med("ours", "worker_rss_kib_after"),
        "worker_rss_growth_kib": med("ours", "worker_rss_growth_kib"),
        "scheduler_ticks": med("ours", "scheduler_ticks"),
        "sweep_seconds": options.sweep_seconds,
    }
    naive = {
        "broker_messages": messages("naive"),
        "redis_used_memory_growth": med("naive", "redis_used_memory_growth"),
        "worker_rss_kib_start": med("naive", "worker_rss_kib_start"),
        "worker_rss_kib_peak": med("naive", "worker_rss_kib_peak"),
        "worker_rss_growth_kib": med("naive", "worker_rss_growth_kib"),
        "delayed_held_by_worker": med("naive", "delayed_held_by_worker"),
        "enqueue_seconds": round(median([r["naive"]["enqueue_seconds"] for r in results]), 1),
        "settle_seconds": options.settle_seconds,
    }
    return {
        "benchmark": "pending_timers",
        "n": options.n,
        "runs": options.runs,
        "ours": ours,
        "naive": naive,
        "differences": {
            "broker_messages": naive["broker_messages"] - ours["broker_messages"],
            "redis_used_memory_bytes": naive["redis_used_memory_growth"]
            - ours["redis_used_memory_growth"],
            "redis_bytes_per_pending_purge_naive": round(
                naive["redis_used_memory_growth"] / max(1, options.n), 1
            ),
            "worker_rss_growth_kib": naive["worker_rss_growth_kib"] - ours["worker_rss_growth_kib"],
        },
        "per_run": results,
    }


if __name__ == "__main__":
    main()

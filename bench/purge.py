"""Benchmark 2: the whole purge pipeline, from due to purged, against a plain DELETE.

N soft-deleted memberships whose retention period has ended, each with 3 grants and
20 member-data rows, are seeded set-based into a template database. Each run takes
two fresh copies of it (``CREATE DATABASE ... TEMPLATE``: identical rows, identical
physical layout) and, in the same run:

- **pipeline**: a private Redis, the real worker (``dramatiq workers.actors``, as in
  the Procfile) and then the real scheduler (``lifecycle scheduler``,
  ``SWEEP_INTERVAL=1s``). Timed from the scheduler's start until every membership
  is ``purged`` and no grant or member-data row is left: the sweep moves them to
  ``purge-pending`` and sends ``remove_data_many`` chunks, the worker erases and
  finishes them. Then checked: each membership has exactly one ``expire_retention``
  and one ``finish_removal`` in the audit log, no denial, no e-mail or name left.
- **plain DELETE**: the same grant and member-data rows deleted with nothing else,
  ``--delete-batch`` rows per statement (keyset on the primary key), each committed.

Reported: memberships/s of the pipeline, its data rows erased/s, the plain DELETE's
rows/s and the ratio of the two (medians of ``--runs``). Targets: ≥ 5,000
memberships/s and a ratio ≥ 0.25.

    .venv/bin/python -m bench.purge [--n 200000] [--runs 3] [--processes 1]
        [--broker amqp://guest:guest@127.0.0.1:5672/%2F]

``--broker``: the broker, as ``BROKER_URL`` (default: the private Redis). For RabbitMQ,
each run gets a virtual host of its own on that server (made and deleted with
``rabbitmqctl``), so runs start empty as on a private Redis.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from tests.support.harness import (
    Process,
    arguments,
    emit,
    free_port,
    median,
    rabbitmq_vhost,
    redis_server,
    say,
    scheduler_argv,
    scratch_database,
    wait_for,
    worker_argv,
)

GRANTS = 3
DATA_ROWS = 20
ORGANIZATION = "00000000-0000-4000-8000-00000000b2b0"
TARGET_MEMBERSHIPS_PER_SECOND = 5_000
TARGET_RATIO = 0.25

SEED = [
    """INSERT INTO organizations (id, domain, display_name, external_user_leave_allowed,
                                  created_at)
       VALUES (:org, 'bench.example', 'Bench', true, now())""",
    """INSERT INTO users (id, email, display_name, enabled, created_at)
       SELECT md5('u' || g)::uuid::text, 'guest-' || g || '@mail.example', 'Guest ' || g,
              true, now() - interval '90 days'
       FROM generate_series(1, :n) AS g""",
    """INSERT INTO memberships (id, user_id, organization_id, kind, enabled, state, version,
                                email, display_name, created_at, soft_deleted_at,
                                purge_due_at, removed_rows, attempts)
       SELECT md5('m' || g)::uuid::text, md5('u' || g)::uuid::text, :org,
              'b2b-collaboration', true, 'soft-deleted', 3,
              'guest-' || g || '@mail.example', 'Guest ' || g,
              now() - interval '90 days', now() - interval '31 days',
              now() - interval '1 day', 0, 0
       FROM generate_series(1, :n) AS g""",
    f"""INSERT INTO grants (id, membership_id, kind, name, granted_at)
       SELECT md5('g' || g || '-' || k)::uuid::text, md5('m' || g)::uuid::text, 'group',
              'Group ' || k, now() - interval '60 days'
       FROM generate_series(1, :n) AS g CROSS JOIN generate_series(1, {GRANTS}) AS k""",
    f"""INSERT INTO member_data (membership_id, category, payload, created_at)
       SELECT md5('m' || g)::uuid::text, 'record',
              'record ' || k || ' of guest ' || g || ': ' || repeat('x', 40),
              now() - interval '60 days'
       FROM generate_series(1, :n) AS g CROSS JOIN generate_series(1, {DATA_ROWS}) AS k""",
]


def seed(url: str, n: int) -> None:
    """N due soft-deleted memberships with their grants and data, set-based."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(text(statement), {"n": n, "org": ORGANIZATION})
    engine.dispose()
    vacuum = create_engine(url, isolation_level="AUTOCOMMIT")
    with vacuum.connect() as conn:
        conn.execute(text("VACUUM (ANALYZE)"))
    vacuum.dispose()


@contextmanager
def database_copy(template_url: str, prefix: str) -> Iterator[str]:
    """A copy of the PostgreSQL database ``template_url`` (nobody may be connected to it),
    dropped afterwards."""
    url = make_url(template_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _scalar(engine: Engine, statement: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(statement)).scalar()


def run_pipeline(
    url: str,
    n: int,
    processes: int,
    threads: int,
    directory: Path,
    env: dict[str, str],
    broker: str | None = None,
) -> dict[str, Any]:
    """Worker up, then the scheduler; seconds until everything is purged and erased."""
    engine = create_engine(url)
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(directory))
        environment = {
            **env,
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "SWEEP_INTERVAL": "1s",
            "PYTHONUNBUFFERED": "1",
        }
        # The worker's Prometheus exposition (Dramatiq's middleware): a port and folder of
        # this run's own.
        (directory / "worker-metrics").mkdir(exist_ok=True)
        environment["dramatiq_prom_db"] = str(directory / "worker-metrics")
        environment["dramatiq_prom_host"] = "127.0.0.1"
        environment["dramatiq_prom_port"] = str(free_port())
        environment.pop("BROKER_URL", None)
        if broker and broker.startswith(("amqp://", "amqps://")):
            environment["BROKER_URL"] = stack.enter_context(rabbitmq_vhost(broker, "bench"))
        elif broker:
            environment["BROKER_URL"] = broker
        worker = Process(
            "worker", worker_argv(processes, threads), environment, directory / "worker.log"
        )
        stack.callback(worker.stop)
        wait_for(
            lambda: worker.log.read_text(errors="replace").count("ready for action") >= processes,
            60,
            "the worker to boot",
            worker.tail,
        )
        launched = time.time()
        scheduler = Process("scheduler", scheduler_argv(), environment, directory / "sched.log")
        stack.callback(scheduler.stop)
        # The clock starts when the scheduler is up (its "scheduler started" line), not at
        # the launch: the Python imports of a process start are not the pipeline's work.
        line = wait_for(
            lambda: _line(scheduler.log, "scheduler started"), 60, "the scheduler", scheduler.tail
        )
        started = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
        progress = {"said": time.time()}

        def all_purged() -> bool:
            purged = _scalar(engine, "SELECT count(*) FROM memberships WHERE state = 'purged'")
            if time.time() - progress["said"] > 5:
                say(f"  pipeline: {purged}/{n} purged after {time.time() - started:.0f}s")
                progress["said"] = time.time()
            return bool(purged == n)

        wait_for(all_purged, max(120, n / 500), "every membership purged", worker.tail)
        seconds = time.time() - started
    data_left = _scalar(
        engine, "SELECT (SELECT count(*) FROM grants) + (SELECT count(*) FROM member_data)"
    )
    audit = dict(
        _rows(
            engine,
            "SELECT action, count(*) FROM audit_events WHERE outcome = 'allowed' GROUP BY action",
        )
    )
    once = _scalar(
        engine,
        "SELECT count(*) FROM (SELECT membership_id FROM audit_events "
        "WHERE action = 'finish_removal' AND outcome = 'allowed' "
        "GROUP BY membership_id HAVING count(*) = 1) AS once",
    )
    checks = {
        "data_rows_left": int(data_left),
        "expire_retention_audited": int(audit.get("expire_retention", 0)),
        "finish_removal_audited": int(audit.get("finish_removal", 0)),
        "finished_exactly_once": int(once),
        "denied": int(_scalar(engine, "SELECT count(*) FROM audit_events WHERE outcome='denied'")),
        "personal_fields_left": int(
            _scalar(
                engine,
                "SELECT count(*) FROM memberships WHERE email IS NOT NULL "
                "OR display_name IS NOT NULL",
            )
        ),
        "removed_rows_recorded": int(_scalar(engine, "SELECT sum(removed_rows) FROM memberships")),
    }
    engine.dispose()
    sweeps = [
        json.loads(line)
        for line in (directory / "sched.log").read_text(errors="replace").splitlines()
        if "sweep moved memberships on" in line
    ]
    # How long the sweep took to put them all on the clock, and how long removal ran on
    # after the last sweep batch: which of the two stages bounds the pipeline.
    sweep_done = max(
        (datetime.fromisoformat(s["timestamp"]).timestamp() for s in sweeps), default=0
    )
    return {
        "seconds": seconds,
        "scheduler_boot_seconds": started - launched,
        "sweep_seconds": sum(s.get("seconds", 0.0) for s in sweeps),
        "removal_after_sweep_seconds": max(0.0, started + seconds - sweep_done),
        **checks,
    }


def _line(log: Path, needle: str) -> str | None:
    for line in log.read_text(errors="replace").splitlines():
        if needle in line:
            return line
    return None


def _rows(engine: Engine, statement: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(statement)).all())


def run_plain_delete(url: str, batch: int) -> dict[str, Any]:
    """The same data rows deleted by primary-key keyset, ``batch`` per committed statement."""
    engine = create_engine(url)
    deleted = 0
    started = time.perf_counter()
    for table in ("grants", "member_data"):
        last: Any = "" if table == "grants" else 0
        while True:
            with engine.begin() as conn:
                gone = conn.execute(
                    text(
                        f"WITH gone AS (DELETE FROM {table} WHERE id = ANY(ARRAY("
                        f"SELECT id FROM {table} WHERE id > :last ORDER BY id LIMIT :batch)) "
                        "RETURNING id) SELECT count(*), max(id) FROM gone"
                    ),
                    {"last": last, "batch": batch},
                ).one()
            if not gone[0]:
                break
            deleted += int(gone[0])
            last = gone[1]
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "rows": deleted}


def _stop_on_sigterm() -> None:
    # SIGTERM unwinds like Ctrl-C, so the processes are stopped and the databases dropped.
    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    _stop_on_sigterm()
    parser = arguments(__doc__.splitlines()[0], n=200_000, runs=3)
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument(
        "--delete-batch", type=int, default=10_000, help="rows per plain DELETE (default 10000)"
    )
    parser.add_argument(
        "--broker",
        default=None,
        help="BROKER_URL of the pipeline (default: a private Redis); amqp://… for RabbitMQ",
    )
    options = parser.parse_args()
    if options.database_url.startswith("sqlite"):
        parser.error("this benchmark seeds with PostgreSQL's generate_series: give a PG URL")
    n = options.n
    data_rows = n * (GRANTS + DATA_ROWS)
    pipelines: list[dict[str, Any]] = []
    deletes: list[dict[str, Any]] = []
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-purge-") as tmp:
        directory = Path(tmp)
        with scratch_database(options.database_url, directory, "bench_purge") as template:
            say(f"seeding {n} due memberships with {data_rows} data rows")
            started = time.perf_counter()
            seed(template, n)
            say(f"  seeded in {time.perf_counter() - started:.1f}s")
            for run in range(1, options.runs + 1):
                with database_copy(template, "bench_purge_run") as url:
                    say(f"run {run}/{options.runs}: pipeline")
                    run_directory = directory / f"run-{run}"
                    run_directory.mkdir()
                    result = run_pipeline(
                        url,
                        n,
                        options.processes,
                        options.threads,
                        run_directory,
                        env,
                        options.broker,
                    )
                    say(f"  {n} purged in {result['seconds']:.2f}s ({n / result['seconds']:.0f}/s)")
                    pipelines.append(result)
                with database_copy(template, "bench_purge_run") as url:
                    say(f"run {run}/{options.runs}: plain DELETE")
                    plain = run_plain_delete(url, options.delete_batch)
                    say(f"  {plain['rows']} rows in {plain['seconds']:.2f}s")
                    deletes.append(plain)
    memberships_per_second = [n / p["seconds"] for p in pipelines]
    pipeline_rows_per_second = [data_rows / p["seconds"] for p in pipelines]
    delete_rows_per_second = [d["rows"] / d["seconds"] for d in deletes]
    ratios = [p / d for p, d in zip(pipeline_rows_per_second, delete_rows_per_second, strict=True)]
    last = pipelines[-1]
    emit(
        {
            "benchmark": "purge",
            "n": n,
            "runs": options.runs,
            "worker_processes": options.processes,
            "worker_threads": options.threads,
            "broker": "rabbitmq" if options.broker and "amqp" in options.broker else "redis",
            "data_rows": data_rows,
            "purged": n if all(p["data_rows_left"] == 0 for p in pipelines) else None,
            "pipeline_seconds": [round(p["seconds"], 3) for p in pipelines],
            "memberships_per_second": round(median(memberships_per_second), 1),
            "pipeline_data_rows_per_second": round(median(pipeline_rows_per_second), 1),
            "plain_delete_rows": deletes[-1]["rows"],
            "plain_delete_seconds": [round(d["seconds"], 3) for d in deletes],
            "plain_delete_rows_per_second": round(median(delete_rows_per_second), 1),
            "ratio_to_plain_delete": round(median(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
            "target_memberships_per_second": TARGET_MEMBERSHIPS_PER_SECOND,
            "target_ratio": TARGET_RATIO,
            "scheduler_boot_seconds": [round(p["scheduler_boot_seconds"], 3) for p in pipelines],
            "sweep_seconds": [round(p["sweep_seconds"], 3) for p in pipelines],
            "removal_after_sweep_seconds": [
                round(p["removal_after_sweep_seconds"], 3) for p in pipelines
            ],
            "checks": {k: v for k, v in last.items() if "seconds" not in k},
        }
    )


if __name__ == "__main__":
    main()

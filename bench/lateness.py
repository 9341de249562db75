"""Timer precision: how late after ``purge_due_at`` does a retention period really end?

A scratch PostgreSQL database is seeded set-based with ``--n`` soft-deleted B2B
collaboration memberships whose ``purge_due_at`` are spread evenly over a ``--window``
starting ``--lead`` seconds after the seeding (so the scheduler is up before the first
one is due). The real ``lifecycle scheduler`` process (the Procfile line) runs with
``SWEEP_INTERVAL=--interval`` seconds (default: the service's, 5 s) and a private
redis-server for the follow-up messages. Once every membership is ``purge-pending``,
each one's lateness is read off the database: the ``occurred_at`` of its
``expire_retention`` audit row minus its ``purge_due_at``.

Figures: p50, p99 and max lateness in seconds (medians over ``--runs`` runs), the
earliest (never negative: a timer must not fire early), and the target:
p99 ≤ 2 × SWEEP_INTERVAL.

    .venv/bin/python -m bench.lateness [--n 10000] [--window 60] [--interval 5] [--runs 3]
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from settings import Settings
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
)

ORGANIZATIONS = 10


def seed(engine: Engine, n: int, first_due_in: float, window: float) -> None:
    """``n`` soft-deleted memberships, due evenly from ``first_due_in`` seconds from now
    over ``window`` seconds, over a few organizations (one user per membership)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizations (id, domain, display_name, created_at)"
                " SELECT gen_random_uuid()::text, 'org-' || g || '.example', 'Org ' || g, now()"
                " FROM generate_series(1, :organizations) AS g"
            ),
            {"organizations": ORGANIZATIONS},
        )
        conn.execute(
            text(
                "INSERT INTO users (id, email, display_name, enabled, created_at)"
                " SELECT gen_random_uuid()::text, 'guest-' || g || '@mail.example',"
                " 'Guest ' || g, true, now() FROM generate_series(1, :n) AS g"
            ),
            {"n": n},
        )
        conn.execute(
            text(
                "INSERT INTO memberships (id, user_id, organization_id, kind, enabled, state,"
                " version, email, display_name, created_at, soft_deleted_at, purge_due_at,"
                " removed_rows, attempts)"
                " SELECT gen_random_uuid()::text, u.id,"
                " (SELECT id FROM organizations ORDER BY domain"
                "  OFFSET (u.n % :organizations) LIMIT 1),"
                " 'b2b-collaboration', true, 'soft-deleted', 2, u.email, u.display_name,"
                " now() - interval '30 days', now() - interval '30 days',"
                " now() + make_interval(secs => :first + :window * u.n / :n), 0, 0"
                " FROM (SELECT id, email, display_name,"
                "   row_number() OVER (ORDER BY email) - 1 AS n FROM users) AS u"
            ),
            {"organizations": ORGANIZATIONS, "first": first_due_in, "window": window, "n": n},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) organizations, users, memberships"))


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def one_run(
    server_url: str, directory: Path, n: int, window: float, interval: int, lead: float
) -> dict[str, Any]:
    with (
        scratch_database(server_url, directory, "bench_lateness") as url,
        redis_server(directory) as redis_url,
    ):
        engine = create_engine(url)
        seed(engine, n, lead, window)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "SWEEP_INTERVAL": f"{interval}s",
            "PYTHONUNBUFFERED": "1",
        }
        scheduler = Process(
            "scheduler", scheduler_argv(), env, directory / f"scheduler-{time.time_ns()}.log"
        )

        def remaining() -> int:
            if scheduler.popen.poll() is not None:
                raise AssertionError(f"the scheduler exited\n{scheduler.tail()}")
            with engine.connect() as conn:
                return int(
                    conn.scalar(
                        text("SELECT count(*) FROM memberships WHERE state = 'soft-deleted'")
                    )
                    or 0
                )

        try:
            wait_for(
                lambda: remaining() == 0,
                lead + window + 3 * interval + 60,
                "every retention period to end",
                scheduler.tail,
            )
        finally:
            code = scheduler.stop()
        assert code == 0, f"the scheduler exited with {code}\n{scheduler.tail()}"
        with engine.connect() as conn:
            delays = sorted(
                float(d)
                for (d,) in conn.execute(
                    text(
                        "SELECT extract(epoch FROM a.occurred_at - m.purge_due_at)"
                        " FROM audit_events AS a JOIN memberships AS m"
                        " ON m.id = a.membership_id"
                        " WHERE a.action = 'expire_retention' AND a.outcome = 'allowed'"
                    )
                )
            )
        engine.dispose()
    assert len(delays) == n, f"{len(delays)} expire_retention audit rows, not {n}"
    return {
        "transitions": len(delays),
        "p50_seconds": percentile(delays, 0.50),
        "p99_seconds": percentile(delays, 0.99),
        "max_seconds": delays[-1],
        "earliest_seconds": delays[0],
    }


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], n=10_000)
    parser.add_argument(
        "--window", type=float, default=60.0, help="seconds the due times spread over (60)"
    )
    default_interval = int(Settings().sweep_interval / timedelta(seconds=1))
    parser.add_argument(
        "--interval",
        type=int,
        default=default_interval,
        help=f"SWEEP_INTERVAL in seconds (default: the service's, {default_interval})",
    )
    parser.add_argument(
        "--lead",
        type=float,
        default=5.0,
        help="seconds from seeding to the first due time, for the scheduler to start (5)",
    )
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("bench.lateness measures PostgreSQL: give a postgresql:// URL")
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-lateness-") as tmp:
        for run in range(1, args.runs + 1):
            figures = one_run(
                args.database_url, Path(tmp), args.n, args.window, args.interval, args.lead
            )
            runs.append(figures)
            say(
                f"run {run}/{args.runs}: {figures['transitions']:,} transitions, late by "
                f"p50 {figures['p50_seconds']:.2f}s, p99 {figures['p99_seconds']:.2f}s, "
                f"max {figures['max_seconds']:.2f}s (earliest {figures['earliest_seconds']:.3f}s)"
            )
    result: dict[str, Any] = {
        "benchmark": "lateness",
        "n": args.n,
        "runs": args.runs,
        "window_seconds": args.window,
        "sweep_interval_seconds": args.interval,
    }
    for key in runs[0]:
        result[key] = median([r[key] for r in runs])
    result["earliest_seconds"] = min(r["earliest_seconds"] for r in runs)
    limit = 2 * args.interval
    result["target"] = {
        "p99_at_most_seconds": limit,
        "met": result["p99_seconds"] <= limit and result["earliest_seconds"] >= 0,
    }
    emit(result)


if __name__ == "__main__":
    main()

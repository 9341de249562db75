"""What the events outbox costs the sweep: due retention periods swept with and without
their events, at scale, on PostgreSQL.

A scratch database is seeded set-based (as ``bench.sweep`` does) with ``--n``
soft-deleted B2B collaboration memberships past their ``purge_due_at``, spread over a
few organizations, and three webhook endpoints per organization (one of them an app
that confirms removals). Each measurement gets a copy of it and runs one sweep in this
process (``memberships.retention.expire_in_parallel`` on ``SWEEP_CONCURRENCY``
connections, ``SWEEP_BATCH_SIZE`` rows per batch), timed until every due membership is
``purge-pending``:

- ``with_events``: as the service runs: every batch writes one ``membership.purge_pending``
  event per membership in its own transaction (``store.outbox``);
- ``without_events``: the same with ``store.outbox.after_transition`` switched off.

Each run checks its rows: every membership moved once, and exactly one event each (or
none). Figures are the medians of ``--runs`` runs; the ratio is taken within each run.

Then ``--deliveries`` webhook deliveries are sent through the real delivery code to a
local receiver (``bench.webhook_deliveries``) on the same server: deliveries per second.
Target: the outbox costs the sweep at most 30 % of its rate (ratio ≥ 0.70).

    .venv/bin/python -m bench.webhooks [--n 100000] [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from sqlalchemy import Engine, create_engine, text

from bench.sweep import database_copy, seed, sweep_options
from bench.webhook_deliveries import deliveries_per_second
from memberships.clock import utc_now
from store.database import make_engine, make_session_factory
from store.unit_of_work import NullDispatcher, Policy, UnitOfWork
from tests.support.harness import (
    DEFAULT_BENCH_DATABASE_URL,
    emit,
    median,
    say,
    scratch_database,
)

ENDPOINTS_PER_ORGANIZATION = 3
RATIO_TARGET = 0.70
CONTENDERS = ("without_events", "with_events")


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        type=int,
        default=20_000,
        help="due memberships to sweep (default %(default)s; the target is stated at 100000)",
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="runs to take the median of (default %(default)s)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_DATABASE_URL),
        help="PostgreSQL server to create a scratch database on "
        "(default: $BENCH_DATABASE_URL, else %(default)s)",
    )
    sweep_options(parser)
    parser.add_argument(
        "--deliveries",
        type=int,
        default=500,
        help="webhook deliveries to a local receiver to time (default %(default)s; 0 skips)",
    )
    return parser


def seed_endpoints(engine: Engine) -> int:
    """Three endpoints per organization; the first of each confirms removals."""
    with engine.begin() as conn:
        return conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, organization_id, url, description, events,"
                " confirms_removal, secret, enabled, created_at, updated_at)"
                " SELECT gen_random_uuid()::text, o.id,"
                " 'https://app-' || k || '.' || o.domain || '/hooks', 'App ' || k, NULL,"
                " k = 1, 'whsec_' || encode(sha256(o.id::bytea || k::text::bytea), 'base64'),"
                " true, now(), now()"
                " FROM organizations AS o CROSS JOIN generate_series(1, :k) AS k"
            ),
            {"k": ENDPOINTS_PER_ORGANIZATION},
        ).rowcount


@contextmanager
def prepared_template(server_url: str, directory: Path, n: int) -> Iterator[str]:
    with scratch_database(server_url, directory, "bench_webhooks") as url:
        engine = create_engine(url)
        started = time.perf_counter()
        seed(engine, n)
        endpoints = seed_endpoints(engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) organizations, users, memberships"))
        engine.dispose()
        say(
            f"seeded {n:,} due memberships and {endpoints} endpoints in "
            f"{time.perf_counter() - started:.1f}s"
        )
        yield url


def sweep_once(url: str, n: int, batch_size: int, concurrency: int, events: bool) -> dict[str, Any]:
    """One sweep of every due membership in this process; checked, then timed figures."""
    from memberships import retention

    engine = make_engine(url)
    factory = make_session_factory(engine)
    policy = Policy(sweep_batch_size=batch_size)

    def open_uow() -> UnitOfWork:
        return UnitOfWork(factory, NullDispatcher(), policy)

    switch = (
        mock.patch("store.outbox.after_transition", lambda *_args: None)
        if not events
        else _nothing()
    )
    with switch, open_uow() as uow:
        started = time.perf_counter()
        moved, batches = retention.expire_in_parallel(uow, utc_now, open_uow, concurrency)
        seconds = time.perf_counter() - started
    written = verify(engine, n, events)
    engine.dispose()
    assert moved == n, f"the sweep moved {moved} memberships, not {n}"
    return {
        "rows": moved,
        "batches": batches,
        "seconds": seconds,
        "per_second": moved / seconds,
        "events": written,
        "events_per_second": written / seconds,
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def verify(engine: Engine, n: int, events: bool) -> int:
    """Every membership purge-pending; exactly one event each with events on, none without."""
    with engine.connect() as conn:
        states = dict(
            conn.execute(text("SELECT state, count(*) FROM memberships GROUP BY 1")).all()
        )
        assert states == {"purge-pending": n}, states
        written, distinct, kinds = conn.execute(
            text("SELECT count(*), count(DISTINCT membership_id), count(DISTINCT type) FROM events")
        ).one()
    expected = (n, n, 1) if events else (0, 0, 0)
    assert (written, distinct, kinds) == expected, (written, distinct, kinds)
    return int(written)


def summary(
    n: int, batch: int, concurrency: int, runs: int, results: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "benchmark": "webhooks",
        "memberships": n,
        "endpoints_per_organization": ENDPOINTS_PER_ORGANIZATION,
        "batch_size": batch,
        "concurrency": concurrency,
        "runs": runs,
    }
    for contender, figures in results.items():
        out[contender] = {key: median([f[key] for f in figures]) for key in figures[0]}
    ratio = median(
        [
            w["per_second"] / wo["per_second"]
            for w, wo in zip(results["with_events"], results["without_events"], strict=True)
        ]
    )
    out["events_per_second"] = out["with_events"]["events_per_second"]
    out["ratio_with_to_without"] = ratio
    out["cost"] = 1 - ratio
    out["target"] = {"ratio_with_to_without": RATIO_TARGET, "met": ratio >= RATIO_TARGET}
    return out


def main() -> None:
    args = arguments().parse_args()
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("bench.webhooks measures PostgreSQL: give a postgresql:// --database-url")
    n = args.n
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
    with (
        tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp,
        prepared_template(args.database_url, Path(tmp), n) as template,
    ):
        for run in range(1, args.runs + 1):
            for contender in CONTENDERS:
                with database_copy(template, "bench_webhooks_run", n) as url:
                    figures = sweep_once(
                        url,
                        n,
                        args.batch_size,
                        args.concurrency,
                        events=contender == "with_events",
                    )
                results[contender].append(figures)
                say(
                    f"run {run}/{args.runs} {contender}: {figures['rows']:,} rows in "
                    f"{figures['seconds']:.2f}s = {figures['per_second']:,.0f}/s"
                )
    figures = summary(n, args.batch_size, args.concurrency, args.runs, results)
    if args.deliveries > 0:
        say(f"{args.deliveries} webhook deliveries to a local receiver")
        rate = deliveries_per_second(args.deliveries, database_url=args.database_url)
        figures["deliveries"] = args.deliveries
        figures["deliveries_per_second"] = round(rate, 1)
    emit(figures)


if __name__ == "__main__":
    main()

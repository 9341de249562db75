"""Due timers at scale: a million retention periods ending at once, swept by the real
``lifecycle scheduler`` process, against a plain SQL UPDATE of the same rows.

A scratch PostgreSQL database is seeded set-based (``INSERT … SELECT … FROM
generate_series``) with ``--n`` soft-deleted B2B collaboration memberships whose
``purge_due_at`` has passed (a few organizations, one user per membership and
organization), then vacuumed and analyzed. Each measurement gets a copy of it
(``CREATE DATABASE … TEMPLATE``), so every contender starts from the same bytes, and (from
100,000 rows) a checkpoint right before it starts:

- ``sweep``: the ``scheduler`` line of the Procfile (``SWEEP_INTERVAL=1s``) with a private
  redis-server receiving the ``remove_data`` follow-up work (no worker: the messages stay
  queued and are counted). Timed from the process start until no membership is left
  soft-deleted; then every row is checked: ``purge-pending``, version + 1, exactly one
  ``expire_retention`` audit row, every id in exactly one queued message.
- ``sweep_k`` (``--schedulers K``, K > 1): the same with K scheduler processes at once.
- ``plain_update``: ``UPDATE memberships SET state = 'purge-pending' WHERE state =
  'soft-deleted' AND purge_due_at <= now()``, one statement: what this database does at
  best here, with no claim, no audit and no follow-up.
- ``plain_update_batched``: the same UPDATE in committed batches of ``SWEEP_BATCH_SIZE``
  rows, taken in due order through the sweep's partial index.

Figures are the medians of ``--runs`` runs; ratios are taken within each run, then the
median. Targets: the sweep at ≥ 20,000 transitions/s end to end and at
≥ 25 % of the one-statement UPDATE's rate.

    .venv/bin/python -m bench.sweep [--n 1000000] [--runs 3] [--schedulers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from dramatiq import get_encoder
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

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
from workers.broker import NAMESPACE

ORGANIZATIONS = 10
SEEDED_VERSION = 3
RATE_TARGET = 20_000.0
RATIO_TARGET = 0.25
POLL_SECONDS = 0.1


# ---- the data set ----------------------------------------------------------------------


def seed(engine: Engine, n: int, organizations: int = ORGANIZATIONS) -> None:
    """``n`` soft-deleted collaboration memberships, all past ``purge_due_at``, spread over
    ``organizations`` organizations; each user is a guest of every organization. The due
    times are spread over the last day in no relation to the rows' physical order, as
    when guests who joined over years are offboarded in one go."""
    users = -(-n // organizations)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizations (id, domain, display_name, privacy_contact_email,"
                " privacy_statement_url, external_user_leave_allowed, created_at)"
                " SELECT gen_random_uuid()::text, 'org-' || g || '.example', 'Org ' || g,"
                " 'privacy@org-' || g || '.example', 'https://org-' || g || '.example/privacy',"
                " true, now() - interval '3 years'"
                " FROM generate_series(1, :organizations) AS g"
            ),
            {"organizations": organizations},
        )
        conn.execute(
            text(
                "INSERT INTO users (id, email, display_name, enabled, created_at)"
                " SELECT gen_random_uuid()::text, 'guest-' || g || '@mail.example',"
                " 'Guest ' || g, true, now() - interval '2 years'"
                " FROM generate_series(1, :users) AS g"
            ),
            {"users": users},
        )
        conn.execute(
            text(
                "INSERT INTO memberships (id, user_id, organization_id, kind, enabled, state,"
                " version, email, display_name, created_at, leave_requested_at,"
                " soft_deleted_at, purge_due_at, removed_rows, attempts)"
                " SELECT gen_random_uuid()::text, s.user_id, s.organization_id,"
                " 'b2b-collaboration', true, 'soft-deleted', :version, s.email,"
                " s.display_name, s.created_at, s.left_at, s.left_at,"
                " s.left_at + interval '30 days', 0, 0"
                " FROM (SELECT u.id AS user_id, o.id AS organization_id, u.email,"
                "   u.display_name, u.created_at,"
                "   now() - interval '31 days' + random() * interval '1 day' AS left_at"
                "   FROM users AS u CROSS JOIN organizations AS o LIMIT :n) AS s"
            ),
            {"n": n, "version": SEEDED_VERSION},
        )


def prepared_template(server_url: str, directory: Path, n: int) -> Iterator[str]:
    """The seeded, vacuumed database every measurement copies."""
    with scratch_database(server_url, directory, "bench_sweep") as url:
        engine = create_engine(url)
        started = time.perf_counter()
        seed(engine, n)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) organizations, users, memberships"))
        engine.dispose()
        say(f"seeded {n:,} due memberships in {time.perf_counter() - started:.1f}s")
        yield url


# Below this many rows a copy is logged through the WAL and no checkpoint is forced:
# the figures of so small a run say nothing, and a checkpoint of the whole server
# would slow everyone else's work for nothing.
CHECKPOINT_FROM_ROWS = 100_000


@contextmanager
def database_copy(template_url: str, prefix: str, rows: int) -> Iterator[str]:
    """A copy of ``template_url`` on the same server, dropped afterwards; at scale a file
    copy followed by a checkpoint, so that each measurement starts with the same clean
    buffers to write."""
    template = make_url(template_url)
    admin = create_engine(template.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    at_scale = rows >= CHECKPOINT_FROM_ROWS
    try:
        with admin.connect() as conn:
            conn.execute(
                text(
                    f'CREATE DATABASE "{name}" TEMPLATE "{template.database}"'
                    f" STRATEGY = {'FILE_COPY' if at_scale else 'WAL_LOG'}"
                )
            )
            if at_scale:
                conn.execute(text("CHECKPOINT"))
        yield template.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---- the contenders --------------------------------------------------------------------


def plain_update(url: str, n: int) -> dict[str, Any]:
    """The one-statement UPDATE: the physical limit."""
    engine = create_engine(url)
    with engine.begin() as conn:
        started = time.perf_counter()
        updated = conn.execute(
            text(
                "UPDATE memberships SET state = 'purge-pending'"
                " WHERE state = 'soft-deleted' AND purge_due_at <= now()"
            )
        ).rowcount
    seconds = time.perf_counter() - started
    engine.dispose()
    assert updated == n, f"plain UPDATE moved {updated} rows, not {n}"
    return {"rows": updated, "seconds": seconds, "per_second": updated / seconds}


def plain_update_batched(url: str, n: int, batch_size: int) -> dict[str, Any]:
    """The same UPDATE in committed batches, due order, through the partial index, each
    batch starting where the previous one reached (as the sweep does)."""
    engine = create_engine(url)
    updated = batches = 0
    due_from = None
    started = time.perf_counter()
    with engine.connect() as conn:
        while True:
            with conn.begin():
                due = (
                    conn.execute(
                        text(
                            "UPDATE memberships SET state = 'purge-pending'"
                            " WHERE id = ANY(ARRAY(SELECT id FROM memberships"
                            " WHERE state = 'soft-deleted' AND purge_due_at <= now()"
                            " AND (CAST(:due_from AS timestamptz) IS NULL"
                            "  OR purge_due_at >= CAST(:due_from AS timestamptz))"
                            " ORDER BY purge_due_at LIMIT :limit)) RETURNING purge_due_at"
                        ),
                        {"limit": batch_size, "due_from": due_from},
                    )
                    .scalars()
                    .all()
                )
            count = len(due)
            due_from = max(due, default=due_from)
            updated += count
            batches += 1
            if count < batch_size:
                break
    seconds = time.perf_counter() - started
    engine.dispose()
    assert updated == n, f"batched UPDATE moved {updated} rows, not {n}"
    return {"rows": updated, "batches": batches, "seconds": seconds, "per_second": n / seconds}


def sweep_by_schedulers(
    url: str,
    redis_url: str,
    n: int,
    schedulers: int,
    batch_size: int,
    concurrency: int,
    directory: Path,
) -> dict[str, Any]:
    """Start ``schedulers`` real scheduler processes; time until nothing is soft-deleted."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    engine = create_engine(url)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "SWEEP_INTERVAL": "1s",
        "SWEEP_BATCH_SIZE": str(batch_size),
        "SWEEP_CONCURRENCY": str(concurrency),
        # No worker runs, so nothing makes progress: keep the re-drive out of the figures.
        "REDRIVE_AFTER": "1h",
        "PYTHONUNBUFFERED": "1",
    }
    tag = uuid.uuid4().hex[:6]
    started_wall = time.time()
    started = time.perf_counter()
    processes = [
        Process(f"scheduler-{i}", scheduler_argv(), env, directory / f"scheduler-{tag}-{i}.log")
        for i in range(schedulers)
    ]

    def logs() -> str:
        return "\n".join(p.tail() for p in processes)

    def none_left() -> bool:
        for p in processes:
            if p.popen.poll() is not None:
                raise AssertionError(f"{p.name} exited with {p.popen.returncode}\n{logs()}")
        with engine.connect() as conn:
            return (
                conn.scalar(
                    text(
                        "SELECT 1 FROM memberships WHERE state = 'soft-deleted'"
                        " AND purge_due_at IS NOT NULL ORDER BY purge_due_at LIMIT 1"
                    )
                )
                is None
            )

    try:
        deadline = max(120.0, n / 2000)
        while not none_left():
            if time.perf_counter() - started > deadline:
                raise AssertionError(f"the sweep did not finish in {deadline:.0f}s\n{logs()}")
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
        # The messages of the last batch go out right after its commit.
        wait_for(lambda: queued_ids(client)[1] >= n, 30, "the last follow-up messages", logs)
    finally:
        codes = [p.stop() for p in processes]
    assert codes == [0] * schedulers, f"schedulers exited with {codes}\n{logs()}"
    figures = verify_swept(engine, n)
    engine.dispose()
    messages, ids = queued_ids(client)
    client.close()
    assert ids == n, f"{ids} ids queued for data removal, not {n}"
    return {
        "schedulers": schedulers,
        "rows": n,
        "seconds": seconds,
        "per_second": n / seconds,
        "first_transition_after_seconds": figures["first_at"] - started_wall,
        "sweeping_seconds": figures["last_at"] - figures["first_at"],
        "messages_queued": messages,
        "ids_queued": ids,
    }


def queued_ids(client: redis.Redis) -> tuple[int, int]:
    """(messages, distinct membership ids in them) waiting on the removals queue."""
    encoder = get_encoder()
    messages = 0
    ids: set[str] = set()
    for raw in client.hvals(f"{NAMESPACE}:removals.msgs"):
        message = encoder.decode(raw)
        messages += 1
        (first,) = message["args"][:1]
        ids.update(first if isinstance(first, list) else [first])
    return messages, len(ids)


def verify_swept(engine: Engine, n: int) -> dict[str, float]:
    """Every row purge-pending with its version bumped once and exactly one audit row."""
    with engine.connect() as conn:
        states = {
            str(key): int(count)
            for key, count in conn.execute(
                text("SELECT state || ':' || version, count(*) FROM memberships GROUP BY 1")
            )
        }
        assert states == {f"purge-pending:{SEEDED_VERSION + 1}": n}, states
        audited, distinct, first_at, last_at = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT membership_id),"
                " extract(epoch FROM min(occurred_at)), extract(epoch FROM max(occurred_at))"
                " FROM audit_events WHERE action = 'expire_retention'"
                " AND from_state = 'soft-deleted' AND to_state = 'purge-pending'"
            )
        ).one()
        assert (audited, distinct) == (n, n), (audited, distinct)
    return {"first_at": float(first_at), "last_at": float(last_at)}


# ---- the run ---------------------------------------------------------------------------


def sweep_options(parser: argparse.ArgumentParser) -> None:
    """``--batch-size`` and ``--concurrency``: the sweep's settings, the service's defaults."""
    parser.add_argument(
        "--batch-size",
        type=int,
        default=Settings().sweep_batch_size,
        help="SWEEP_BATCH_SIZE (default: the service's, %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=Settings().sweep_concurrency,
        help="SWEEP_CONCURRENCY of each scheduler (default: the service's, %(default)s)",
    )


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], n=1_000_000)
    parser.add_argument(
        "--schedulers",
        type=int,
        default=2,
        help="also measure this many scheduler processes at once (1 to skip; default 2)",
    )
    sweep_options(parser)
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("bench.sweep measures PostgreSQL: give a postgresql:// --database-url")
    n, batch = args.n, args.batch_size
    contenders = ["plain_update", "plain_update_batched", "sweep"]
    if args.schedulers > 1:
        contenders.append(f"sweep_{args.schedulers}")
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        directory = Path(tmp)
        with (
            contextmanager(prepared_template)(args.database_url, directory, n) as template,
            redis_server(directory) as redis_url,
        ):
            for run in range(1, args.runs + 1):
                for contender in contenders:
                    with database_copy(template, "bench_sweep_run", n) as url:
                        if contender == "plain_update":
                            figures = plain_update(url, n)
                        elif contender == "plain_update_batched":
                            figures = plain_update_batched(url, n, batch)
                        else:
                            k = 1 if contender == "sweep" else args.schedulers
                            figures = sweep_by_schedulers(
                                url, redis_url, n, k, batch, args.concurrency, directory
                            )
                    results[contender].append(figures)
                    say(
                        f"run {run}/{args.runs} {contender}: {figures['rows']:,} rows in "
                        f"{figures['seconds']:.2f}s = {figures['per_second']:,.0f}/s"
                    )
    emit(summary(n, batch, args.concurrency, args.runs, results))


def summary(
    n: int, batch: int, concurrency: int, runs: int, results: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    def ratios(contender: str, against: str) -> float:
        return median(
            [
                a["per_second"] / b["per_second"]
                for a, b in zip(results[contender], results[against], strict=True)
            ]
        )

    out: dict[str, Any] = {
        "benchmark": "sweep",
        "n": n,
        "batch_size": batch,
        "concurrency": concurrency,
        "runs": runs,
    }
    for contender, figures in results.items():
        out[contender] = {
            key: median([f[key] for f in figures])
            for key in figures[0]
            if isinstance(figures[0][key], int | float)
        }
    sweeps = [c for c in results if c.startswith("sweep")]
    for contender in sweeps:
        out[contender]["ratio_to_plain_update"] = ratios(contender, "plain_update")
        out[contender]["ratio_to_plain_update_batched"] = ratios(contender, "plain_update_batched")
    sweep = out["sweep"]
    out["targets"] = {
        "per_second": RATE_TARGET,
        "ratio_to_plain_update": RATIO_TARGET,
        "met": sweep["per_second"] >= RATE_TARGET
        and sweep["ratio_to_plain_update"] >= RATIO_TARGET,
    }
    return out


if __name__ == "__main__":
    main()

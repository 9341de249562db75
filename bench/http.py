"""The API under load: leaving an organization and listing one's organizations, against
``GET /healthz`` on the same server in the same run.

The real processes: gunicorn started from the ``web`` line of the ``Procfile`` (its
workers as there), the ``dramatiq`` worker (so every accepted leave is carried out), a
private redis-server and a scratch PostgreSQL database seeded set-based with ``--n``
users, each at home in one organization and a B2B collaboration guest of two others that
let guests leave (so ``2 × n`` leaves can be made by distinct members). Tokens are HS256
JWTs minted here with the server's ``JWT_SECRET``. Rate limits stay on, with a budget no
caller reaches (``RATE_LIMIT``), so the limiter's Redis round trip is measured too.

Phase 1, closed loop: ``--concurrency`` clients send requests back to back for
``--seconds`` to one endpoint at a time — ``GET /healthz``, ``GET /v1/me/organizations``,
``POST /v1/me/organizations/{domain}/leave`` (no optional header), and the same leave
with an ``Idempotency-Key`` (two more transactions: the key is claimed, then the answer
stored) — giving each one's peak throughput and the ratios to ``/healthz`` (target: leave
at least 0.30). Phase 2, open loop: plain leaves sent at half of the leave peak for
``--open-seconds``, each timed from when it was due to be sent (so a slow server cannot
hide its queue), giving p50 and p99 (target: p99 under 50 ms). Any answer that is not
2xx is an error: the figures are printed, then the command fails. At the end, every
accepted leave must have been carried out by the worker.

    .venv/bin/python -m bench.http [--n 20000] [--runs 3] [--seconds 10] [--concurrency 16]
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shlex
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from sqlalchemy import create_engine, text

from tests.support.harness import (
    BIN,
    REPO,
    Process,
    arguments,
    emit,
    free_port,
    median,
    redis_server,
    say,
    scratch_database,
    wait_for,
    worker_argv,
)

GUEST_ORGANIZATIONS = 20
GUESTS_PER_USER = 2
RATE_LIMIT = "1000000 per minute"
LEAVE_TO_HEALTHZ_TARGET = 0.30
P99_TARGET_MS = 50.0


# ---- the processes ---------------------------------------------------------------------


def web_argv(port: int) -> list[str]:
    """The ``web`` line of the Procfile, with ``PORT`` given."""
    for line in (REPO / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "web":
            command = re.sub(r"\$\{PORT(:-\d+)?\}|\$PORT", str(port), command)
            argv = shlex.split(command)
            return [str(BIN / argv[0]), *argv[1:]]
    raise SystemExit("the Procfile has no web line")


# ---- the data ---------------------------------------------------------------------------

SEED = [
    # Guest organizations that let guests leave (with a privacy profile), and one home.
    """
    INSERT INTO organizations (id, domain, display_name, privacy_contact_email,
                               privacy_statement_url, external_user_leave_allowed, created_at)
    SELECT gen_random_uuid()::text, 'org-' || i || '.bench.example', 'Org ' || i,
           'privacy@org-' || i || '.bench.example',
           'https://org-' || i || '.bench.example/privacy', true, now()
    FROM generate_series(0, :orgs - 1) AS i
    UNION ALL
    SELECT gen_random_uuid()::text, 'home.bench.example', 'Home', NULL, NULL, true, now()
    """,
    """
    INSERT INTO users (id, email, display_name, home_organization_id, enabled, created_at)
    SELECT gen_random_uuid()::text, 'user-' || i || '@bench.example', 'User ' || i,
           (SELECT id FROM organizations WHERE domain = 'home.bench.example'), true, now()
    FROM generate_series(0, :n - 1) AS i
    """,
    """
    INSERT INTO memberships (id, user_id, organization_id, kind, email, display_name, created_at)
    SELECT gen_random_uuid()::text, id, home_organization_id, 'home', email, display_name, now()
    FROM users
    """,
    # User i is a guest of organizations i mod orgs, i+1 mod orgs, ...
    """
    WITH u AS (
        SELECT id, email, display_name, split_part(split_part(email, '@', 1), '-', 2)::int AS i
        FROM users
    ), o AS (
        SELECT id, split_part(split_part(domain, '.', 1), '-', 2)::int AS j
        FROM organizations WHERE domain LIKE 'org-%'
    )
    INSERT INTO memberships (id, user_id, organization_id, kind, email, display_name, created_at)
    SELECT gen_random_uuid()::text, u.id, o.id, 'b2b-collaboration', u.email, u.display_name,
           now()
    FROM u CROSS JOIN generate_series(0, :guests - 1) AS k
    JOIN o ON o.j = (u.i + k) % :orgs
    """,
    "ANALYZE",
]


def seed(database_url: str, n: int) -> list[tuple[str, str]]:
    """Seed the directory; the (user id, organization domain) of every guest membership,
    shuffled so concurrent leaves do not queue on the same rows."""
    engine = create_engine(database_url)
    params = {"n": n, "orgs": GUEST_ORGANIZATIONS, "guests": GUESTS_PER_USER}
    with engine.begin() as conn:
        for statement in SEED[:-1]:
            conn.execute(text(statement), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(SEED[-1]))
        pairs = conn.execute(
            text(
                "SELECT m.user_id, o.domain FROM memberships m "
                "JOIN organizations o ON o.id = m.organization_id "
                "WHERE m.kind = 'b2b-collaboration' ORDER BY md5(m.id)"
            )
        ).all()
    engine.dispose()
    return [(str(u), str(d)) for u, d in pairs]


def leave_states(database_url: str) -> Counter[str]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT state, count(*) FROM memberships WHERE kind <> 'home' GROUP BY state")
        ).all()
    engine.dispose()
    return Counter({str(row[0]): int(row[1]) for row in rows})


def token_for(user_id: str, secret: str) -> str:
    now = datetime.now(UTC)
    claims = {"sub": user_id, "iat": now, "exp": now + timedelta(hours=2)}
    return jwt.encode(claims, secret, algorithm="HS256")


# ---- the load -------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def unexpected(self) -> int:
        return sum(c for s, c in self.statuses.items() if not 200 <= s < 300) + sum(
            self.failures.values()
        )

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


async def _send(
    session: aiohttp.ClientSession, base: str, request: Request, started: float, tally: Tally
) -> None:
    try:
        async with session.request(
            request.method, base + request.path, headers=request.headers
        ) as response:
            await response.read()
            tally.statuses[response.status] += 1
    except (aiohttp.ClientError, TimeoutError) as error:
        tally.failures[type(error).__name__] += 1
        return
    tally.latencies_ms.append((time.perf_counter() - started) * 1000)


def _session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def closed_loop(
    base: str, next_request: Callable[[], Request], concurrency: int, seconds: float
) -> Tally:
    """``concurrency`` clients, each sending its next request as soon as the last one is
    answered, for ``seconds``."""
    tally = Tally()
    async with _session(concurrency) as session:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                await _send(session, base, next_request(), time.perf_counter(), tally)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        tally.seconds = time.perf_counter() - began
    return tally


async def open_loop(
    base: str, next_request: Callable[[], Request], rate: float, seconds: float
) -> Tally:
    """Requests sent at ``rate`` per second whatever the answers, each timed from when it
    was due (a late send counts against the server, not for it)."""
    tally = Tally()
    async with _session(0) as session:
        began = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            due = began + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(session, base, next_request(), due, tally)))
        await asyncio.gather(*tasks)
        tally.seconds = time.perf_counter() - began
    return tally


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# ---- one run ------------------------------------------------------------------------------


class Requests:
    """Who asks what: tokens round-robin for the list; every leave by a member not used
    before (running out is an error, not a silent repeat)."""

    def __init__(self, pairs: list[tuple[str, str]], secret: str) -> None:
        self.tokens = {user: token_for(user, secret) for user in dict.fromkeys(u for u, _ in pairs)}
        self.users = deque(self.tokens)
        self.leaves = deque(pairs)

    def healthz(self) -> Request:
        return Request("GET", "/healthz")

    def list_organizations(self) -> Request:
        user = self.users[0]
        self.users.rotate(-1)
        return Request("GET", "/v1/me/organizations", self._auth(user))

    def leave(self) -> Request:
        return self._leave({})

    def leave_idempotent(self) -> Request:
        return self._leave({"Idempotency-Key": str(uuid.uuid4())})

    def _leave(self, headers: dict[str, str]) -> Request:
        if not self.leaves:
            raise SystemExit("ran out of members to leave: raise --n")
        user, domain = self.leaves.popleft()
        return Request(
            "POST", f"/v1/me/organizations/{domain}/leave", {**self._auth(user), **headers}
        )

    def _auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


def one_run(base: str, requests: Requests, options: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    tallies: dict[str, Tally] = {}
    for name, make in [
        ("healthz", requests.healthz),
        ("list", requests.list_organizations),
        ("leave", requests.leave),
        ("leave_idempotent", requests.leave_idempotent),
    ]:
        say(f"  closed loop: {name}, {options.concurrency} clients, {options.seconds}s")
        tally = asyncio.run(closed_loop(base, make, options.concurrency, options.seconds))
        tallies[name] = tally
        figures[f"{name}_rps"] = round(tally.throughput, 1)
        figures[f"{name}_closed_p50_ms"] = round(percentile(tally.latencies_ms, 50), 2)
        say(f"    {tally.throughput:.0f} req/s, statuses {dict(tally.statuses)}")
    rate = max(1.0, tallies["leave"].throughput / 2)
    say(f"  open loop: leave at {rate:.0f}/s for {options.open_seconds}s")
    tally = asyncio.run(open_loop(base, requests.leave, rate, options.open_seconds))
    tallies["leave_open"] = tally
    figures.update(
        open_loop_rate=round(rate, 1),
        open_loop_sent=sum(tally.statuses.values()) + sum(tally.failures.values()),
        leave_p50_ms=round(percentile(tally.latencies_ms, 50), 2),
        leave_p99_ms=round(percentile(tally.latencies_ms, 99), 2),
        leave_to_healthz=round(figures["leave_rps"] / figures["healthz_rps"], 3),
        list_to_healthz=round(figures["list_rps"] / figures["healthz_rps"], 3),
        leave_idempotent_to_healthz=round(
            figures["leave_idempotent_rps"] / figures["healthz_rps"], 3
        ),
    )
    say(f"    p50 {figures['leave_p50_ms']} ms, p99 {figures['leave_p99_ms']} ms")
    figures["non_2xx"] = {
        name: {**{str(s): c for s, c in t.statuses.items() if not 200 <= s < 300}, **t.failures}
        for name, t in tallies.items()
        if t.unexpected
    }
    figures["requests"] = sum(len(t.latencies_ms) for t in tallies.values())
    figures["leaves_accepted"] = sum(
        t.statuses[202] for name, t in tallies.items() if name.startswith("leave")
    )
    return figures


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], n=20_000, runs=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="closed loop, per endpoint")
    parser.add_argument("--open-seconds", type=float, default=20.0, help="open loop, leaves")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    options = parser.parse_args()
    secret = "bench-" + uuid.uuid4().hex + uuid.uuid4().hex
    with (
        tempfile.TemporaryDirectory(prefix="bench-http-") as tmp,
        redis_server(Path(tmp)) as redis_url,
        scratch_database(options.database_url, Path(tmp), "bench_http") as database_url,
    ):
        directory = Path(tmp)
        say(f"seeding {options.n} users, {options.n * GUESTS_PER_USER} guest memberships")
        began = time.perf_counter()
        requests = Requests(seed(database_url, options.n), secret)
        seconds = time.perf_counter() - began
        say(f"  seeded and {len(requests.tokens)} tokens minted in {seconds:.1f}s")
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": secret,
            "SECRET_KEY": "bench-session-" + uuid.uuid4().hex,
            "RATE_LIMIT": RATE_LIMIT,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("TEST_DATABASE_URL", None)
        processes = [
            Process("web", web_argv(port), env, directory / "web.log"),
            Process("worker", worker_argv(), env, directory / "worker.log"),
        ]
        base = f"http://127.0.0.1:{port}"
        results: list[dict[str, Any]] = []
        try:
            logs = lambda: "\n".join(p.tail() for p in processes)  # noqa: E731
            wait_for(lambda: answers(base + "/readyz"), 60, "the web to be ready", logs)
            asyncio.run(closed_loop(base, requests.healthz, 4, 1.0))  # warm up
            for run in range(options.runs):
                say(f"run {run + 1}/{options.runs}")
                results.append(one_run(base, requests, options))
            states = wait_for(
                lambda: (s := leave_states(database_url))["leave-pending"] == 0 and s,
                120,
                "the worker to carry out every leave",
                logs,
            )
            carried_out = states["soft-deleted"]
        finally:
            for process in processes:
                process.stop()
    result = _summary(options, results, carried_out)
    emit(result)
    if result["non_2xx_total"]:
        say(f"unexpected answers: {[r['non_2xx'] for r in results]}")
        sys.exit(1)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _summary(options: Any, results: list[dict[str, Any]], soft_deleted: int) -> dict[str, Any]:
    def med(key: str) -> float:
        return round(median([r[key] for r in results]), 3)

    leave_to_healthz = med("leave_to_healthz")
    p99 = med("leave_p99_ms")
    return {
        "benchmark": "http",
        "n": options.n,
        "runs": options.runs,
        "concurrency": options.concurrency,
        "closed_loop_seconds": options.seconds,
        "open_loop_seconds": options.open_seconds,
        "web": " ".join(web_argv(0)[1:]).replace("127.0.0.1:0", "127.0.0.1:$PORT"),
        "rate_limit": RATE_LIMIT,
        "healthz_rps": med("healthz_rps"),
        "list_rps": med("list_rps"),
        "leave_rps": med("leave_rps"),
        "leave_to_healthz": leave_to_healthz,
        "list_to_healthz": med("list_to_healthz"),
        "leave_idempotent_rps": med("leave_idempotent_rps"),
        "leave_idempotent_to_healthz": med("leave_idempotent_to_healthz"),
        "open_loop_rate": med("open_loop_rate"),
        "leave_p50_ms": med("leave_p50_ms"),
        "leave_p99_ms": p99,
        "leaves_accepted": sum(r["leaves_accepted"] for r in results),
        "leaves_carried_out": soft_deleted,
        "non_2xx_total": sum(sum(sum(v.values()) for v in r["non_2xx"].values()) for r in results),
        "targets": {"leave_to_healthz_min": LEAVE_TO_HEALTHZ_TARGET, "p99_ms_max": P99_TARGET_MS},
        "met": {
            "leave_to_healthz": leave_to_healthz >= LEAVE_TO_HEALTHZ_TARGET,
            "p99": p99 < P99_TARGET_MS,
        },
        "per_run": results,
    }


if __name__ == "__main__":
    main()

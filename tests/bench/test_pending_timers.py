"""bench/pending_timers.py runs end to end on PostgreSQL with a tiny N: our design puts
nothing on the broker while the naive one holds every purge in Redis, and its JSON line
adds up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.harness import REPO

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL (PostgreSQL)"),
]

N = 2000


def test_pending_purges_cost_no_broker_messages_in_our_design_and_n_in_the_naive_one() -> None:
    # Given N soft-deleted memberships not yet due, When the benchmark runs once, briefly
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.pending_timers", "--n", str(N), "--runs", "1"]
        + ["--sweep-seconds", "2", "--settle-seconds", "3"]
        + ["--database-url", TEST_DATABASE_URL],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    ours, naive, run = figures["ours"], figures["naive"], figures["per_run"][0]
    # Then our design left no message on the broker, swept, and purged nothing early
    assert figures["n"] == N
    assert ours["broker_messages"] == 0
    assert ours["scheduler_ticks"] >= 1
    assert run["ours"]["memberships"] == {"soft_deleted": N, "due": 0}
    assert run["ours"]["memberships_after"] == {"soft_deleted": N, "due": 0}
    # And the naive design held one delayed message per purge, some of them in the worker
    assert naive["broker_messages"] == N
    assert run["naive"]["broker_messages"]["by_queue"]["removals"]["delayed"] == N
    assert 0 < naive["delayed_held_by_worker"] <= N
    assert naive["redis_used_memory_growth"] > ours["redis_used_memory_growth"]
    # And the differences are those of the two sides
    differences = figures["differences"]
    assert differences["broker_messages"] == N
    assert differences["redis_used_memory_bytes"] == (
        naive["redis_used_memory_growth"] - ours["redis_used_memory_growth"]
    )
    assert differences["worker_rss_growth_kib"] == (
        naive["worker_rss_growth_kib"] - ours["worker_rss_growth_kib"]
    )
    assert ours["worker_rss_kib_start"] > 0 and naive["worker_rss_kib_peak"] > 0

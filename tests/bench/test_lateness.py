"""bench/lateness.py runs end to end on PostgreSQL with a tiny N and a short window: the
real scheduler ends every retention period, never early, and the JSON line adds up."""

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

N = 200


def test_the_lateness_benchmark_times_every_transition_against_its_due_time():
    # Given N memberships due over three seconds, When the benchmark runs once with a
    # one-second sweep interval
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.lateness", "--n", str(N), "--runs", "1"]
        + ["--window", "3", "--interval", "1", "--lead", "3"]
        + ["--database-url", TEST_DATABASE_URL],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    # Then every membership was moved once, none before its due time
    assert figures["transitions"] == N and figures["sweep_interval_seconds"] == 1
    assert 0 <= figures["earliest_seconds"] <= figures["p50_seconds"]
    assert figures["p50_seconds"] <= figures["p99_seconds"] <= figures["max_seconds"]
    # And the verdict is the p99 against twice the interval
    assert figures["target"]["p99_at_most_seconds"] == 2
    assert figures["target"]["met"] == (figures["p99_seconds"] <= 2)

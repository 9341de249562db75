"""bench/http.py runs end to end on PostgreSQL for a few seconds: gunicorn from the
Procfile answers every request with a 2xx, the worker carries out every accepted leave,
and the JSON line adds up."""

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


def test_the_http_benchmark_measures_every_endpoint_and_every_leave_is_carried_out() -> None:
    # Given a small directory, When the benchmark runs once, briefly
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.http", "--n", "1500", "--runs", "1"]
        + ["--seconds", "1", "--open-seconds", "2", "--concurrency", "4"]
        + ["--database-url", TEST_DATABASE_URL],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    # Then every answer was a 2xx (the benchmark fails otherwise)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["non_2xx_total"] == 0
    # And every endpoint was measured, the ratios are those of the throughputs
    run = figures["per_run"][0]
    for name in ("healthz", "list", "leave", "leave_idempotent"):
        assert figures[f"{name}_rps"] > 0
    assert run["leave_to_healthz"] == pytest.approx(run["leave_rps"] / run["healthz_rps"], 0.01)
    assert figures["open_loop_rate"] == pytest.approx(run["leave_rps"] / 2, abs=0.2)
    assert 0 < figures["leave_p50_ms"] <= figures["leave_p99_ms"]
    # And every leave accepted was carried out by the worker
    assert figures["leaves_accepted"] > 0
    assert figures["leaves_carried_out"] == figures["leaves_accepted"]
    assert figures["met"]["p99"] == (figures["leave_p99_ms"] < 50)

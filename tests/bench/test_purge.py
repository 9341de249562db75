"""bench/purge.py runs end to end on PostgreSQL with a tiny N: the real worker and
scheduler purge every membership, and its JSON line adds up."""

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

N = 150


def test_the_purge_benchmark_purges_every_membership_and_reports_consistent_figures() -> None:
    # Given N due memberships, When the benchmark runs once
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.purge", "--n", str(N), "--runs", "1"]
        + ["--database-url", TEST_DATABASE_URL],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    # Then every membership was purged, each finish audited once, no data or name left
    assert figures["n"] == figures["purged"] == N
    assert figures["data_rows"] == N * 23 == figures["plain_delete_rows"]
    checks = figures["checks"]
    assert checks["expire_retention_audited"] == checks["finish_removal_audited"] == N
    assert checks["finished_exactly_once"] == N
    assert checks["data_rows_left"] == checks["denied"] == checks["personal_fields_left"] == 0
    assert checks["removed_rows_recorded"] == N * 23
    # And the rates and their ratio are real measurements of this run
    assert figures["memberships_per_second"] > 0
    assert figures["plain_delete_rows_per_second"] > 0
    assert figures["ratio_to_plain_delete"] > 0
    expected_ratio = (
        figures["pipeline_data_rows_per_second"] / figures["plain_delete_rows_per_second"]
    )
    assert figures["ratio_to_plain_delete"] == pytest.approx(expected_ratio, rel=0.01)

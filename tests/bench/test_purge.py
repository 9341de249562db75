"""bench/purge.py runs end to end on PostgreSQL with a tiny N: the real worker and
scheduler purge every membership, and its JSON line adds up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

N = 150


def test_the_purge_benchmark_purges_every_membership_and_reports_consistent_figures(
    run_benchmark: Callable[..., dict[str, Any]],
) -> None:
    # Given N due memberships, When the benchmark runs once
    figures = run_benchmark("purge", "--n", str(N), timeout=180)
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
    assert figures["ratio_to_plain_delete"] == pytest.approx(
        expected_ratio, rel=0.01, abs=0.001
    )  # printed to 3 places

"""bench/lateness.py runs end to end on PostgreSQL with a tiny N and a short window: the
real scheduler ends every retention period, never early, and the JSON line adds up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

N = 200


def test_the_lateness_benchmark_times_every_transition_against_its_due_time(
    run_benchmark: Callable[..., dict[str, Any]],
) -> None:
    # Given N memberships due over three seconds, When the benchmark runs once with a
    # one-second sweep interval
    figures = run_benchmark(
        "lateness", "--n", str(N), "--window", "3", "--interval", "1", "--lead", "3", timeout=120
    )
    # Then every membership was moved once, none before its due time
    assert figures["transitions"] == N and figures["sweep_interval_seconds"] == 1
    assert 0 <= figures["earliest_seconds"] <= figures["p50_seconds"]
    assert figures["p50_seconds"] <= figures["p99_seconds"] <= figures["max_seconds"]
    # And the verdict is the p99 against twice the interval
    assert figures["target"]["p99_at_most_seconds"] == 2
    assert figures["target"]["met"] == (figures["p99_seconds"] <= 2)

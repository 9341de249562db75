"""bench/webhooks.py runs on PostgreSQL with a tiny size: the sweep moves every due
membership with and without the events outbox, one event each (or none), and the JSON
line adds up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

N = 3000


def test_the_webhooks_benchmark_sweeps_with_and_without_events(
    run_benchmark: Callable[..., dict[str, Any]],
) -> None:
    # Given N due memberships, When the benchmark runs once in batches of 500
    figures = run_benchmark("webhooks", "--n", str(N), "--batch-size", "500", "--deliveries", "40")
    # Then it reports both sweeps, each of all N rows, in several batches
    assert (figures["benchmark"], figures["memberships"], figures["runs"]) == ("webhooks", N, 1)
    assert figures["endpoints_per_organization"] == 3
    for name in ("with_events", "without_events"):
        assert figures[name]["rows"] == N and figures[name]["per_second"] > 0
        assert figures[name]["batches"] >= N // 500
    # And one event per membership with the outbox on, none with it off
    assert (figures["with_events"]["events"], figures["without_events"]["events"]) == (N, 0)
    assert figures["events_per_second"] == figures["with_events"]["events_per_second"] > 0
    # And the ratio is that of the rates, and the verdict follows it
    ratio = figures["with_events"]["per_second"] / figures["without_events"]["per_second"]
    assert figures["ratio_with_to_without"] == pytest.approx(ratio)
    assert figures["cost"] == pytest.approx(1 - ratio)
    assert figures["target"]["met"] == (ratio >= 0.70)
    # And 40 webhook deliveries were timed to a local receiver
    assert figures["deliveries"] == 40 and figures["deliveries_per_second"] > 0

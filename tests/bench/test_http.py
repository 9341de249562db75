"""bench/http.py runs end to end on PostgreSQL for a few seconds: gunicorn from the
Procfile answers every request with a 2xx, the worker carries out every accepted leave,
and the JSON line adds up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def test_the_http_benchmark_measures_every_endpoint_and_every_leave_is_carried_out(
    run_benchmark: Callable[..., dict[str, Any]],
) -> None:
    # Given a small directory, When the benchmark runs once, briefly
    # Then every answer was a 2xx (the benchmark fails otherwise)
    figures = run_benchmark(
        "http",
        "--n",
        "1500",
        "--seconds",
        "1",
        "--open-seconds",
        "2",
        "--concurrency",
        "4",
        timeout=180,
    )
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

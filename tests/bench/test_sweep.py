"""bench/sweep.py runs end to end on PostgreSQL with a tiny N: the real schedulers move
every due membership once, each with its audit row and its removal queued, and the JSON
line adds up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

N = 3000


def test_the_sweep_benchmark_moves_every_due_membership_and_compares_with_a_plain_update(
    run_benchmark: Callable[..., dict[str, Any]],
) -> None:
    # Given N due memberships, When the benchmark runs once with one and two schedulers
    # Then it succeeded (it checks every row, audit row and queued id itself)
    figures = run_benchmark(
        "sweep", "--n", str(N), "--schedulers", "2", "--batch-size", "500", timeout=180
    )
    assert (figures["n"], figures["batch_size"], figures["runs"]) == (N, 500, 1)
    # And every contender moved all N rows, the sweeps in several batches
    for name in ("plain_update", "plain_update_batched", "sweep", "sweep_2"):
        assert figures[name]["rows"] == N and figures[name]["per_second"] > 0
    assert figures["plain_update_batched"]["batches"] >= N // 500
    # And every id went to the removal queue exactly once, packed into messages
    for name in ("sweep", "sweep_2"):
        assert figures[name]["ids_queued"] == N
        assert 0 < figures[name]["messages_queued"] <= N
        assert figures[name]["first_transition_after_seconds"] < figures[name]["seconds"]
    assert (figures["sweep"]["schedulers"], figures["sweep_2"]["schedulers"]) == (1, 2)
    # And the ratios are those of the rates, and the verdict follows the figures
    sweep, plain = figures["sweep"], figures["plain_update"]
    assert sweep["ratio_to_plain_update"] == pytest.approx(
        sweep["per_second"] / plain["per_second"]
    )
    assert sweep["ratio_to_plain_update_batched"] > 0
    assert figures["targets"]["met"] == (
        sweep["per_second"] >= 20_000 and sweep["ratio_to_plain_update"] >= 0.25
    )

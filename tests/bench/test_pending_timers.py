"""bench/pending_timers.py runs end to end on PostgreSQL with a tiny N: our design puts
nothing on the broker while the naive one holds every purge in Redis, and its JSON line
adds up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

N = 2000


def test_pending_purges_cost_no_broker_messages_in_our_design_and_n_in_the_naive_one(
    run_benchmark: Callable[..., dict[str, Any]],
) -> None:
    # Given N soft-deleted memberships not yet due, When the benchmark runs once, briefly
    figures = run_benchmark(
        "pending_timers",
        "--n",
        str(N),
        "--sweep-seconds",
        "2",
        "--settle-seconds",
        "3",
        timeout=180,
    )
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

"""The benchmarks' smoke tests: each runs one benchmark as the README does
(``python -m bench.<name>``), at a tiny size, on PostgreSQL, and reads its JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import REPO

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()


HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every benchmark starts real processes on PostgreSQL. (The hook sees the whole
    session's items, so it marks only those in this directory.)"""
    for item in items:
        if not item.path.is_relative_to(HERE):
            continue
        item.add_marker(pytest.mark.postgres)
        item.add_marker(pytest.mark.slow)
        item.add_marker(
            pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL (PostgreSQL)")
        )


@pytest.fixture
def run_benchmark() -> Callable[..., dict[str, Any]]:
    """Run ``bench.<name>`` with ``args`` and ``--runs 1`` on a scratch database on
    ``TEST_DATABASE_URL``; fail with its stderr unless it exits 0; return its JSON line."""

    def run(name: str, *args: str, timeout: float = 180) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
        result = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", "--runs", "1", *args]
            + ["--database-url", TEST_DATABASE_URL],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return figures

    return run

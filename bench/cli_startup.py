"""CLI start-up: how long ``lifecycle --help`` and ``lifecycle token`` take, and why.

Each command is started ``--runs`` times as a fresh process (the way a person or a
script runs it) and timed from start to exit. Beside them, two references on the same
machine at the same moment: a bare ``python -c pass`` (the interpreter's own start,
the floor), and a ``python -c`` that imports what every CLI call used to load before
the commands imported their modules on use (SQLAlchemy's ORM, the models, the web
app, the operations report). Shared machines are noisy, so the figures are medians
and ratios to the bare interpreter, taken in interleaved rounds.

``token`` runs against a scratch SQLite database with the demo seeded
(``lifecycle db upgrade``, ``lifecycle seed-demo``), as after ``make run``.

Target: a median under 0.5 s for both commands. Besides wall-clock time each command's
CPU time (user + system) is reported: on a shared machine it moves far less with the
load than the wall-clock time does.

    .venv/bin/python -m bench.cli_startup [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.harness import BIN, REPO, emit, median, say

TARGET_SECONDS = 0.5
EAGER_IMPORTS = "import sqlalchemy.orm, store.models, web, memberships.operations, cli"


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock seconds, and the CPU seconds (user + system) the process used: on a
    busy machine the second says more about the command than the first."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=REPO, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds (default 15)")
    options = parser.parse_args()
    lifecycle = str(BIN / "lifecycle")
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as scratch:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{Path(scratch) / 'lifecycle.db'}",
            "JWT_SECRET": "bench-secret-long-enough-for-hs256-signing",
        }
        say("seeding a scratch SQLite database with the demo")
        for argv in ([lifecycle, "db", "upgrade"], [lifecycle, "seed-demo"]):
            subprocess.run(argv, env=env, cwd=REPO, check=True, capture_output=True)
        commands = {
            "python": [sys.executable, "-c", "pass"],
            "eager_imports": [sys.executable, "-c", EAGER_IMPORTS],
            "help": [lifecycle, "--help"],
            "token": [lifecycle, "token", "--user", "alice@woodgrove.example"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for round_number in range(options.runs):
            for name, argv in commands.items():
                wall, used = _time(argv, env)
                times[name].append(wall)
                cpu[name].append(used)
            say(f"round {round_number + 1}/{options.runs}")
    medians = {name: round(median(values), 4) for name, values in times.items()}
    cpu_medians = {name: round(median(values), 4) for name, values in cpu.items()}
    floor = medians["python"]
    ratios = {name: round(value / floor, 2) for name, value in medians.items()}
    for name in commands:
        say(
            f"{name:>14}: median {medians[name]:.3f} s ({cpu_medians[name]:.3f} s CPU), "
            f"{ratios[name]:.1f}× the bare interpreter"
        )
    emit(
        {
            "runs": options.runs,
            "median_seconds": medians,
            "median_cpu_seconds": cpu_medians,
            "ratio_to_python": ratios,
            "eager_to_help_ratio": round(medians["eager_imports"] / medians["help"], 2),
            "target": {
                "median_at_most_seconds": TARGET_SECONDS,
                "met": medians["help"] < TARGET_SECONDS and medians["token"] < TARGET_SECONDS,
            },
        }
    )


if __name__ == "__main__":
    main()

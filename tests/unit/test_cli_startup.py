"""What a CLI call loads before it does anything: ``lifecycle --help`` and ``lifecycle
token`` must not pay for SQLAlchemy, Flask or the workers (bench/cli_startup.py times it;
this checks the cause, which does not depend on how busy the machine is)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings import PROJECT_ROOT

HEAVY = ("sqlalchemy", "flask", "apiflask", "redis", "dramatiq", "web", "store.models")

PROBE = """
import json, sys
from cli import main
sys.argv = ["lifecycle", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in HEAVY if m in sys.modules)), file=sys.stderr)
"""


def loaded_by(args: list[str], env: dict[str, str], modules: tuple[str, ...] = HEAVY) -> list[str]:
    code = f"HEAVY = {modules!r}\n" + PROBE
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(result.stderr.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_help_loads_no_database_web_or_broker_library():
    assert loaded_by(["--help"], {}) == []


@pytest.mark.parametrize("sub", ["db", "org", "timers", "dead-letters", "diagram"])
def test_the_help_of_each_command_loads_none_either(sub):
    assert loaded_by([sub, "--help"], {}) == []


def test_token_on_sqlite_loads_no_database_web_or_broker_library(tmp_path: Path):
    # Given a SQLite database with a user (made in another process)
    url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    env = {"DATABASE_URL": url, "JWT_SECRET": "x" * 40}
    lifecycle = str(Path(sys.executable).parent / "lifecycle")
    for args in (["db", "upgrade"], ["user", "create", "--email", "t@example.com", "--name", "T"]):
        subprocess.run(
            [lifecycle, *args], env={**os.environ, **env}, check=True, capture_output=True
        )
    # When a token is asked for, Then it is signed without loading any of them, nor
    # PyJWT and the cryptography library it loads (the standard library signs HS256)
    assert loaded_by(["token", "--user", "t@example.com"], env) == []
    assert loaded_by(["token", "--user", "t@example.com"], env, ("jwt", "cryptography")) == []

"""The installed ``lifecycle`` console script, run as a user runs it: a new process,
configured only by its environment (``DATABASE_URL``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LIFECYCLE = Path(sys.executable).parent / "lifecycle"


def _lifecycle(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LIFECYCLE), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_a_user_builds_and_reads_a_directory_from_the_command_line(tmp_path: Path) -> None:
    # Given a fresh SQLite file named by DATABASE_URL
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'lifecycle.db'}"}
    # When the user upgrades the schema and seeds the demo
    upgraded = _lifecycle(env, "db", "upgrade")
    seeded = _lifecycle(env, "seed-demo")
    assert upgraded.returncode == 0, upgraded.stderr
    assert seeded.returncode == 0, seeded.stderr
    # Then a membership can be read as JSON, with its grants, data and audit trail
    shown = _lifecycle(
        env, "membership", "show", "--org", "contoso.example", "--user", "alice@woodgrove.example"
    )
    assert shown.returncode == 0, shown.stderr
    membership = json.loads(shown.stdout)
    assert membership["membership"]["kind"] == "b2b-collaboration"
    assert membership["membership"]["state"] == "active"
    assert sorted(g["name"] for g in membership["membership"]["grants"]) == [
        "Expenses.Reader",
        "Sales",
    ]
    assert membership["memberDataRows"] == 25
    assert [e["action"] for e in membership["audit"]][0] == "add_guest"


def test_bad_input_on_the_command_line_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    # Given a database without its schema, and commands with a bad kind, a bad setting or
    # a file they cannot write
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'lifecycle.db'}"}
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    cases = [
        (env, ("guest", "add", "--org", "a.example", "--user", "b@x.example", "--kind", "x"), 2),
        ({**env, "REMOVAL_WINDOW": "a while"}, ("diagram",), 2),
        (
            {"DATABASE_URL": "foo://bar"},
            ("org", "create", "--domain", "a.example", "--name", "A"),
            2,
        ),
        ({**env, "RATE_LIMIT": "1 per hourz"}, ("timers",), 2),
        (env, ("diagram", "--format", "md", "-o", str(blocker / "lifecycle.md")), 1),
    ]
    for case_env, args, exit_code in cases:
        # When each runs
        result = _lifecycle(case_env, *args)
        # Then it fails with its exit status and one line on stderr, nothing on stdout
        assert result.returncode == exit_code, (args, result.stderr)
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error: ")

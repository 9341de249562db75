"""``lifecycle --version`` and ``lifecycle db current|history|downgrade|revision``, as a
developer or operator runs them (the real command, a SQLite file of its own)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from store.migrate import MIGRATIONS, next_revision_id

LIFECYCLE = Path(sys.executable).parent / "lifecycle"


def lifecycle(database: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    result = subprocess.run(
        [str(LIFECYCLE), *args], env=env, capture_output=True, text=True, timeout=180
    )
    assert (result.returncode == 0) is ok, result.stderr
    return result


def heads() -> list[str]:
    """The revisions in the order they apply, base first (a merge may chain them out of
    the order of their numbers: 0005 comes after 0007)."""
    parent: dict[str | None, str] = {}
    for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"):
        text = path.read_text()
        revision = re.search(r'^revision = "([^"]+)"', text, re.M)
        down = re.search(r'^down_revision = "([^"]+)"', text, re.M)
        assert revision is not None, path
        parent[down.group(1) if down else None] = revision.group(1)
    chain, current = [], None
    while current in parent:
        current = parent[current]
        chain.append(current)
    return chain


def test_version_is_the_installed_distributions(tmp_path):
    from importlib.metadata import version

    out = lifecycle(tmp_path / "x.db", "--version").stdout.strip()
    assert out == f"lifecycle, version {version('membership-lifecycle')}"


def test_current_history_downgrade_and_upgrade_again(tmp_path):
    db = tmp_path / "lifecycle.db"
    head = heads()[-1]
    # An empty database has no revision
    assert lifecycle(db, "db", "current").stdout.strip() == "none"
    lifecycle(db, "db", "upgrade")
    assert lifecycle(db, "db", "current").stdout.strip() == head
    # history lists every revision, newest first, and marks the current one
    history = lifecycle(db, "db", "history").stdout.splitlines()
    assert len(history) == len(heads())
    assert "(head)" in history[0] and "(current)" in history[0]
    # one step down, then up again
    assert "database at revision" in lifecycle(db, "db", "downgrade", "-1").stderr
    assert lifecycle(db, "db", "current").stdout.strip() == heads()[-2]
    lifecycle(db, "db", "upgrade")
    assert lifecycle(db, "db", "current").stdout.strip() == head
    # An unknown revision is one readable line and a non-zero exit
    refused = lifecycle(db, "db", "downgrade", "nope", ok=False)
    assert refused.returncode == 2 and "Can't locate revision" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_autogenerate_finds_the_models_and_the_migrations_in_step(tmp_path):
    # Given a database at head
    db = tmp_path / "lifecycle.db"
    lifecycle(db, "db", "upgrade")
    expected = next_revision_id(f"sqlite:///{db}")
    # When a developer autogenerates a revision
    out = lifecycle(db, "db", "revision", "-m", "probe", "--autogenerate").stdout
    path = Path(out.strip().splitlines()[-1])
    try:
        # Then it is the next numbered file, and it finds nothing to change
        assert path.name == f"{expected}_probe.py"
        text = path.read_text()
        assert "op." not in text.split("def upgrade")[1]
    finally:
        path.unlink()

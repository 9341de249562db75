"""``lifecycle token`` finds the user in the SQLite file of a relative ``DATABASE_URL``
(the default, ``sqlite:///var/lifecycle.db``, as ``make run`` leaves it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cli.tokens import user_id_of


def test_a_relative_sqlite_path_is_read_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "var").mkdir()
    with sqlite3.connect(tmp_path / "var" / "lifecycle.db") as db:
        db.execute("CREATE TABLE users (id TEXT, email TEXT)")
        db.execute("INSERT INTO users VALUES ('u-1', 'admin@contoso.example')")
    monkeypatch.chdir(tmp_path)
    assert user_id_of("sqlite:///var/lifecycle.db", "Admin@Contoso.example") == "u-1"

"""``lifecycle token`` finds its user in the development database, by its relative URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cli.tokens import user_id_of


def test_a_relative_sqlite_url_finds_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Given the development database at its default, relative place (var/lifecycle.db)
    (tmp_path / "var").mkdir()
    with sqlite3.connect(tmp_path / "var" / "lifecycle.db") as db:
        db.execute("CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT)")
        db.execute("INSERT INTO users VALUES ('u-1', 'alice@contoso.example')")
    monkeypatch.chdir(tmp_path)

    # When the token command looks a user up by e-mail and by id, the URL as make run gives it
    found_by_email = user_id_of("sqlite:///var/lifecycle.db", "Alice@Contoso.example")
    found_by_id = user_id_of("sqlite:///var/lifecycle.db", "u-1")

    # Then both find her, and a name nobody has finds no one
    assert (found_by_email, found_by_id) == ("u-1", "u-1")
    assert user_id_of("sqlite:///var/lifecycle.db", "nobody@example.com") is None

"""``lifecycle token`` finds its user in the development database, by its relative URL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from cli.tokens import user_id_of
from memberships.tokens import development_token


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


def test_a_development_token_is_the_hs256_token_pyjwt_makes_and_verifies():
    # Given a user, a secret, an issuer and an audience, at a fixed moment
    now = datetime(2026, 12, 1, 9, 30, 15, 750000, tzinfo=UTC)
    secret = "a-development-secret-of-40-bytes-length!"
    # When a development token is signed (with the standard library alone)
    token = development_token(
        "u-1",
        secret,
        timedelta(hours=1),
        issuer="https://idp.example",
        audience="lifecycle",
        now=now,
    )
    # Then it is exactly the token PyJWT would sign, and PyJWT verifies it
    claims = {
        "sub": "u-1",
        "iat": now,
        "exp": now + timedelta(hours=1),
        "iss": "https://idp.example",
        "aud": "lifecycle",
    }
    assert token == jwt.encode(claims, secret, algorithm="HS256")
    decoded = jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        audience="lifecycle",
        issuer="https://idp.example",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert decoded == {
        "sub": "u-1",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 3600,
        "iss": "https://idp.example",
        "aud": "lifecycle",
    }
    # and a token signed with another secret is refused
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, secret.upper(), algorithms=["HS256"], audience="lifecycle")

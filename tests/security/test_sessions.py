"""Page sessions: signed with SECRET_KEY alone, and ended server-side by sign-out."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from api_helpers import SECRET, SESSION_SECRET
from flask import Flask
from pages_helpers import Visitor, csrf_token_of

from settings import Settings, SettingsError
from web import create_app

ADMIN_PAGE = "/admin/open.example/memberships"
COOKIE = "lifecycle_session"
GUNICORN = Path(sys.executable).parent / "gunicorn"


def _forged_cookie(key: str, user_id: str) -> str:
    """A session cookie for ``user_id`` signed with ``key``, as an attacker would make it."""
    forger = Flask("forger")
    forger.secret_key = key
    serializer = forger.session_interface.get_signing_serializer(forger)  # type: ignore[attr-defined]
    assert serializer is not None
    return str(serializer.dumps({"user_id": user_id, "signed_in_until": 4102444800}))


def _web_process(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The Procfile's web command, checking its configuration only (``--check-config``
    loads the app and exits; the settings check runs before, as on a real start)."""
    return subprocess.run(
        [str(GUNICORN), "-c", "python:web.gunicorn_conf", "--check-config", "web:create_app()"],
        env={
            "PATH": os.environ["PATH"],
            "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_the_web_process_refuses_to_start_without_secret_key(tmp_path):
    # Given production settings: tokens from a JWKS, JWT_SECRET unset, SECRET_KEY unset
    result = _web_process({"JWKS_URL": "https://idp.example/keys"}, tmp_path)
    # Then gunicorn stops at once: exit 2 and one line naming the variable
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: SECRET_KEY is not set")


def test_the_web_process_starts_with_a_secret_key_of_its_own(tmp_path):
    result = _web_process(
        {"JWKS_URL": "https://idp.example/keys", "SECRET_KEY": SESSION_SECRET}, tmp_path
    )
    assert result.returncode == 0, result.stderr


def test_jwt_secret_alone_is_no_session_key():
    # Given JWT_SECRET but no SECRET_KEY in the environment
    settings = Settings.from_env({"JWT_SECRET": SECRET})
    # Then the session key is not borrowed from it, and the app refuses to start
    assert settings.secret_key is None
    with pytest.raises(SettingsError, match="SECRET_KEY is not set"):
        create_app(settings, redis_client=object())


def test_secret_key_may_not_be_jwt_secret():
    settings = Settings(jwt_secret=SECRET, secret_key=SECRET)
    with pytest.raises(SettingsError, match="SECRET_KEY must not be JWT_SECRET"):
        create_app(settings, redis_client=object())


def test_a_short_secret_key_is_refused_outside_development():
    with pytest.raises(SettingsError, match="SECRET_KEY is 5 characters long"):
        create_app(Settings(jwks_url="https://idp.example/keys", secret_key="short"))


def test_the_api_alone_needs_no_secret_key():
    # An app without pages has no cookie to sign.
    create_app(Settings(jwt_secret=SECRET), redis_client=object(), pages=False)


def test_development_sign_in_without_secret_key_uses_a_random_key(make_app, world):
    # Given two development apps without SECRET_KEY
    first = make_app(pages=True, dev_sign_in=True, secret_key=None)
    second = make_app(pages=True, dev_sign_in=True, secret_key=None)
    # Then neither signs with a constant: their keys differ from each other and JWT_SECRET
    assert first.secret_key != second.secret_key
    assert SECRET not in (first.secret_key, second.secret_key)


@pytest.mark.parametrize("key", ["dev-only-not-secret", SECRET])
def test_a_cookie_forged_with_a_known_key_opens_no_admin_page(make_app, world, key):
    # Given the pages in production (tokens only) and a cookie signed with the old constant
    # or with JWT_SECRET, naming an admin
    client = make_app(pages=True).test_client()
    client.set_cookie(COOKIE, _forged_cookie(key, world.users["gadmin"]))
    # When the admin page is opened with it
    response = client.get(ADMIN_PAGE)
    # Then the visitor is sent to sign in: the cookie is not trusted
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]


def test_a_cookie_copied_before_sign_out_opens_nothing_after_it(
    make_app: Callable[..., Any], world
):
    # Given an admin signed in, and a copy of her session cookie
    visitor = Visitor(make_app(pages=True, dev_sign_in=True).test_client())
    visitor.sign_in(world.users["gadmin"])
    assert visitor.get(ADMIN_PAGE).status_code == 200
    copied = visitor.client.get_cookie(COOKIE)
    assert copied is not None
    # When she signs out
    page = visitor.get(ADMIN_PAGE)
    signed_out = visitor.client.post("/sign-out", data={"csrf_token": csrf_token_of(page)})
    assert signed_out.status_code == 303
    # Then the copy, replayed, opens nothing: the session ended on the server
    attacker = make_app(pages=True, dev_sign_in=True).test_client()
    attacker.set_cookie(COOKIE, copied.value)
    replayed = attacker.get(ADMIN_PAGE)
    assert replayed.status_code == 302
    assert "/sign-in" in replayed.headers["Location"]


def test_signing_in_again_after_sign_out_works(make_app, world):
    visitor = Visitor(make_app(pages=True, dev_sign_in=True).test_client())
    visitor.sign_in(world.users["gadmin"])
    page = visitor.get(ADMIN_PAGE)
    visitor.client.post("/sign-out", data={"csrf_token": csrf_token_of(page)})
    visitor.sign_in(world.users["gadmin"])
    assert visitor.get(ADMIN_PAGE).status_code == 200


def test_replaying_an_old_cookie_at_sign_out_ends_no_newer_session(make_app, world):
    # Given a session that ended, and a newer one of the same admin
    app = make_app(pages=True, dev_sign_in=True)
    old = Visitor(app.test_client())
    old.sign_in(world.users["gadmin"])
    token = csrf_token_of(old.get(ADMIN_PAGE))
    copied = old.client.get_cookie(COOKIE)
    assert copied is not None
    old.client.post("/sign-out", data={"csrf_token": token})
    newer = Visitor(app.test_client())
    newer.sign_in(world.users["gadmin"])
    # When the old cookie is replayed at the sign-out form (its CSRF token still matches)
    old.client.set_cookie(COOKIE, copied.value)
    assert old.client.post("/sign-out", data={"csrf_token": token}).status_code == 303
    # Then the newer session still opens the page
    assert newer.get(ADMIN_PAGE).status_code == 200

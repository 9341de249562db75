"""``lifecycle token``: a development token the API accepts, refused without JWT_SECRET."""

from __future__ import annotations

import time

import jwt
from click.testing import CliRunner

from cli import Services, main
from web.auth import verify_token


def run(settings, *args: str):
    return CliRunner().invoke(main, ["token", *args], obj=Services(settings=settings))


def test_a_dev_token_is_accepted_by_the_api(settings, client, world):
    # When a token is made for ann by e-mail, valid for 2 hours
    result = run(settings, "--user", "ANN@mail.example", "--ttl", "2h")
    # Then it names ann's user id, expires in 2 hours, and the API accepts it
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert verify_token(token, settings) == world.users["ann"]
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert abs(expires - (time.time() + 7200)) < 60
    response = client.get("/v1/me/organizations", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_a_token_carries_the_configured_issuer_and_audience(settings, world):
    configured = settings.with_changes(jwt_issuer="https://dev.example", jwt_audience="api")
    result = run(configured, "--user", world.users["ann"])
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert (claims["iss"], claims["aud"]) == ("https://dev.example", "api")
    assert verify_token(result.stdout.strip(), configured) == world.users["ann"]


def test_no_token_without_jwt_secret(settings, world):
    result = run(settings.with_changes(jwt_secret=None), "--user", "ann@mail.example")
    assert result.exit_code == 2
    assert "JWT_SECRET is not set" in result.stderr
    assert result.stdout == ""


def test_no_token_for_an_unknown_user_or_a_bad_lifetime(settings, world):
    unknown = run(settings, "--user", "nobody@mail.example")
    assert (unknown.exit_code, unknown.stdout) == (1, "")
    assert "not-found" in unknown.stderr
    bad_ttl = run(settings, "--user", "ann@mail.example", "--ttl", "forever")
    assert bad_ttl.exit_code == 2
    assert "--ttl" in bad_ttl.stderr


def test_a_short_secret_works_without_a_warning_on_every_token(settings, make_app, world):
    # Given the 20-byte development secret of `make run`
    short = settings.with_changes(jwt_secret="dev-secret-change-me")
    # When a token is made (tests turn warnings into errors, so a per-token warning fails)
    result = run(short, "--user", "ann@mail.example")
    # Then it is printed without a warning: a token from this command is for development,
    # and the running service reports a weak secret once when it starts
    assert result.exit_code == 0, result.output
    assert "too weak for production" not in result.stderr
    # And an app with that secret accepts the token
    client = make_app(jwt_secret="dev-secret-change-me").test_client()
    token = result.stdout.strip()
    response = client.get("/v1/me/organizations", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200

"""``lifecycle token``: a development bearer token for the HTTP API.

Signed with ``JWT_SECRET`` (HS256), so only a service configured with the same
secret accepts it; refused when the secret is not set, because in production the
identity provider issues tokens, not this service.
"""

from __future__ import annotations

import click

from cli import fail, main, services
from settings import format_duration, parse_duration


@main.command("token")
@click.option("--user", "user_ref", required=True, help="The user's e-mail or id.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 30m, 1h, 7d…")
def token(user_ref: str, ttl: str) -> None:
    """Print a bearer token for USER, valid for TTL (needs JWT_SECRET)."""
    s = services()
    lifetime = parse_duration(ttl, "--ttl")
    if not s.settings.jwt_secret:
        fail("JWT_SECRET is not set: this service signs no tokens (the identity provider does).", 2)
    # A token printed here is for development, where a short JWT_SECRET is expected: the
    # running service reports a weak secret once when it starts, and this command says
    # nothing of it (it signs with the standard library, without PyJWT's warning).
    import sqlite3

    from cli.tokens import issue_token, user_id_of

    try:
        user_id = user_id_of(s.settings.database_url, user_ref)
    except sqlite3.Error as error:
        missing = "no such" in str(error)
        hint = " (is the schema there? run 'lifecycle db upgrade')" if missing else ""
        fail(f"database: {error}{hint}")
    if user_id is None:
        fail(f"not-found: No user {user_ref!r}.")
    click.echo(issue_token(user_id, s.settings, lifetime))
    click.echo(f"valid for {format_duration(lifetime)} as {user_ref}", err=True)

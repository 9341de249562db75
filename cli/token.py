"""``lifecycle token``: a development bearer token for the HTTP API.

Signed with ``JWT_SECRET`` (HS256), so only a service configured with the same
secret accepts it; refused when the secret is not set, because in production the
identity provider issues tokens, not this service.
"""

from __future__ import annotations

import click

from cli import fail, main, services
from settings import format_duration, parse_duration
from store import queries
from web.auth import (
    TokenSigningUnavailable,
    issue_token,
    silence_key_length_warnings,
    weak_secret_warning,
)


@main.command("token")
@click.option("--user", "user_ref", required=True, help="The user's e-mail or id.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 30m, 1h, 7d…")
def token(user_ref: str, ttl: str) -> None:
    """Print a bearer token for USER, valid for TTL (needs JWT_SECRET)."""
    s = services()
    lifetime = parse_duration(ttl, "--ttl")
    if not s.settings.jwt_secret:
        fail("JWT_SECRET is not set: this service signs no tokens (the identity provider does).", 2)
    weak_secret = weak_secret_warning(s.settings)
    if weak_secret:
        click.echo(f"warning: {weak_secret}", err=True)
        silence_key_length_warnings()
    with s.uow() as uow:
        user = queries.find_user(uow.session, user_ref)
        user_id = user.id if user else None
    if user_id is None:
        fail(f"not-found: No user {user_ref!r}.")
    try:
        click.echo(issue_token(user_id, s.settings, lifetime))
    except TokenSigningUnavailable as error:
        fail(str(error), 2)
    click.echo(f"valid for {format_duration(lifetime)} as {user_ref}", err=True)

"""Where a webhook may be sent: the rule against server-side request forgery.

An endpoint's URL must be ``https://`` and its host must resolve only to public
addresses: never loopback, private, link-local (``169.254.169.254``, a cloud's metadata
service), multicast, reserved or unspecified ones, whether written as an address or
reached through a name. The rule is checked when an endpoint is saved and again before
every delivery, with the addresses found then (a name that resolved to a public
address when saved may resolve to ``127.0.0.1`` later: DNS rebinding). A delivery
connects to the addresses this check returned, not to a second lookup.

``allow_private_networks`` (the ``WEBHOOK_ALLOW_PRIVATE_NETWORKS`` setting, for
development and tests) lifts both rules: ``http://`` and any address are accepted.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from memberships.errors import InvalidInput

MAX_WEBHOOK_URL_LENGTH = 2000

Resolver = Callable[..., list[tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    url: str
    host: str
    port: int
    addresses: tuple[str, ...]
    """The addresses the host resolved to when checked (connect to one of these)."""


def _refused(detail: str) -> InvalidInput:
    return InvalidInput(f"url: {detail}", field="url", reason="webhook-url-refused")


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_webhook_url(
    url: str,
    *,
    allow_private_networks: bool,
    resolve: Resolver = socket.getaddrinfo,
) -> CheckedUrl:
    """``url`` if a webhook may be sent to it, with the addresses its host has now;
    ``InvalidInput`` (field ``url``) saying why not otherwise."""
    url = (url or "").strip()
    if len(url) > MAX_WEBHOOK_URL_LENGTH:
        raise _refused(f"must be at most {MAX_WEBHOOK_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refused("is not a URL") from None
    schemes = ("https", "http") if allow_private_networks else ("https",)
    if parts.scheme not in schemes:
        raise _refused("must start with https://")
    if not parts.hostname:
        raise _refused("must name a host, as in https://app.example/hooks")
    if parts.username or parts.password:
        raise _refused("must not hold a user name or password")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        found = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise _refused(f"the host {host} could not be found") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise _refused(f"the host {host} could not be found")
    if not allow_private_networks:
        for address in addresses:
            if not is_public_address(address):
                raise _refused(
                    f"{host} is a loopback, private, link-local or multicast address "
                    f"({address}); webhooks are sent only to public addresses"
                )
    return CheckedUrl(url=url, host=host, port=port, addresses=addresses)

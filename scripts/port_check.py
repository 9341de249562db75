"""Before ``make run`` starts anything: is the web port free? After: say what to open.

``port_check.py PORT`` exits 0 when nothing listens on 127.0.0.1:PORT; otherwise it
prints one line naming a free port to use instead and exits 1, so that ``make run``
stops before gunicorn retries five times and ends in a bare ``make: Error 1``.

``port_check.py MAIL_SINK_PORT --name MAIL_SINK_PORT`` does the same for the local mail
sink's port.

``port_check.py PORT --announce`` waits (up to a minute) until the web app answers
``/healthz`` on PORT, then prints the one line a newcomer needs: the address, the demo
users to sign in as, and the command that prints an API token.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import urllib.request

DEV_SECRET = "dev-secret-change-me"  # the Makefile's, for `make run` only
DEMO_USERS = (
    ("alice@woodgrove.example", "member"),
    ("admin@contoso.example", "admin"),
    ("ops@woodgrove.example", "operator"),
)


def in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_alternative(port: int, near: bool = False) -> int:
    """A free port to suggest: 8080 and up for the web, else the next ones after ``port``."""
    first = () if near else (8080, *range(8081, 8100))
    for candidate in (*first, *range(port + 1, port + 100)):
        if candidate != port and not in_use(candidate):
            return candidate
    return 0


def answers(port: int) -> bool:
    """The web app answers ``/healthz``: a worker has built it (gunicorn's master accepts
    connections before that, and the workers' start-up lines come after)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def announce(port: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while not answers(port):
        if time.monotonic() > deadline:
            return 0  # the web process failed: its own log says why
        time.sleep(0.3)
    users = ", ".join(f"{email} ({role})" for email, role in DEMO_USERS)
    secret = os.environ.get("JWT_SECRET", "")
    prefix = f"JWT_SECRET={secret} " if secret == DEV_SECRET else ""
    print(
        f"\n==> Ready: open http://127.0.0.1:{port} and sign in as {users}. "
        f"API token: {prefix}.venv/bin/lifecycle token --user alice@woodgrove.example. "
        "Ctrl-C stops everything.\n",
        flush=True,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--announce", action="store_true")
    parser.add_argument(
        "--name", default="PORT", help="the make variable that sets this port (default: PORT)"
    )
    options = parser.parse_args()
    if options.announce:
        return announce(options.port)
    if in_use(options.port):
        name = options.name
        other = free_alternative(options.port, near=name != "PORT")
        instead = f"; run `make run {name}={other}`" if other else f"; choose another with {name}="
        print(f"port {options.port} is in use{instead}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

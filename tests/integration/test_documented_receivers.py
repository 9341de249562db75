"""The receivers the documentation shows, as a reader copies them: the README's "Connect
an app" receiver, run as its own process, verifies real deliveries with the endpoint's
secret, prints each event and confirms the data removal of a direct-connect guest, who
is then purged; docs/webhooks.md's five lines verify a real delivery and refuse a
tampered one."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from memberships import admin
from memberships.clock import utc_now
from memberships.removal import remove_all_data
from memberships.webhook_delivery import DeliveryConfig, deliver, fan_out
from store.models import Membership, WebhookDelivery
from tests.integration.test_webhook_delivery import SECRET, add_endpoint
from tests.support.harness import free_port

if TYPE_CHECKING:
    from conftest import World

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
WEBHOOKS_DOC = ROOT / "docs" / "webhooks.md"
DEV = DeliveryConfig(allow_private_networks=True, public_base_url="http://127.0.0.1:8000")


def python_block(document: Path, heading: str) -> str:
    """The first Python block of the section under ``heading`` (``## Title``)."""
    level = heading.split(" ", 1)[0]
    text = document.read_text()
    assert f"\n{heading}\n" in text, f"{document.name} has no section {heading!r}"
    section = text.split(f"\n{heading}\n", 1)[1].split(f"\n{level} ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, f"the section {heading!r} of {document.name} has no Python block"
    return found.group(1)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _deliver_all(world: World) -> list[str]:
    """Fan out, then one attempt of each pending delivery (signed at the real time: the
    verifier refuses a timestamp more than 5 minutes off); their states."""
    with world.uow() as uow:
        fan_out(uow, world.clock)
    with world.uow() as uow:
        pending = list(
            uow.session.scalars(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.state == "pending")
                .order_by(WebhookDelivery.id)
            )
        )
    states = []
    for delivery_id in pending:
        with world.uow() as uow:
            attempt = deliver(uow, utc_now, delivery_id, DEV)
        assert attempt is not None
        states.append(attempt.state)
    return states


def test_the_readme_receiver_verifies_prints_and_confirms_a_removal(world: World, tmp_path):
    # Given the README's receiver, on a free port instead of 9000, started with the secret
    code = python_block(README, "## Connect an app")
    assert '("127.0.0.1", 9000)' in code
    port = free_port()
    script = tmp_path / "receiver.py"
    script.write_text(code.replace('("127.0.0.1", 9000)', f'("127.0.0.1", {port})'))
    out = tmp_path / "receiver.out"
    with out.open("w") as sink:
        receiver = subprocess.Popen(
            [sys.executable, str(script)],
            env={**os.environ, "WEBHOOK_SECRET": SECRET},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while not _listening(port):
            assert receiver.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "the receiver did not start listening"
            time.sleep(0.05)
        # And it is registered for open as an app that confirms removals
        add_endpoint(world, f"http://127.0.0.1:{port}/", confirms_removal=True)
        # When an admin removes pat (direct connect: her data removal starts at once)
        pat = world.membership("open", "pat")
        with world.uow() as uow:
            admin.remove(uow, world.clock, world.principal("gadmin"), "open.example", pat)
        # Then the delivery is verified and answered {"removed": true}: the app confirmed
        assert _deliver_all(world) == ["delivered"]
        with world.uow() as uow:
            progress = remove_all_data(uow, world.clock, pat)
        assert progress.done and not progress.waiting_on_apps
        with world.uow() as uow:
            assert uow.session.get(Membership, pat).state == "purged"  # type: ignore[union-attr]
        # And the purge is delivered too
        assert _deliver_all(world) == ["delivered"]
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    # And the receiver printed both events: the first with pat's e-mail and a confirmUrl,
    # the second without her
    lines = [line for line in out.read_text().splitlines() if line.startswith("membership.")]
    types = [line.split(" ", 1)[0] for line in lines]
    assert types == ["membership.purge_pending", "membership.purged"], out.read_text()
    first, second = (json.loads(line.split(" ", 1)[1]) for line in lines)
    assert first["user"]["email"] == "pat@mail.example"
    assert first["confirmUrl"].startswith("http://127.0.0.1:8000/v1/removal-confirmations/")
    assert "user" not in second and "confirmUrl" not in second


def test_the_documented_verification_accepts_a_real_delivery_and_refuses_a_tampered_one(
    world: World,
):
    from standardwebhooks.webhooks import WebhookVerificationError

    from tests.support.receiver import running

    # Given the five lines docs/webhooks.md gives for verifying a signature
    code = python_block(WEBHOOKS_DOC, "## Verifying a signature")
    assert len([line for line in code.splitlines() if line.strip()]) <= 5
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)
    verified_event = namespace["verified_event"]
    assert callable(verified_event)
    # And a real delivery of pat's removal to an endpoint with that secret
    with running() as receiver:
        add_endpoint(world, receiver.url())
        pat = world.membership("open", "pat")
        with world.uow() as uow:
            admin.remove(uow, world.clock, world.principal("gadmin"), "open.example", pat)
        assert _deliver_all(world) == ["delivered"]
        [request] = receiver.received
    # When the app verifies it, Then it gets the event; a tampered body is refused
    event = verified_event(request.body, dict(request.headers), SECRET)
    assert (event["type"], event["data"]["membershipId"]) == ("membership.purge_pending", pat)
    with pytest.raises(WebhookVerificationError):
        verified_event(request.body.replace(b"pat@", b"eve@"), dict(request.headers), SECRET)

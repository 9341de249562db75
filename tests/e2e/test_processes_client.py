"""The README walkthrough through a generated client, against the real processes: gunicorn
as the ``Procfile``'s ``web`` line (two workers) and the ``dramatiq`` worker, on a private
database and Redis seeded with the demo. The same run checks what operators get from
those processes: one request's log trail from the web process through the worker, by
its request id, and ``/metrics`` adding up both gunicorn workers."""

from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from api_helpers import SECRET, token_for
from prometheus_client.parser import text_string_to_metric_families
from test_api_contract import load_generator
from test_processes_harness import Stack, free_port, private_database, redis_server, wait_for

from bench.http import answers, web_argv
from store.queries import Directory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ALICE, ADMIN = "alice@woodgrove.example", "admin@contoso.example"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """gunicorn and a worker over the demo directory; yields (stack, base URL, web process)."""
    directory = tmp_path_factory.mktemp("client")
    with redis_server(directory) as redis_url, private_database("sqlite", directory) as db:
        stack = Stack(
            db,
            redis_url,
            directory,
            {
                "JWT_SECRET": SECRET,
                "SECRET_KEY": "client-test-session-key-long-enough-0123456789",
                "RETENTION_PERIOD": "1h",
                "LOG_FORMAT": "json",
            },
        )
        try:
            stack.lifecycle("seed-demo")
            port = free_port()
            web = stack.start("web", web_argv(port))
            stack.start_worker()
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: answers(f"{base}/healthz"), 30, "gunicorn to answer", stack.logs)
            yield stack, base, web
        finally:
            stack.close()


@pytest.fixture(scope="module")
def client_package(served, tmp_path_factory):
    """The client generated from the running server's own /openapi.json."""
    _, base, _ = served
    output = tmp_path_factory.mktemp("generated")
    spec = output / "openapi.json"
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as response:
        spec.write_bytes(response.read())
    load_generator().generate(output, spec)
    sys.path.insert(0, str(output))
    try:
        yield __import__("lifecycle_client")
    finally:
        sys.path.remove(str(output))


def _token(stack: Stack, email: str) -> str:
    with stack.session_factory() as session:
        return token_for(Directory(session).find_user(email).id)  # type: ignore[union-attr]


def _json_lines(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def test_the_readme_walkthrough_through_the_generated_client_and_the_request_trail(
    served, client_package
):
    from lifecycle_client import AuthenticatedClient
    from lifecycle_client.api.organization_admin import (
        get_membership,
        get_membership_history,
        list_deleted_users,
        purge_deleted_user,
        remove_membership,
        restore_deleted_user,
    )
    from lifecycle_client.api.self_service import (
        get_my_organization,
        leave_organization,
        list_my_organizations,
    )
    from lifecycle_client.models import Problem

    stack, base, web = served
    request_id = f"walkthrough-{uuid.uuid4().hex[:12]}"
    alice = AuthenticatedClient(base_url=base, token=_token(stack, ALICE), timeout=30)
    admin = AuthenticatedClient(base_url=base, token=_token(stack, ADMIN), timeout=30)

    # 1. alice lists her organizations: home first
    mine = list_my_organizations.sync(client=alice)
    assert [i.organization.domain for i in mine.items][0] == "woodgrove.example"
    # 2. she leaves contoso.example: 202, leave-pending (the request id is hers to follow)
    traced = AuthenticatedClient(
        base_url=base,
        token=_token(stack, ALICE),
        headers={"X-Request-ID": request_id},
        timeout=30,
    )
    left = leave_organization.sync_detailed("contoso.example", client=traced)
    assert left.status_code == 202 and left.parsed.state == "leave-pending"
    membership_id = left.parsed.id
    # 3. the worker carries it out: polling shows soft-deleted
    wait_for(
        lambda: (
            get_my_organization.sync("contoso.example", client=alice).membership.state
            == "soft-deleted"
        ),
        30,
        "the leave to be carried out",
        stack.logs,
    )
    # 4. fabrikam.example refuses, as a problem with its contacts
    refused = leave_organization.sync_detailed("fabrikam.example", client=alice)
    assert refused.status_code == 403 and isinstance(refused.parsed, Problem)
    assert refused.parsed.type_.endswith("leave-disabled")
    # 5. contoso's admin finds her among the deleted users
    deleted = list_deleted_users.sync("contoso.example", client=admin)
    assert membership_id in [m.id for m in deleted.items]
    # 6. and restores her with If-Match: a stale tag is 412, the current one restores
    etag = get_membership.sync_detailed("contoso.example", membership_id, client=admin).headers[
        "ETag"
    ]
    stale = restore_deleted_user.sync_detailed(
        "contoso.example", membership_id, client=admin, if_match='"1"'
    )
    assert stale.status_code == 412
    restored = restore_deleted_user.sync_detailed(
        "contoso.example", membership_id, client=admin, if_match=etag
    )
    assert restored.status_code == 200 and restored.parsed.state == "restored"
    assert restored.parsed.grants
    # 7. removes her again, then deletes her permanently
    removed = remove_membership.sync_detailed(
        "contoso.example", membership_id, client=admin, if_match=restored.headers["ETag"]
    )
    assert removed.status_code == 202 and removed.parsed.state == "soft-deleted"
    purged = purge_deleted_user.sync_detailed(
        "contoso.example", membership_id, client=admin, if_match=removed.headers["ETag"]
    )
    assert purged.status_code == 202 and purged.parsed.state == "purge-pending"
    # 8. and reads every decision in the history
    history = get_membership_history.sync("contoso.example", membership_id, client=admin)
    actions = [e.action for e in history.items]
    for step in ("request_leave", "complete_leave", "restore", "remove", "purge"):
        assert step in actions, actions

    # Then the leave's whole trail is in the JSON logs, from the web process to the worker
    def trail() -> list[dict[str, Any]]:
        lines = [e for p in stack.processes for e in _json_lines(p.log)]
        return [e for e in lines if e.get("request_id") == request_id]

    wait_for(
        lambda: any(e["logger"].startswith("workers") for e in trail()),
        15,
        "the worker's lines",
        stack.logs,
    )
    found = trail()
    for entry in found:
        assert {"timestamp", "level", "logger", "message"} <= set(entry), entry
    access = [e for e in found if e["logger"] == "web.access"]
    assert len(access) == 1
    assert access[0]["method"] == "POST"
    assert access[0]["route"] == "/v1/me/organizations/<org>/leave"
    assert access[0]["status"] == 202
    assert access[0]["duration_ms"] > 0
    assert access[0]["membership_id"] == membership_id
    assert access[0]["organization_id"] == left.parsed.organization_id
    assert "python-httpx" in access[0]["user_agent"]
    carried_out = [e for e in found if e["message"] == "leave carried out"]
    assert carried_out and carried_out[0]["membership_id"] == membership_id
    # And no line of the web process holds a token or an e-mail
    web_log = web.log.read_text()
    assert "Bearer" not in web_log and "eyJ" not in web_log
    assert ALICE not in web_log and ADMIN not in web_log


def test_metrics_add_up_every_gunicorn_worker(served):
    # Given requests served by the two gunicorn workers
    stack, base, _ = served
    for _ in range(30):
        assert answers(f"{base}/healthz")
    # When Prometheus scrapes, whichever worker answers
    for _ in range(3):
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
        # Then every request is counted once (both workers' files are read)
        healthz = [
            s
            for s in families["lifecycle_http_requests"].samples
            if s.name.endswith("_total") and s.labels["route"] == "/healthz"
        ]
        assert sum(s.value for s in healthz) >= 31  # the fixture's first probe, and these
        buckets = families["lifecycle_http_request_duration_seconds"].samples
        count = [
            s.value
            for s in buckets
            if s.name.endswith("_count") and s.labels == {"route": "/healthz", "status": "200"}
        ]
        assert count == [sum(s.value for s in healthz)]
        assert "process_resident_memory_bytes" in families
        assert "lifecycle_memberships" in families

"""The README's step on the demo data (``lifecycle seed-demo``): Fabrikam does not let
Alice leave, so she asks to be removed, and Fabrikam's admin approves; over HTTP as the
README's curl lines do it, and on the pages as docs/pages.md tells it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from api_helpers import Caller, problem, token_for
from pages_helpers import Visitor, text_of

from cli.demo import seed


def _ids(uow_factory: Any, *emails: str) -> dict[str, str]:
    with uow_factory() as uow:
        return {e: uow.directory.find_user(e).id for e in emails}  # type: ignore[union-attr]


ALICE, FABRIKAM = "alice@woodgrove.example", "idp-admin@fabrikam.example"


def test_alice_asks_fabrikam_and_its_admin_approves_over_http(client, uow_factory, clock):
    seed(uow_factory, clock)
    ids = _ids(uow_factory, ALICE, FABRIKAM)
    alice = Caller(client, {"Authorization": f"Bearer {token_for(ids[ALICE])}"})
    admin = Caller(client, {"Authorization": f"Bearer {token_for(ids[FABRIKAM])}"})
    # Fabrikam does not let her leave
    problem(alice.post("/v1/me/organizations/fabrikam.example/leave"), 403, "leave-disabled")
    # She asks to be removed
    made = alice.post(
        "/v1/me/organizations/fabrikam.example/removal-requests",
        json={"message": "My project with Fabrikam ended."},
    )
    assert (made.status_code, made.get_json()["status"]) == (201, "open")
    # Fabrikam's admin finds it among the open requests and approves it
    org = "/v1/organizations/fabrikam.example"
    listed = admin.get(f"{org}/removal-requests?status=open").get_json()["items"]
    assert [(r["id"], r["email"]) for r in listed] == [(made.get_json()["id"], ALICE)]
    approved = admin.post(f"{org}/removal-requests/{listed[0]['id']}/approve")
    assert approved.get_json()["status"] == "approved"
    # Alice reads that it was approved; she is soft-deleted in Fabrikam
    mine = alice.get("/v1/me/removal-requests").get_json()["items"]
    assert [r["status"] for r in mine] == ["approved"]
    state = alice.get("/v1/me/organizations/fabrikam.example").get_json()["membership"]["state"]
    assert state == "soft-deleted"


def test_alice_asks_fabrikam_and_its_admin_approves_on_the_pages(
    make_app: Callable[..., Any], uow_factory, clock
):
    seed(uow_factory, clock)
    ids = _ids(uow_factory, ALICE, FABRIKAM)
    visitor = Visitor(make_app(pages=True, dev_sign_in=True).test_client())
    # Alice's Fabrikam card offers the request; she asks
    visitor.sign_in(ids[ALICE])
    assert "Ask Fabrikam to remove me" in text_of(visitor.get("/account/organizations"))
    asked = visitor.submit(
        "/account/organizations", "/account/organizations/fabrikam.example/removal-requests"
    )
    assert "answer due by" in text_of(visitor.follow(asked))
    # Fabrikam's admin finds it under Administration › Fabrikam › Removal requests
    visitor.sign_in(ids[FABRIKAM])
    index = visitor.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/fabrikam.example/removal-requests"' in index
    page = visitor.get("/admin/fabrikam.example/removal-requests")
    assert "Alice Example" in text_of(page)
    [action] = re.findall(r'action="([^"]+/approve)"', page.get_data(as_text=True))
    done = visitor.submit("/admin/fabrikam.example/removal-requests", action)
    assert "Alice Example is moved to Deleted users" in text_of(visitor.follow(done))
    # and Alice reads it
    visitor.sign_in(ids[ALICE])
    assert "Fabrikam approved it" in text_of(visitor.get("/account/organizations"))

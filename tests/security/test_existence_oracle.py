"""Admin paths answer a caller without a role in the organization exactly as they answer
for an organization that does not exist: 404 ``not-found``, same words."""

from __future__ import annotations

import uuid

import pytest
from api_helpers import problem
from pages_helpers import text_of
from test_api_authorization import ADMIN_OPERATIONS

MADE_UP = ("nowhere.example", str(uuid.UUID(int=12345)))


def _answer(response, ref: str) -> tuple[int, str, str]:
    body = problem(response, 404, "not-found")
    return response.status_code, body["type"], body["detail"].replace(ref, "<org>")


@pytest.mark.parametrize("caller", ["ann", "cadmin", "ops"])
def test_a_caller_without_a_role_cannot_tell_a_real_organization_from_a_made_up_one(
    api, world, caller
):
    # Given ann (a guest of open), cadmin (admin of closed) and ops (platform operator)
    mid = world.membership("open", "pat")
    for method, template, body in ADMIN_OPERATIONS:
        answers = set()
        # When each admin path is asked about open (by domain and by id) and made-up ones
        for ref in ("open.example", world.orgs["open"], *MADE_UP):
            path = template.format(org=ref, mid=mid)
            answers.add(_answer(api(caller)._send(method, path, json=body), ref))
        # Then the answers are one and the same
        assert len(answers) == 1, (template, answers)


def test_the_admin_pages_answer_a_caller_without_a_role_as_for_a_made_up_organization(
    visitor, world
):
    # Given ann, signed in (no admin role anywhere)
    assert visitor.sign_in(world.users["ann"]).status_code == 303
    mid = world.membership("open", "ann")
    for template in (
        "/admin/{org}/settings",
        "/admin/{org}/deleted-users",
        "/admin/{org}/memberships",
        "/admin/{org}/memberships/{mid}",
    ):
        pages = set()
        for ref in ("open.example", "nowhere.example"):
            page = visitor.get(template.format(org=ref, mid=mid))
            pages.add((page.status_code, text_of(page).replace(ref, "<org>")))
        # Then open's pages and a made-up organization's are the same 404
        assert len(pages) == 1, template
        assert next(iter(pages))[0] == 404


def test_the_refusal_is_still_audited(api, world):
    # When ann tries an admin path of open
    api("ann").get("/v1/organizations/open.example/memberships")
    # Then open's audit log has the denial, with its real reason
    events = api("gadmin").get("/v1/organizations/open.example/audit-events?limit=200")
    denied = [e for e in events.get_json()["items"] if e["outcome"] == "denied"]
    assert [(e["action"], e["reason"]) for e in denied] == [("list_memberships", "forbidden")]

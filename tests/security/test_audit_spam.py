"""Refusals are audited, every one, but a caller's refusals use at most a tenth of the
rate limit: no signed-in user can fill the permanent audit log."""

from __future__ import annotations

from api_helpers import Caller, problem, token_for
from sqlalchemy import func, select

from store.models import AuditEvent, Membership
from web.rate_limits import refusal_limits

LEAVE_CLOSED = "/v1/me/organizations/closed.example/leave"


def _denied_rows(world, user: str) -> int:
    """The user's denials: under their id, or (a guest acting in an organization) under
    one of their memberships' pseudonyms."""
    with world.uow() as uow:
        names = {world.users[user]} | set(
            uow.session.scalars(
                select(Membership.pseudonym).where(Membership.user_id == world.users[user])
            )
        )
        return uow.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.actor.in_(names), AuditEvent.outcome == "denied")
        )


def _caller(client, world, user: str) -> Caller:
    return Caller(client, {"Authorization": f"Bearer {token_for(world.users[user])}"})


def test_refusals_get_a_tenth_of_each_window_and_at_least_one():
    assert [(i.amount, i.GRANULARITY.name) for i in refusal_limits("600 per minute")] == [
        (60, "minute")
    ]
    assert [i.amount for i in refusal_limits("5 per second;1000 per day")] == [1, 100]


def test_a_callers_audited_refusals_are_capped_by_the_rate_limit(make_app, world):
    # Given a limit of 20 requests a minute: at most 2 audited refusals a minute
    client = make_app(rate_limits_enabled=True, rate_limit="20 per minute").test_client()
    ann, pat = _caller(client, world, "ann"), _caller(client, world, "pat")
    # When ann keeps trying to leave an organization that does not allow it
    answers = [ann.post(LEAVE_CLOSED) for _ in range(4)]
    # Then the first two are refused and audited, the rest are not even tried
    for answer in answers[:2]:
        problem(answer, 403, "leave-disabled")
    for answer in answers[2:]:
        refused = problem(answer, 429, "rate-limited")
        assert "refusals" in refused["detail"]
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert _denied_rows(world, "ann") == 2
    # And another caller is not affected
    assert pat.get("/v1/me/organizations").status_code == 200


def test_allowed_requests_do_not_use_the_refusals_budget(make_app, world):
    client = make_app(rate_limits_enabled=True, rate_limit="20 per minute").test_client()
    ann = _caller(client, world, "ann")
    for _ in range(5):
        assert ann.get("/v1/me/organizations").status_code == 200
    problem(ann.post(LEAVE_CLOSED), 403, "leave-disabled")
    problem(ann.post(LEAVE_CLOSED), 403, "leave-disabled")
    assert _denied_rows(world, "ann") == 2

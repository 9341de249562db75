"""Scale-out with the real processes on PostgreSQL: two ``lifecycle scheduler`` and two
``dramatiq workers.actors`` processes share 20,000 due purges. Every membership is moved
on exactly once, nothing is lost, and both schedulers and both workers take a share.

The directory is seeded set-based (``INSERT … SELECT generate_series``) in one
transaction committed while the four processes are already running, so every retention
period ends at once for both schedulers. Sweep batches are smaller than the default so
that sweeping 20,000 takes longer than one ``SWEEP_INTERVAL``: the second scheduler is
sure to tick while the first is still at it. ``REDRIVE_AFTER`` is far beyond the test's
length, so no message is sent twice by the re-drive and a lost one would show as a
membership that never gets purged.

The test reads only what an operator can see: states and data rows in the database,
the audit log, and the processes' JSON logs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from test_processes_harness import (
    NEEDS_AMQP,
    TEST_AMQP_URL,
    TEST_DATABASE_URL,
    Stack,
    broker_url_for,
    private_database,
    redis_server,
    wait_for,
)

from store.models import AuditEvent, Grant, IdempotencyKey, MemberData, Membership
from workers.heartbeats import workers_seen
from workers.messages import CONTRACTS

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL (PostgreSQL)"),
]

MEMBERSHIPS = 20_000
GRANTS_EACH = 2
DATA_ROWS_EACH = 3
SWEEP_BATCH_SIZE = 500

EXPIRED = ("expire_retention", "soft-deleted", "purge-pending")
FINISHED = ("finish_removal", "purge-pending", "purged")

# The actors that take messages off the removals queue, whatever their number.
REMOVAL_ACTORS = frozenset(c.actor_name for c in CONTRACTS.values() if c.queue_name == "removals")


@pytest.fixture(
    params=[
        "redis",
        pytest.param("rabbitmq", marks=pytest.mark.skipif(not TEST_AMQP_URL, reason=NEEDS_AMQP)),
    ]
)
def stack(request, tmp_path):
    with (
        redis_server(tmp_path) as redis_url,
        private_database("postgresql", tmp_path) as database_url,
    ):
        running = Stack(
            database_url,
            redis_url,
            tmp_path,
            {"SWEEP_BATCH_SIZE": str(SWEEP_BATCH_SIZE), "REDRIVE_AFTER": "1h"},
            broker_url=broker_url_for(request, request.param),
        )
        try:
            yield running
        finally:
            running.close()


def _seed_due_purges(stack: Stack, count: int) -> str:
    """``count`` soft-deleted collaboration guests of one organization, their retention
    periods over (due times spread over the last hour), each with grants and data rows;
    one transaction. Returns the organization's id."""
    org_id = str(uuid.uuid4())
    with stack.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizations (id, domain, display_name, privacy_contact_email,"
                " privacy_statement_url, created_at)"
                " VALUES (:org, :domain, 'Scale', :email, :url, now() - interval '90 days')"
            ),
            {
                "org": org_id,
                "domain": f"scale-{org_id[:8]}.example",
                "email": f"privacy@scale-{org_id[:8]}.example",
                "url": f"https://scale-{org_id[:8]}.example/privacy",
            },
        )
        conn.execute(
            text(
                "INSERT INTO users (id, email, display_name, created_at)"
                " SELECT md5(:org || '-user-' || i)::uuid::text,"
                " 'guest-' || i || '@' || :org || '.example', 'Guest ' || i,"
                " now() - interval '90 days'"
                " FROM generate_series(1, :count) AS i"
            ),
            {"org": org_id, "count": count},
        )
        conn.execute(
            text(
                "INSERT INTO memberships (id, user_id, organization_id, kind, state, version,"
                " email, display_name, created_at, leave_requested_at, soft_deleted_at,"
                " purge_due_at)"
                " SELECT md5(:org || '-membership-' || i)::uuid::text,"
                " md5(:org || '-user-' || i)::uuid::text, :org, 'b2b-collaboration',"
                " 'soft-deleted', 3, 'guest-' || i || '@' || :org || '.example', 'Guest ' || i,"
                " now() - interval '60 days', now() - interval '31 days',"
                " now() - interval '31 days',"
                " now() - interval '1 hour' + (i % 3600) * interval '1 second'"
                " FROM generate_series(1, :count) AS i"
            ),
            {"org": org_id, "count": count},
        )
        conn.execute(
            text(
                "INSERT INTO grants (id, membership_id, kind, name, granted_at)"
                " SELECT gen_random_uuid()::text, m.id,"
                " CASE WHEN g % 2 = 0 THEN 'app-role' ELSE 'group' END, 'Grant ' || g,"
                " m.created_at"
                " FROM memberships AS m CROSS JOIN generate_series(1, :each) AS g"
                " WHERE m.organization_id = :org"
            ),
            {"org": org_id, "each": GRANTS_EACH},
        )
        conn.execute(
            text(
                "INSERT INTO member_data (membership_id, category, payload, created_at)"
                " SELECT m.id, 'documents', 'record ' || d, m.created_at"
                " FROM memberships AS m CROSS JOIN generate_series(1, :each) AS d"
                " WHERE m.organization_id = :org"
            ),
            {"org": org_id, "each": DATA_ROWS_EACH},
        )
    return org_id


def _count_in_state(stack: Stack, org_id: str, state: str) -> int:
    with stack.session_factory() as session:
        return session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.organization_id == org_id, Membership.state == state)
        )


def _json_records(log: Path) -> list[dict]:
    records = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by the stop
                continue
    return records


def _tick_ids(scheduler) -> set[str]:
    """The sweep ticks a scheduler logged as having moved memberships on."""
    return {
        r["request_id"]
        for r in _json_records(scheduler.log)
        if str(r.get("request_id", "")).startswith("sweep-") and r.get("expired")
    }


def _removal_records(worker) -> int:
    """Log records a worker wrote while handling a removals-queue message."""
    return sum(r.get("actor") in REMOVAL_ACTORS for r in _json_records(worker.log))


def _sample(items) -> str:
    items = sorted(items)
    return f"{len(items)}, e.g. {items[:5]}"


def test_two_schedulers_and_two_workers_on_postgresql_purge_20000_memberships_each_once(stack):
    # Given two schedulers and two workers running on one PostgreSQL database and one Redis
    schedulers = [stack.start_scheduler(), stack.start_scheduler()]
    workers = [stack.start_worker(), stack.start_worker()]
    for scheduler in schedulers:
        wait_for(
            lambda s=scheduler: "scheduler started" in s.log.read_text(),
            30,
            f"{scheduler.log.name} to start",
            stack.logs,
        )
    wait_for(lambda: len(workers_seen(stack.session_factory)) == 2, 30, "both workers", stack.logs)

    # When 20,000 collaboration guests with grants and data are found past their retention
    started = time.monotonic()
    org_id = _seed_due_purges(stack, MEMBERSHIPS)
    seeded = time.monotonic()
    wait_for(
        lambda: _count_in_state(stack, org_id, "soft-deleted") == 0,
        240,
        "every due membership to be swept",
        stack.logs,
    )
    swept = time.monotonic()
    wait_for(
        lambda: _count_in_state(stack, org_id, "purged") == MEMBERSHIPS,
        # Generous: removing data one membership per message, 20,000 take minutes.
        900,
        f"all {MEMBERSHIPS} memberships to be purged",
        lambda: (
            f"{_count_in_state(stack, org_id, 'purge-pending')} still purge-pending\n"
            + stack.logs()
        ),
    )
    purged = time.monotonic()
    print(
        f"\nseeded {MEMBERSHIPS} in {seeded - started:.1f}s; swept in {swept - seeded:.1f}s;"
        f" purged {purged - seeded:.1f}s after the seed"
    )

    with stack.session_factory() as session:
        ids = set(
            session.scalars(select(Membership.id).where(Membership.organization_id == org_id))
        )
        decisions = session.execute(
            select(
                AuditEvent.membership_id,
                AuditEvent.action,
                AuditEvent.from_state,
                AuditEvent.to_state,
                AuditEvent.outcome,
                AuditEvent.reason,
                AuditEvent.request_id,
            ).where(AuditEvent.organization_id == org_id)
        ).all()
        left = {
            model.__tablename__: session.scalar(
                select(func.count())
                .select_from(model)
                .where(
                    model.membership_id.in_(
                        select(Membership.id).where(Membership.organization_id == org_id)
                    )
                )
            )
            for model in (Grant, MemberData, IdempotencyKey)
        }
        personal = session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(
                Membership.organization_id == org_id,
                (Membership.email.is_not(None)) | (Membership.display_name.is_not(None)),
            )
        )

    # Then none is lost: every membership is purged, with nothing personal left
    assert len(ids) == MEMBERSHIPS
    assert left == {"grants": 0, "member_data": 0, "idempotency_keys": 0}
    assert personal == 0
    # And the audit log holds exactly one expiry and one finish per membership, nothing else
    denied = [d for d in decisions if d.outcome == "denied"]
    assert not denied, f"denied decisions: {_sample((d.action, d.reason) for d in denied)}"
    per_step = Counter((d.membership_id, (d.action, d.from_state, d.to_state)) for d in decisions)
    for step in (EXPIRED, FINISHED):
        audited = {m for (m, s), n in per_step.items() if s == step}
        assert audited == ids, f"{step[0]} missing for {_sample(ids - audited)}"
        twice = {m for (m, s), n in per_step.items() if s == step and n > 1}
        assert not twice, f"{step[0]} audited more than once for {_sample(twice)}"
    other = {s for (_, s) in per_step} - {EXPIRED, FINISHED}
    assert not other, f"unexpected decisions: {other}"

    # And both schedulers swept a share: each expiry carries the id of a tick one of them
    # logged, and each scheduler's ticks account for some of them
    expired_by_tick = Counter(d.request_id for d in decisions if d.action == EXPIRED[0])
    shares = [sum(expired_by_tick[t] for t in _tick_ids(s)) for s in schedulers]
    print(f"expiries per scheduler: {shares}")
    assert sum(shares) == MEMBERSHIPS, f"expiries by tick: {dict(expired_by_tick)}"
    assert all(shares), f"one scheduler did every expiry: {shares}\n{stack.logs()}"
    # And both workers removed data
    removals = [_removal_records(w) for w in workers]
    print(f"removal log records per worker: {removals}")
    assert all(removals), f"one worker did every removal: {removals}\n{stack.logs()}"
    # And every process is still running
    assert all(p.popen.poll() is None for p in stack.processes), stack.logs()

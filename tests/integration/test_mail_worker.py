"""The mail worker end to end: a change committed through the worker's unit of work sends
its outbox ids to the ``mail`` queue after the commit, and the ``send_mail_many`` actor on
a StubBroker hands each mail to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import pytest
from dramatiq import Worker
from sqlalchemy import select
from test_notices import EVERYONE_ELSE, smtp  # noqa: F401  (the SMTP server fixture)

from memberships import admin
from settings import Settings
from store.models import MailMessage
from workers.broker import build_stub_broker
from workers.dispatch import BrokerDispatcher
from workers.messages import QUEUES, SEND_MAIL_MANY
from workers.runtime import Runtime
from workers.tasks import declare_actors


@pytest.fixture
def stack(session_factory, clock, smtp):  # noqa: F811
    _, url = smtp
    broker = build_stub_broker()
    runtime = Runtime(
        Settings(smtp_url=url, mail_from="Notices <notices@lifecycle.example>"),
        BrokerDispatcher(broker),
        clock=clock,
        session_factory_override=session_factory,
    )
    declare_actors(broker, runtime)
    yield broker, runtime
    broker.close()


def _drain(broker) -> None:
    worker = Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        for queue in QUEUES:
            broker.join(queue, timeout=20_000, fail_fast=True)
        worker.join()
    finally:
        worker.stop()


def test_a_removal_is_mailed_by_the_mail_queues_worker(stack, smtp, world):  # noqa: F811
    inbox, _ = smtp
    broker, runtime = stack
    # When open's admin removes ann and pat, through a unit of work with mail on
    with runtime.uow() as uow:
        admin.remove(
            uow,
            world.clock,
            world.principal("gadmin"),
            "open.example",
            world.membership("open", "ann"),
        )
    with runtime.uow() as uow:
        admin.remove(
            uow,
            world.clock,
            world.principal("gadmin"),
            "open.example",
            world.membership("open", "pat"),
        )
    # Then the mail queue holds their messages (sent after each commit)
    assert broker.queues["mail"].qsize() == 2
    message = broker.queues["mail"].queue[0]
    assert SEND_MAIL_MANY.actor_name.encode() in message
    # When the worker runs
    _drain(broker)
    # Then ann was told she was removed; pat (direct connect: data removal at once, carried
    # out by the removals queue meanwhile) that he was removed, then that his data is gone;
    # each mail addressed to its member alone, naming nobody else
    assert sorted(r for _, rs, _ in inbox.mails for r in rs) == [
        "ann@mail.example",
        "pat@mail.example",
        "pat@mail.example",
    ]
    for _, recipients, raw in inbox.mails:
        text = raw.decode()
        for address in EVERYONE_ELSE + ("ann@mail.example", "pat@mail.example"):
            if address not in recipients:
                assert address not in text
        assert "From: Notices <notices@lifecycle.example>" in text
    with runtime.uow() as uow:
        mails = [
            (m.state, m.recipient, m.body_text) for m in uow.session.scalars(select(MailMessage))
        ]
    assert {state for state, _, _ in mails} == {"sent"}
    # And once pat is purged, his mails keep no address and no content
    assert sorted((r or "-", bool(b)) for _, r, b in mails) == [
        ("-", False),
        ("-", False),
        ("ann@mail.example", True),
    ]

"""What a member is told: a notice in the transaction of every change on every path (one
row, the sweep's batches, the chunked removal's finish), the mail outbox beside it, and
the mail itself received by a real SMTP server (aiosmtpd) — addressed to the member only,
with nobody else's personal data, retried when the server refuses, and forgotten once the
membership is purged."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email import policy as email_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import delete, select

from memberships import admin, notices, removal, self_service
from memberships.sweep import sweep
from store import notices as store_notices
from store.models import MailMessage, Membership, Notice
from store.unit_of_work import Policy
from workers.mail import MailComposer, SmtpSender, SmtpTarget

EVERYONE_ELSE = (
    "gadmin@mail.example",
    "idpadmin@mail.example",
    "cadmin@mail.example",
    "bareadmin@mail.example",
    "pat@mail.example",
    "dis@mail.example",
    "off@mail.example",
    "ops@mail.example",
)
"""The e-mail addresses of everyone in the world but ann: none may be in ann's mail."""


@pytest.fixture
def policy() -> Policy:
    # Mail on (SMTP_URL set), as composition.policy_from makes it; short retention so the
    # sweep's expiry can be reached.
    return Policy(removal_batch_size=50, send_mail=True)


class Inbox:
    """An aiosmtpd handler that keeps every mail; ``refuse`` holds SMTP replies to give
    RCPT TO instead of accepting, one per attempt, in order."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []
        self.refuse: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.refuse:
            return self.refuse.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"

    def messages(self) -> list[Any]:
        return [message_from_bytes(raw, policy=email_policy.default) for _, _, raw in self.mails]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    """A real SMTP server on a free port, and its ``SMTP_URL``."""
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()
        asyncio.set_event_loop(None)


def _notices(world, user: str) -> list[Notice]:
    with world.uow() as uow:
        rows = list(
            uow.session.scalars(
                select(Notice).where(Notice.user_id == world.users[user]).order_by(Notice.id)
            )
        )
        uow.session.expunge_all()
        return rows


def _mail(world) -> list[MailMessage]:
    with world.uow() as uow:
        rows = list(uow.session.scalars(select(MailMessage).order_by(MailMessage.id)))
        uow.session.expunge_all()
        return rows


def _queued(dispatcher) -> list[str]:
    return [i for actor, i in dispatcher.sent if actor == store_notices.SEND_MAIL]


def _deliver(world, dispatcher, url: str) -> notices.MailOutcome:
    ids = _queued(dispatcher)
    dispatcher.sent.clear()
    return notices.deliver_mail(
        world.uow,
        world.clock,
        ids,
        SmtpSender(url, "Membership Lifecycle <no-reply@lifecycle.example>"),
        MailComposer(),
        "http://127.0.0.1:8000",
    )


ADMINS = {"open": "gadmin", "bare": "bareadmin", "closed": "cadmin"}


def _remove_by_admin(world, org: str = "open", user: str = "ann") -> str:
    membership_id = world.membership(org, user)
    with world.uow() as uow:
        admin.remove(
            uow, world.clock, world.principal(ADMINS[org]), f"{org}.example", membership_id
        )
    return membership_id


def _purge_all(world, membership_id: str) -> None:
    with world.uow() as uow:
        removal.remove_all_data(uow, world.clock, membership_id)


# ---- notices, by every path -------------------------------------------------------------------


def test_an_admin_removal_tells_the_member_and_queues_a_mail(world, dispatcher):
    # When open's admin removes ann
    membership_id = _remove_by_admin(world)
    # Then ann has a notice of it, not caused by her, with until when it can be undone
    [notice] = _notices(world, "ann")
    assert notice.kind == "membership.removed"
    assert notice.membership_id == membership_id
    assert notice.organization_id == world.orgs["open"]
    assert notice.caused_by_member is False
    assert notice.occurred_at == world.clock.now
    assert "restorableUntil" in json.loads(notice.data)
    # And one mail to her address waits in the outbox, sent to the worker after the commit
    [mail] = _mail(world)
    assert (mail.recipient, mail.state, mail.notice_id) == (
        "ann@mail.example",
        "pending",
        notice.id,
    )
    assert _queued(dispatcher) == [str(mail.id)]
    # And nobody else was told anything
    assert _notices(world, "gadmin") == []


def test_a_restore_tells_the_member(world):
    membership_id = _remove_by_admin(world)
    with world.uow() as uow:
        admin.restore(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    assert [n.kind for n in _notices(world, "ann")] == ["membership.removed", "membership.restored"]


def test_the_sweeps_expiry_and_the_chunked_finish_tell_the_member_even_after_the_purge(
    world, dispatcher
):
    # Given ann removed from open and bare (two memberships of one sweep batch)
    first = _remove_by_admin(world, "open")
    second = _remove_by_admin(world, "bare")
    # When the retention period ends and the sweep runs (set-based: one batch)
    world.clock.advance(timedelta(days=31))
    with world.uow() as uow:
        report = sweep(uow, world.clock)
    assert report.expired == 2
    started = [n for n in _notices(world, "ann") if n.kind == "membership.removal_started"]
    assert sorted(n.membership_id for n in started) == sorted([first, second])
    assert all(json.loads(n.data)["cause"] == "retention-ended" for n in started)
    # When the chunked removal erases both and finishes them in one statement
    with world.uow() as uow:
        while not removal.remove_chunk_batch(uow, world.clock, [first, second]).done:
            pass
    with world.uow() as uow:
        assert {
            m.state
            for m in uow.session.scalars(
                select(Membership).where(Membership.id.in_([first, second]))
            )
        } == {"purged"}
    # Then ann still has a notice of each purge, though the tombstones no longer name her,
    # and no notice of hers leads to the tombstones any more
    mine = _notices(world, "ann")
    purged = [n for n in mine if n.kind == "membership.purged"]
    assert sorted(n.organization_id for n in purged) == sorted(
        [world.orgs["open"], world.orgs["bare"]]
    )
    assert all(n.membership_id is None for n in mine if n.organization_id != world.orgs["closed"])
    # And a mail for each of the six changes went to the outbox
    assert len([m for m in _mail(world) if m.kind == "membership.purged"]) == 2


def test_an_own_leave_is_told_on_the_page_but_mailed_only_when_asked_for(world, dispatcher):
    # When ann leaves open herself and the leave is carried out
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    from memberships import automatic

    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, world.membership("open", "ann"))
    # Then she has a notice of her own change, and no mail about it
    [notice] = _notices(world, "ann")
    assert (notice.kind, notice.caused_by_member) == ("membership.left", True)
    assert _mail(world) == []
    # When she asks for mail about her own changes too, then leaves bare
    with world.uow() as uow:
        assert notices.set_email_own_changes(uow, world.clock, world.principal("ann"), True)
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "bare.example")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, world.membership("bare", "ann"))
    # Then that one is mailed
    [mail] = _mail(world)
    assert (mail.kind, mail.organization_id) == ("membership.left", world.orgs["bare"])


def test_an_admin_acting_on_their_own_guest_membership_is_an_own_change(world):
    # gadmin removing ann is not ann's own change; ann's own leave is (the pseudonym)
    _remove_by_admin(world)
    assert _notices(world, "ann")[0].caused_by_member is False


def test_a_removal_request_answer_is_a_notice_with_the_organizations_reason(world):
    # When the organization declines ann's request, with a reason she will read
    with world.uow() as uow:
        uow.notices.record_notice(
            membership_id=world.membership("closed", "ann"),
            kind="removal_request.declined",
            occurred_at=world.clock.now,
            data={"reason": "You still have open invoices."},
        )
        uow.commit()
    # Then her notices hold it, and her mail is queued
    with world.uow() as uow:
        [view] = notices.recent_notices(uow, world.principal("ann"), world.clock.now)
    assert view.kind == "removal_request.declined"
    assert view.reason == "You still have open invoices."
    assert view.organization.display_name == "Closed"
    assert [m.kind for m in _mail(world)] == ["removal_request.declined"]


def test_without_smtp_no_mail_row_is_written_but_the_notice_is(world, session_factory, dispatcher):
    from store.unit_of_work import UnitOfWork

    with UnitOfWork(session_factory, dispatcher, Policy(send_mail=False)) as uow:
        admin.remove(
            uow,
            world.clock,
            world.principal("gadmin"),
            "open.example",
            world.membership("open", "ann"),
        )
    assert [n.kind for n in _notices(world, "ann")] == ["membership.removed"]
    assert _mail(world) == [] and _queued(dispatcher) == []


# ---- mail, through a real SMTP server ---------------------------------------------------------


def test_the_mail_reaches_the_member_only_with_nobody_elses_personal_data(world, dispatcher, smtp):
    inbox, url = smtp
    # When open's admin removes ann, and the worker sends the outbox
    _remove_by_admin(world)
    outcome = _deliver(world, dispatcher, url)
    # Then the SMTP server received one mail, to ann only
    assert outcome.sent == 1
    [(sender, recipients, _)] = inbox.mails
    assert recipients == ["ann@mail.example"]
    assert sender == "no-reply@lifecycle.example"
    [message] = inbox.messages()
    assert message["To"] == "ann@mail.example"
    assert message["Subject"] == "Open removed you"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    # In the organization's words, with its privacy contact and statement
    assert "Open removed your account on 5 January 2026." in text
    assert "Open can restore it until 4 February 2026" in text
    assert "privacy@open.example" in text and "https://open.example/privacy" in text
    assert 'href="mailto:privacy@open.example"' in html
    # And nothing of anyone else: not the acting admin's address, no other guest's
    raw = inbox.mails[0][2].decode()
    for address in EVERYONE_ELSE:
        assert address not in raw
    # And no tracking: no images, no links but the organization's and the service's page
    assert "<img" not in html.lower()
    assert set(_links(html)) == {
        "mailto:privacy@open.example",
        "https://open.example/privacy",
        "http://127.0.0.1:8000/account/organizations",
    }
    # And the outbox records that it was sent, and what
    [mail] = _mail(world)
    assert mail.state == "sent" and mail.sent_at == world.clock.now and mail.attempts == 1
    assert mail.subject == "Open removed you" and "Open removed your account" in mail.body_text


def _links(html: str) -> list[str]:
    import re

    return re.findall(r'(?:href|src)="([^"]+)"', html)


def test_a_refused_mail_is_retried_after_a_backoff_kept_in_the_database(world, dispatcher, smtp):
    inbox, url = smtp
    # Given the server refuses the recipient for now, once
    inbox.refuse = ["451 4.3.0 Mailbox busy, try again later"]
    _remove_by_admin(world)
    first = _deliver(world, dispatcher, url)
    # Then nothing is received, and the mail waits with its next attempt's time
    assert (first.sent, first.retrying) == (0, 1) and inbox.mails == []
    [mail] = _mail(world)
    assert mail.state == "pending" and mail.attempts == 1
    assert mail.next_attempt_at == world.clock.now + notices.backoff(1)
    assert "451" in (mail.last_error or "")
    # And a sweep before then sends nothing
    with world.uow() as uow:
        assert sweep(uow, world.clock).mail_redriven == 0
    # When the back-off is over, the sweep sends it to the worker again, and the server accepts
    world.clock.advance(notices.backoff(1))
    with world.uow() as uow:
        assert sweep(uow, world.clock).mail_redriven == 1
    second = _deliver(world, dispatcher, url)
    assert second.sent == 1
    assert [r for _, r, _ in inbox.mails] == [["ann@mail.example"]]
    [mail] = _mail(world)
    assert mail.state == "sent" and mail.attempts == 2


def test_a_recipient_refused_for_good_fails_without_retries(world, dispatcher, smtp):
    inbox, url = smtp
    inbox.refuse = ["550 5.1.1 No such mailbox"]
    _remove_by_admin(world)
    assert _deliver(world, dispatcher, url).failed == 1
    [mail] = _mail(world)
    assert mail.state == "failed" and "550" in (mail.last_error or "")


def test_a_lost_message_is_sent_again_by_the_sweep(world, dispatcher, smtp, policy):
    inbox, url = smtp
    _remove_by_admin(world)
    dispatcher.sent.clear()  # the message after the commit is lost
    with world.uow() as uow:
        assert sweep(uow, world.clock).mail_redriven == 0  # queued just now
    world.clock.advance(policy.redrive_after)
    with world.uow() as uow:
        assert sweep(uow, world.clock).mail_redriven == 1
    assert _deliver(world, dispatcher, url).sent == 1
    assert len(inbox.mails) == 1
    # And a duplicate message about a sent mail sends nothing more
    dispatcher.sent.append((store_notices.SEND_MAIL, str(_mail(world)[0].id)))
    assert _deliver(world, dispatcher, url).skipped == 1 and len(inbox.mails) == 1


def test_after_a_purge_no_recipient_or_body_of_its_mail_remains(world, dispatcher, smtp):
    inbox, url = smtp
    # Given ann removed from open and told by mail, then her membership deleted at once
    membership_id = _remove_by_admin(world)
    _deliver(world, dispatcher, url)
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    _purge_all(world, membership_id)
    # When the last mails (data removal started, finished) are sent
    assert _deliver(world, dispatcher, url).sent == 2
    # Then she received all three, the last one saying her data is gone
    subjects = [m["Subject"] for m in inbox.messages()]
    assert subjects == [
        "Open removed you",
        "Open started removing your data",
        "Your data in Open has been permanently deleted",
    ]
    # And the outbox keeps that three mails were sent and when, but no address, no content
    # and no link to the tombstone
    mails = _mail(world)
    assert [m.state for m in mails] == ["sent"] * 3
    for mail in mails:
        assert (mail.recipient, mail.subject, mail.body_text, mail.body_html) == (None,) * 4
        assert mail.membership_id is None and mail.sent_at is not None
    with world.uow() as uow:
        assert (
            uow.session.scalars(select(Notice).where(Notice.membership_id == membership_id)).all()
            == []
        )


def test_the_mail_composer_writes_every_kind_in_words():
    from datetime import UTC, datetime

    from memberships.views import OrganizationView

    org = OrganizationView("o", "open.example", "Open", None, None, True)
    compose = MailComposer()
    for kind in (
        "membership.left",
        "membership.removed",
        "membership.restored",
        "membership.removal_started",
        "membership.purged",
        "removal_request.approved",
        "removal_request.declined",
        "removal_request.overdue",
        "removal_request.closed",
    ):
        mail = compose(
            notices.NoticeContent(
                kind, datetime(2026, 1, 5, tzinfo=UTC), org, False, {"reason": "<b>no</b>"}
            )
        )
        assert "Open" in mail.subject and "{" not in mail.text and "Open" in mail.text
        assert "<b>no</b>" not in mail.html  # the organization's words are escaped


def test_smtp_url_forms():
    plain = SmtpTarget.parse("smtp://us%40er:p%3Ass@mail.example:587")
    assert (plain.host, plain.port, plain.implicit_tls) == ("mail.example", 587, False)
    assert (plain.username, plain.password) == ("us@er", "p:ss")
    tls = SmtpTarget.parse("smtps://mail.example")
    assert (tls.port, tls.implicit_tls, tls.username) == (465, True, None)
    with pytest.raises(ValueError):
        SmtpTarget.parse("http://mail.example")
    # And a process does not start with a mail server it could not use
    from settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="SMTP_URL") as refused:
        Settings.from_env({"SMTP_URL": "mail.example:25", "DATABASE_URL": "sqlite://"})
    assert "mail.example" not in str(refused.value)
    assert Settings.from_env({"SMTP_URL": "smtps://u:p@mail.example"}).send_mail is True
    assert Settings.from_env({}).send_mail is False


def test_credentials_are_never_sent_without_starttls(smtp):
    # The test server offers no STARTTLS: with a password the mail is not sent (retried)
    _, url = smtp
    sender = SmtpSender(url.replace("smtp://", "smtp://user:secret@"), "a@b.example")
    [error] = sender.send_all([notices.OutgoingMail("x@y.example", "s", "t", "<p>h</p>")])
    assert error is not None and not error.permanent and "STARTTLS" in str(error)


def test_notices_of_a_purged_membership_are_forgotten_after_30_days(world):
    # Given ann purged from open, and removed (not purged) from bare
    membership_id = _remove_by_admin(world, "open")
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    _purge_all(world, membership_id)
    _remove_by_admin(world, "bare")
    # When a sweep runs within 30 days, nothing is forgotten
    world.clock.advance(timedelta(days=29))
    with world.uow() as uow:
        assert sweep(uow, world.clock).forgotten_notices == 0
    # When it runs after 30 days, the purged membership's notices go; bare's stay (its
    # removal, and the data removal this sweep started as its retention period ended)
    world.clock.advance(timedelta(days=2))
    with world.uow() as uow:
        assert sweep(uow, world.clock).forgotten_notices == 3
    assert [(n.organization_id, n.kind) for n in _notices(world, "ann")] == [
        (world.orgs["bare"], "membership.removed"),
        (world.orgs["bare"], "membership.removal_started"),
    ]


@pytest.mark.parametrize("chunked", [False, True], ids=["one", "chunk"])
def test_a_purge_with_no_earlier_notice_still_reaches_its_member(world, dispatcher, chunked):
    # Given ann's removal from open began before notices existed (none names her there)
    membership_id = _remove_by_admin(world)
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    with world.uow() as uow:
        uow.session.execute(delete(Notice))
        uow.session.execute(delete(MailMessage))
        uow.commit()
    # When the data removal finishes (one membership, or a chunk)
    with world.uow() as uow:
        if chunked:
            while not removal.remove_chunk_batch(uow, world.clock, [membership_id]).done:
                pass
        else:
            removal.remove_all_data(uow, world.clock, membership_id)
    # Then she has the purge's notice all the same, read before the link was cut, and its mail
    [notice] = _notices(world, "ann")
    assert (notice.kind, notice.organization_id, notice.membership_id) == (
        "membership.purged",
        world.orgs["open"],
        None,
    )
    [mail] = _mail(world)
    assert (mail.kind, mail.recipient, mail.notice_id) == (
        "membership.purged",
        "ann@mail.example",
        notice.id,
    )


def test_an_approved_removal_request_is_one_mail_with_the_removals_dates(world, dispatcher, smtp):
    inbox, url = smtp
    # When closed's admin approves ann's request: the removal and the approval, one transaction
    membership_id = world.membership("closed", "ann")
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("cadmin"), "closed.example", membership_id)
        uow.notices.record_notice(
            membership_id=membership_id,
            kind="removal_request.approved",
            occurred_at=world.clock.now,
            data={"requestId": "r1"},
        )
        uow.commit()
    # Then the page has both notices, and ann gets one mail: the approval, with the dates
    assert [n.kind for n in _notices(world, "ann")] == [
        "membership.removed",
        "removal_request.approved",
    ]
    assert _deliver(world, dispatcher, url).sent == 1
    [message] = inbox.messages()
    assert message["Subject"] == "Closed approved your request to be removed"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "It stays restorable until 4 February 2026" in text


def test_an_unknown_notice_kind_is_refused_before_anything_is_written(world):
    with world.uow() as uow, pytest.raises(ValueError, match="no notice kind"):
        uow.notices.record_notice(
            membership_id=world.membership("closed", "ann"),
            kind="removal_request.lost",
            occurred_at=world.clock.now,
            data={},
        )
    assert _notices(world, "ann") == []


# ---- removal requests: every answer and ending is told, by mail through a real server ------


def _ask(world, user: str = "ann", org: str = "closed") -> str:
    from memberships import removal_requests

    with world.uow() as uow:
        view = removal_requests.open_request(
            uow, world.clock, world.principal(user), f"{org}.example", "Please remove me."
        )
    return view.id


def _mails_to_ann_only(inbox) -> list[Any]:
    """Every mail received, each checked: to ann only, nobody else's address in it."""
    for _sender, recipients, raw in inbox.mails:
        assert recipients == ["ann@mail.example"]
        for address in EVERYONE_ELSE:
            assert address not in raw.decode()
    return inbox.messages()


def test_a_request_closed_by_the_organizations_removal_is_told_in_one_mail(world, dispatcher, smtp):
    inbox, url = smtp
    # Given ann's open request to closed.example
    request_id = _ask(world)
    # When closed's admin removes her directly, without answering the request
    _remove_by_admin(world, "closed")
    # Then her page has both changes: the removal, and her request closed because of it
    found = {n.kind: n for n in _notices(world, "ann")}
    assert set(found) == {"membership.removed", "removal_request.closed"}
    closed = found["removal_request.closed"]
    assert closed.caused_by_member is False
    assert json.loads(closed.data)["requestId"] == request_id
    assert json.loads(closed.data)["closedReason"] == "removed-by-organization"
    # and one mail says both, with the removal's dates
    assert _deliver(world, dispatcher, url).sent == 1
    [message] = _mails_to_ann_only(inbox)
    assert message["Subject"] == "Your request to be removed from Closed was closed"
    text = " ".join(message.get_body(preferencelist=("plain",)).get_content().split())
    assert "Closed removed your account on 5 January 2026" in text
    assert "restorable until 4 February 2026" in text


def test_a_request_closed_by_the_members_own_leave_is_her_own_change(world, dispatcher):
    from store.models import Organization

    # Given ann's open request, then closed.example lets external users leave
    _ask(world)
    with world.uow() as uow:
        org = uow.session.get(Organization, world.orgs["closed"])
        assert org is not None
        org.external_user_leave_allowed = True
        uow.commit()
    # When she leaves on her own
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "closed.example")
    # Then her request's end is on her page, as her own change: not mailed unless she asked
    [closed] = [n for n in _notices(world, "ann") if n.kind == "removal_request.closed"]
    assert closed.caused_by_member is True
    assert json.loads(closed.data)["closedReason"] == "left"
    assert [m.kind for m in _mail(world)] == []


def test_every_step_of_a_request_is_mailed_to_the_member_only(world, dispatcher, smtp):
    from memberships import removal_requests

    inbox, url = smtp
    cadmin = world.principal("cadmin")
    # Given ann asks, and closed's admin declines with a reason
    first = _ask(world)
    with world.uow() as uow:
        removal_requests.decline(
            uow, world.clock, cadmin, "closed.example", first, "Open invoices."
        )
    # and she asks again, and the deadline passes: the sweep marks it overdue
    second = _ask(world)
    world.clock.advance(timedelta(days=31))
    with world.uow() as uow:
        sweep(uow, world.clock)
    # and then the admin approves it
    with world.uow() as uow:
        removal_requests.approve(uow, world.clock, cadmin, "closed.example", second)
    # Then the worker sends three mails, each to ann only, with nobody else's address
    assert _deliver(world, dispatcher, url).sent == 3
    subjects = [m["Subject"] for m in _mails_to_ann_only(inbox)]
    assert sorted(subjects) == [
        "Closed approved your request to be removed",
        "Closed declined your request to be removed",
        "Closed has not answered your request to be removed in time",
    ]
    declined = next(m for m in inbox.messages() if "declined" in m["Subject"])
    assert "Open invoices." in declined.get_body(preferencelist=("plain",)).get_content()

"""Mail to members: composed from the templates in ``web/templates/mail`` and handed to
an SMTP server with the standard library's ``smtplib``.

``SMTP_URL`` says where: ``smtp://user:pass@host:587`` speaks plain SMTP and upgrades
with STARTTLS whenever the server offers it (and refuses to send credentials over a
connection the server would not encrypt); ``smtps://user:pass@host:465`` is TLS from
the first byte. User and password may be percent-encoded. ``MAIL_FROM`` is the sender.

The templates read the files directly (no import of the web package: the worker does
not load Flask). The mails carry no tracking: no images, no per-recipient links, only
the organization's own privacy contact and statement and the Organizations page.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from memberships.notices import ComposedMail, MailNotSent, NoticeContent, OutgoingMail

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates" / "mail"
SMTP_TIMEOUT_SECONDS = 30.0


def day(value: datetime | str | None) -> str:
    """A date as people write it: ``5 January 2026`` (UTC)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    value = value.astimezone(UTC)
    return f"{value.day} {value:%B %Y}"


class MailComposer:
    """Subject, plain-text and HTML body of a notice, from the mail templates."""

    def __init__(self, directory: Path = TEMPLATES) -> None:
        self.environment = Environment(
            loader=FileSystemLoader(str(directory)),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            trim_blocks=False,
            keep_trailing_newline=False,
        )
        self.environment.filters["day"] = day

    def __call__(self, content: NoticeContent) -> ComposedMail:
        render = lambda name: self.environment.get_template(name).render(n=content)  # noqa: E731
        subject = " ".join(render("subject.txt").split())
        return ComposedMail(
            subject=subject, text=render("notice.txt").strip() + "\n", html=render("notice.html")
        )


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where ``SMTP_URL`` points."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must be smtp://[user:pass@]host[:port] or smtps://…")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )


class SmtpSender:
    """``memberships.notices.MailSender`` over SMTP: one connection per call."""

    def __init__(
        self,
        smtp_url: str,
        mail_from: str,
        *,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = SMTP_TIMEOUT_SECONDS,
    ) -> None:
        self.target = SmtpTarget.parse(smtp_url)
        self.mail_from = mail_from
        self.envelope_from = parseaddr(mail_from)[1] or mail_from
        self._tls_context = tls_context
        self.timeout = timeout

    @cached_property
    def tls_context(self) -> ssl.SSLContext:
        return self._tls_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        server: smtplib.SMTP
        if t.implicit_tls:
            server = smtplib.SMTP_SSL(
                t.host, t.port, timeout=self.timeout, context=self.tls_context
            )
        else:
            server = smtplib.SMTP(t.host, t.port, timeout=self.timeout)
        try:
            server.ehlo()
            if not t.implicit_tls:
                if server.has_extn("starttls"):
                    server.starttls(context=self.tls_context)
                    server.ehlo()
                elif t.username:
                    raise MailNotSent(
                        "the mail server does not offer STARTTLS: the password is not sent "
                        "in the clear"
                    )
            if t.username:
                server.login(t.username, t.password or "")
        except BaseException:
            server.close()
            raise
        return server

    def message(self, mail: OutgoingMail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = mail.recipient
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain=self.envelope_from.rpartition("@")[2] or None)
        # An automatic message: no out-of-office answers to it (RFC 3834).
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(mail.text)
        message.add_alternative(mail.html, subtype="html")
        return message

    def send_all(self, mails: list[OutgoingMail]) -> list[MailNotSent | None]:
        if not mails:
            return []
        try:
            server = self._connect()
        except MailNotSent as error:
            return [error] * len(mails)
        except (OSError, smtplib.SMTPException) as error:
            return [MailNotSent(f"could not reach the mail server: {_describe(error)}")] * len(
                mails
            )
        results: list[MailNotSent | None] = []
        try:
            for index, mail in enumerate(mails):
                try:
                    server.send_message(
                        self.message(mail), from_addr=self.envelope_from, to_addrs=[mail.recipient]
                    )
                    results.append(None)
                except smtplib.SMTPRecipientsRefused as error:
                    codes = [code for code, _ in error.recipients.values()]
                    results.append(
                        MailNotSent(
                            f"the mail server refused the recipient ({', '.join(map(str, codes))})",
                            permanent=bool(codes) and all(code >= 500 for code in codes),
                        )
                    )
                except smtplib.SMTPServerDisconnected as error:
                    lost = MailNotSent(f"the mail server hung up: {_describe(error)}")
                    results.extend([lost] * (len(mails) - index))
                    break
                except (OSError, smtplib.SMTPException) as error:
                    results.append(MailNotSent(_describe(error)))
        finally:
            try:
                server.quit()
            except (OSError, smtplib.SMTPException):
                server.close()
        return results


def _describe(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error
        text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
        return f"{error.smtp_code} {text}"
    return f"{type(error).__name__}: {error}"


class NoMailServer:
    """A sender for a worker without ``SMTP_URL``: every attempt fails (and is retried),
    so no mail is lost when the web process has mail on and the worker not yet."""

    def send_all(self, mails: Sequence[OutgoingMail]) -> list[MailNotSent | None]:
        return [MailNotSent("SMTP_URL is not set on this worker")] * len(mails)

"""The rules' durations and batch sizes, apart from the unit of work so that the settings
(read by every CLI call) can take their defaults from here without loading SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Policy:
    """The durations and batch sizes the rules use. These defaults are the service's: the
    matching settings (``settings.Settings``) take theirs from here."""

    retention_period: timedelta = timedelta(days=30)
    removal_window: timedelta = timedelta(days=30)
    removal_batch_size: int = 5000
    sweep_batch_size: int = 2000
    redrive_after: timedelta = timedelta(minutes=1)
    invitation_ttl: timedelta = timedelta(days=30)
    # How long an organization has to answer a member's removal request.
    removal_request_deadline: timedelta = timedelta(days=30)
    # How long a webhook delivery is retried before it is failed, and how long an
    # endpoint may fail every delivery before it is disabled.
    webhook_retry_for: timedelta = timedelta(days=3)
    webhook_disable_after: timedelta = timedelta(days=5)
    # Whether members are mailed about changes (SMTP_URL is set): without it the mail
    # outbox gets no rows, and the Organizations page alone tells them.
    send_mail: bool = False

"""The messages workers accept: a public contract, kept in one place.

Each message names its actor and queue explicitly and carries ids and
primitives only; a new parameter may be added only with a default, so a message
sent by an older web process still runs on a newer worker (and the other way
round). ``dispatch`` sends by this table and ``tasks`` declares the actors by it,
so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class MessageContract:
    actor_name: str
    queue_name: str
    doc: str


COMPLETE_LEAVE = MessageContract(
    "complete_leave", "leaves", "complete_leave(membership_id, request_id=None)"
)
REMOVE_DATA = MessageContract(
    "remove_data", "removals", "remove_data(membership_id, request_id=None)"
)
REMOVE_DATA_MANY = MessageContract(
    "remove_data_many", "removals", "remove_data_many(membership_ids, request_id=None)"
)
"""Data removal for a chunk of memberships at once: what ``send_many("remove_data", ids)``
sends, ``REMOVAL_CHUNK_SIZE`` ids per message. ``remove_data`` stays for single sends and
for messages already queued."""
SWEEP = MessageContract("sweep", "timers", "sweep(request_id=None)")
FAN_OUT_EVENTS = MessageContract(
    "fan_out_events", "webhooks", "fan_out_events(hint, request_id=None)"
)
"""Turn undispatched events into webhook deliveries now (``hint`` names what changed, for
the logs; every undispatched event is taken). The sweep does the same on every tick."""
DELIVER_WEBHOOK = MessageContract(
    "deliver_webhook", "webhooks", "deliver_webhook(delivery_id, request_id=None)"
)
"""One attempt of one webhook delivery, if it is pending and due."""
SEND_MAIL = MessageContract("send_mail", "mail", "send_mail(mail_id, request_id=None)")
SEND_MAIL_MANY = MessageContract(
    "send_mail_many", "mail", "send_mail_many(mail_ids, request_id=None)"
)
"""Mail from the outbox (``mail_messages``) to members: what ``send_many("send_mail", ids)``
sends, ``REMOVAL_CHUNK_SIZE`` ids per message, sent over one SMTP connection."""

CONTRACTS = MappingProxyType(
    {
        c.actor_name: c
        for c in (
            COMPLETE_LEAVE,
            REMOVE_DATA,
            REMOVE_DATA_MANY,
            SWEEP,
            SEND_MAIL,
            SEND_MAIL_MANY,
            FAN_OUT_EVENTS,
            DELIVER_WEBHOOK,
        )
    }
)
"""By actor name."""

CHUNKED = MappingProxyType(
    {REMOVE_DATA.actor_name: REMOVE_DATA_MANY, SEND_MAIL.actor_name: SEND_MAIL_MANY}
)
"""Actor name → the message that carries many of its ids at once (``send_many`` uses it)."""

QUEUES: tuple[str, ...] = tuple(dict.fromkeys(c.queue_name for c in CONTRACTS.values()))
"""Every queue the service uses, in a stable order (what operators see first)."""


def contract_for(actor_name: str) -> MessageContract:
    """The contract of ``actor_name``; raises ``KeyError`` naming it when there is none."""
    try:
        return CONTRACTS[actor_name]
    except KeyError:
        raise KeyError(f"no actor named {actor_name!r}; known: {', '.join(CONTRACTS)}") from None

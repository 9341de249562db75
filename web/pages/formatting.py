"""How the pages write dates, durations, states and kinds: one place, so every page
says "Soft deleted" and "5 Jan 2026, 09:00 UTC" the same way."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import Flask
from markupsafe import Markup, escape

from statemachines.membership import MembershipKind, MembershipLifecycle

KIND_LABELS = {
    MembershipKind.HOME.value: "Home organization",
    MembershipKind.B2B_COLLABORATION.value: "Guest (B2B collaboration)",
    MembershipKind.B2B_DIRECT_CONNECT.value: "Guest (B2B direct connect)",
}

_TICKS = re.compile(r"`([^`]+)`")


def state_label(value: str | None) -> str:
    for state in MembershipLifecycle.states:
        if state.value == value:
            return str(state.name)
    return value or ""


def kind_label(value: str | None) -> str:
    return KIND_LABELS.get(value or "", value or "")


def when(value: datetime | None) -> Markup:
    """A date and time in UTC inside ``<time>``, so it is both readable and exact."""
    if value is None:
        return Markup("—")
    text = f"{value.day} {value:%b %Y, %H:%M} UTC"
    return Markup(f'<time datetime="{value.isoformat()}">{escape(text)}</time>')


def day(value: datetime | None) -> Markup:
    if value is None:
        return Markup("—")
    return Markup(f'<time datetime="{value.isoformat()}">{value.day} {value:%b %Y}</time>')


def duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def ticks(text: str) -> Markup:
    """Markdown-style `code` spans (as in the state meanings) as ``<code>``."""
    return Markup(_TICKS.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text))))


def register(app: Flask) -> None:
    app.add_template_filter(state_label)
    app.add_template_filter(kind_label)
    app.add_template_filter(when)
    app.add_template_filter(day)
    app.add_template_filter(duration)
    app.add_template_filter(ticks)

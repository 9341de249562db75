"""How the pages write dates, durations, states and kinds: one place, so every page
says "Soft deleted" and "5 Jan 2026, 09:00 UTC" the same way."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import Flask
from markupsafe import Markup, escape

from memberships import errors
from statemachines.membership import MembershipKind, MembershipLifecycle

KIND_LABELS = {
    MembershipKind.HOME.value: "Home organization",
    MembershipKind.B2B_COLLABORATION.value: "Guest (B2B collaboration)",
    MembershipKind.B2B_DIRECT_CONNECT.value: "Guest (B2B direct connect)",
}

ACTION_LABELS = {
    "request_leave": "Asked to leave",
    "complete_leave": "Leave carried out",
    "remove": "Removed",
    "restore": "Restored",
    "purge": "Deleted permanently",
    "expire_retention": "Retention period ended; permanent deletion started",
    "finish_removal": "Data removal finished",
    "add_guest": "Added as a guest",
    "add_member": "Added as a member",
    "add_grant": "Group or role granted",
    "add_member_data": "Data recorded",
    "read_membership": "Record opened",
    "set_privacy_profile": "Privacy profile changed",
    "set_external_user_leave_allowed": "Leave setting changed",
    "open_removal_request": "Asked to be removed",
    "approve_removal_request": "Removal request approved",
    "decline_removal_request": "Removal request declined",
    "removal_request_overdue": "Removal request past its deadline",
    "close_removal_request": "Removal request closed",
}

REASON_LABELS = {
    "home-organization": "a home organization can't be left",
    "account-disabled": "the account is disabled",
    "leave-disabled": "the organization does not let external users leave on their own",
    "transition-not-allowed": "not possible in the membership's state at that time",
    "forbidden": "not an admin of this organization",
    "restore-window-closed": "the restore period had ended",
    "privacy-profile-required": "the organization had no privacy profile yet",
    "removed-by-organization": "the organization removed the member",
    "left": "the member left on their own",
    "membership-ended": "the membership ended",
    "leave-allowed": "the member could leave on their own",
    "removal-request-open": "a request was already open",
    "removal-request-closed": "the request was already answered or closed",
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


def _error_titles() -> dict[str, str]:
    found: dict[str, str] = {}
    pending: list[type[errors.LifecycleError]] = [errors.LifecycleError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls.title)
        pending.extend(cls.__subclasses__())
    return found


def action_label(value: str | None) -> str:
    """An audit action as people say it: ``purge`` → "Deleted permanently"."""
    value = value or ""
    return ACTION_LABELS.get(value, value.replace("_", " ").capitalize())


def reason_label(value: str | None) -> str:
    """An audit reason (an error code) as a phrase: ``account-disabled`` → "the account is
    disabled"."""
    value = value or ""
    if value in REASON_LABELS:
        return REASON_LABELS[value]
    title = _error_titles().get(value)
    return title[0].lower() + title[1:] if title else value.replace("-", " ")


def register(app: Flask) -> None:
    app.add_template_filter(action_label)
    app.add_template_filter(reason_label)
    app.add_template_filter(state_label)
    app.add_template_filter(kind_label)
    app.add_template_filter(when)
    app.add_template_filter(day)
    app.add_template_filter(duration)
    app.add_template_filter(ticks)

"""Self-service: what the member was told of (their notices), and their e-mail setting.

``GET /v1/me/notices`` lists what changed in the caller's memberships in the last 30
days (a purge included); ``GET``/``PATCH /v1/me/preferences`` read and change whether
the caller is also e-mailed about the changes they make themself. Changes made by an
organization or the service are always e-mailed (when the service sends mail at all).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, StrictBool

from memberships import notices
from store.models import NoticeKind
from web.openapi import problems
from web.schemas import Input, Output
from web.services import principal, services
from web.v1 import blueprint

bp = blueprint("me_notices", __name__, tag="Self-service")


class MyPreferencesIn(Input):
    email_own_changes: StrictBool = Field(
        description="Also e-mail me about the changes I make myself (my own leave)."
    )


class MyPreferences(Output):
    email_own_changes: bool = Field(
        description="Whether the caller is also e-mailed about the changes they make "
        "themself. Changes made by an organization or the service are always e-mailed."
    )

    @classmethod
    def of(cls, found: notices.MailPreferences) -> MyPreferences:
        return cls(email_own_changes=found.email_own_changes)


class NoticeOrganization(Output):
    id: str
    domain: str
    display_name: str


class MyNotice(Output):
    id: int
    kind: NoticeKind = Field(description="What happened.")
    occurred_at: datetime
    organization: NoticeOrganization
    caused_by_me: bool = Field(description="The caller made this change themself (a leave).")
    restorable_until: datetime | None = Field(
        default=None, description="Until when the organization can restore the account."
    )
    removal_due_by: datetime | None = Field(
        default=None, description="By when the account's data will be gone."
    )
    reason: str | None = Field(
        default=None, description="The organization's reason (a declined removal request)."
    )

    @classmethod
    def of(cls, notice: notices.NoticeView) -> MyNotice:
        org = notice.organization
        kind: Any = notice.kind
        return cls(
            id=notice.id,
            kind=kind,
            occurred_at=notice.occurred_at,
            organization=NoticeOrganization(
                id=org.id, domain=org.domain, display_name=org.display_name
            ),
            caused_by_me=notice.caused_by_member,
            restorable_until=notice.restorable_until,
            removal_due_by=notice.removal_due_by,
            reason=notice.reason,
        )


class MyNoticeList(Output):
    items: list[MyNotice]


@bp.get("/me/notices")
@bp.output(MyNoticeList)
@bp.doc(
    operation_id="listMyNotices",
    summary="List what changed in my memberships",
    description="The caller's notices of the last 30 days, newest first: removed, "
    "restored, left, data removal started, data removed (purged), a removal request "
    "answered or overdue. A purge is listed although the organization's record no longer "
    "names the caller.",
    responses=problems("not-found"),
)
def list_my_notices() -> MyNoticeList:
    s = services()
    with s.uow() as uow:
        found = notices.recent_notices(uow, principal(), s.clock())
    return MyNoticeList(items=[MyNotice.of(n) for n in found])


@bp.get("/me/preferences")
@bp.output(MyPreferences)
@bp.doc(
    operation_id="getMyPreferences",
    summary="Show my e-mail setting",
    responses=problems("not-found"),
)
def get_my_preferences() -> MyPreferences:
    with services().uow() as uow:
        return MyPreferences.of(notices.get_preferences(uow, principal()))


@bp.patch("/me/preferences")
@bp.input(MyPreferencesIn, arg_name="body")
@bp.output(MyPreferences)
@bp.doc(
    operation_id="updateMyPreferences",
    summary="Change my e-mail setting",
    description="`emailOwnChanges`: also e-mail me about the changes I make myself. "
    "E-mails about changes made by an organization or the service cannot be turned off.",
    responses=problems("not-found", "invalid-input"),
)
def update_my_preferences(body: MyPreferencesIn) -> MyPreferences:
    s = services()
    with s.uow() as uow:
        found = notices.set_email_own_changes(uow, s.clock, principal(), body.email_own_changes)
    return MyPreferences.of(found)

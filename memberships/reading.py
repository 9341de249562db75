"""What admins, operators and the CLI read: organizations, memberships, audit trails.

Lists are cursor-paginated on the primary key: stable under inserts, each row
returned exactly once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any

from memberships import removal_confirmations
from memberships.clock import Clock
from memberships.decisions import admin_organization, membership_in
from memberships.errors import InvalidInput, NotFound
from memberships.principal import Principal
from memberships.timeline import labelled_trail
from memberships.views import AuditEventView, GrantView, MembershipView, OrganizationView, Page
from statemachines.membership import MembershipKind, MembershipState
from store.unit_of_work import UnitOfWork

MAX_PAGE = 200
# Audit event ids are 64-bit: a longer number is no cursor this service gave out.
_MAX_ID_DIGITS = 18


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key a cursor stands for. Cursors hold ids, which are printable ASCII: anything
    else (a NUL, "²") is ``InvalidInput``, never a value sent to the database."""
    if not cursor:
        return None
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("cursor: not a cursor this service gave out", field="cursor") from None
    if not (value.isascii() and value.isprintable()):
        raise InvalidInput("cursor: not a cursor this service gave out", field="cursor")
    return value


def page_limit(limit: int) -> int:
    if limit < 1 or limit > MAX_PAGE:
        raise InvalidInput(f"limit: must be between 1 and {MAX_PAGE}", field="limit")
    return limit


def _admin_org(uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, action: str):
    org = admin_organization(uow, clock(), principal, org_ref, action)
    return org


def get_organization(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str
) -> OrganizationView:
    return OrganizationView.of(_admin_org(uow, clock, principal, org_ref, "read_organization"))


def list_memberships(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    *,
    state: str | None = None,
    kind: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    org = _admin_org(uow, clock, principal, org_ref, "list_memberships")
    if state and state not in {s.value for s in MembershipState}:
        raise InvalidInput(f"state: {state!r} is not a membership state", field="state")
    if kind and kind not in {k.value for k in MembershipKind}:
        raise InvalidInput(f"kind: {kind!r} is not a membership kind", field="kind")
    return page_of(
        cursor,
        limit,
        lambda after, n: uow.listings.memberships_page(
            org.id, state=state, kind=kind, after=after, limit=n
        ),
        MembershipView.of,
    )


def list_deleted_users(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """Soft-deleted memberships: restorable until their ``purge_due_at``."""
    org = _admin_org(uow, clock, principal, org_ref, "list_deleted_users")
    return page_of(
        cursor,
        limit,
        lambda after, n: uow.listings.memberships_page(
            org.id, state=MembershipState.SOFT_DELETED.value, after=after, limit=n
        ),
        MembershipView.of,
    )


def page_of(
    cursor: str | None,
    limit: int,
    rows_after: Callable[[str | None, int], Sequence[Any]],
    view: Callable[[Any], Any],
) -> Page:
    """One page of rows in id order after the cursor's id: ``rows_after(after, limit)``
    returns up to ``limit + 1`` rows (a repository's page, one row more), each with an
    ``id``; the extra row means a next page, whose cursor is the last shown row's id."""
    limit = page_limit(limit)
    rows = rows_after(decode_cursor(cursor), limit)
    items = tuple(view(row) for row in rows[:limit])
    return Page(items, encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)


def get_membership(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, membership_id: str
) -> MembershipView:
    """A membership with its grants (none once purged)."""
    org = _admin_org(uow, clock, principal, org_ref, "read_membership")
    membership = membership_in(uow, org, membership_id)
    grants = tuple(GrantView.of(g) for g in uow.memberships.grants_of(membership.id))
    return MembershipView.of(membership, grants, removal_confirmations.removal_of(uow, membership))


def membership_history(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, membership_id: str
) -> list[AuditEventView]:
    org = _admin_org(uow, clock, principal, org_ref, "read_membership")
    membership = membership_in(uow, org, membership_id)
    return labelled_trail(uow, membership)


def list_audit_events(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    org = _admin_org(uow, clock, principal, org_ref, "list_audit_events")
    return page_of(
        cursor,
        limit,
        lambda after, n: uow.listings.audit_page(org.id, after=_audit_id(after), limit=n),
        AuditEventView.of,
    )


def _audit_id(after: str | None) -> int | None:
    """The audit event id a decoded cursor stands for: digits, and no more than an id has."""
    if after is None:
        return None
    if not after.isdigit() or len(after) > _MAX_ID_DIGITS:
        raise InvalidInput("cursor: not a cursor this service gave out", field="cursor")
    return int(after)


def show_membership(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, user_ref: str
) -> dict[str, Any]:
    """A membership by organization and user: state, timestamps, grants, audit trail.

    Only a membership that is not purged: the purge erases the tombstone's link to the user
    (``statemachines.membership``, entry fields of ``purged``), so no user leads to it.
    """
    org = _admin_org(uow, clock, principal, org_ref, "read_membership")
    user = uow.directory.find_user(user_ref)
    membership = uow.memberships.live_membership(user.id, org.id) if user else None
    if membership is None:
        raise NotFound(f"No membership of {user_ref!r} in {org.domain}.")
    grants = tuple(GrantView.of(g) for g in uow.memberships.grants_of(membership.id))
    return {
        "membership": MembershipView.of(membership, grants),
        "member_data_rows": uow.memberships.count_member_data(membership.id),
        "audit": [AuditEventView.of(e) for e in uow.audit.trail(membership.id)],
    }

"""Connected apps confirm a membership's data removal.

When a membership enters ``purge-pending``, every enabled endpoint of its organization
with ``confirms_removal`` gets an open confirmation (``store.app_confirmations``). The
membership is purged only when the service's own data is removed **and** every one of
them is confirmed (``memberships.removal``). An app confirms in one of three ways:

- it calls ``confirmUrl`` (``POST``, empty body, no credentials), the capability URL its
  ``membership.purge_pending`` delivery carried: ``confirm_by_token``;
- it answers that delivery with ``200`` and ``{"removed": true}``: ``confirm_by_delivery``;
- an admin of the organization records it by hand, with a note saying why:
  ``confirm_manually`` (the audit log names who and which app; the confirmation row
  keeps who and the note, and the membership's record shows both).

The confirmUrl's token is 32 random bytes minted for each delivery attempt; only its
SHA-256 is stored (``removal_app_confirmations.token_hash``), so whoever reads the
database cannot call the URL. A new attempt mints a new token and the earlier URL stops
working; a confirmation clears the hash, so a URL works once.

The confirmation that closes the last open one sends the removal's work again
(``remove_data``), which finishes the membership; should that message be lost, the
sweep's re-drive takes the membership again, since nothing holds it any more.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from memberships.clock import Clock
from memberships.decisions import admin_organization, audit, membership_in
from memberships.errors import AlreadyExists, InvalidInput, NotFound
from memberships.principal import Principal
from statemachines.membership import MembershipState
from store.models import Membership, RemovalAppConfirmation
from store.unit_of_work import UnitOfWork

REMOVE_DATA = "remove_data"
CONFIRM_PATH = "/v1/removal-confirmations/"
MAX_NOTE = 500


@dataclass(frozen=True, slots=True)
class AppConfirmationView:
    webhook_id: str
    url: str
    confirmed_at: datetime | None
    confirmed_via: str | None
    confirmed_by: str | None
    note: str | None

    @classmethod
    def of(cls, row: RemovalAppConfirmation) -> AppConfirmationView:
        return cls(
            row.webhook_id, row.url, row.confirmed_at, row.confirmed_via, row.confirmed_by, row.note
        )


@dataclass(frozen=True, slots=True)
class RemovalView:
    """A membership's data removal: its own rows, and the apps that must confirm."""

    rows_removed: int
    rows_total: int
    apps: tuple[AppConfirmationView, ...]

    @property
    def waiting_on_apps(self) -> bool:
        return any(a.confirmed_at is None for a in self.apps)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_confirm_url(
    uow: UnitOfWork, confirmation: RemovalAppConfirmation, public_base_url: str
) -> str:
    """A new single-use confirmUrl for ``confirmation`` (its hash replaces the last one's;
    the caller commits)."""
    token = secrets.token_urlsafe(32)
    uow.deliveries.replace_token(confirmation, token_hash(token))
    return f"{public_base_url.rstrip('/')}{CONFIRM_PATH}{token}"


def _confirm(
    uow: UnitOfWork,
    row: RemovalAppConfirmation,
    now: datetime,
    via: str,
    *,
    by: str | None = None,
    note: str | None = None,
) -> None:
    row.confirmed_at = now
    row.confirmed_via = via
    row.confirmed_by = by
    row.note = note
    row.token_hash = None
    if not uow.deliveries.count_open_confirmations(row.membership_id):
        uow.send_after_commit(REMOVE_DATA, row.membership_id)


def confirm_by_token(uow: UnitOfWork, clock: Clock, token: str) -> AppConfirmationView:
    """An app called its confirmUrl. ``NotFound`` for a token that is unknown, already
    used, replaced by a later attempt's, or of a membership no longer purge-pending."""
    now = clock()
    gone = NotFound("This confirmation link is not valid: unknown, replaced or already used.")
    if not token or len(token) > 200:
        raise gone
    row = uow.deliveries.confirmation_with_token(token_hash(token))
    if row is None or row.confirmed_at is not None:
        raise gone
    membership = uow.memberships.get(row.membership_id)
    if membership is None or membership.state != MembershipState.PURGE_PENDING.value:
        raise gone
    _confirmed_by_app(uow, row, membership, now, "url")
    uow.commit()
    return AppConfirmationView.of(row)


def _confirmed_by_app(
    uow: UnitOfWork, row: RemovalAppConfirmation, membership: Membership, now: datetime, via: str
) -> None:
    """The app itself confirmed (``via`` its confirmUrl or its delivery's answer): the
    confirmation, and an audit row naming the app as the actor."""
    _confirm(uow, row, now, via)
    uow.audit.append(
        occurred_at=now,
        actor=f"webhook:{row.webhook_id}",
        action="confirm_removal",
        outcome="allowed",
        organization_id=membership.organization_id,
        membership_id=membership.id,
        from_state=membership.state,
        to_state=None,
        reason=via,
        request_id=uow.request_id,
    )


def confirm_by_delivery(uow: UnitOfWork, now: datetime, confirmation_id: str) -> bool:
    """The app answered its delivery with ``{"removed": true}`` (the caller commits)."""
    row = uow.deliveries.reload_confirmation(confirmation_id)
    if row is None or row.confirmed_at is not None:
        return False
    membership = uow.memberships.get(row.membership_id)
    if membership is None or membership.state != MembershipState.PURGE_PENDING.value:
        return False
    _confirmed_by_app(uow, row, membership, now, "delivery")
    return True


def confirm_manually(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    membership_id: str,
    webhook_id: str,
    note: str,
) -> AppConfirmationView:
    """An admin records that an app removed the membership's data (say, its operators
    confirmed by other means). ``note`` says why; both are audited. Raises ``NotFound``
    (no such membership or app to confirm), ``InvalidInput`` (no note) or
    ``AlreadyExists`` (already confirmed)."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "confirm_removal")
    note = (note or "").strip()
    if not note:
        raise InvalidInput("note: say why the removal is confirmed by hand", field="note")
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"note: at most {MAX_NOTE} characters", field="note")
    membership = membership_in(uow, org, membership_id)
    row = uow.deliveries.confirmation_of(membership.id, (webhook_id or "").strip().lower())
    if row is None:
        raise NotFound(f"No app {webhook_id!r} has to confirm the removal of this membership.")
    if row.confirmed_at is not None:
        raise AlreadyExists(
            f"The app confirmed already ({row.confirmed_via}, {row.confirmed_at:%Y-%m-%d %H:%M}).",
            webhook_id=row.webhook_id,
        )
    if membership.state != MembershipState.PURGE_PENDING.value:
        raise NotFound("The membership is not waiting for its data removal.")
    _confirm(uow, row, now, "manual", by=principal.id[:64], note=note)
    audit(
        uow,
        now,
        principal,
        "confirm_removal",
        membership=membership,
        from_state=membership.state,
        # The audit row names who and which app; the note (why) is kept on the
        # confirmation itself, which the membership's record shows.
        reason=f"manual:{row.webhook_id}",
    )
    uow.commit()
    return AppConfirmationView.of(row)


def removal_of(uow: UnitOfWork, membership: Membership) -> RemovalView | None:
    """The removal's progress, once removal started (purge-pending or purged)."""
    if membership.state not in (
        MembershipState.PURGE_PENDING.value,
        MembershipState.PURGED.value,
    ):
        return None
    left = (
        uow.data_removal.rows_left(membership.id)
        if membership.state == MembershipState.PURGE_PENDING.value
        else 0
    )
    apps = uow.deliveries.confirmations_of(membership.id)
    removed = membership.removed_rows or 0
    return RemovalView(removed, removed + left, tuple(AppConfirmationView.of(a) for a in apps))

"""How a use case decides: look up, authorize, apply a lifecycle event, audit.

Every decision is audited. A denial is written and committed on its own (after
rolling back anything the use case had begun), then raised, so the audit log
keeps denied attempts even though the caller sees an error.
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

from memberships.errors import (
    Conflict,
    Forbidden,
    LifecycleError,
    NotFound,
    PreconditionFailed,
)
from memberships.errors import TransitionNotAllowed as TransitionNotAllowedError
from memberships.principal import Principal
from statemachines.membership import FOLLOW_UP, MembershipKind, entry_fields, target
from store.models import ADMIN_ROLES, Membership, Organization
from store.transitions import Transition
from store.unit_of_work import UnitOfWork


def actor_of(
    uow: UnitOfWork,
    principal: Principal,
    organization_id: str | None,
    membership: Membership | None = None,
) -> str:
    """How the audit log names ``principal`` in ``organization_id``.

    A member acting on their own membership, or a guest acting in the organization they
    are a guest of (not as its admin), is named by that membership's pseudonym, never by
    their user id: once the membership is purged, nothing the organization can read
    leads back to them. Admins, operators and the service are named as themselves.
    """
    if principal.is_system:
        return principal.id
    if membership is not None and membership.user_id == principal.id:
        return membership.pseudonym
    if organization_id is None:
        return principal.id
    own = uow.memberships.live_membership(principal.id, organization_id)
    if (
        own is not None
        and own.kind != MembershipKind.HOME
        and not uow.directory.roles_of(principal.id, organization_id)
    ):
        return own.pseudonym
    return principal.id


def audit(
    uow: UnitOfWork,
    now: datetime,
    principal: Principal,
    action: str,
    *,
    organization_id: str | None = None,
    membership: Membership | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> None:
    """Append an allowed entry; ``actor`` overrides how the principal is named (see
    ``actor_of``). A refusal is written by ``deny``."""
    org_id = organization_id or (membership.organization_id if membership else None)
    uow.audit.append(
        occurred_at=now,
        actor=actor or actor_of(uow, principal, org_id, membership),
        action=action,
        organization_id=org_id,
        membership_id=membership.id if membership else None,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        request_id=uow.request_id,
    )


def deny(
    uow: UnitOfWork,
    now: datetime,
    principal: Principal,
    action: str,
    error: LifecycleError,
    *,
    organization_id: str | None = None,
    membership_id: str | None = None,
    from_state: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> NoReturn:
    """Roll back, write the denial to the audit log, commit it, and raise ``error``.

    ``reason`` is recorded instead of the error's code where the caller is told less than
    the log keeps (an organization the caller may not see is answered ``not-found``).
    The unit of work is told (``denial_recorded``): the web edge charges each audited
    refusal to the caller's rate limit.
    """
    if actor is None:
        membership = uow.memberships.get(membership_id) if membership_id else None
        actor = actor_of(uow, principal, organization_id, membership)
    uow.rollback()
    uow.audit.append(
        occurred_at=now,
        actor=actor,
        action=action,
        outcome="denied",
        organization_id=organization_id,
        membership_id=membership_id,
        from_state=from_state,
        reason=reason or error.code,
        request_id=uow.request_id,
    )
    uow.commit()
    uow.denial_recorded()
    raise error


def organization_or_404(uow: UnitOfWork, ref: str) -> Organization:
    org = uow.directory.find_organization(ref)
    if org is None:
        raise _no_organization(ref)
    return org


def admin_organization(
    uow: UnitOfWork, now: datetime, principal: Principal, org_ref: str, action: str
) -> Organization:
    """The organization ``org_ref`` names, for an admin of it (or the service itself).

    A caller with no admin role there is told exactly what a made-up reference gets,
    ``NotFound`` with the same words, so admin paths reveal no organization's existence;
    the audit log still records the refusal (reason ``forbidden``). A caller whose role
    is there but whose account is disabled (at home, or in that organization) gets
    ``Forbidden``: they know the organization, and now why they can do nothing in it.
    """
    org = uow.directory.find_organization(org_ref)
    if org is None:
        raise _no_organization(org_ref)
    if principal.is_system or uow.directory.is_admin_of(principal.id, org.id):
        return org
    if set(ADMIN_ROLES) & uow.directory.roles_of(principal.id, org.id):
        deny(
            uow,
            now,
            principal,
            action,
            Forbidden(
                "Your account is disabled, so the admin roles it holds give no powers. "
                "Ask another admin of the organization to enable it."
            ),
            organization_id=org.id,
        )
    deny(
        uow,
        now,
        principal,
        action,
        _no_organization(org_ref),
        organization_id=org.id,
        reason=Forbidden.code,
    )


def _no_organization(ref: str) -> NotFound:
    return NotFound(f"No organization {ref!r}.")


def require_operator(
    uow: UnitOfWork,
    principal: Principal,
    *,
    now: datetime | None = None,
    action: str | None = None,
) -> None:
    """Platform operations need the ``operator`` role (or the service itself).

    Raises ``Forbidden``; given ``now`` and ``action``, the denial is audited first.
    """
    if principal.is_system or uow.directory.is_operator(principal.id):
        return
    error = Forbidden("This needs the platform operator role.")
    if now is not None and action is not None:
        deny(uow, now, principal, action, error)
    raise error


def membership_in(uow: UnitOfWork, org: Organization, membership_id: str) -> Membership:
    membership = uow.memberships.get((membership_id or "").lower())
    if membership is None or membership.organization_id != org.id:
        raise NotFound(f"No membership {membership_id!r} in {org.domain}.")
    return membership


def transition_for(
    uow: UnitOfWork, now: datetime, actor: str, event: str, from_state: str, to_state: str
) -> Transition:
    """What a membership moved by ``event`` from ``from_state`` to ``to_state`` gets: the
    state's entry fields (with the policy's durations), and who, when and which request
    for its audit row."""
    return Transition(
        event=event,
        from_state=from_state,
        to_state=to_state,
        fields=entry_fields(to_state, now, uow.policy),
        now=now,
        actor=actor,
        request_id=uow.request_id,
    )


def apply_event(
    uow: UnitOfWork,
    now: datetime,
    principal: Principal,
    membership: Membership,
    event: str,
    *,
    expected_version: int | None = None,
) -> Membership:
    """Move ``membership`` by ``event`` (as the lifecycle machine decides, see
    ``statemachines.membership.target``) and store it with the one transition writer
    (``store.transitions.move_one``: compare-and-set and the audit row).

    Raises ``PreconditionFailed`` (stale ``expected_version``), ``TransitionNotAllowed``
    (the machine refuses) or ``Conflict`` (another decision changed the row first); each
    is audited as a denial.
    """
    from_state = membership.state
    ids = {"organization_id": membership.organization_id, "membership_id": membership.id}
    if expected_version is not None and expected_version != membership.version:
        deny(
            uow,
            now,
            principal,
            event,
            PreconditionFailed(
                f"The membership is at version {membership.version}, not {expected_version}."
            ),
            from_state=from_state,
            **ids,
        )
    to_state = target(membership.state, membership.kind, event)
    if to_state is None:
        deny(
            uow,
            now,
            principal,
            event,
            TransitionNotAllowedError(
                f"A membership in state {from_state!r} does not allow {event!r}.", state=from_state
            ),
            from_state=from_state,
            **ids,
        )
    transition = transition_for(
        uow,
        now,
        actor_of(uow, principal, membership.organization_id, membership),
        event,
        from_state,
        to_state,
    )
    if not uow.transitions.move_one(membership, transition):
        deny(
            uow,
            now,
            principal,
            event,
            Conflict(f"The membership changed while {event!r} was being decided; read it again."),
            from_state=from_state,
            **ids,
        )
    # The work the new state waits for, sent only after the commit.
    follow_up = FOLLOW_UP.get(to_state)
    if follow_up:
        uow.send_after_commit(follow_up, membership.id)
    return membership

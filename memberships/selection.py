"""Admin decisions over several memberships at once (the Deleted users check boxes).

Each membership is decided in its own transaction through the same use case as a
single one, so one refusal (already restored, already purged, changed by someone
else) neither blocks nor undoes the others, and each decision is audited on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memberships.admin import purge
from memberships.clock import Clock
from memberships.decisions import admin_organization
from memberships.errors import Forbidden, InvalidInput, LifecycleError
from memberships.principal import Principal
from memberships.views import MembershipView
from store.unit_of_work import UnitOfWork

MAX_SELECTION = 200


@dataclass(frozen=True, slots=True)
class SelectionOutcome:
    """What happened to one selected membership: ``membership`` or ``error`` is set."""

    membership_id: str
    membership: MembershipView | None = None
    error: LifecycleError | None = None


def purge_selected(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    membership_ids: Sequence[str],
) -> list[SelectionOutcome]:
    """Permanently delete each selected soft-deleted membership: irrevocable.

    Raises ``InvalidInput`` for an empty or oversized selection and ``Forbidden`` /
    ``NotFound`` before touching anything; per-membership refusals are returned.
    """
    ids = list(dict.fromkeys(i.strip().lower() for i in membership_ids if i and i.strip()))
    if not ids:
        raise InvalidInput("Select at least one deleted user.", field="membership_id")
    if len(ids) > MAX_SELECTION:
        raise InvalidInput(
            f"Select at most {MAX_SELECTION} deleted users at a time.", field="membership_id"
        )
    org = admin_organization(uow, clock(), principal, org_ref, "purge")
    outcomes = []
    for membership_id in ids:
        try:
            outcomes.append(
                SelectionOutcome(membership_id, purge(uow, clock, principal, org.id, membership_id))
            )
        except Forbidden:
            raise
        except LifecycleError as error:
            outcomes.append(SelectionOutcome(membership_id, error=error))
    return outcomes

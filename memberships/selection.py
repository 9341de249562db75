"""Admin decisions over several memberships at once: the check boxes of Deleted users
(restore, delete permanently) and Members (remove), and the API's bulk operations.

Each membership is decided in its own transaction through the same use case as a
single one, so one refusal (already restored, already purged, changed by someone
else) neither blocks nor undoes the others, and each decision is audited on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memberships.admin import purge, remove, restore
from memberships.clock import Clock
from memberships.decisions import admin_organization
from memberships.errors import Forbidden, InvalidInput, LifecycleError
from memberships.principal import Principal
from memberships.views import MembershipView
from store.unit_of_work import UnitOfWork

MAX_SELECTION = 500


@dataclass(frozen=True, slots=True)
class SelectionOutcome:
    """What happened to one selected membership: ``membership`` or ``error`` is set."""

    membership_id: str
    membership: MembershipView | None = None
    error: LifecycleError | None = None
    label: str | None = None
    """The member's name or e-mail as it was before the decision (``None``: unknown here,
    or already purged), for a page's per-row results."""


Decision = Callable[[UnitOfWork, Clock, Principal, str, str], MembershipView]

# What a selection can be given: restore each deleted user (with the grants each had),
# remove each guest (soft-deleted, or data removal for direct connect), or delete each
# deleted user permanently (irrevocable). The key is also the audited action.
DECISIONS: dict[str, Decision] = {"restore": restore, "remove": remove, "purge": purge}


def decide_selected(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    membership_ids: Sequence[str],
    action: str,
) -> list[SelectionOutcome]:
    """Apply ``action`` (a key of ``DECISIONS``: ``restore``, ``remove`` or ``purge``) to
    each selected membership, each in its own transaction, all or nothing per membership.

    Raises ``InvalidInput`` for an empty or oversized selection and ``Forbidden`` /
    ``NotFound`` (the organization) before touching anything; per-membership refusals
    (not found, wrong state, changed meanwhile) are returned in the given order.
    """
    ids = list(dict.fromkeys(i.strip().lower() for i in membership_ids if i and i.strip()))
    if not ids:
        raise InvalidInput("Select at least one member.", field="ids")
    if len(ids) > MAX_SELECTION:
        raise InvalidInput(
            f"Select at most {MAX_SELECTION} members at a time ({len(ids)} were given).",
            field="ids",
        )
    decision = DECISIONS[action]
    org = admin_organization(uow, clock(), principal, org_ref, action)
    labels = _labels(uow, org.id, ids)
    outcomes = []
    for membership_id in ids:
        label = labels.get(membership_id)
        try:
            view = decision(uow, clock, principal, org.id, membership_id)
            # A purged guest's identity is shown nowhere, not even in the result of the
            # decision that erased it: that row is named by its id only.
            shown = None if view.state in ("purged", "purge-pending") else label
            outcomes.append(SelectionOutcome(membership_id, view, label=shown))
        except LifecycleError as error:
            if type(error) is Forbidden:  # not an admin after all (a role taken meanwhile)
                raise
            # Refusals about this one membership (home organization, state, version).
            outcomes.append(SelectionOutcome(membership_id, error=error, label=label))
    return outcomes


def _labels(uow: UnitOfWork, organization_id: str, ids: Sequence[str]) -> dict[str, str]:
    rows = uow.listings.names_of(organization_id, ids)
    found = {row_id: name or email for row_id, name, email in rows}
    return {row_id: label for row_id, label in found.items() if label}

"""Who is signed in and what they may open: the account behind the web pages.

The pages show each person only the places their roles open (the organizations
they administer, the operations view for operators). Roles come from the
database on every request, so a role taken away takes effect at once, without
waiting for a session to expire.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, select

from memberships.errors import NotFound
from memberships.principal import Principal
from memberships.self_service import get_my_organization, list_organizations
from memberships.views import OrganizationEntry, OrganizationView, UserView
from store import queries
from store.models import ADMIN_ROLES, Membership, Organization, RoleAssignment, User
from store.unit_of_work import UnitOfWork

SIGN_IN_LIST_LIMIT = 200


@dataclass(frozen=True, slots=True)
class AccountView:
    """The signed-in user with the organizations they administer and their platform roles."""

    user: UserView
    administers: tuple[OrganizationView, ...]
    is_operator: bool


@dataclass(frozen=True, slots=True)
class OrganizationsOverview:
    """What the Organizations page shows: the home organization, the others, and the one
    asked for with ``?tenantId=`` (in any state until it is purged).

    ``not_a_member`` is the reference asked for when the caller has no membership there
    (never had one, or it has been purged since): the page says so instead of failing,
    because "gone" is what a member who just left expects to see in the end.
    """

    home: OrganizationEntry | None
    others: tuple[OrganizationEntry, ...]
    focus: OrganizationEntry | None
    not_a_member: str | None = None


def account_of(uow: UnitOfWork, principal: Principal) -> AccountView:
    """The signed-in user's account. Raises ``NotFound`` when the user no longer exists,
    so a session that outlived its user ends instead of acting on nobody's behalf."""
    user = uow.session.get(User, principal.id)
    if user is None:
        raise NotFound("The signed-in user is not known to this service.")
    administered = uow.session.scalars(
        select(Organization)
        .join(RoleAssignment, RoleAssignment.organization_id == Organization.id)
        .where(RoleAssignment.user_id == user.id, RoleAssignment.role.in_(ADMIN_ROLES))
        .order_by(Organization.display_name, Organization.id)
        .distinct()
    ).all()
    # A disabled account keeps its roles on record but opens nothing with them.
    return AccountView(
        user=UserView.of(user),
        administers=tuple(
            OrganizationView.of(o)
            for o in administered
            if not queries.is_disabled(uow.session, user.id, o.id)
        ),
        is_operator=queries.is_operator(uow.session, user.id),
    )


def _can_sign_in_as() -> Select[User]:
    """Users the development sign-in offers: enabled, not disabled at home, not erased."""
    disabled_at_home = (
        select(Membership.id)
        .where(
            Membership.user_id == User.id,
            Membership.organization_id == User.home_organization_id,
            Membership.state != "purged",
            Membership.enabled.is_(False),
        )
        .exists()
    )
    return select(User).where(User.enabled.is_(True), User.email.is_not(None), ~disabled_at_home)


def users_to_sign_in_as(uow: UnitOfWork) -> list[UserView]:
    """Every user who may sign in, by e-mail: only the development sign-in page lists them.

    The caller decides whether such a page exists at all (development settings);
    capped so that a large directory cannot turn the page into a dump. Disabled
    accounts and erased users are not listed.
    """
    rows = uow.session.scalars(
        _can_sign_in_as().order_by(User.email).limit(SIGN_IN_LIST_LIMIT)
    ).all()
    return [UserView.of(u) for u in rows]


def may_sign_in_as(uow: UnitOfWork, user_id: str) -> bool:
    """Whether the development sign-in accepts ``user_id`` (what it would list)."""
    found = uow.session.scalar(_can_sign_in_as().where(User.id == (user_id or "").strip()))
    return found is not None


def organizations_overview(
    uow: UnitOfWork, principal: Principal, tenant_ref: str | None = None
) -> OrganizationsOverview:
    """The caller's Organizations page: home first, then the others, plus the one named
    by ``tenant_ref`` (id or domain). Raises ``NotFound`` only when the caller's own user
    is unknown."""
    entries = list_organizations(uow, principal)
    focus, not_a_member = None, None
    if tenant_ref:
        try:
            focus = get_my_organization(uow, principal, tenant_ref)
        except NotFound:
            not_a_member = tenant_ref
    return OrganizationsOverview(
        home=next((e for e in entries if e.is_home), None),
        others=tuple(e for e in entries if not e.is_home),
        focus=focus,
        not_a_member=not_a_member,
    )

"""Making organizations, users, guests, grants, member data and role assignments.

The CLI provisions as the service itself (or a platform operator): ``add_guest``
makes a membership at once, for set-up and the demo. Over HTTP an organization's
admin invites instead (``memberships.invitations``), and the person accepts.
"""

from __future__ import annotations

from memberships.clock import Clock
from memberships.decisions import audit, organization_or_404, require_operator
from memberships.errors import AlreadyExists, InvalidInput, NotFound, TransitionNotAllowed
from memberships.principal import Principal
from memberships.validation import valid_domain, valid_email, valid_name, valid_statement_url
from memberships.views import GrantView, MembershipView, OrganizationView, UserView
from statemachines.membership import USABLE_STATES, MembershipKind
from store.models import ADMIN_ROLES, ROLES, Grant, Membership, Organization, User
from store.models import RoleAssignment as RoleAssignmentRow
from store.unit_of_work import UnitOfWork

GUEST_KINDS = (MembershipKind.B2B_COLLABORATION.value, MembershipKind.B2B_DIRECT_CONNECT.value)


def _user_or_404(uow: UnitOfWork, ref: str) -> User:
    user = uow.directory.find_user(ref)
    if user is None:
        raise NotFound(f"No user {ref!r}.")
    return user


def create_organization(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    domain: str,
    display_name: str,
    privacy_contact_email: str | None = None,
    privacy_statement_url: str | None = None,
    external_user_leave_allowed: bool = True,
) -> OrganizationView:
    """Raises ``InvalidInput``, ``AlreadyExists`` (domain taken) or ``Forbidden`` (audited)."""
    now = clock()
    require_operator(uow, principal, now=now, action="create_organization")
    domain = valid_domain(domain)
    if uow.directory.find_organization(domain) is not None:
        raise AlreadyExists(f"An organization with the domain {domain!r} already exists.")
    has_profile = bool(privacy_contact_email and privacy_statement_url)
    if not external_user_leave_allowed and not has_profile:
        raise InvalidInput(
            "Disallowing leave needs a privacy profile: give a privacy e-mail and URL too.",
            field="external_user_leave_allowed",
        )
    org = Organization(
        domain=domain,
        display_name=valid_name(display_name, "name"),
        privacy_contact_email=(
            valid_email(privacy_contact_email, "privacy e-mail") if privacy_contact_email else None
        ),
        privacy_statement_url=(
            valid_statement_url(privacy_statement_url, "privacy URL")
            if privacy_statement_url
            else None
        ),
        external_user_leave_allowed=external_user_leave_allowed,
        created_at=now,
    )
    uow.provisioning.add(org)
    audit(uow, now, principal, "create_organization", organization_id=org.id)
    uow.commit()
    return OrganizationView.of(org)


def create_user(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    email: str,
    display_name: str,
    home_org_ref: str | None = None,
    enabled: bool = True,
) -> UserView:
    """A user, and with a home organization their ``home`` membership in it."""
    now = clock()
    require_operator(uow, principal, now=now, action="create_user")
    email = valid_email(email)
    if uow.directory.find_user(email) is not None:
        raise AlreadyExists(f"A user with the e-mail {email!r} already exists.")
    home = organization_or_404(uow, home_org_ref) if home_org_ref else None
    user = User(
        email=email,
        display_name=valid_name(display_name, "name"),
        home_organization_id=home.id if home else None,
        enabled=enabled,
        created_at=now,
    )
    uow.provisioning.add(user)
    if home is not None:
        membership = Membership(
            user_id=user.id,
            organization_id=home.id,
            kind=MembershipKind.HOME.value,
            email=user.email,
            display_name=user.display_name,
            enabled=enabled,
            created_at=now,
        )
        uow.provisioning.add(membership)
        audit(uow, now, principal, "add_member", membership=membership, to_state=membership.state)
    uow.commit()
    return UserView.of(user)


def add_guest(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    user_ref: str,
    kind: str,
    enabled: bool = True,
) -> MembershipView:
    """A guest membership for an existing user, made at once: provisioning by the service
    or a platform operator (an admin invites instead).

    Raises ``InvalidInput`` (kind, or the user's home organization), ``AlreadyExists``.
    """
    now = clock()
    require_operator(uow, principal, now=now, action="add_guest")
    org = organization_or_404(uow, org_ref)
    if kind not in GUEST_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(GUEST_KINDS)}", field="kind")
    user = _user_or_404(uow, user_ref)
    if user.home_organization_id == org.id:
        raise InvalidInput(f"{org.domain} is the user's home organization.", field="user")
    membership = uow.memberships.add_membership(user, org.id, kind, now, enabled=enabled)
    if membership is None:
        raise AlreadyExists(f"{user.email} is already a member of {org.domain}.")
    audit(uow, now, principal, "add_guest", membership=membership, to_state=membership.state)
    uow.commit()
    return MembershipView.of(membership)


def _usable_membership(uow: UnitOfWork, org_ref: str, user_ref: str) -> Membership:
    org = organization_or_404(uow, org_ref)
    user = _user_or_404(uow, user_ref)
    membership = uow.memberships.live_membership(user.id, org.id)
    if membership is None:
        raise NotFound(f"{user.email} is not a member of {org.domain}.")
    if membership.state not in USABLE_STATES:
        raise TransitionNotAllowed(
            f"The membership is {membership.state}: only an active or restored one gets new data.",
            state=membership.state,
        )
    return membership


def add_grant(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    user_ref: str,
    kind: str,
    name: str,
) -> GrantView:
    """A group membership (``kind='group'``) or app-role assignment (``'app-role'``)."""
    now = clock()
    require_operator(uow, principal, now=now, action="add_grant")
    if kind not in ("group", "app-role"):
        raise InvalidInput("kind must be group or app-role", field="kind")
    membership = _usable_membership(uow, org_ref, user_ref)
    grant = Grant(
        membership_id=membership.id, kind=kind, name=valid_name(name, kind), granted_at=now
    )
    if not uow.provisioning.add_grant(grant):
        raise AlreadyExists(f"The membership already has the {kind} {name!r}.")
    audit(uow, now, principal, "add_grant", membership=membership)
    uow.commit()
    return GrantView.of(grant)


def add_member_data(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    user_ref: str,
    count: int,
    category: str = "record",
) -> int:
    """``count`` records of the user's data in the organization (what data removal erases)."""
    now = clock()
    require_operator(uow, principal, now=now, action="add_member_data")
    if count < 1 or count > 1_000_000:
        raise InvalidInput("count must be between 1 and 1000000", field="count")
    membership = _usable_membership(uow, org_ref, user_ref)
    rows = [
        {
            "membership_id": membership.id,
            "category": category,
            "payload": f"{category} {i} of {membership.email}",
            "created_at": now,
        }
        for i in range(1, count + 1)
    ]
    uow.provisioning.add_member_data(rows)
    audit(uow, now, principal, "add_member_data", membership=membership)
    uow.commit()
    return count


def grant_role(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    user_ref: str,
    role: str,
    org_ref: str | None = None,
) -> dict[str, str | None]:
    """A directory role in an organization, or the platform ``operator`` role (no org)."""
    require_operator(uow, principal, now=clock(), action="grant_role")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if role in ADMIN_ROLES and not org_ref:
        raise InvalidInput(f"{role} is a role in an organization: give --org", field="org")
    if role == "operator" and org_ref:
        raise InvalidInput("operator is a platform role: give no --org", field="org")
    now = clock()
    org = organization_or_404(uow, org_ref) if org_ref else None
    user = _user_or_404(uow, user_ref)
    org_id = org.id if org else None
    if role in uow.directory.roles_of(user.id, org_id):
        raise AlreadyExists(f"{user.email} already has the role {role}.")
    assignment = RoleAssignmentRow(
        user_id=user.id, organization_id=org_id, role=role, created_at=now
    )
    uow.provisioning.add(assignment)
    audit(uow, now, principal, "grant_role", organization_id=org_id, reason=role)
    uow.commit()
    return {"id": assignment.id, "user_id": user.id, "organization_id": org_id, "role": role}

"""docs/domain.md, "What an admin decides": the privacy profile, the external user leave setting,
who may administer an organization, removal, restore and permanent deletion."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from memberships import admin, automatic, provisioning
from memberships.errors import (
    Forbidden,
    HomeOrganization,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    PrivacyProfileRequired,
    RestoreWindowClosed,
    TransitionNotAllowed,
)
from memberships.principal import SYSTEM, Principal
from store import outbox
from store.models import AuditEvent, Event, Grant, MemberData, Membership, Organization

if TYPE_CHECKING:  # at run time, "conftest" may name another directory's conftest module
    from conftest import World

RETENTION = timedelta(days=30)
REMOVAL_WINDOW = timedelta(days=30)


def _row(world: World, membership_id: str) -> Membership:
    with world.uow() as uow:
        row = uow.session.get(Membership, membership_id)
        assert row is not None
        uow.session.expunge(row)
        return row


def _org(world: World, key: str) -> Organization:
    with world.uow() as uow:
        org = uow.session.get(Organization, world.orgs[key])
        assert org is not None
        uow.session.expunge(org)
        return org


def _grants(world: World, membership_id: str) -> list[tuple[str, str, str, object]]:
    with world.uow() as uow:
        return [
            (g.id, g.kind, g.name, g.granted_at)
            for g in uow.session.scalars(
                select(Grant).where(Grant.membership_id == membership_id).order_by(Grant.id)
            )
        ]


def _data_rows(world: World, membership_id: str) -> int:
    with world.uow() as uow:
        return (
            uow.session.scalar(
                select(func.count())
                .select_from(MemberData)
                .where(MemberData.membership_id == membership_id)
            )
            or 0
        )


# --- the privacy profile -------------------------------------------------------------------


def test_an_admin_sets_the_privacy_profile(world: World) -> None:
    # Given bare has no privacy profile
    # When its admin sets one
    with world.uow() as uow:
        view = admin.set_privacy_profile(
            uow,
            world.clock,
            world.principal("bareadmin"),
            "bare.example",
            " Privacy@Bare.Example ",
            "https://bare.example/privacy",
        )
    # Then the organization has it (the e-mail normalized) and the change is audited
    assert view.has_privacy_profile
    stored = _org(world, "bare")
    assert stored.privacy_contact_email == "privacy@bare.example"
    assert stored.privacy_statement_url == "https://bare.example/privacy"


INVALID_PRIVACY_PROFILES = [
    ("not-an-email", "https://bare.example/privacy", "contactEmail"),
    ("", "https://bare.example/privacy", "contactEmail"),
    ("privacy@", "https://bare.example/privacy", "contactEmail"),
    ("privacy@bare.example", "ftp://bare.example/privacy", "statementUrl"),
    ("privacy@bare.example", "javascript:alert(1)", "statementUrl"),
    ("privacy@bare.example", "bare.example/privacy", "statementUrl"),
    ("privacy@bare.example", "https://", "statementUrl"),
    ("privacy@bare.example", "https://bare.example/" + "p" * 235, "statementUrl"),
]


def test_an_invalid_privacy_profile_is_refused_and_changes_nothing(world: World) -> None:
    # Given bare without a privacy profile
    for email, url, field in INVALID_PRIVACY_PROFILES:
        # When its admin gives a bad e-mail, or a URL that is not http(s) or longer than 255
        with world.uow() as uow, pytest.raises(InvalidInput) as refused:
            admin.set_privacy_profile(
                uow, world.clock, world.principal("bareadmin"), "bare.example", email, url
            )
        # Then the error names the field and the organization is unchanged
        assert refused.value.extra["field"] == field, (email, url)
        stored = _org(world, "bare")
        assert (stored.privacy_contact_email, stored.privacy_statement_url) == (None, None)


EMAIL_WANTED = "Enter the privacy contact's e-mail address, like privacy@contoso.example."
URL_WANTED = "Enter the full web address of the privacy statement, starting with https://."
URL_TOO_LONG = "The privacy statement's web address is too long (at most 255 characters)."


@pytest.mark.parametrize(
    ("email", "url", "wanted"),
    [
        pytest.param(
            "privacy@", "https://bare.example/p", {"contactEmail": EMAIL_WANTED}, id="email"
        ),
        pytest.param("p@bare.example", "bare.example/p", {"statementUrl": URL_WANTED}, id="url"),
        pytest.param(
            "p@bare.example",
            "https://bare.example/" + "p" * 235,
            {"statementUrl": URL_TOO_LONG},
            id="url-too-long",
        ),
        pytest.param(
            "", "ftp://bare.example/p", {"contactEmail": EMAIL_WANTED, "statementUrl": URL_WANTED}
        ),
    ],
)
def test_an_invalid_privacy_profile_says_what_to_enter_in_every_field_at_once(
    world: World, email: str, url: str, wanted: dict[str, str]
) -> None:
    # Given bare's admin fills in the privacy profile form
    # When one field or both are wrong
    with world.uow() as uow, pytest.raises(InvalidInput) as refused:
        admin.set_privacy_profile(
            uow, world.clock, world.principal("bareadmin"), "bare.example", email, url
        )
    # Then the problem lists every wrong field with a sentence saying what to enter (a
    # form marks each one), its detail says all of it, and its field is the first one
    assert refused.value.extra["errors"] == [
        {"location": "json", "field": name, "message": message} for name, message in wanted.items()
    ]
    assert refused.value.detail == " ".join(wanted.values())
    assert refused.value.extra["field"] == next(iter(wanted))


def test_a_statement_url_of_255_characters_is_accepted(world: World) -> None:
    for scheme in ("http", "https"):
        # Given an http(s) URL exactly 255 characters long
        prefix = f"{scheme}://bare.example/"
        url = prefix + "p" * (255 - len(prefix))
        assert len(url) == 255
        # When it is set, Then it is kept as given
        with world.uow() as uow:
            admin.set_privacy_profile(
                uow, world.clock, world.principal("bareadmin"), "bare.example", "p@bare.ex", url
            )
        assert _org(world, "bare").privacy_statement_url == url


# --- the external user leave setting -------------------------------------------------------


def test_the_leave_setting_is_refused_without_a_privacy_profile(world: World) -> None:
    # Given bare has no privacy profile
    for allowed in (False, True):
        before = world.last_audit_id()
        # When its admin changes the external user leave setting, either way
        with world.uow() as uow, pytest.raises(PrivacyProfileRequired) as refused:
            admin.set_external_user_leave_allowed(
                uow, world.clock, world.principal("bareadmin"), "bare.example", allowed
            )
        # Then the change is refused with a clear error, nothing changed, and it is audited
        assert refused.value.detail == (
            "bare.example has no privacy profile: add a privacy contact e-mail and a privacy "
            "statement URL before changing the external user leave setting."
        )
        assert _org(world, "bare").external_user_leave_allowed is True
        [denial] = world.audit_after(before)
        assert (denial.action, denial.outcome, denial.reason, denial.organization_id) == (
            "set_external_user_leave_allowed",
            "denied",
            "privacy-profile-required",
            world.orgs["bare"],
        )


def test_the_leave_setting_can_change_once_a_privacy_profile_exists(world: World) -> None:
    # Given bare gets a privacy profile
    with world.uow() as uow:
        admin.set_privacy_profile(
            uow,
            world.clock,
            world.principal("bareadmin"),
            "bare.example",
            "privacy@bare.example",
            "https://bare.example/privacy",
        )
    # When its admin disallows leaving
    with world.uow() as uow:
        view = admin.set_external_user_leave_allowed(
            uow, world.clock, world.principal("bareadmin"), world.orgs["bare"], False
        )
    # Then the setting is stored
    assert view.external_user_leave_allowed is False
    assert _org(world, "bare").external_user_leave_allowed is False


# --- admin roles ---------------------------------------------------------------------------


@pytest.mark.parametrize("role_holder", ["gadmin", "idpadmin"])
def test_either_admin_role_may_administer_its_organization(world: World, role_holder: str) -> None:
    # Given a Global Administrator and an External Identity Provider Administrator of open
    actor = world.principal(role_holder)
    membership_id = world.membership("open", "ann")
    # When either one changes the settings, removes, restores and removes again
    with world.uow() as uow:
        admin.set_external_user_leave_allowed(uow, world.clock, actor, "open.example", False)
    with world.uow() as uow:
        admin.remove(uow, world.clock, actor, "open.example", membership_id)
    with world.uow() as uow:
        restored = admin.restore(uow, world.clock, actor, "open.example", membership_id)
    # Then each is done and audited with that admin as the actor
    assert restored.state == "restored"
    assert _org(world, "open").external_user_leave_allowed is False
    with world.uow() as uow:
        actions = set(
            uow.session.scalars(
                select(AuditEvent.action).where(
                    AuditEvent.actor == world.users[role_holder], AuditEvent.outcome == "allowed"
                )
            )
        )
    assert actions == {"set_external_user_leave_allowed", "remove", "restore"}


# Each admin operation and the action its audit entry names.
ADMIN_OPERATIONS = {
    "remove": "remove",
    "restore": "restore",
    "purge": "purge",
    "settings": "set_external_user_leave_allowed",
    "privacy": "set_privacy_profile",
}


def _try_admin_operation(
    world: World, principal: Principal, operation: str, soft_deleted: str, active: str
) -> None:
    with world.uow() as uow:
        match operation:
            case "remove":
                admin.remove(uow, world.clock, principal, "open.example", active)
            case "restore":
                admin.restore(uow, world.clock, principal, "open.example", soft_deleted)
            case "purge":
                admin.purge(uow, world.clock, principal, "open.example", soft_deleted)
            case "settings":
                admin.set_external_user_leave_allowed(
                    uow, world.clock, principal, "open.example", False
                )
            case "privacy":
                admin.set_privacy_profile(
                    uow, world.clock, principal, "open.example", "x@evil.example", "https://e.x"
                )


@pytest.mark.parametrize(
    "actor",
    [
        pytest.param("ann", id="a-member-without-role"),
        pytest.param("cadmin", id="admin-of-another-organization"),
        pytest.param("ops", id="platform-operator"),
    ],
)
def test_admin_operations_need_an_admin_role_in_that_organization(world: World, actor: str) -> None:
    # Given a soft-deleted and an active membership in open, and someone without an admin
    # role in open
    soft_deleted = world.soft_delete("open", "ann")
    active = world.membership("open", "pat")
    version = _row(world, soft_deleted).version
    principal = world.principal(actor)
    for operation in ADMIN_OPERATIONS:
        before = world.last_audit_id()
        # When they try each admin operation on open
        with pytest.raises(NotFound) as refused:
            _try_admin_operation(world, principal, operation, soft_deleted, active)
        # Then it is not found (as a made-up organization would be), and the denial is
        # audited as forbidden; a guest of open is named by their membership's pseudonym
        assert refused.value.code == "not-found", operation
        [denial] = world.audit_after(before)
        with world.uow() as uow:
            own = uow.memberships.live_membership(world.users[actor], world.orgs["open"])
            pseudonym = own.pseudonym if own is not None else None
        assert (denial.actor, denial.action, denial.outcome, denial.reason) == (
            pseudonym or world.users[actor],
            ADMIN_OPERATIONS[operation],
            "denied",
            "forbidden",
        )
        assert denial.organization_id == world.orgs["open"]
    # And nothing changed
    assert _row(world, soft_deleted).version == version
    assert _row(world, active).state == "active"
    stored = _org(world, "open")
    assert stored.external_user_leave_allowed is True
    assert stored.privacy_contact_email == "privacy@open.example"


def test_a_disabled_admin_is_told_why_and_the_refusal_is_audited(world: World) -> None:
    # Given a global administrator of open whose account is disabled
    with world.uow() as uow:
        boss = provisioning.create_user(
            uow, world.clock, SYSTEM, "boss@mail.example", "Boss", "open.example", enabled=False
        )
    with world.uow() as uow:
        provisioning.grant_role(
            uow, world.clock, SYSTEM, boss.id, "global-administrator", "open.example"
        )
    membership_id = world.membership("open", "ann")
    before = world.last_audit_id()
    # When they try to remove ann's membership of open
    with world.uow() as uow, pytest.raises(Forbidden) as refused:
        admin.remove(uow, world.clock, Principal.user(boss.id), "open.example", membership_id)
    # Then they are told why the role gives them no powers there (not that open is unknown)
    assert refused.value.detail == (
        "Your account is disabled, so the admin roles it holds give no powers. "
        "Ask another admin of the organization to enable it."
    )
    # And the refusal is audited: by whom, what, why, where and when
    [denial] = world.audit_after(before)
    assert (
        denial.actor,
        denial.action,
        denial.outcome,
        denial.reason,
        denial.organization_id,
        denial.membership_id,
        denial.occurred_at,
    ) == (boss.id, "remove", "denied", "forbidden", world.orgs["open"], None, world.clock())
    # And nothing changed
    assert _row(world, membership_id).state == "active"


# --- removal, restore, permanent deletion --------------------------------------------------


def test_an_admin_removal_soft_deletes_a_collaboration_guest(world: World) -> None:
    # Given ann, a collaboration guest of open with grants and data
    membership_id = world.membership("open", "ann")
    # When the admin removes her
    with world.uow() as uow:
        removed = admin.remove(
            uow, world.clock, world.principal("gadmin"), "open.example", membership_id
        )
    # Then she is soft-deleted for the retention period, with grants and data kept
    assert removed.state == "soft-deleted"
    assert removed.purge_due_at == world.clock() + RETENTION
    assert len(_grants(world, membership_id)) == 2
    assert _data_rows(world, membership_id) == 120


def test_an_admin_removal_of_a_direct_connect_guest_starts_data_removal(
    world: World, dispatcher: object
) -> None:
    # Given pat, a direct-connect guest of open
    membership_id = world.membership("open", "pat")
    # When the admin removes pat
    with world.uow() as uow:
        removed = admin.remove(
            uow, world.clock, world.principal("idpadmin"), "open.example", membership_id
        )
    # Then data removal starts at once, due within the window
    assert removed.state == "purge-pending"
    assert removed.removal_due_by == world.clock() + REMOVAL_WINDOW
    assert ("remove_data", membership_id) in dispatcher.sent  # type: ignore[attr-defined]


def test_a_home_account_cannot_be_removed_as_a_guest(world: World) -> None:
    # Given gadmin's own home membership in open
    with world.uow() as uow:
        home = uow.session.scalar(
            select(Membership).where(
                Membership.user_id == world.users["gadmin"],
                Membership.organization_id == world.orgs["open"],
            )
        )
        assert home is not None and home.kind == "home"
        home_id = home.id
    before = world.last_audit_id()
    # When an admin of open tries to remove it, Then it is refused, saying why, and stays
    # active
    with world.uow() as uow, pytest.raises(HomeOrganization) as refused:
        admin.remove(uow, world.clock, world.principal("idpadmin"), "open.example", home_id)
    assert refused.value.detail == (
        "A home account is managed by its home directory, not removed as a guest."
    )
    assert _row(world, home_id).state == "active"
    # And the refusal is audited on that membership
    [denial] = world.audit_after(before)
    assert (
        denial.actor,
        denial.action,
        denial.outcome,
        denial.reason,
        denial.organization_id,
        denial.membership_id,
        denial.from_state,
    ) == (
        world.users["idpadmin"],
        "remove",
        "denied",
        "home-organization",
        world.orgs["open"],
        home_id,
        "active",
    )


def test_restore_brings_back_exactly_the_grants_it_had(world: World) -> None:
    # Given ann's membership in open with a group and an app role, soft-deleted
    membership_id = world.membership("open", "ann")
    grants_before = _grants(world, membership_id)
    assert {(kind, name) for _, kind, name, _ in grants_before} == {
        ("group", "Sales"),
        ("app-role", "Reader"),
    }
    world.soft_delete()
    world.clock.advance(RETENTION - timedelta(seconds=1))
    # When the admin restores it one second before the purge is due
    with world.uow() as uow:
        restored = admin.restore(
            uow, world.clock, world.principal("gadmin"), "open.example", membership_id
        )
    # Then it is restored with exactly the same grants (same ids, names and dates) and data
    assert restored.state == "restored"
    assert restored.restored_at == world.clock()
    assert restored.purge_due_at is None
    assert sorted((g.id, g.kind, g.name, g.granted_at) for g in restored.grants) == sorted(
        grants_before
    )
    assert _grants(world, membership_id) == grants_before
    assert _data_rows(world, membership_id) == 120


@pytest.mark.parametrize("after_due", [timedelta(0), timedelta(days=3)])
def test_restore_is_refused_once_the_retention_period_has_ended(
    world: World, after_due: timedelta
) -> None:
    # Given a soft-deleted membership whose purge is due now or has been for a while
    membership_id = world.soft_delete()
    world.clock.advance(RETENTION + after_due)
    before = world.last_audit_id()
    # When the admin tries to restore it
    with world.uow() as uow, pytest.raises(RestoreWindowClosed) as refused:
        admin.restore(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    # Then it stays soft-deleted, the refusal says when the period ended, and it is audited
    row = _row(world, membership_id)
    assert row.state == "soft-deleted"
    assert row.purge_due_at == world.clock() - after_due
    assert refused.value.detail == (
        f"The retention period ended at {row.purge_due_at.isoformat()}; permanent deletion "
        "has started or is about to."
    )
    assert refused.value.extra == {"purge_due_at": row.purge_due_at}
    [denial] = world.audit_after(before)
    assert (
        denial.action,
        denial.outcome,
        denial.reason,
        denial.organization_id,
        denial.membership_id,
        denial.from_state,
    ) == (
        "restore",
        "denied",
        "restore-window-closed",
        world.orgs["open"],
        membership_id,
        "soft-deleted",
    )


@pytest.mark.parametrize(
    "after_due", [timedelta(0), timedelta(seconds=3)], ids=["exactly-at-due", "3s-after-due"]
)
def test_restore_is_refused_as_window_closed_after_the_timer_started_the_purge(
    world: World, after_due: timedelta
) -> None:
    # Given a soft-deleted membership whose retention period ran out, and the retention
    # timer has moved it to purge-pending (as the sweep does within seconds of the due
    # time, or at the very instant of it: purge_started_at == purge_due_at still closes
    # the window)
    membership_id = world.soft_delete()
    world.clock.advance(RETENTION + after_due)
    with world.uow() as uow:
        assert automatic.expire_retention(uow, world.clock, membership_id) is not None
    before = world.last_audit_id()
    # When the admin tries to restore it
    with world.uow() as uow, pytest.raises(RestoreWindowClosed):
        admin.restore(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    # Then the refusal says the window closed (not merely a refused transition), is
    # audited, and the purge goes on
    assert _row(world, membership_id).state == "purge-pending"
    [denial] = world.audit_after(before)
    assert (denial.action, denial.outcome, denial.reason, denial.from_state) == (
        "restore",
        "denied",
        "restore-window-closed",
        "purge-pending",
    )


def test_permanent_deletion_is_irrevocable(world: World, dispatcher: object) -> None:
    # Given a soft-deleted membership
    membership_id = world.soft_delete()
    # When the admin deletes it permanently
    with world.uow() as uow:
        purged = admin.purge(
            uow, world.clock, world.principal("gadmin"), "open.example", membership_id
        )
    # Then data removal starts, due within the window
    assert purged.state == "purge-pending"
    assert purged.purge_started_at == world.clock()
    assert purged.removal_due_by == world.clock() + REMOVAL_WINDOW
    assert ("remove_data", membership_id) in dispatcher.sent  # type: ignore[attr-defined]
    # And a restore, before or after the original purge date, is not allowed
    for moment in (timedelta(days=1), RETENTION):
        world.clock.advance(moment)
        with world.uow() as uow, pytest.raises(TransitionNotAllowed):
            admin.restore(
                uow, world.clock, world.principal("gadmin"), "open.example", membership_id
            )
        assert _row(world, membership_id).state == "purge-pending"


@pytest.mark.parametrize("operation", ["restore", "purge"])
def test_an_active_membership_can_be_neither_restored_nor_purged(
    world: World, operation: str
) -> None:
    # Given ann's active membership in open
    membership_id = world.membership("open", "ann")
    call = admin.restore if operation == "restore" else admin.purge
    # When the admin tries it, Then the lifecycle refuses and nothing changes
    with world.uow() as uow, pytest.raises(TransitionNotAllowed):
        call(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    assert _row(world, membership_id).state == "active"


@pytest.mark.parametrize("operation", ["remove", "restore", "purge"])
def test_a_stale_expected_version_is_a_failed_precondition(world: World, operation: str) -> None:
    # Given a membership read at some version, then changed by someone else
    membership_id = world.membership("open", "ann")
    seen = _row(world, membership_id).version
    if operation != "remove":
        world.soft_delete()
    current = _row(world, membership_id)
    stale = seen if operation != "remove" else seen - 1
    before = world.last_audit_id()
    # When the admin acts with the version they saw
    call = {"remove": admin.remove, "restore": admin.restore, "purge": admin.purge}[operation]
    with world.uow() as uow, pytest.raises(PreconditionFailed):
        call(
            uow,
            world.clock,
            world.principal("gadmin"),
            "open.example",
            membership_id,
            expected_version=stale,
        )
    # Then nothing changes and the refusal is audited, with the state the membership is in
    after = _row(world, membership_id)
    assert (after.state, after.version) == (current.state, current.version)
    [denial] = world.audit_after(before)
    assert (denial.action, denial.reason, denial.from_state, denial.membership_id) == (
        operation,
        "precondition-failed",
        current.state,
        membership_id,
    )


def test_the_current_expected_version_is_accepted(world: World) -> None:
    # Given the version the admin read
    membership_id = world.membership("open", "ann")
    version = _row(world, membership_id).version
    # When they remove with it, Then it is done and the version moves on
    with world.uow() as uow:
        removed = admin.remove(
            uow,
            world.clock,
            world.principal("gadmin"),
            "open.example",
            membership_id,
            expected_version=version,
        )
    assert removed.version == version + 1


def test_settings_changes_are_audited_on_their_organization_with_what_was_set(
    world: World,
) -> None:
    # Given open's admin
    before = world.last_audit_id()
    admin_of_open = world.principal("gadmin")
    # When she sets the privacy profile, then disallows and allows self-service leave
    with world.uow() as uow:
        admin.set_privacy_profile(
            uow, world.clock, admin_of_open, "open.example", "p@open.example", "https://o.example/p"
        )
    for allowed in (False, True):
        with world.uow() as uow:
            admin.set_external_user_leave_allowed(
                uow, world.clock, admin_of_open, "open.example", allowed
            )
    # Then each change is in open's audit log, by her, saying what was set
    assert [
        (e.action, e.organization_id, e.actor, e.outcome, e.reason)
        for e in world.audit_after(before)
    ] == [
        ("set_privacy_profile", world.orgs["open"], admin_of_open.id, "allowed", None),
        (
            "set_external_user_leave_allowed",
            world.orgs["open"],
            admin_of_open.id,
            "allowed",
            "disallowed",
        ),
        (
            "set_external_user_leave_allowed",
            world.orgs["open"],
            admin_of_open.id,
            "allowed",
            "allowed",
        ),
    ]


def _settings_events(world: World) -> list[tuple[str, str, str | None, dict[str, object]]]:
    with world.uow() as uow:
        return [
            (e.type, e.organization_id, e.membership_id, json.loads(e.payload)["data"])
            for e in uow.session.scalars(
                select(Event)
                .where(Event.type == "organization.settings_changed")
                .order_by(Event.id)
            )
        ]


def test_a_settings_change_is_an_event_saying_what_changed_from_what_to_what(
    world: World,
) -> None:
    # Given bare, without a privacy profile, letting external users leave
    bareadmin = world.principal("bareadmin")
    bare = {"id": world.orgs["bare"], "domain": "bare.example"}
    # When its admin sets a privacy profile, then disallows leaving, then saves that again
    with world.uow() as uow:
        admin.set_privacy_profile(
            uow, world.clock, bareadmin, "bare.example", "p@bare.example", "https://bare.example/p"
        )
    at = world.clock.advance(timedelta(seconds=1))
    for _ in range(2):
        with world.uow() as uow:
            admin.set_external_user_leave_allowed(
                uow, world.clock, bareadmin, "bare.example", False
            )
    # Then each change is one event of bare's (the save that changed nothing is none): the
    # names of the settings that changed, every setting as it is now, and what the changed
    # ones were before, under the names the API gives them
    profile = {
        "privacyContactEmail": "p@bare.example",
        "privacyStatementUrl": "https://bare.example/p",
    }
    assert _settings_events(world) == [
        (
            "organization.settings_changed",
            world.orgs["bare"],
            None,
            {
                "organization": bare,
                "changed": ["privacyContactEmail", "privacyStatementUrl"],
                "settings": {**profile, "externalUserLeaveAllowed": True},
                "previous": {"privacyContactEmail": None, "privacyStatementUrl": None},
                "occurredAt": outbox.timestamp(at - timedelta(seconds=1)),
            },
        ),
        (
            "organization.settings_changed",
            world.orgs["bare"],
            None,
            {
                "organization": bare,
                "changed": ["externalUserLeaveAllowed"],
                "settings": {**profile, "externalUserLeaveAllowed": False},
                "previous": {"externalUserLeaveAllowed": True},
                "occurredAt": outbox.timestamp(at),
            },
        ),
    ]


def test_showing_a_membership_counts_its_own_data_and_lists_its_own_audit_trail_in_order(
    world: World,
) -> None:
    from memberships import reading
    from memberships.errors import NotFound

    # Given ann (120 data rows) and pat (30) guests of open, and ann removed and restored
    ann, pat = world.membership("open", "ann"), world.membership("open", "pat")
    gadmin = world.principal("gadmin")
    world.soft_delete()
    world.clock.advance(timedelta(seconds=1))
    with world.uow() as uow:
        admin.restore(uow, world.clock, gadmin, "open.example", ann)
    # When the admin shows each of them
    with world.uow() as uow:
        shown = {
            user: reading.show_membership(
                uow, world.clock, gadmin, "open.example", f"{user}@mail.example"
            )
            for user in ("ann", "pat")
        }
        trail = {
            m: [
                e.id
                for e in uow.session.scalars(
                    select(AuditEvent).where(AuditEvent.membership_id == m).order_by(AuditEvent.id)
                )
            ]
            for m in (ann, pat)
        }
    # Then each shows its own membership, its own count of data rows, and its own audit
    # rows, oldest first
    assert (shown["ann"]["membership"].id, shown["pat"]["membership"].id) == (ann, pat)
    assert (shown["ann"]["member_data_rows"], shown["pat"]["member_data_rows"]) == (120, 30)
    for user, membership_id in (("ann", ann), ("pat", pat)):
        assert [e.id for e in shown[user]["audit"]] == trail[membership_id]
    assert [e.action for e in shown["ann"]["audit"]][-2:] == ["remove", "restore"]
    # (a membership without data rows shows none)
    with world.uow() as uow:
        bare = reading.show_membership(
            uow, world.clock, world.principal("bareadmin"), "bare.example", "ann@mail.example"
        )
    assert (bare["membership"].id, bare["member_data_rows"]) == (world.membership("bare", "ann"), 0)
    # And a user without a membership there is not shown someone else's
    with world.uow() as uow, pytest.raises(NotFound):
        reading.show_membership(uow, world.clock, gadmin, "open.example", "cadmin@mail.example")

"""One error hierarchy with stable codes; ``web/errors.py`` maps them to HTTP in one place."""

from __future__ import annotations

from typing import Any


class LifecycleError(Exception):
    """The root of every error a use case raises on purpose."""

    code = "lifecycle-error"
    title = "The request could not be carried out"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(LifecycleError):
    code = "invalid-input"
    title = "The input is not valid"


class NotFound(LifecycleError):
    code = "not-found"
    title = "Not found"


class AlreadyExists(LifecycleError):
    code = "already-exists"
    title = "It already exists"


class Forbidden(LifecycleError):
    code = "forbidden"
    title = "You are not allowed to do this"


class LeaveDenied(Forbidden):
    """The member may not leave on their own: they must contact the admin or privacy contact.

    ``extra`` carries ``contacts`` (privacy contact e-mail and statement URL where the
    organization has them).
    """

    code = "leave-denied"
    title = "You can't leave this organization on your own"


class HomeOrganization(LeaveDenied):
    code = "home-organization"
    title = "A home organization can't be left"


class AccountDisabled(LeaveDenied):
    code = "account-disabled"
    title = "The account is disabled"


class LeaveDisabled(LeaveDenied):
    code = "leave-disabled"
    title = "This organization does not let external users leave on their own"


class PrivacyProfileRequired(LifecycleError):
    code = "privacy-profile-required"
    title = "The organization needs a privacy profile first"


class TransitionNotAllowed(LifecycleError):
    code = "transition-not-allowed"
    title = "The membership's state does not allow this"


class Conflict(LifecycleError):
    """Another decision changed the membership first (compare-and-set lost)."""

    code = "conflict"
    title = "The membership was changed by someone else"


class PreconditionFailed(LifecycleError):
    """The caller's expected version (``If-Match``) is not the current one."""

    code = "precondition-failed"
    title = "The membership has changed since you read it"


class RestoreWindowClosed(LifecycleError):
    code = "restore-window-closed"
    title = "The retention period has ended: the membership can no longer be restored"


class InvitationClosed(LifecycleError):
    """The invitation is no longer pending: accepted, declined, revoked or expired.

    ``extra`` carries ``invitation_status``.
    """

    code = "invitation-closed"
    title = "The invitation can no longer be answered or revoked"


class LeaveAllowed(LifecycleError):
    """A removal request asked where the member may simply leave on their own."""

    code = "leave-allowed"
    title = "You can leave this organization on your own"


class RemovalRequestOpen(LifecycleError):
    """The membership already has an open removal request; ``extra`` carries
    ``removal_request_id``."""

    code = "removal-request-open"
    title = "A removal request is already open"


class RemovalRequestClosed(LifecycleError):
    """The removal request was answered or ended already; ``extra`` carries
    ``removal_request_status``."""

    code = "removal-request-closed"
    title = "The removal request is no longer open"


ALL_ERRORS: tuple[type[LifecycleError], ...] = (
    LifecycleError,
    InvalidInput,
    NotFound,
    AlreadyExists,
    Forbidden,
    LeaveDenied,
    HomeOrganization,
    AccountDisabled,
    LeaveDisabled,
    PrivacyProfileRequired,
    TransitionNotAllowed,
    Conflict,
    PreconditionFailed,
    RestoreWindowClosed,
    InvitationClosed,
    LeaveAllowed,
    RemovalRequestOpen,
    RemovalRequestClosed,
)

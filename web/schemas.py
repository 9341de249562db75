"""The API's JSON shapes (Pydantic): what requests may hold and what responses promise.

Inputs forbid unknown fields and accept only the camelCase names; outputs are built
from the use cases' views with ``of`` and are serialized with their camelCase names.
The OpenAPI document is generated from these classes. An operation that takes no body
declares so with ``@no_body(bp)`` where another would have ``@bp.input(...)``: it accepts
nothing, or ``{}``, and refuses the rest as any body is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from apiflask import APIBlueprint
from flask import request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from pydantic.alias_generators import to_camel

from memberships.removal_confirmations import AppConfirmationView, RemovalView
from memberships.views import (
    AuditEventView,
    GrantView,
    InvitationView,
    MembershipView,
    MyInvitation,
    OrganizationEntry,
    OrganizationView,
    Page,
)
from web.errors import ProblemError

if TYPE_CHECKING:
    from pydantic._internal._model_construction import ModelMetaclass
else:
    ModelMetaclass = type(BaseModel)  # the metaclass of every Pydantic model

MembershipStateName = Literal[
    "active", "leave-pending", "soft-deleted", "restored", "purge-pending", "purged"
]
MembershipKindName = Literal["home", "b2b-collaboration", "b2b-direct-connect"]
GuestKindName = Literal["b2b-collaboration", "b2b-direct-connect"]
InvitationStatusName = Literal["pending", "accepted", "declined", "revoked", "expired"]
LeaveBlockedReason = Literal[
    "home-organization", "account-disabled", "leave-disabled", "transition-not-allowed"
]


def _title(name: str, _info: Any) -> str:
    """``leave_requested_at`` -> "Leave requested at" (the OpenAPI field titles)."""
    return name.replace("_", " ").capitalize()


class Input(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
        extra="forbid",
        field_title_generator=_title,
    )


class _FieldsOfAView(ModelMetaclass):
    """Lets an output take its fields from the use case's view it shows, so that the API and
    the pages read one declaration: ``__view__ = SomeView`` gives the model every field of
    that dataclass (``__view_fields__``: only those), in the view's order and with the
    view's types; an annotation in the class body replaces the view's type in place (a
    ``Literal``, a ``Field`` with a description)."""

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> type:
        view = namespace.get("__view__")
        if view is not None:
            chosen = namespace.get("__view_fields__")
            own = namespace.get("__annotations__", {})
            taken = {
                f.name: own.get(f.name, f.type)
                for f in dataclasses.fields(view)
                if chosen is None or f.name in chosen
            }
            namespace["__annotations__"] = {**taken, **own}
        return super().__new__(mcs, name, bases, namespace, **kwargs)


class Output(BaseModel, metaclass=_FieldsOfAView):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        field_title_generator=_title,
    )

    @classmethod
    def fields_of(cls, view: Any) -> dict[str, Any]:
        """The values of this model's fields that ``view`` holds, by name."""
        return {name: getattr(view, name) for name in cls.model_fields if hasattr(view, name)}


# ---- inputs -----------------------------------------------------------------------------


class PrivacyProfileIn(Input):
    contact_email: str = Field(max_length=320, description="The privacy contact's e-mail.")
    statement_url: str = Field(max_length=255, description="The privacy statement, an http(s) URL.")


class ExternalCollaborationIn(Input):
    external_user_leave_allowed: StrictBool = Field(
        description="Whether external users may leave on their own (needs a privacy profile)."
    )


class GuestIn(Input):
    email: str = Field(
        min_length=1, max_length=320, description="The e-mail address to invite, as you know it."
    )
    kind: GuestKindName


class SelectionIn(Input):
    ids: list[str] = Field(
        min_length=1,
        max_length=500,
        description="The memberships' ids, at most 500; each is decided on its own.",
    )


class NoBody(Input):
    """Nothing: this operation takes no body. Send none, or an empty object `{}`."""


View = TypeVar("View", bound=Callable[..., Any])


def optional_body(bp: APIBlueprint, schema: type[BaseModel], hint: str) -> Callable[[View], View]:
    """``@bp.input(schema, arg_name="body")`` for a body that may be left out entirely
    (what curl sends without ``-d``): no body is the same as ``{}`` (the view gets
    ``schema()``). A body that is there is parsed and validated by APIFlask as every body
    is (``400 malformed-json``, ``422 invalid-input`` naming a field) and documented by
    it; JSON that is not an object (``[]``, ``3``, ``"x"``, ``null``) is ``422
    invalid-input`` with ``hint`` as its detail."""

    def decorator(view: View) -> View:
        validated = bp.input(schema, arg_name="body")(view)

        @wraps(validated)  # also copies what APIFlask noted for the document
        def checked(*args: Any, **kwargs: Any) -> Any:
            if not request.get_data(cache=True):
                return view(*args, body=schema(), **kwargs)  # APIFlask: "malformed"
            # APIFlask reads `null` as `{}`; here it is refused like any non-object.
            if not isinstance(request.get_json(force=True), dict):
                raise ProblemError(
                    "invalid-input",
                    hint,
                    errors=[
                        {
                            "location": "json",
                            "field": "_schema",
                            "message": "Input should be a JSON object",
                        }
                    ],
                )
            return validated(*args, **kwargs)

        return cast(View, checked)

    return decorator


def no_body(bp: APIBlueprint) -> Callable[[View], View]:
    """``@bp.input`` for an operation that takes no body (put it where that would go).

    No body at all (what curl sends) or ``{}`` is accepted; anything else is refused as
    ``optional_body`` refuses it (every field is unknown here). The OpenAPI document
    shows ``NoBody`` as an optional body.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def without_body(*args: Any, body: NoBody, **kwargs: Any) -> Any:
            return view(*args, **kwargs)  # NoBody holds nothing to pass on

        hint = "This operation takes no body: send none, or an empty JSON object {}."
        return optional_body(bp, NoBody, hint)(cast(View, without_body))

    return decorator


class Query(BaseModel):
    """Query parameters; unknown ones are ignored (caches and proxies add their own).

    An empty value (``?cursor=&limit=``) means the parameter was not given: its default
    applies (the first page, the default limit, no filter). A value that is there and
    wrong is a ``422``. The OpenAPI document says so with ``allowEmptyValue``."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_not_given(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if value != ""}
        return data


class PageQuery(Query):
    """One page of a list."""

    cursor: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="The `nextCursor` of the previous page; absent or empty: the first page.",
    )
    limit: int = Field(
        default=50, ge=1, le=200, description="At most this many items; absent or empty: 50."
    )


class MembershipQuery(PageQuery):
    state: MembershipStateName | None = Field(
        default=None, description="Only memberships in this state; absent or empty: any state."
    )
    kind: MembershipKindName | None = Field(
        default=None, description="Only memberships of this kind; absent or empty: any kind."
    )


# ---- outputs ----------------------------------------------------------------------------


class OrganizationRef(Output):
    id: str
    domain: str
    display_name: str

    @classmethod
    def of(cls, org: OrganizationView) -> OrganizationRef:
        return cls(id=org.id, domain=org.domain, display_name=org.display_name)


class MyMembership(Output):
    """A member's own view of a membership: where it is in its lifecycle."""

    __view__ = MembershipView
    __view_fields__ = frozenset(
        {"id", "organization_id", "kind", "state", "version", "leave_requested_at"}
        | {"soft_deleted_at", "purge_due_at", "purge_started_at", "removal_due_by"}
    )
    kind: MembershipKindName
    state: MembershipStateName
    version: int = Field(description="Also the `ETag`; send it back in `If-Match`.")

    @classmethod
    def of(cls, m: MembershipView) -> MyMembership:
        return cls(**cls.fields_of(m))


class MyOrganization(Output):
    organization: OrganizationRef
    membership: MyMembership
    is_home: bool
    can_leave: bool
    leave_blocked_reason: LeaveBlockedReason | None = Field(
        description="Why `canLeave` is false; null when it is true."
    )

    @classmethod
    def of(cls, entry: OrganizationEntry) -> MyOrganization:
        return cls(
            organization=OrganizationRef.of(entry.organization),
            membership=MyMembership.of(entry.membership),
            is_home=entry.is_home,
            can_leave=entry.can_leave,
            leave_blocked_reason=entry.leave_blocked_reason,  # type: ignore[arg-type]
        )


class MyOrganizationList(Output):
    items: list[MyOrganization]


class PrivacyProfile(Output):
    contact_email: str | None
    statement_url: str | None

    @classmethod
    def of(cls, org: OrganizationView) -> PrivacyProfile:
        return cls(contact_email=org.privacy_contact_email, statement_url=org.privacy_statement_url)


class ExternalCollaboration(Output):
    external_user_leave_allowed: bool

    @classmethod
    def of(cls, org: OrganizationView) -> ExternalCollaboration:
        return cls(external_user_leave_allowed=org.external_user_leave_allowed)


class OrganizationSettings(Output):
    external_collaboration: ExternalCollaboration


class Organization(Output):
    id: str
    domain: str
    display_name: str
    privacy_profile: PrivacyProfile
    has_privacy_profile: bool
    settings: OrganizationSettings

    @classmethod
    def of(cls, org: OrganizationView) -> Organization:
        return cls(
            id=org.id,
            domain=org.domain,
            display_name=org.display_name,
            privacy_profile=PrivacyProfile.of(org),
            has_privacy_profile=org.has_privacy_profile,
            settings=OrganizationSettings(external_collaboration=ExternalCollaboration.of(org)),
        )


class Grant(Output):
    id: str
    kind: Literal["group", "app-role"]
    name: str
    granted_at: datetime

    @classmethod
    def of(cls, grant: GrantView) -> Grant:
        return cls(id=grant.id, kind=grant.kind, name=grant.name, granted_at=grant.granted_at)  # type: ignore[arg-type]


class Membership(Output):
    """A membership as its organization's admin sees it. After a purge, a tombstone:
    ``email`` and ``displayName`` are null."""

    # The fields of the view the pages show, but its grants and removal (below, with
    # their API shapes)
    __view__ = MembershipView
    __view_fields__ = frozenset(
        f.name for f in dataclasses.fields(MembershipView) if f.name not in {"grants", "removal"}
    )
    kind: MembershipKindName
    state: MembershipStateName
    version: int = Field(description="Also the `ETag`; send it back in `If-Match`.")

    @classmethod
    def of(cls, m: MembershipView) -> Membership:
        return cls(**cls.fields_of(m))


ConfirmedVia = Literal["url", "delivery", "manual"]


class AppConfirmation(Output):
    """A connected app that must confirm a membership's data removal."""

    webhook_id: str
    url: str = Field(description="The endpoint's URL when the removal started.")
    confirmed_at: datetime | None = Field(description="Null: not confirmed yet.")
    confirmed_via: ConfirmedVia | None = None
    confirmed_by: str | None = Field(default=None, description="Who confirmed by hand.")
    note: str | None = None

    @classmethod
    def of(cls, a: AppConfirmationView) -> AppConfirmation:
        return cls(
            webhook_id=a.webhook_id,
            url=a.url,
            confirmed_at=a.confirmed_at,
            confirmed_via=a.confirmed_via,  # type: ignore[arg-type]  # a Literal
            confirmed_by=a.confirmed_by,
            note=a.note,
        )


class RemovalRows(Output):
    removed: int = Field(description="The service's own rows removed so far.")
    total: int = Field(description="Removed plus those still to remove.")


class Removal(Output):
    """A membership's data removal: the service's own rows and the connected apps.
    It is purged once the rows are all removed and every app has confirmed."""

    rows: RemovalRows
    apps: list[AppConfirmation]

    @classmethod
    def of(cls, r: RemovalView) -> Removal:
        return cls(
            rows=RemovalRows(removed=r.rows_removed, total=r.rows_total),
            apps=[AppConfirmation.of(a) for a in r.apps],
        )


class MembershipWithGrants(Membership):
    grants: list[Grant] = Field(description="Group memberships and app-role assignments.")
    removal: Removal | None = Field(
        default=None,
        description="Once data removal started: `rows` removed of the total, and the "
        "connected apps that must confirm it (`confirmedAt` null: not yet).",
    )

    @classmethod
    def of(cls, m: MembershipView) -> MembershipWithGrants:
        return cls(
            **Membership.fields_of(m),
            grants=[Grant.of(g) for g in m.grants],
            removal=Removal.of(m.removal) if m.removal is not None else None,
        )


class MembershipPage(Output):
    items: list[Membership]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")

    @classmethod
    def of(cls, page: Page) -> MembershipPage:
        return cls(items=[Membership.of(m) for m in page.items], next_cursor=page.next_cursor)


class SelectionProblem(Output):
    """Why one id of a bulk operation was refused: the problem a single call would get."""

    type: str
    title: str
    status: int
    detail: str


class SelectionResult(Output):
    """One id's outcome: ``membership`` when it was carried out, else ``problem``."""

    id: str
    status: int = Field(description="What the single operation would have answered.")
    membership: Membership | None
    problem: SelectionProblem | None


class SelectionResults(Output):
    items: list[SelectionResult] = Field(description="One per distinct id, in the order given.")


class Invitation(Output):
    """An invitation to join an organization as a guest. It says nothing about whether
    the address belongs to anyone."""

    id: str
    organization_id: str
    email: str = Field(description="The address invited, as the admin sent it.")
    kind: GuestKindName
    status: InvitationStatusName = Field(
        description="`expired`: still pending when its `expiresAt` passed."
    )
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None = Field(
        description="When it was accepted, declined or revoked; null otherwise."
    )

    @classmethod
    def of(cls, i: InvitationView) -> Invitation:
        return cls(
            id=i.id,
            organization_id=i.organization_id,
            email=i.email,
            kind=i.kind,  # type: ignore[arg-type]  # validated against the Literal
            status=i.status,  # type: ignore[arg-type]
            created_at=i.created_at,
            expires_at=i.expires_at,
            responded_at=i.responded_at,
        )


class InvitationPage(Output):
    items: list[Invitation]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")

    @classmethod
    def of(cls, page: Page) -> InvitationPage:
        return cls(items=[Invitation.of(i) for i in page.items], next_cursor=page.next_cursor)


class MyInvitationOut(Output):
    """A pending invitation addressed to me, with the organization that sends it."""

    id: str
    organization: OrganizationRef
    email: str
    kind: GuestKindName
    status: InvitationStatusName
    expires_at: datetime

    @classmethod
    def of(cls, mine: MyInvitation) -> MyInvitationOut:
        i = mine.invitation
        return cls(
            id=i.id,
            organization=OrganizationRef.of(mine.organization),
            email=i.email,
            kind=i.kind,  # type: ignore[arg-type]
            status=i.status,  # type: ignore[arg-type]
            expires_at=i.expires_at,
        )


class MyInvitationList(Output):
    items: list[MyInvitationOut]


class AuditEvent(Output):
    __view__ = AuditEventView
    outcome: Literal["allowed", "denied"]
    actor_label: str | None = Field(
        default=None,
        description="Who acted, as people read it: `the member`, `the service`, or the "
        "acting admin's e-mail (in a membership's history; `actor` is the id).",
    )

    @classmethod
    def of(cls, e: AuditEventView) -> AuditEvent:
        return cls(**cls.fields_of(e))


class AuditEventList(Output):
    items: list[AuditEvent]


class AuditEventPage(Output):
    items: list[AuditEvent]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page) -> AuditEventPage:
        return cls(items=[AuditEvent.of(e) for e in page.items], next_cursor=page.next_cursor)


class Health(Output):
    status: Literal["ok"]


class Readiness(Output):
    status: Literal["ready"]
    checks: dict[str, str]


class Problem(BaseModel):
    """RFC 9457 problem details; extension members vary by ``type`` (see docs/errors.md)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A stable URI per error code.")
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = Field(default=None, alias="requestId")

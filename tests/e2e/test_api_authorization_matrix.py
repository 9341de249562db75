"""The authorization matrix, generated from ``/openapi.json``: every operation the document
lists × every kind of caller, each cell with the outcome the access rules promise.

A new operation enters the matrix the day it is added to the API; until it is given an
audience in ``AUDIENCE`` below, ``test_every_operation_has_an_expected_outcome`` fails.
The rules each cell encodes (docs/api.md, docs/errors.md):

- no token: 401 ``authentication-required``; a token that does not verify: 401
  ``invalid-token``; on every operation that needs one;
- a member's own operations (``/v1/me/…``) answer for the caller's own membership only: a
  caller with no membership in the organization gets 404 ``not-found``;
- an organization's admin operations need the Global Administrator or External Identity
  Provider Administrator role in *that* organization, held by an enabled account. Anyone
  else — a member, an admin of another organization, an operator, a disabled admin — gets
  404 ``not-found``, the same answer as for an organization that does not exist, so a
  refusal says nothing about what exists;
- the operators' endpoints (``/v1/ops/…``) need the platform operator role;
- health and metrics need nothing.

Cells where the code does not keep a rule yet are marked ``xfail(strict=True)`` naming the
rule: they fail loudly (XPASS) the day the code keeps it, so the mark is removed then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from api_helpers import PROBLEM_PREFIX, token_for
from sqlalchemy.orm import sessionmaker

from memberships import provisioning
from memberships.principal import SYSTEM
from settings import Settings
from web import create_app

HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def _document() -> dict[str, Any]:
    """The OpenAPI document of an app that touches no database or Redis (collection time)."""
    app = create_app(
        Settings(jwt_secret="x" * 40),
        session_factory=sessionmaker(),
        redis_client=object(),
        pages=False,
    )
    return app.test_client().get("/openapi.json").get_json()  # type: ignore[no-any-return]


DOCUMENT = _document()
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method in HTTP_METHODS
)

# Who an operation is for. Every operation of the document must be listed here.
PUBLIC, MEMBER, ADMIN, OPERATOR = "public", "member", "admin", "operator"


def audience(method: str, path: str) -> str | None:
    """The audience of an operation, by the part of the API it belongs to."""
    if path.startswith("/v1/me/"):
        return MEMBER
    if path.startswith("/v1/organizations/{org}"):
        return ADMIN
    if path.startswith("/v1/ops/"):
        return OPERATOR
    if path in ("/healthz", "/readyz", "/metrics") or path.startswith(CONFIRM_URLS):
        return PUBLIC
    return None


# An app's confirmUrl: the token in the path is the credential, no token is needed.
CONFIRM_URLS = "/v1/removal-confirmations/"


CALLERS = (
    "anonymous",
    "bad-token",
    "member",
    "other-member",
    "other-org-admin",
    "disabled-admin",
    "operator",
    "admin",
)


@dataclass(frozen=True)
class Outcome:
    """What a cell must answer: one of ``statuses``, and when refused, problem ``code``."""

    statuses: tuple[int, ...]
    code: str | None = None
    xfail: str | None = None

    def __str__(self) -> str:
        return f"{'/'.join(map(str, self.statuses))} {self.code or ''}".strip()


UNAUTHENTICATED = Outcome((401,), "authentication-required")
INVALID_TOKEN = Outcome((401,), "invalid-token")
NOT_FOUND = Outcome((404,), "not-found")
ANSWERED = Outcome((200, 202, 201, 409))  # authorized; the state may refuse it (409)


# The caller's own notices and e-mail setting: anyone's own, whoever they are.
MY_OWN_SETTINGS = ("/v1/me/notices", "/v1/me/preferences")


def expected(method: str, path: str, caller: str) -> Outcome | None:
    """The outcome the rules promise for ``caller`` on the operation; ``None`` if unknown."""
    kind = audience(method, path)
    if kind is None:
        return None
    if kind == PUBLIC:
        if path.startswith(CONFIRM_URLS):  # a made-up token, whoever sends it
            return NOT_FOUND
        return Outcome((200, 503) if path == "/readyz" else (200,))
    if caller == "anonymous":
        return UNAUTHENTICATED
    if caller == "bad-token":
        return INVALID_TOKEN
    if kind == MEMBER:
        if "/invitations/" in path:  # ann's invitation: nobody else's to answer, or to see
            return ANSWERED if caller == "member" else NOT_FOUND
        if caller == "member":
            return ANSWERED
        if caller == "admin":  # open is gadmin's home organization: the home membership
            # neither leaves nor asks to be removed
            leave = path.startswith("/v1/me/organizations/") and path.endswith(
                ("/leave", "/removal-requests")
            )
            return Outcome((403,), "home-organization") if leave else Outcome((200,))
        if path in (
            "/v1/me/organizations",
            "/v1/me/invitations",
            "/v1/me/removal-requests",
            *MY_OWN_SETTINGS,
        ):
            return Outcome((200,))  # the caller's own list, whoever it is
        return NOT_FOUND  # no membership of theirs in the organization on the path
    if kind == ADMIN:
        if caller == "admin":
            return ANSWERED
        if caller == "disabled-admin":
            return Outcome((403,), "forbidden")  # a disabled account has no admin power
        return NOT_FOUND  # no role here: answered as for an organization that does not exist
    if kind == OPERATOR:
        if caller == "operator":
            return Outcome((200, 503))  # 503: the broker is not reachable from this test
        return Outcome((403,), "forbidden")
    return None


# Values for the body fields the operations require, by field name: the body of each
# operation is built from its schema in the document, so a new field fails loudly here.
FIELD_VALUES: dict[str, Any] = {
    "user": "cadmin@mail.example",
    "email": "cadmin@mail.example",
    "kind": "b2b-collaboration",
    "contactEmail": "privacy2@open.example",
    "statementUrl": "https://open.example/privacy2",
    "externalUserLeaveAllowed": False,
    "ids": ["00000000-0000-4000-8000-000000000000"],  # the bulk operations: an unknown id
    "reason": "We keep this account for the audit.",  # declining a removal request
    "emailOwnChanges": True,
    "url": "https://93.184.215.14/hooks",  # a webhook endpoint: a public address, no lookup
    "webhookId": "set by the test: the webhooks fixture's endpoint",
    "note": "Confirmed with the app's operators.",
}


def body(method: str, path: str) -> dict[str, Any] | None:
    """A valid body for the operation, from its request schema; ``None`` when the
    operation takes none (a schema without properties)."""
    request = DOCUMENT["paths"][path][method.lower()].get("requestBody")
    if request is None:
        return None
    schema = request["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    fields = schema.get("required", [])
    unknown = [f for f in fields if f not in FIELD_VALUES]
    assert not unknown, f"give FIELD_VALUES a value for {unknown} ({method} {path})"
    return {f: FIELD_VALUES[f] for f in fields} if schema.get("properties") else None


def _cells() -> list[Any]:
    cells = []
    for method, path in OPERATIONS:
        for caller in CALLERS:
            outcome = expected(method, path, caller)
            marks = []
            if outcome is not None and outcome.xfail:
                marks.append(pytest.mark.xfail(strict=True, reason=outcome.xfail))
            cells.append(
                pytest.param(method, path, caller, id=f"{method} {path} {caller}", marks=marks)
            )
    return cells


def test_every_operation_has_an_expected_outcome() -> None:
    # Given every operation the OpenAPI document lists
    assert len(OPERATIONS) >= 20
    # Then each has an audience, and so an outcome for every kind of caller
    missing = [
        f"{method} {path} as {caller}"
        for method, path in OPERATIONS
        for caller in CALLERS
        if expected(method, path, caller) is None
    ]
    assert missing == [], "give these operations an audience in audience(): " + str(missing)


@pytest.fixture
def callers(world: Any) -> dict[str, dict[str, str]]:
    """The Authorization header of each kind of caller."""

    def run(call: Callable[[Any], Any]) -> Any:
        with world.uow() as uow:
            return call(uow)

    # A disabled account that holds the admin role of open, and a guest of bare only
    disabled = run(
        lambda u: provisioning.create_user(
            u, world.clock, SYSTEM, "exadmin@mail.example", "Ex Admin", None, enabled=False
        )
    ).id
    run(
        lambda u: provisioning.grant_role(
            u, world.clock, SYSTEM, disabled, "global-administrator", world.orgs["open"]
        )
    )
    elsewhere = run(
        lambda u: provisioning.create_user(u, world.clock, SYSTEM, "eve@mail.example", "Eve", None)
    ).id
    run(
        lambda u: provisioning.add_guest(
            u, world.clock, SYSTEM, world.orgs["bare"], elsewhere, "b2b-collaboration"
        )
    )
    wrong_key = Settings(jwt_secret="another-secret-that-is-long-enough-too")
    from datetime import timedelta

    from web.auth import issue_token

    users = {
        "member": world.users["ann"],
        "other-member": elsewhere,
        "other-org-admin": world.users["cadmin"],
        "disabled-admin": disabled,
        "operator": world.users["ops"],
        "admin": world.users["gadmin"],
    }
    headers = {name: {"Authorization": f"Bearer {token_for(uid)}"} for name, uid in users.items()}
    headers["anonymous"] = {}
    headers["bad-token"] = {
        "Authorization": "Bearer "
        + issue_token(world.users["gadmin"], wrong_key, timedelta(minutes=5))
    }
    return headers


@pytest.fixture
def webhooks(world: Any) -> dict[str, str]:
    """An endpoint of open that confirms removal, with a pending delivery; pat's
    direct-connect membership removed (purge-pending), waiting for that app."""
    from memberships import admin
    from memberships.webhook_delivery import fan_out
    from tests.integration.test_webhook_delivery import add_endpoint, add_event, deliveries

    endpoint = add_endpoint(world, "https://crm.example/hook", confirms_removal=True)
    add_event(world)
    with world.uow() as uow:
        fan_out(uow, world.clock)
    pat = world.membership("open", "pat")
    with world.uow() as uow:
        admin.remove(uow, world.clock, SYSTEM, world.orgs["open"], pat)
    delivery = next(d for d in deliveries(world) if d.endpoint_id == endpoint)
    return {"webhook_id": endpoint, "delivery_id": delivery.id, "membership": pat}


@pytest.fixture
def invitations(world: Any) -> dict[str, str]:
    """Pending invitations: ``ann`` to an organization she is not in yet, and ``open`` (of
    open.example, to an address nobody has)."""
    from memberships import invitations as inv

    def run(call: Callable[[Any], Any]) -> Any:
        with world.uow() as uow:
            return call(uow)

    spare = run(
        lambda u: provisioning.create_organization(
            u, world.clock, SYSTEM, "spare.example", "Spare", None, None
        )
    ).id
    kind = "b2b-collaboration"
    return {
        "ann": run(
            lambda u: inv.invite_guest(u, world.clock, SYSTEM, spare, "ann@mail.example", kind)
        ).id,
        "open": run(
            lambda u: inv.invite_guest(
                u, world.clock, SYSTEM, world.orgs["open"], "newcomer@mail.example", kind
            )
        ).id,
    }


@pytest.fixture
def removal_request(world: Any) -> str:
    """An open removal request in open.example, by ``dis`` (whose account there is
    disabled, so she may not leave on her own)."""
    from memberships import removal_requests

    with world.uow() as uow:
        return removal_requests.open_request(
            uow, world.clock, world.principal("dis"), "open.example"
        ).id


@pytest.fixture
def webhook(world: Any) -> str:
    """A webhook endpoint of open.example."""
    from memberships import webhook_endpoints

    with world.uow() as uow:
        return webhook_endpoints.create_webhook(
            uow, world.clock, SYSTEM, world.orgs["open"], "https://93.184.215.14/hooks"
        ).id


# Who may do what does not depend on the database: SQLite is enough for the matrix.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "path", "caller"), _cells())
def test_each_caller_gets_what_the_rules_promise(
    client: Any,
    world: Any,
    callers: dict[str, dict[str, str]],
    invitations: dict[str, str],
    removal_request: str,
    webhook: str,
    method: str,
    path: str,
    caller: str,
    request: pytest.FixtureRequest,
) -> None:
    outcome = expected(method, path, caller)
    assert outcome is not None
    # Given the operation aimed at open.example, ann's membership and a pending invitation
    # (ann's own on the member's paths, one of open's on the admin's)
    mine = path.startswith("/v1/me/")
    hooks = (
        request.getfixturevalue("webhooks")
        if "/deliveries" in path or "/removal-confirmations" in path
        else {}
    )
    url = path.format(
        org="open.example",
        membership_id=hooks.get("membership") or world.membership("open", "ann"),
        invitation_id=invitations["ann" if mine else "open"],
        request_id=removal_request,
        webhook_id=hooks.get("webhook_id") or webhook,
        delivery_id=hooks.get("delivery_id"),
        token="a-made-up-token",
    )
    payload = body(method, path)
    if payload is not None and "webhookId" in payload:
        payload["webhookId"] = hooks["webhook_id"]
    # When the caller sends it
    response = client.open(url, method=method, headers=callers[caller], json=payload)
    # Then the answer is the one the rules promise
    assert response.status_code in outcome.statuses, (
        f"expected {outcome}, got {response.status_code}: {response.get_data(as_text=True)}"
    )
    if outcome.code is not None:
        assert response.get_json(force=True)["type"] == PROBLEM_PREFIX + outcome.code

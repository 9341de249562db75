"""The OpenAPI 3.1 document: every operation with its problem responses and the bearer scheme.

Views declare the domain problems they can answer with ``problems(...)``; the spec
processor adds what every operation of a kind can answer (``401`` when it needs a
token, ``400`` for text no database stores (``web.bad_input``), ``400``/``415``/``422``
when it takes input, ``429``, ``500``), the ``Problem`` schema and the ``bearerAuth``
security scheme.

The contract rules clients build on (docs/api.md), checked by tests/e2e/test_api_contract.py:
every operation has a verb-first camelCase ``operationId`` given with
``@bp.doc(operation_id=...)``, whose verb is one of ``OPERATION_VERBS``, and exactly one
tag from ``TAGS``; every schema has one plain name (Pydantic's nested models, which
APIFlask names ``Outer.Inner``, are given the model's own name).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from web.errors import PROBLEM_JSON, STATUS, problem_type
from web.schemas import Problem

# ``/v1`` paths that need no token (a capability URL: the path is the credential).
PUBLIC_V1_PATHS: set[str] = set()

# The fixed tag list: every operation has exactly one of these (its blueprint's tag).
TAGS = [
    {
        "name": "Self-service",
        "description": "The signed-in user's own organizations, and leaving one.",
    },
    {
        "name": "Organization admin",
        "description": "An organization's admin: settings, guests, memberships, deleted users "
        "(restore or delete permanently), the audit log.",
    },
    {
        "name": "Operations",
        "description": "Health, readiness, metrics, and the platform operators' reports.",
    },
]
TAG_NAMES = tuple(tag["name"] for tag in TAGS)
# An operationId is one of these verbs followed by what it acts on, in camelCase.
OPERATION_VERBS = (
    "list",
    "get",
    "add",
    "create",
    "set",
    "update",
    "remove",
    "delete",
    "leave",
    "restore",
    "purge",
    "accept",
    "decline",
    "cancel",
    "revoke",
    "retry",
    "confirm",
    "approve",
    "rotate",
)
OPERATION_ID = re.compile(rf"^({'|'.join(OPERATION_VERBS)})([A-Z][a-z0-9]*)+$")

BEARER = "bearerAuth"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_METHODS = ("get", "put", "post", "delete", "patch")
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'The membership\'s `ETag` (e.g. `"3"`); a stale one gives `412`.',
    "schema": {"type": "string"},
}


EMPTY_MEANS_ABSENT = "An empty value is the same as leaving the parameter out."

# Where a response leads (OpenAPI links, by operationId): a member's accepted leave to the
# organization's deleted users and to restoring that very membership (once the worker has
# carried the leave out), the deleted users to restoring one, a restore back to leaving.
LINKS: dict[tuple[str, str], dict[str, Any]] = {
    ("leaveOrganization", "202"): {
        "ListDeletedUsersOfTheOrganizationLeft": {
            "operationId": "listDeletedUsers",
            "parameters": {"org": "$response.body#/organizationId"},
            "description": "Once the leave is carried out, the organization's admin finds "
            "the membership among its deleted users.",
        },
        "RestoreTheMembershipLeft": {
            "operationId": "restoreDeletedUser",
            "parameters": {
                "org": "$response.body#/organizationId",
                "membership_id": "$response.body#/id",
            },
            "description": "The organization's admin restores the membership left, within "
            "the retention period.",
        },
    },
    ("listDeletedUsers", "200"): {
        "RestoreTheFirstDeletedUser": {
            "operationId": "restoreDeletedUser",
            "parameters": {
                "org": "$request.path.org",
                "membership_id": "$response.body#/items/0/id",
            },
            "description": "Restore a membership of the page.",
        },
    },
    ("restoreDeletedUser", "200"): {
        "LeaveTheRestoredOrganization": {
            "operationId": "leaveOrganization",
            "parameters": {"org": "$response.body#/organizationId"},
            "description": "The restored member may leave again.",
        },
    },
}


def _name_schemas_once(spec: dict[Any, Any]) -> None:
    """Give every nested model its own name: ``Outer.Inner`` becomes ``Inner``, with every
    ``$ref`` rewritten. Two different shapes wanting one name is a programming error."""
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    for name in [n for n in schemas if "." in n]:
        plain = name.rsplit(".", 1)[1]
        shape = _plain_refs(schemas.pop(name))
        kept = schemas.setdefault(plain, shape)
        if _plain_refs(kept) != shape:
            raise ValueError(f"two different schemas are both named {plain!r}")
    for key in ("paths", "components"):
        if key in spec:
            spec[key] = _plain_refs(spec[key])


def _plain_refs(node: Any) -> Any:
    """``node`` with each ``#/components/schemas/Outer.Inner`` reference made ``…/Inner``."""
    if isinstance(node, dict):
        return {
            k: (_SCHEMA_REF + v.rsplit(".", 1)[1])
            if k == "$ref" and isinstance(v, str) and v.startswith(_SCHEMA_REF) and "." in v
            else _plain_refs(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_plain_refs(v) for v in node]
    return node


_SCHEMA_REF = "#/components/schemas/"


def _problem_response(codes: list[str]) -> dict[str, Any]:
    listed = ", ".join(f"`{code}`" for code in codes)
    return {
        "description": f"Problem: {listed} (see docs/errors.md).",
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }


# APIFlask's annotation of ``doc(responses=...)`` is narrower than the OpenAPI response
# objects it accepts (and copies into the document as they are).
ResponsesDoc = Any


def problems(*codes: str) -> ResponsesDoc:
    """``responses=`` for ``@bp.doc``: the listed error codes grouped by status."""
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in codes:
        by_status[STATUS[code]].append(code)
    return {status: _problem_response(found) for status, found in sorted(by_status.items())}


def header(description: str, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


def _add(operation: dict[str, Any], status: int, codes: list[str]) -> None:
    responses = operation.setdefault("responses", {})
    existing = responses.get(str(status))
    if existing is None:
        responses[str(status)] = _problem_response(codes)
        return
    existing.setdefault("content", {}).setdefault(PROBLEM_JSON, {"schema": PROBLEM_REF})
    missing = [f"`{code}`" for code in codes if f"`{code}`" not in existing.get("description", "")]
    if missing:
        existing["description"] = f"{existing.get('description', '')} Also {', '.join(missing)}."


CUSTOM_METHOD_RULES: list[str] = []
"""Rules whose last segment names a custom method after a colon (``…/memberships:remove``).

APIFlask turns a rule into an OpenAPI path with a pattern that takes that colon for a
converter's (``<int:id>``), which mangles the path; ``custom_method_rule`` lists such a
rule here and ``process_spec`` puts its path right."""


def custom_method_rule(prefix: str, rule: str) -> str:
    """Note ``rule`` (of a blueprint under ``prefix``) as a custom-method rule; return it."""
    CUSTOM_METHOD_RULES.append(prefix + rule)
    return rule


def _restore_custom_method_paths(paths: dict[str, Any]) -> None:
    for rule in CUSTOM_METHOD_RULES:
        mangled = re.sub(r"<([^<:]+:)?", "{", rule).replace(">", "}")
        if mangled in paths:
            paths[re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)] = paths.pop(mangled)


def _add_links(paths: dict[str, Any]) -> None:
    """Put ``LINKS`` on the responses they start from (an operation that is not in the
    document, or a response it does not have, gets none)."""
    for item in paths.values():
        for method in _METHODS:
            operation = item.get(method) or {}
            for (operation_id, status), links in LINKS.items():
                response = operation.get("responses", {}).get(status)
                if operation.get("operationId") == operation_id and response is not None:
                    response.setdefault("links", {}).update(links)


def process_spec(spec: dict[Any, Any] | str) -> dict[Any, Any] | str:
    """Complete the generated document (an APIFlask ``spec_processor``)."""
    if isinstance(spec, str):  # only with SPEC_FORMAT yaml, which this app does not use
        return spec
    _restore_custom_method_paths(spec.get("paths", {}))
    _name_schemas_once(spec)
    _add_links(spec.get("paths", {}))
    # APIFlask lists one tag per blueprint (a tag shared by two blueprints comes twice);
    # the document lists the fixed tags once each, with their descriptions.
    spec["tags"] = [dict(tag) for tag in TAGS]
    components = spec.setdefault("components", {})
    schema = Problem.model_json_schema(by_alias=True)
    schema["properties"]["type"]["examples"] = [problem_type("not-found")]
    components.setdefault("schemas", {})["Problem"] = schema
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT whose `sub` is the user id (`lifecycle token --user E`).",
    }
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            secured = path.startswith("/v1/") and path not in PUBLIC_V1_PATHS
            if secured:
                operation["security"] = [{BEARER: []}]
                _add(operation, 401, ["authentication-required", "invalid-token"])
            else:
                operation["security"] = []
            if path.startswith("/v1/"):  # limited per caller, or per address without a token
                _add(operation, 429, ["rate-limited"])
            has_input = "requestBody" in operation or any(
                p.get("in") == "query" for p in operation.get("parameters", [])
            )
            if "requestBody" in operation:
                _add(operation, 400, ["malformed-json"])
                _add(operation, 413, ["payload-too-large"])
                _add(operation, 415, ["unsupported-media-type"])
            if has_input:
                _add(operation, 422, ["invalid-input"])
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and not parameter.get("required"):
                    # web.schemas.Query: an empty value means "not given"
                    parameter.pop("allowEmptyValue", None)
                    described = parameter.get("description", "")
                    if EMPTY_MEANS_ABSENT not in described:
                        parameter["description"] = f"{described} {EMPTY_MEANS_ABSENT}".strip()
            if method == "post" and secured:
                _add(operation, 400, ["bad-request"])
                params = operation.setdefault("parameters", [])
                params.append(
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "Retry safely: a replay returns the first response.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    }
                )
                _add(operation, 409, ["idempotency-key-in-use"])
                _add(operation, 422, ["idempotency-key-reused"])
            if method in ("post", "delete") and (
                "{membership_id}" in path or path.endswith("/leave")
            ):
                operation.setdefault("parameters", []).append(IF_MATCH)
            # A NUL in the path or the query is refused before any view (web.bad_input).
            _add(operation, 400, ["bad-request"])
            _add(operation, 500, ["internal-error"])
            for response in operation.get("responses", {}).values():
                headers = response.setdefault("headers", {})
                headers.setdefault(
                    "X-Request-ID", header("The request id (echoed or generated).", False)
                )
    return spec

"""The OpenAPI 3.1 document: every operation with its problem responses and the bearer scheme.

Views declare the domain problems they can answer with ``problems(...)``; the spec
processor adds what every operation of a kind can answer (``401`` when it needs a
token, ``400`` for text no database stores (``web.bad_input``), ``400``/``415``/``422``
when it takes input, ``429``, ``500``), the ``Problem``
schema and the ``bearerAuth`` security scheme. Optional query parameters are marked
``allowEmptyValue``: an empty value means the parameter was not given.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from web.errors import PROBLEM_JSON, STATUS, problem_type
from web.schemas import Problem

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


def process_spec(spec: dict[Any, Any] | str) -> dict[Any, Any] | str:
    """Complete the generated document (an APIFlask ``spec_processor``)."""
    if isinstance(spec, str):  # only with SPEC_FORMAT yaml, which this app does not use
        return spec
    _restore_custom_method_paths(spec.get("paths", {}))
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
            secured = path.startswith("/v1/")
            if secured:
                operation["security"] = [{BEARER: []}]
                _add(operation, 401, ["authentication-required", "invalid-token"])
                _add(operation, 429, ["rate-limited"])
            else:
                operation["security"] = []
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
                    parameter["allowEmptyValue"] = True
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

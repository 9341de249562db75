"""Schemathesis over every operation of ``/openapi.json``, in process, as an admin, on
SQLite and on PostgreSQL (which refuses input SQLite takes, NUL bytes among them).

Each generated request is sent twice: as generated (mostly unknown organizations and
memberships, odd inputs) and aimed at the admin's own organization and a real
membership, so the operations' working paths are exercised too. Every response must
be documented, match its schema, and never be a ``5xx``.

``SCHEMATHESIS_EXAMPLES`` sets the examples per operation (default 12; .ci/run sets 25).
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from api_helpers import SECRET, token_for
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from sqlalchemy.orm import sessionmaker

from settings import Settings
from web import create_app

EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "") or 12)
# "Schema-valid input must be accepted" does not hold for this API by design: a value
# can fit the schema and still be refused with a documented 4xx, e.g. an e-mail address
# whose domain is malformed (422), a cursor this service never gave out (422), or an
# Idempotency-Key already used for another request (422).
NOT_APPLICABLE = [positive_data_acceptance]


def not_applicable(case: Any) -> list[Any]:
    """The checks that do not apply to ``case``: besides ``NOT_APPLICABLE``, "schema-
    violating input must be refused" when a query value is empty, because the API takes an
    empty value as "not given" by design (docs/api.md), which OpenAPI 3.1 cannot express
    for an integer without ``allowEmptyValue`` (not recommended, and gone from the document),
    or when the query has a parameter the operation does not declare: unknown query
    parameters are ignored by design (caches and proxies add their own; ``web.schemas.Query``)."""
    query = case.query or {}
    declared = {parameter.name for parameter in case.operation.query}
    if any(value == "" for value in query.values()) or set(query) - declared:
        return [*NOT_APPLICABLE, negative_data_rejection]
    return NOT_APPLICABLE


def _document() -> dict[str, Any]:
    """The OpenAPI document, read from an app that touches no database or Redis.

    Loaded at collection (``schemathesis.pytest.from_fixture`` does not run on pytest 9);
    each test then sends its cases to its own app, on its own database.
    """
    app = create_app(
        Settings(jwt_secret=SECRET),
        session_factory=sessionmaker(),
        redis_client=object(),
        pages=False,
    )
    return app.test_client().get("/openapi.json").get_json()  # type: ignore[no-any-return]


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: Any, app: Any, world: Any) -> None:
    # This test's app (and database) answers the cases and the checks' own probes
    case.operation.app = app
    case.operation.schema.app = app
    headers = {"Authorization": f"Bearer {token_for(world.users['gadmin'])}"}
    # As generated
    case.call_and_validate(headers=headers, excluded_checks=not_applicable(case))
    # Aimed at the admin's organization and one of its memberships
    parameters = dict(case.path_parameters or {})
    if "org" in parameters:
        parameters["org"] = "open.example"
    if "membership_id" in parameters:
        parameters["membership_id"] = world.membership("open", "ann")
    if parameters != (case.path_parameters or {}):
        case.path_parameters = parameters
        case.call_and_validate(headers=headers, excluded_checks=not_applicable(case))

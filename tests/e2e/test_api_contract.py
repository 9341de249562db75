"""The API's contract as third-party tools read it: ``/openapi.json`` passes
``openapi-spec-validator``, follows the naming rules of docs/api.md (a verb-first
``operationId`` and exactly one tag from the fixed list on every operation, one plain
name per schema, every error response a documented problem), and
``openapi-python-client`` turns it into a client without a single warning.

These tests read the document the app serves (built once, in process), so an endpoint
added later is held to the same rules."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from web.errors import PROBLEM_JSON, STATUS
from web.openapi import OPERATION_ID, TAG_NAMES

REPO = Path(__file__).resolve().parents[2]


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "generate_client", REPO / "scripts" / "generate_client.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """``GET /openapi.json`` of an app built as scripts/generate_client.py builds it."""
    return load_generator().openapi_document()  # type: ignore[no-any-return]


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    ]


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_document_passes_the_openapi_validator(document):
    # Given the served document, When the reference validator reads it
    # Then it raises nothing (duplicate tags, bad refs, wrong keywords all would)
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_operation_has_a_unique_verb_first_operation_id(document):
    found = [(path, method, op.get("operationId")) for path, method, op in operations(document)]
    for path, method, operation_id in found:
        assert operation_id and OPERATION_ID.match(operation_id), (
            f"{method.upper()} {path}: operationId {operation_id!r} must be a verb of "
            "web.openapi.OPERATION_VERBS followed by CamelCase words (docs/api.md)"
        )
    counts = Counter(operation_id for _, _, operation_id in found)
    assert [name for name, n in counts.items() if n > 1] == []
    # And the walkthrough's operations have the documented names
    by_route = {(path, method): operation_id for path, method, operation_id in found}
    assert by_route[("/v1/me/organizations/{org}/leave", "post")] == "leaveOrganization"
    assert by_route[("/v1/organizations/{org}/deleted-users", "get")] == "listDeletedUsers"
    restore = ("/v1/organizations/{org}/deleted-users/{membership_id}/restore", "post")
    assert by_route[restore] == "restoreDeletedUser"


def test_every_operation_has_exactly_one_tag_from_the_fixed_list(document):
    assert [tag["name"] for tag in document["tags"]] == list(TAG_NAMES)
    assert all(tag.get("description") for tag in document["tags"])
    for path, method, operation in operations(document):
        tags = operation.get("tags", [])
        assert len(tags) == 1 and tags[0] in TAG_NAMES, (path, method, tags)


def test_every_schema_has_one_plain_name_and_every_reference_resolves(document):
    schemas = document["components"]["schemas"]
    assert [name for name in schemas if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name)] == []
    prefix = "#/components/schemas/"
    for ref in refs(document):
        assert ref.startswith(prefix) and ref.removeprefix(prefix) in schemas, ref
    # And no query parameter uses allowEmptyValue (NOT RECOMMENDED in OpenAPI 3.1)
    for _, _, operation in operations(document):
        for parameter in operation.get("parameters", []):
            assert "allowEmptyValue" not in parameter


def test_every_error_response_is_a_problem_with_its_codes(document):
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            where = f"{method.upper()} {path} {status}"
            content = response.get("content", {})
            assert list(content) == [PROBLEM_JSON], where
            assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
            codes = re.findall(r"`([a-z-]+)`", response["description"])
            assert codes, f"{where}: the description names no problem code"
            for code in codes:
                assert STATUS.get(code) == int(status), f"{where}: {code} is not a {status}"


@pytest.mark.timeout(180)
def test_a_python_client_is_generated_without_a_warning(document, tmp_path):
    # Given the served document, When openapi-python-client generates a client with
    # --fail-on-warning (the command `make client` runs)
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document))
    output = load_generator().generate(tmp_path / "client", spec)
    # Then it succeeded, with one module per operation named after its operationId
    package = output / "lifecycle_client"
    modules = {p.stem for p in (package / "api").glob("*/*.py") if p.stem != "__init__"}
    snake = {
        re.sub(r"(?<!^)([A-Z])", r"_\1", operation["operationId"]).lower()
        for _, _, operation in operations(document)
    }
    assert modules == snake
    # And every schema became a model
    models = {p.stem for p in (package / "models").glob("*.py")}
    for name in ("membership", "membership_page", "audit_event", "audit_event_list", "problem"):
        assert name in models

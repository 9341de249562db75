"""Bad input is a 4xx problem, never a 500: NUL characters, unpaired surrogates and
non-ASCII digits wherever the API reads text, deep JSON, cursors and entity tags that
are no number this service gave out, and a token's over-long ``sub``.

The property test derives what to send from the OpenAPI document, so a parameter added
later is covered without touching this file.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from api_helpers import SECRET, Caller, problem, token_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

OPEN = "/v1/organizations/open.example"


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _refused(response, status: int | None = None) -> dict[str, Any]:
    """A 4xx problem (of ``status`` when given)."""
    body = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, body
    if status is not None:
        assert response.status_code == status, body
    assert response.mimetype == "application/problem+json", body
    return response.get_json(force=True)  # type: ignore[no-any-return]


# ---- each case the service once answered with a 500 ------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/organizations/open%00.example"),
        ("GET", "/v1/me/organizations/%00"),
        ("GET", OPEN + "/memberships/%00"),
        ("GET", OPEN + "/memberships/abc%00def/history"),
        ("DELETE", OPEN + "/memberships/abc%00"),
        ("POST", OPEN + "/deleted-users/%00/restore"),
    ],
)
def test_a_nul_in_a_path_segment_is_a_400(api, method, path):
    problem(api("gadmin").request(method, path), 400, "bad-request")


@pytest.mark.parametrize(
    "query",
    ["state=%00", "kind=active%00", "cursor=%00", "limit=1%00", "%00=1", "unknown=%00"],
)
def test_a_nul_in_a_query_value_is_a_400(api, query):
    problem(api("gadmin").get(f"{OPEN}/memberships?{query}"), 400, "bad-request")


@pytest.mark.parametrize("decoded", ["\x00", "abc\x00", "\x00" * 36, "²", "é"])
def test_a_cursor_that_decodes_to_what_no_id_holds_is_a_422(api, decoded):
    for listing in ("memberships", "deleted-users", "audit-events"):
        response = api("gadmin").get(f"{OPEN}/{listing}?cursor={_cursor(decoded)}")
        problem(response, 422, "invalid-input")


@pytest.mark.parametrize("decoded", ["²", "٣", "1" * 40, "9" * 19])
def test_an_audit_events_cursor_that_is_no_event_id_is_a_422(api, decoded):
    response = api("gadmin").get(f"{OPEN}/audit-events?cursor={_cursor(decoded)}")
    problem(response, 422, "invalid-input")


@pytest.mark.parametrize(
    "body",
    [
        '{"contactEmail": "privacy\\u0000@open.example", "statementUrl": "https://open.example/p"}',
        '{"contactEmail": "privacy@open.example", "statementUrl": "https://open.example/\\u0000"}',
        '{"contactEmail": "\\ud800@open.example", "statementUrl": "https://open.example/p"}',
        '{"contactEmail\\u0000": "privacy@open.example", "statementUrl": "https://x.example"}',
    ],
)
def test_a_nul_or_a_lone_surrogate_in_a_json_string_is_a_400(api, world, body):
    response = api("gadmin").put(
        f"{OPEN}/privacy-profile", data=body, content_type="application/json"
    )
    problem(response, 400, "bad-request")


@pytest.mark.parametrize("user", ["\\u0000", "ann\\u0000@mail.example", "\\udfff"])
def test_a_nul_in_a_guest_reference_is_a_400(api, user):
    body = '{"user": "' + user + '", "kind": "b2b-collaboration"}'
    response = api("gadmin").post(f"{OPEN}/guests", data=body, content_type="application/json")
    problem(response, 400, "bad-request")


@pytest.mark.parametrize("depth", [33, 1_000, 10_000, 30_000])
def test_deeply_nested_json_is_a_400(api, depth):
    body = "[" * depth + "]" * depth
    assert len(body) <= 64 * 1024
    response = api("gadmin").put(
        f"{OPEN}/privacy-profile", data=body, content_type="application/json"
    )
    problem(response, 400, "malformed-json")


def test_json_nested_as_deep_as_allowed_is_read(api):
    # 32 levels parse, and the schema refuses them as it refuses any wrong shape
    body = '{"contactEmail": ' + "[" * 31 + "]" * 31 + ', "statementUrl": "https://x.example"}'
    response = api("gadmin").put(
        f"{OPEN}/privacy-profile", data=body, content_type="application/json"
    )
    problem(response, 422, "invalid-input")


@pytest.mark.parametrize("value", ['"²"', '"٣"', '"' + "7" * 5000 + '"', '"' + "9" * 40 + '"'])
def test_an_if_match_that_is_no_version_is_a_412(api, world, value):
    membership = world.membership("open", "ann")
    response = api("gadmin").delete(f"{OPEN}/memberships/{membership}", headers={"If-Match": value})
    problem(response, 412, "precondition-failed")


@pytest.mark.parametrize("sub", ["u" * 65, "x" * 1000, "ann\x00", "\ud800"])
def test_a_token_whose_sub_is_no_user_id_is_a_401(client, world, sub):
    # A token for an id no user can have, sent where a refusal would be audited
    token = jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, SECRET, "HS256")
    caller = Caller(client, {"Authorization": f"Bearer {token}"})
    problem(caller.get(f"{OPEN}/memberships"), 401, "invalid-token")
    problem(caller.post("/v1/me/organizations/closed.example/leave"), 401, "invalid-token")


def test_a_sub_of_64_characters_is_still_a_user_id(client, world):
    token = jwt.encode({"sub": "u" * 64, "exp": int(time.time()) + 600}, SECRET, "HS256")
    caller = Caller(client, {"Authorization": f"Bearer {token}"})
    # Unknown, but a user id: refused by the rules, and audited without a 500
    assert caller.get(f"{OPEN}/memberships").status_code in (403, 404)


def test_a_nul_in_a_page_form_is_a_400_page(make_app, world):
    from pages_helpers import Visitor, csrf_token_of

    visitor = Visitor(make_app(pages=True, dev_sign_in=True).test_client())
    visitor.sign_in(world.users["gadmin"])
    page = visitor.get("/admin/open.example/settings")
    response = visitor.client.post(
        "/admin/open.example/settings/privacy-profile",
        data={
            "csrf_token": csrf_token_of(page),
            "contact_email": "privacy\x00@open.example",
            "statement_url": "https://open.example/p",
        },
    )
    assert response.status_code == 400
    assert response.mimetype == "text/html"


# ---- any string, into every parameter and header the API reads -------------------------

_NASTY = st.sampled_from(
    ["\x00", "\ud800", "\udfff", "²", "٣", "１", "\u2028", "%", "%00", "..", "/", "\\", "'", '"']
)
_TEXT = st.lists(
    st.one_of(_NASTY, st.characters(exclude_categories=()), st.text(max_size=4)),
    max_size=12,
).map("".join)
# Headers every operation reads besides those the document declares.
_ALWAYS_READ_HEADERS = ("X-Request-ID",)
_PARAMETER = re.compile(r"\{([^}]+)\}")


def _wire(text: str) -> bytes:
    """``text`` as a client would put it on the wire (surrogates as their UTF-8 bytes)."""
    return text.encode("utf-8", "surrogatepass")


def _header(text: str) -> str:
    """``text`` as a header value arrives: its bytes, read as Latin-1 (what WSGI gives);
    a line break ends a header line, so it cannot be part of one."""
    return _wire(text).decode("latin-1").replace("\r", "").replace("\n", "")


def _operations(app) -> list[tuple[str, str, list[dict[str, Any]]]]:
    document = app.test_client().get("/openapi.json").get_json()
    operations = []
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            operations.append((method.upper(), path, shared + operation.get("parameters", [])))
    return operations


def test_the_property_test_covers_every_parameter_of_the_document(app):
    names = {(p["in"], p["name"]) for _, _, params in _operations(app) for p in params}
    # The document lists what the API reads: a new one is fuzzed without a change here.
    assert {("path", "org"), ("path", "membership_id"), ("query", "cursor")} <= names
    assert {("header", "If-Match"), ("header", "Idempotency-Key")} <= names


@pytest.fixture
def fuzz(app, client, world):
    """Every operation of the document, a caller that can reach its rules (an admin of
    ``open``), and real values to mix with the made-up ones."""
    return {
        "operations": _operations(app),
        "caller": Caller(client, {"Authorization": f"Bearer {token_for(world.users['gadmin'])}"}),
        "real": {
            "org": ["open.example", world.orgs["open"]],
            "membership_id": [world.membership("open", "ann"), world.membership("open", "pat")],
        },
    }


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_string_in_any_parameter_or_header_makes_a_5xx(fuzz, data):
    method, template, parameters = data.draw(st.sampled_from(fuzz["operations"]))

    def value(name: str) -> str:
        real = fuzz["real"].get(name, [])
        return data.draw(st.one_of(_TEXT, st.sampled_from(real)) if real else _TEXT)

    path = _PARAMETER.sub(lambda m: quote(_wire(value(m.group(1))), safe=""), template)
    query = "&".join(
        f"{quote(p['name'])}={quote(_wire(value(p['name'])), safe='')}"
        for p in parameters
        if p["in"] == "query" and data.draw(st.booleans())
    )
    headers = {
        name: _header(value(name))
        for name in [p["name"] for p in parameters if p["in"] == "header"]
        + list(_ALWAYS_READ_HEADERS)
        if data.draw(st.booleans())
    }
    response = fuzz["caller"].request(method, f"{path}?{query}" if query else path, headers=headers)
    assert response.status_code < 500, (method, path, query, headers, response.get_data())


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(token=_TEXT)
def test_no_string_as_a_bearer_token_makes_a_5xx(client, token):
    header = "Bearer " + _header(token)
    response = client.get("/v1/me/organizations", headers={"Authorization": header})
    assert response.status_code < 500, response.get_data()

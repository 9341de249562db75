"""The authorization matrix: every operation refuses whoever may not call it, and leaks nothing.

Tokens: none, a bad signature, expired, the wrong audience or issuer, ``alg: none``,
HS/RS algorithm confusion against an RS256 JWKS. Callers: a member without an admin
role, an admin of another organization, a member asking for another's membership.
A refusal never carries a byte of the other organization's data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from api_helpers import SECRET, problem, token_for
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MEMBER_OPERATIONS = [
    ("GET", "/v1/me/organizations", None),
    ("GET", "/v1/me/organizations/{org}", None),
    ("POST", "/v1/me/organizations/{org}/leave", None),
]
ADMIN_OPERATIONS = [
    ("GET", "/v1/organizations/{org}", None),
    (
        "PUT",
        "/v1/organizations/{org}/privacy-profile",
        {"contactEmail": "x@evil.example", "statementUrl": "https://evil.example/p"},
    ),
    ("GET", "/v1/organizations/{org}/settings/external-collaboration", None),
    (
        "PATCH",
        "/v1/organizations/{org}/settings/external-collaboration",
        {"externalUserLeaveAllowed": False},
    ),
    ("GET", "/v1/organizations/{org}/memberships", None),
    ("GET", "/v1/organizations/{org}/memberships/{mid}", None),
    ("GET", "/v1/organizations/{org}/memberships/{mid}/history", None),
    ("DELETE", "/v1/organizations/{org}/memberships/{mid}", None),
    ("GET", "/v1/organizations/{org}/deleted-users", None),
    ("POST", "/v1/organizations/{org}/deleted-users/{mid}/restore", None),
    ("DELETE", "/v1/organizations/{org}/deleted-users/{mid}", None),
    ("GET", "/v1/organizations/{org}/audit-events", None),
    (
        "POST",
        "/v1/organizations/{org}/guests",
        {"email": "pat@mail.example", "kind": "b2b-collaboration"},
    ),
    ("GET", "/v1/organizations/{org}/invitations", None),
    ("DELETE", "/v1/organizations/{org}/invitations/{mid}", None),
]
EVERY_OPERATION = MEMBER_OPERATIONS + ADMIN_OPERATIONS


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forged(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A token built by hand: HS256 over ``key`` (any bytes), or unsigned when ``None``."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def claims_for(user_id: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user_id, "iat": now, "exp": now + 600, **extra}


def send(client: Any, method: str, path: str, body: Any, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.open(path, method=method, json=body, headers=headers)


def paths(world: Any, org: str = "open", user: str = "ann") -> list[tuple[str, str, Any]]:
    mid = world.membership(org, user)
    return [
        (method, template.format(org=world.orgs[org], mid=mid), body)
        for method, template, body in EVERY_OPERATION
    ]


def open_secrets(world: Any) -> list[str]:
    """What only open.example's members and admins may see."""
    return [
        "open.example",
        "privacy@open.example",
        "https://open.example/privacy",
        *(world.membership("open", u) for u in ("ann", "pat", "dis", "off")),
        world.users["pat"],
        "pat@mail.example",
        "gadmin@mail.example",
    ]


def assert_leaks_nothing(response: Any, secrets: list[str]) -> None:
    body = response.get_json(force=True)
    body.pop("instance", None)  # the caller's own request path
    text = json.dumps(body) + "".join(
        v for k, v in response.headers.items() if k.lower() not in ("x-request-id",)
    )
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked in {text}"


def test_every_operation_needs_a_token(anonymous, world):
    for method, path, body in paths(world):
        response = send(anonymous.client, method, path, body, None)
        problem(response, 401, "authentication-required")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="membership-lifecycle"'
        assert_leaks_nothing(response, open_secrets(world))


def test_a_non_bearer_authorization_header_is_no_token(anonymous, world):
    response = anonymous.get("/v1/me/organizations", headers={"Authorization": "Basic YTpi"})
    problem(response, 401, "authentication-required")


def test_every_operation_refuses_a_bad_token(anonymous, world):
    user_id = world.users["gadmin"]
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = {
        "bad signature": jwt.encode(
            claims_for(user_id), "another-secret-of-32-bytes-length", "HS256"
        ),
        "expired": token_for(user_id, ttl=timedelta(seconds=-60)),
        "alg none": forged({"alg": "none", "typ": "JWT"}, claims_for(user_id), None),
        "no exp": forged({"alg": "HS256", "typ": "JWT"}, {"sub": user_id}, SECRET.encode()),
        "no sub": jwt.encode({"exp": int(time.time()) + 600}, SECRET, "HS256"),
        "garbage": "not.a.token",
        "RS256 where HS256 is expected": jwt.encode(claims_for(user_id), private_key, "RS256"),
    }
    for case, token in tokens.items():
        for method, path, body in paths(world):
            response = send(anonymous.client, method, path, body, token)
            assert response.status_code == 401, (case, method, path)
            problem(response, 401, "invalid-token")
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith(
                'Bearer realm="membership-lifecycle", error="invalid_token"'
            )
            assert_leaks_nothing(response, open_secrets(world))


def test_audience_and_issuer_are_checked_when_configured(make_app, world):
    # Given an app that expects tokens for lifecycle-api from https://idp.example
    client = make_app(jwt_audience="lifecycle-api", jwt_issuer="https://idp.example").test_client()
    user_id = world.users["ann"]

    def answer(**claims: Any) -> Any:
        token = jwt.encode(claims_for(user_id, **claims), SECRET, "HS256")
        return send(client, "GET", "/v1/me/organizations", None, token)

    # Then the right audience and issuer are accepted
    assert answer(aud="lifecycle-api", iss="https://idp.example").status_code == 200
    # And the wrong or missing ones are refused, saying which
    for claims, detail in (
        ({"aud": "other-api", "iss": "https://idp.example"}, "another audience"),
        ({"aud": "lifecycle-api", "iss": "https://evil.example"}, "issuer"),
        ({"iss": "https://idp.example"}, "'aud'"),
        ({"aud": "lifecycle-api"}, "'iss'"),
    ):
        assert detail in problem(answer(**claims), 401, "invalid-token")["detail"]


class StubJWKClient(jwt.PyJWKClient):
    """A real PyJWKClient whose JWKS document comes from memory, not the network."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        super().__init__("https://idp.example/.well-known/jwks.json")
        self._jwks = jwks

    def fetch_data(self) -> Any:
        return self._jwks


@pytest.fixture
def rs256(make_app: Any) -> dict[str, Any]:
    """An app that trusts RS256 tokens signed by the key in a JWKS (no JWT_SECRET)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public_jwk.update({"kid": "key-1", "use": "sig", "alg": "RS256"})
    app = make_app(
        jwt_secret=None,
        jwks_url="https://idp.example/.well-known/jwks.json",
        jwks_client=StubJWKClient({"keys": [public_jwk]}),
    )
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"client": app.test_client(), "key": key, "public_pem": pem}


def test_rs256_tokens_signed_by_the_jwks_key_are_accepted(rs256, world):
    token = jwt.encode(
        claims_for(world.users["ann"]), rs256["key"], "RS256", headers={"kid": "key-1"}
    )
    assert send(rs256["client"], "GET", "/v1/me/organizations", None, token).status_code == 200


def test_rs256_refuses_other_keys_algorithm_confusion_and_alg_none(rs256, world):
    user_id = world.users["gadmin"]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacks = {
        "another key": jwt.encode(claims_for(user_id), stranger, "RS256", headers={"kid": "key-1"}),
        "unknown kid": jwt.encode(claims_for(user_id), rs256["key"], "RS256", headers={"kid": "x"}),
        # HS256 "signed" with the public key as the HMAC secret: the classic confusion
        "hs256 with the public key": forged(
            {"alg": "HS256", "typ": "JWT", "kid": "key-1"},
            claims_for(user_id),
            rs256["public_pem"],
        ),
        "hs256 with our dev secret": forged(
            {"alg": "HS256", "typ": "JWT", "kid": "key-1"}, claims_for(user_id), SECRET.encode()
        ),
        "alg none": forged(
            {"alg": "none", "typ": "JWT", "kid": "key-1"}, claims_for(user_id), None
        ),
    }
    for name, token in attacks.items():
        for method, path, body in paths(world):
            response = send(rs256["client"], method, path, body, token)
            assert response.status_code == 401, (name, path)
            problem(response, 401, "invalid-token")


def test_a_member_without_an_admin_role_is_refused_every_admin_operation(api, world):
    # Given ann, a guest of open (no admin role there): every admin path answers as for an
    # organization that does not exist
    for method, path, body in paths(world)[len(MEMBER_OPERATIONS) :]:
        response = api("ann")._send(method, path, json=body)
        problem(response, 404, "not-found")
        assert_leaks_nothing(response, [world.membership("open", u) for u in ("pat", "dis")])
    # And nothing was changed by the attempts
    org = api("gadmin").get(f"/v1/organizations/{world.orgs['open']}").get_json()
    assert org["privacyProfile"]["contactEmail"] == "privacy@open.example"
    assert org["settings"]["externalCollaboration"]["externalUserLeaveAllowed"] is True


def test_an_admin_of_another_organization_is_refused_and_learns_nothing(api, world):
    # Given cadmin, global administrator of closed (not of open)
    for method, path, body in paths(world)[len(MEMBER_OPERATIONS) :]:
        response = api("cadmin")._send(method, path, json=body)
        problem(response, 404, "not-found")
        assert_leaks_nothing(response, open_secrets(world))
    # And the membership of open that cadmin tried to delete is untouched
    kept = api("gadmin").get(
        f"/v1/organizations/open.example/memberships/{world.membership('open', 'ann')}"
    )
    assert kept.get_json()["state"] == "active"


def test_an_admin_cannot_reach_another_organizations_membership_through_their_own(api, world):
    # Given cadmin addresses open's membership of ann under closed, where cadmin is admin
    mid = world.membership("open", "ann")
    for method, template, body in ADMIN_OPERATIONS:
        if "{mid}" not in template:
            continue
        path = template.format(org="closed.example", mid=mid)
        response = api("cadmin")._send(method, path, json=body)
        # Then the membership is simply not found there
        problem(response, 404, "not-found")
        assert_leaks_nothing(response, ["open.example", "ann@mail.example", world.orgs["open"]])


def test_a_member_cannot_see_or_leave_another_members_membership(api, world):
    # Given pat, a member of open only, asks for closed (where only ann is a guest)
    for method, path, body in MEMBER_OPERATIONS[1:]:
        response = api("pat")._send(method, path.format(org=world.orgs["closed"]), json=body)
        problem(response, 404, "not-found")
        assert_leaks_nothing(
            response, ["closed.example", world.membership("closed", "ann"), "ann@mail.example"]
        )
    # And ann's membership in closed is unchanged
    mine = api("ann").get("/v1/me/organizations/closed.example").get_json()
    assert mine["membership"]["state"] == "active"


def test_a_valid_token_for_an_unknown_user_finds_nothing(client, world):
    token = token_for("00000000-0000-4000-8000-000000000000")
    problem(send(client, "GET", "/v1/me/organizations", None, token), 404, "not-found")
    response = send(client, "GET", f"/v1/organizations/{world.orgs['open']}", None, token)
    problem(response, 404, "not-found")
    assert_leaks_nothing(response, open_secrets(world))

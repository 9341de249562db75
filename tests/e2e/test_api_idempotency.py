"""``Idempotency-Key`` over HTTP: a retry gets the first response back, never a second decision."""

from __future__ import annotations

from datetime import timedelta

from api_helpers import problem
from sqlalchemy import select

from memberships import idempotency, invitations, removal
from memberships.principal import Principal
from store.models import IdempotencyKey

GUESTS = "/v1/organizations/closed.example/guests"
PAT = {"email": "pat@mail.example", "kind": "b2b-collaboration"}


def test_a_replay_returns_the_first_response_without_deciding_again(api, world):
    # Given a guest was added with an Idempotency-Key
    first = api("cadmin").post(GUESTS, json=PAT, headers={"Idempotency-Key": "add-pat-1"})
    assert first.status_code == 201
    # When the same request is sent again with the same key (body keys in another order)
    replay = api("cadmin").post(
        GUESTS,
        json={"kind": "b2b-collaboration", "email": "pat@mail.example"},
        headers={"Idempotency-Key": "add-pat-1"},
    )
    # Then it gets the first response, marked as a replay
    assert replay.status_code == 201
    assert replay.get_data() == first.get_data()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    # And the guest was invited once: without the key, a new request is a duplicate
    problem(api("cadmin").post(GUESTS, json=PAT), 409, "already-exists")


def test_the_same_key_with_a_different_request_is_refused(api):
    api("cadmin").post(GUESTS, json=PAT, headers={"Idempotency-Key": "k-1"})
    other_body = {"email": "pat@mail.example", "kind": "b2b-direct-connect"}
    response = api("cadmin").post(GUESTS, json=other_body, headers={"Idempotency-Key": "k-1"})
    problem(response, 422, "idempotency-key-reused")
    # Another path is another request too
    response = api("cadmin").post(
        "/v1/organizations/closed.example/deleted-users/x/restore",
        headers={"Idempotency-Key": "k-1"},
    )
    problem(response, 422, "idempotency-key-reused")


def test_keys_belong_to_their_caller(api, world):
    # Given cadmin used the key "shared" to add pat to closed
    first = api("cadmin").post(GUESTS, json=PAT, headers={"Idempotency-Key": "shared"})
    assert first.status_code == 201
    # When another caller sends the same key, it is their own, new request
    second = api("gadmin").post(
        "/v1/organizations/open.example/guests",
        json={"email": "cadmin@mail.example", "kind": "b2b-collaboration"},
        headers={"Idempotency-Key": "shared"},
    )
    assert second.status_code == 201
    assert second.get_json()["id"] != first.get_json()["id"]


def test_a_replayed_refusal_is_the_same_refusal(api):
    # A 4xx answer is an answer too: its retry gets it back, even if the state changed since
    first = api("ann").post(
        "/v1/me/organizations/open.example/leave", headers={"Idempotency-Key": "leave-1"}
    )
    assert first.status_code == 202
    replay = api("ann").post(
        "/v1/me/organizations/open.example/leave", headers={"Idempotency-Key": "leave-1"}
    )
    assert (replay.status_code, replay.get_json()) == (202, first.get_json())
    problem(
        api("ann").post("/v1/me/organizations/open.example/leave"), 409, "transition-not-allowed"
    )


def test_a_failed_request_releases_its_key_so_the_retry_runs(api, monkeypatch):
    # Given inviting a guest fails unexpectedly once
    real = invitations.invite_guest
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return real(*args, **kwargs)

    monkeypatch.setattr(invitations, "invite_guest", flaky)
    failed = api("cadmin").post(GUESTS, json=PAT, headers={"Idempotency-Key": "retry-me"})
    problem(failed, 500, "internal-error")
    # When the client retries with the same key, Then the request runs and succeeds
    retried = api("cadmin").post(GUESTS, json=PAT, headers={"Idempotency-Key": "retry-me"})
    assert retried.status_code == 201
    assert len(calls) == 2


def test_a_key_held_by_another_request_is_refused_while_in_progress(api, world):
    # Given another request of the same caller holds the key and has not answered yet
    principal = Principal.user(world.users["cadmin"])
    with world.uow() as uow:
        idempotency.claim_key(uow, world.clock, principal, "busy", "another-request-hash")
    # When a different request is sent with that key, Then 422: the key is someone else's
    response = api("cadmin").post(GUESTS, json=PAT, headers={"Idempotency-Key": "busy"})
    problem(response, 422, "idempotency-key-reused")


def test_an_abandoned_claim_is_taken_over_after_its_timeout(api, world, client):
    # Given a request claimed a key and its process died before answering
    with client.application.test_request_context(
        GUESTS, method="POST", json=PAT, headers={"Idempotency-Key": "orphan"}
    ):
        from web.idempotency import request_hash

        fingerprint = request_hash()
    principal = Principal.user(world.users["cadmin"])
    with world.uow() as uow:
        assert idempotency.claim_key(uow, world.clock, principal, "orphan", fingerprint) is None
    # When the client retries at once, Then the first is still deemed in progress
    busy = api("cadmin").post(GUESTS, json=PAT, headers={"Idempotency-Key": "orphan"})
    problem(busy, 409, "idempotency-key-in-use")
    # When it retries after the claim timed out, Then the retry runs
    world.clock.advance(idempotency.CLAIM_TIMEOUT + timedelta(seconds=1))
    taken = api("cadmin").post(GUESTS, json=PAT, headers={"Idempotency-Key": "orphan"})
    assert taken.status_code == 201


def test_keys_expire_after_a_day(api, world):
    # Given a key was used a day ago
    api("cadmin").post(GUESTS, json=PAT, headers={"Idempotency-Key": "old"})
    world.clock.advance(idempotency.KEY_LIFETIME + timedelta(seconds=1))
    # When it is used for another request, Then that request runs
    other = {"email": "off@mail.example", "kind": "b2b-collaboration"}
    response = api("cadmin").post(GUESTS, json=other, headers={"Idempotency-Key": "old"})
    assert response.status_code == 201
    # And the sweep of expired keys keeps the live one: its retry is still a replay
    with world.uow() as uow:
        idempotency.forget_expired_keys(uow, world.clock)
    replay = api("cadmin").post(GUESTS, json=other, headers={"Idempotency-Key": "old"})
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["id"] == response.get_json()["id"]


def test_a_malformed_key_is_a_bad_request(api):
    for key in ("", " ", "x" * 256, "naïve"):
        response = api("cadmin").post(GUESTS, json=PAT, headers={"Idempotency-Key": key})
        problem(response, 400, "bad-request")
    # And nothing was added meanwhile
    listed = api("cadmin").get("/v1/organizations/closed.example/memberships").get_json()
    assert "pat@mail.example" not in [m["email"] for m in listed["items"]]


def test_a_purge_erases_the_stored_responses_that_hold_personal_data(api, world):
    # Given an admin restored ann with an Idempotency-Key: the stored response holds her e-mail
    membership_id = world.membership("open", "ann")
    base = "/v1/organizations/open.example"
    api("gadmin").delete(f"{base}/memberships/{membership_id}")
    restore = f"{base}/deleted-users/{membership_id}/restore"
    first = api("gadmin").post(restore, headers={"Idempotency-Key": "restore-ann"})
    assert first.get_json()["email"] == "ann@mail.example"
    # When the membership is removed again, deleted permanently and its data erased
    api("gadmin").delete(f"{base}/memberships/{membership_id}")
    api("gadmin").delete(f"{base}/deleted-users/{membership_id}")
    with world.uow() as uow:
        removal.remove_all_data(uow, world.clock, membership_id)
    # Then no stored response mentions her any more
    with world.uow() as uow:
        stored = uow.session.scalars(
            select(IdempotencyKey.response_body).where(
                IdempotencyKey.membership_id == membership_id
            )
        ).all()
    assert stored == []
    # And a retry with the key is decided afresh: a purged membership cannot be restored
    retry = api("gadmin").post(restore, headers={"Idempotency-Key": "restore-ann"})
    problem(retry, 409, "transition-not-allowed")
    assert "ann@mail.example" not in retry.get_data(as_text=True)

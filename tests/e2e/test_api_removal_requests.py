"""Removal requests over HTTP, end to end: a member who may not leave asks to be removed,
the organization approves (the membership removed as an admin removal does) or declines
with a reason; the sweep marks a request past its deadline overdue, once; a request
ends by itself when the membership leaves active some other way.

The deadline is short here (one hour, ``REMOVAL_REQUEST_DEADLINE``), so the clock is
moved by hours, not months.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from api_helpers import problem
from sqlalchemy import select

from memberships import removal
from memberships.sweep import sweep
from settings import Settings
from store.models import AuditEvent, Membership, RemovalRequest
from store.outbox import timestamp

DEADLINE = timedelta(hours=1)
CLOSED = "/v1/organizations/closed.example"
OPEN = "/v1/organizations/open.example"
ASK_CLOSED = "/v1/me/organizations/closed.example/removal-requests"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, removal_request_deadline=DEADLINE)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """What the steps hand to the events outbox and to the member's notices."""
    from store import notices, outbox

    found: dict[str, list[dict[str, Any]]] = {"events": [], "notices": []}
    monkeypatch.setattr(
        outbox.Outbox, "record_event", lambda self, **kw: found["events"].append(kw)
    )
    monkeypatch.setattr(
        notices.Notices, "record_notice", lambda self, **kw: found["notices"].append(kw)
    )
    return found


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _request_row(world: Any, request_id: str) -> RemovalRequest:
    with world.uow() as uow:
        row = uow.session.get(RemovalRequest, request_id)
        assert row is not None
        uow.session.expunge(row)
        return row


def _state(world: Any, membership_id: str) -> str:
    with world.uow() as uow:
        row = uow.session.get(Membership, membership_id)
        assert row is not None
        return row.state


def _disallow_leave(api: Any, org: str = OPEN) -> None:
    admin = "gadmin" if org == OPEN else "cadmin"
    response = api(admin).patch(
        f"{org}/settings/external-collaboration", json={"externalUserLeaveAllowed": False}
    )
    assert response.status_code == 200


def test_a_member_who_may_not_leave_asks_once_and_sees_the_request(api, world, recorded):
    # Given ann, whom closed.example does not let leave on her own
    ann = api("ann")
    problem(ann.post("/v1/me/organizations/closed.example/leave"), 403, "leave-disabled")
    before = world.last_audit_id()
    # When she asks closed.example to remove her, with a message
    made = ann.post(ASK_CLOSED, json={"message": "Please remove me: I left the project."})
    # Then the request is open, due by the deadline
    assert made.status_code == 201, made.get_data(as_text=True)
    body = made.get_json()
    now = world.clock()
    assert (body["status"], body["overdue"]) == ("open", False)
    assert (body["createdAt"], body["dueBy"]) == (_iso(now), _iso(now + DEADLINE))
    assert body["organization"]["domain"] == "closed.example"
    assert body["membershipId"] == world.membership("closed", "ann")
    # and a second request while it is open is refused, naming the open one
    again = problem(ann.post(ASK_CLOSED, json={}), 409, "removal-request-open")
    assert again["removalRequestId"] == body["id"]
    # and she sees it among her requests
    mine = ann.get("/v1/me/removal-requests").get_json()["items"]
    assert [(r["id"], r["status"], r["message"]) for r in mine] == [
        (body["id"], "open", "Please remove me: I left the project.")
    ]
    # and the step is audited under her pseudonym, without her message
    rows = world.audit_after(before)
    opened = [r for r in rows if r.action == "open_removal_request"]
    assert [(r.outcome, r.reason, r.actor) for r in opened] == [
        ("allowed", "leave-disabled", world.pseudonym(world.membership("closed", "ann"))),
        ("denied", "removal-request-open", world.pseudonym(world.membership("closed", "ann"))),
    ]
    # and it is an event whose data says what it is, never the message or her e-mail
    [event] = recorded["events"]
    assert event["type"] == "removal_request.opened"
    assert event["data"] == {
        "requestId": body["id"],
        "membershipId": body["membershipId"],
        "organization": {"id": world.orgs["closed"], "domain": "closed.example"},
        "status": "open",
        "createdAt": timestamp(now),
        "dueBy": timestamp(now + DEADLINE),
    }
    assert "Please" not in repr(event) and "@" not in repr(event)


def test_only_a_refused_leave_opens_a_request(api, world):
    ann = api("ann")
    # A member who may leave is told to leave instead
    problem(ann.post("/v1/me/organizations/open.example/removal-requests"), 409, "leave-allowed")
    # A home organization is never left nor removed by request
    problem(
        ann.post("/v1/me/organizations/home.example/removal-requests"), 403, "home-organization"
    )
    # Someone else's organization is not found
    problem(api("pat").post(ASK_CLOSED), 404, "not-found")
    # A message over the limit is refused
    long = ann.post(ASK_CLOSED, json={"message": "x" * 2001})
    assert problem(long, 422, "invalid-input")["errors"][0]["field"] == "message"
    # A body that is not an object, or holds an unknown field, is refused
    problem(
        ann.post(ASK_CLOSED, data="null", content_type="application/json"), 422, "invalid-input"
    )
    problem(ann.post(ASK_CLOSED, json={"reason": "x"}), 422, "invalid-input")
    # A disabled account may ask (dis's membership of open is disabled)
    made = api("dis").post("/v1/me/organizations/open.example/removal-requests")
    assert made.status_code == 201
    # Nothing was made by the refusals
    with world.uow() as uow:
        assert len(uow.session.scalars(select(RemovalRequest)).all()) == 1


def test_approving_removes_a_collaboration_guest_as_an_admin_removal_does(
    api, world, dispatcher, recorded
):
    # Given ann's open request to closed.example
    made = api("ann").post(ASK_CLOSED, json={"message": "Remove me"}).get_json()
    membership_id = world.membership("closed", "ann")
    before = world.last_audit_id()
    # When closed's admin approves it
    approved = api("cadmin").post(f"{CLOSED}/removal-requests/{made['id']}/approve")
    # Then the request is approved and ann is soft-deleted, restorable like any removal
    assert approved.status_code == 200, approved.get_data(as_text=True)
    body = approved.get_json()
    assert (body["status"], body["answeredBy"]) == ("approved", world.users["cadmin"])
    assert _state(world, membership_id) == "soft-deleted"
    restorable = api("cadmin").get(f"{CLOSED}/deleted-users").get_json()["items"]
    assert [m["id"] for m in restorable] == [membership_id]
    # and the audit log holds the removal itself and the approval, in one transaction
    actions = [(r.action, r.from_state, r.to_state) for r in world.audit_after(before)]
    assert actions == [
        ("remove", "active", "soft-deleted"),
        ("approve_removal_request", "active", "soft-deleted"),
    ]
    # and the request was approved, not closed by the removal's own transition
    assert [e["type"] for e in recorded["events"]][-1] == "removal_request.approved"
    assert "removal_request.closed" not in [e["type"] for e in recorded["events"]]
    assert [n["kind"] for n in recorded["notices"]] == ["removal_request.approved"]
    # and the member reads that it was approved
    mine = api("ann").get("/v1/me/removal-requests").get_json()["items"]
    assert [(r["status"], r["closedReason"]) for r in mine] == [("approved", None)]
    # and it can't be answered twice
    again = api("cadmin").post(f"{CLOSED}/removal-requests/{made['id']}/approve")
    assert problem(again, 409, "removal-request-closed")["removalRequestStatus"] == "approved"
    problem(
        api("cadmin").post(f"{CLOSED}/removal-requests/{made['id']}/decline", json={"reason": "x"}),
        409,
        "removal-request-closed",
    )


def test_approving_a_direct_connect_guest_starts_data_removal_at_once(api, world, dispatcher):
    # Given open.example no longer lets guests leave, and pat (direct connect) asks
    _disallow_leave(api)
    made = api("pat").post("/v1/me/organizations/open.example/removal-requests")
    assert made.status_code == 201
    # When open's admin approves
    approved = api("gadmin").post(f"{OPEN}/removal-requests/{made.get_json()['id']}/approve")
    # Then pat's data removal has started, as for an admin removal of a direct-connect guest
    assert approved.status_code == 200
    membership_id = world.membership("open", "pat")
    assert _state(world, membership_id) == "purge-pending"
    assert ("remove_data", membership_id) in dispatcher.sent


def test_declining_needs_a_reason_the_member_reads(api, world, recorded):
    made = api("ann").post(ASK_CLOSED).get_json()
    decline = f"{CLOSED}/removal-requests/{made['id']}/decline"
    admin = api("cadmin")
    # A missing reason, or a blank one, is refused and changes nothing
    problem(admin.post(decline, json={}), 422, "invalid-input")
    blank = problem(admin.post(decline, json={"reason": "   "}), 422, "invalid-input")
    assert [e["field"] for e in blank["errors"]] == ["reason"]
    assert _request_row(world, made["id"]).status == "open"
    # With a reason, the request is declined and ann stays a member
    done = admin.post(decline, json={"reason": "Your contract runs until March."})
    assert done.status_code == 200
    assert (done.get_json()["status"], done.get_json()["declineReason"]) == (
        "declined",
        "Your contract runs until March.",
    )
    assert _state(world, world.membership("closed", "ann")) == "active"
    mine = api("ann").get("/v1/me/removal-requests").get_json()["items"]
    assert [(r["status"], r["declineReason"]) for r in mine] == [
        ("declined", "Your contract runs until March.")
    ]
    # and she is told, with the reason
    assert recorded["notices"] == [
        {
            "membership_id": world.membership("closed", "ann"),
            "kind": "removal_request.declined",
            "occurred_at": world.clock(),
            "data": {"requestId": made["id"], "reason": "Your contract runs until March."},
        }
    ]
    assert recorded["events"][-1]["data"]["reason"] == "Your contract runs until March."
    # and, the request answered, she may ask again
    assert api("ann").post(ASK_CLOSED).status_code == 201


def test_the_sweep_marks_a_request_overdue_once_and_the_timers_count_it(api, world, recorded):
    made = api("ann").post(ASK_CLOSED).get_json()
    # Before the deadline the sweep marks nothing
    with world.uow() as uow:
        assert sweep(uow, world.clock).overdue_requests_marked == 0
    # When the deadline passes
    world.clock.advance(DEADLINE + timedelta(minutes=1))
    before = world.last_audit_id()
    with world.uow() as uow:
        report = sweep(uow, world.clock)
    # Then the sweep marks it overdue, with its audit row, event and notice
    assert (report.overdue_requests_marked, report.overdue_removal_requests) == (1, 1)
    overdue_rows = [r for r in world.audit_after(before) if r.action == "removal_request_overdue"]
    assert [(r.actor, r.membership_id) for r in overdue_rows] == [
        ("worker", world.membership("closed", "ann"))
    ]
    assert recorded["events"][-1]["type"] == "removal_request.overdue"
    assert [n["kind"] for n in recorded["notices"]] == ["removal_request.overdue"]
    # and only once: the next sweep still counts it but marks nothing again
    with world.uow() as uow:
        again = sweep(uow, world.clock)
    assert (again.overdue_requests_marked, again.overdue_removal_requests) == (0, 1)
    assert len(recorded["notices"]) == 1
    # The admin sees it overdue; the member too
    listed = api("cadmin").get(f"{CLOSED}/removal-requests?status=open").get_json()["items"]
    assert [(r["id"], r["overdue"], r["overdueAt"] is not None) for r in listed] == [
        (made["id"], True, True)
    ]
    assert api("ann").get("/v1/me/removal-requests").get_json()["items"][0]["overdue"] is True
    # and the operators count it, over HTTP and in the metrics
    timers = api("ops").get("/v1/ops/timers").get_json()
    assert timers["overdueRemovalRequests"] == 1
    assert [r["requestId"] for r in timers["overdueRemovalRequestList"]] == [made["id"]]
    metrics = api("ops").get("/metrics").get_data(as_text=True)
    assert "lifecycle_removal_requests_overdue 1.0" in metrics
    # Once answered, it is no longer counted
    api("cadmin").post(f"{CLOSED}/removal-requests/{made['id']}/decline", json={"reason": "No."})
    assert api("ops").get("/v1/ops/timers").get_json()["overdueRemovalRequests"] == 0


def test_the_admin_list_puts_open_requests_first_by_due_date_and_pages(api, world):
    # Given four requests to open.example, 25 minutes apart, the first one declined
    _disallow_leave(api)
    ids = []
    for user in ("ann", "pat", "dis", "off"):
        made = api(user).post("/v1/me/organizations/open.example/removal-requests")
        assert made.status_code == 201, (user, made.get_data(as_text=True))
        ids.append(made.get_json()["id"])
        world.clock.advance(timedelta(minutes=25))
    api("gadmin").post(f"{OPEN}/removal-requests/{ids[0]}/decline", json={"reason": "Not yet."})
    # When the admin reads them two at a time (pat's is past its hour, dis's not yet)
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api("gadmin").get(f"{OPEN}/removal-requests{query}").get_json()
        seen += [(r["id"], r["status"], r["overdue"]) for r in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if not cursor:
            break
    # Then the open ones come first by due date, the overdue one leading, then the answered
    assert pages == 2
    assert seen == [
        (ids[1], "open", True),
        (ids[2], "open", False),
        (ids[3], "open", False),
        (ids[0], "declined", False),
    ]
    # and the filters choose
    overdue = api("gadmin").get(f"{OPEN}/removal-requests?status=overdue").get_json()["items"]
    assert [r["id"] for r in overdue] == [ids[1]]
    declined = api("gadmin").get(f"{OPEN}/removal-requests?status=declined").get_json()["items"]
    assert [r["id"] for r in declined] == [ids[0]]
    problem(
        api("gadmin").get(f"{OPEN}/removal-requests?cursor=bm90LWEtY3Vyc29y"), 422, "invalid-input"
    )
    # and another organization's admin does not see them
    problem(api("cadmin").get(f"{OPEN}/removal-requests"), 404, "not-found")
    problem(api("cadmin").post(f"{CLOSED}/removal-requests/{ids[1]}/approve"), 404, "not-found")


def test_a_request_ends_by_itself_when_the_organization_removes_the_member(api, world, recorded):
    made = api("ann").post(ASK_CLOSED).get_json()
    membership_id = world.membership("closed", "ann")
    before = world.last_audit_id()
    # When closed's admin removes ann directly, not through the request
    assert api("cadmin").delete(f"{CLOSED}/memberships/{membership_id}").status_code == 202
    # Then the request is closed, and ann reads why
    mine = api("ann").get("/v1/me/removal-requests").get_json()["items"]
    assert [(r["id"], r["status"], r["closedReason"]) for r in mine] == [
        (made["id"], "closed", "removed-by-organization")
    ]
    assert mine[0]["closedReasonText"] == "Closed removed you from the organization."
    closes = [r for r in world.audit_after(before) if r.action == "close_removal_request"]
    assert [(r.reason, r.actor) for r in closes] == [
        ("removed-by-organization", world.users["cadmin"])
    ]
    assert recorded["events"][-1]["type"] == "removal_request.closed"
    assert recorded["events"][-1]["data"]["closedReason"] == "removed-by-organization"
    # and it can no longer be approved
    problem(
        api("cadmin").post(f"{CLOSED}/removal-requests/{made['id']}/approve"),
        409,
        "removal-request-closed",
    )


def test_a_request_ends_by_itself_when_the_member_leaves_after_the_setting_changed(api, world):
    made = api("ann").post(ASK_CLOSED).get_json()
    # When closed.example lets external users leave, and ann leaves on her own
    response = api("cadmin").patch(
        f"{CLOSED}/settings/external-collaboration", json={"externalUserLeaveAllowed": True}
    )
    assert response.status_code == 200
    assert api("ann").post("/v1/me/organizations/closed.example/leave").status_code == 202
    # Then her request is closed: she left, and she reads so
    row = _request_row(world, made["id"])
    assert (row.status, row.closed_reason, row.closed_at) == ("closed", "left", world.clock())
    [mine] = api("ann").get("/v1/me/removal-requests").get_json()["items"]
    assert (mine["closedReason"], mine["closedReasonText"]) == (
        "left",
        "You left Closed on your own.",
    )


def test_the_purge_erases_the_message_and_the_reason(api, world):
    # Given a declined request and an approved one, both with text
    first = api("ann").post(ASK_CLOSED, json={"message": "first"}).get_json()
    api("cadmin").post(f"{CLOSED}/removal-requests/{first['id']}/decline", json={"reason": "no"})
    second = api("ann").post(ASK_CLOSED, json={"message": "second"}).get_json()
    api("cadmin").post(f"{CLOSED}/removal-requests/{second['id']}/approve")
    membership_id = world.membership("closed", "ann")
    # When the admin deletes her permanently and her data is removed
    assert api("cadmin").delete(f"{CLOSED}/deleted-users/{membership_id}").status_code == 202
    with world.uow() as uow:
        removal.remove_all_data(uow, world.clock, membership_id)
    assert _state(world, membership_id) == "purged"
    # Then the requests keep their record (status, dates) but no free text
    for request_id, status in ((first["id"], "declined"), (second["id"], "approved")):
        row = _request_row(world, request_id)
        assert (row.status, row.message, row.decline_reason) == (status, None, None)
        assert row.answered_at is not None
    # and the audit log never held either text
    with world.uow() as uow:
        reasons = set(uow.session.scalars(select(AuditEvent.reason)))
    assert not {"first", "second", "no"} & reasons


def _cli(settings: Settings, clock: Any, *args: str) -> str:
    from click.testing import CliRunner

    from cli import Services, main

    services = Services(settings=settings, clock=clock)
    try:
        result = CliRunner().invoke(main, list(args), obj=services)
    finally:
        if "session_factory" in services.__dict__:  # the command opened the database
            services.session_factory.kw["bind"].dispose()
    assert result.exit_code == 0, result.output
    return result.output


def test_the_command_line_lists_requests_and_counts_the_overdue_ones(api, world, settings):
    made = api("ann").post(ASK_CLOSED, json={"message": "not printed in the table"}).get_json()
    world.clock.advance(DEADLINE + timedelta(minutes=1))
    # `lifecycle removal-requests list` shows it, overdue, without the message
    table = _cli(settings, world.clock, "removal-requests", "list", "--org", "closed.example")
    assert made["id"] in table and "overdue" in table and "ann@mail.example" in table
    assert "not printed" not in table
    listed = _cli(
        settings, world.clock, "removal-requests", "list", "--org", "closed.example", "--json"
    )
    assert '"overdue": true' in listed
    # and `lifecycle timers` counts it
    timers = _cli(settings, world.clock, "timers")
    assert "overdue removal requests: 1" in timers and made["id"] in timers


def test_each_step_is_an_event_in_the_outbox_and_the_purge_takes_the_reason(api, world):
    from store.models import Event

    def events() -> list[tuple[str, dict[str, Any]]]:
        import json

        with world.uow() as uow:
            rows = uow.session.execute(
                select(Event.type, Event.payload)
                .where(Event.type.like("removal_request.%"))
                .order_by(Event.id)
            ).all()
        return [(t, json.loads(p)["data"]) for t, p in rows]

    # Given a request declined, a second one overdue, then closed by the admin's removal
    first = api("ann").post(ASK_CLOSED, json={"message": "private words"}).get_json()
    api("cadmin").post(
        f"{CLOSED}/removal-requests/{first['id']}/decline", json={"reason": "Your contract."}
    )
    second = api("ann").post(ASK_CLOSED).get_json()
    world.clock.advance(DEADLINE + timedelta(minutes=1))
    with world.uow() as uow:
        sweep(uow, world.clock)
    membership_id = world.membership("closed", "ann")
    api("cadmin").delete(f"{CLOSED}/memberships/{membership_id}")
    # Then the outbox holds each step, in order, without the member's message
    found = events()
    assert [(t, d["requestId"]) for t, d in found] == [
        ("removal_request.opened", first["id"]),
        ("removal_request.declined", first["id"]),
        ("removal_request.opened", second["id"]),
        ("removal_request.overdue", second["id"]),
        ("removal_request.closed", second["id"]),
    ]
    assert found[1][1]["reason"] == "Your contract."
    assert found[4][1]["closedReason"] == "removed-by-organization"
    assert "private words" not in repr(found) and "ann@mail.example" not in repr(found)
    # When ann's membership is purged
    api("cadmin").delete(f"{CLOSED}/deleted-users/{membership_id}")
    with world.uow() as uow:
        removal.remove_all_data(uow, world.clock, membership_id)
    # Then the decline's reason is gone from its event too; the rest stays
    after = events()
    assert [t for t, _ in after] == [t for t, _ in found]
    assert "reason" not in after[1][1] and after[1][1]["status"] == "declined"


def test_the_steps_reach_an_app_through_the_webhook_fan_out(api, world, dispatcher):
    import json

    from memberships.webhook_delivery import fan_out
    from store.models import Event, WebhookDelivery, WebhookEndpoint

    # Given closed.example has an endpoint for removal requests being opened and answered
    now = world.clock()
    wanted = ["removal_request.opened", "removal_request.declined"]
    with world.uow() as uow:
        endpoint = WebhookEndpoint(
            organization_id=world.orgs["closed"],
            url="https://hooks.closed.example/in",
            secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            events=json.dumps(wanted),
            created_at=now,
            updated_at=now,
        )
        uow.session.add(endpoint)
        uow.commit()
        endpoint_id = endpoint.id
    # When ann asks, the admin declines, and she asks again: the sweep marks that one overdue
    first = api("ann").post(ASK_CLOSED).get_json()
    api("cadmin").post(f"{CLOSED}/removal-requests/{first['id']}/decline", json={"reason": "No."})
    api("ann").post(ASK_CLOSED)
    world.clock.advance(DEADLINE + timedelta(minutes=1))
    with world.uow() as uow:
        sweep(uow, world.clock)
        fan_out(uow, world.clock)
    # Then the endpoint has a delivery of each event it asked for, and of nothing else
    with world.uow() as uow:
        delivered = uow.session.execute(
            select(Event.type, Event.payload)
            .join(WebhookDelivery, WebhookDelivery.event_id == Event.id)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(Event.id)
        ).all()
    assert [t for t, _ in delivered] == [
        "removal_request.opened",
        "removal_request.declined",
        "removal_request.opened",
    ]
    assert json.loads(delivered[1][1])["data"]["requestId"] == first["id"]

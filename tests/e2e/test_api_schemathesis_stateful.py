"""Schemathesis, stateful: sequences of calls that follow the OpenAPI document's links, on
SQLite and on PostgreSQL.

The links (web/openapi.py ``LINKS``) lead from a member's accepted leave to the
organization's deleted users and to restoring that membership, from the deleted users to
restoring one, and from a restore back to leaving. Schemathesis builds a state machine from
them and Hypothesis runs scenarios of a few steps each; every response must be documented,
match its schema and never be a ``5xx``. The scenarios send valid input only (the
stateless test sends invalid input).

Each scenario gets people of its own: a member, a guest (B2B collaboration) of
``open.example``, whose token the self-service operations carry, and an admin of
``open.example``, whose token the admin operations carry. A scenario starts where the
document gives no link to start from: at a leave of the member's own organization (the
stateless test sends the generated organizations). What the worker does after an accepted
leave (``leave-pending`` → ``soft-deleted``) is done right after the response, by the use
case its actor calls; a member still deleted when the scenario ends is deleted for good,
so the next scenario starts with no deleted users. Hypothesis requires that the same
choices meet the same answers: a deleted-users list that grew from scenario to scenario,
or an Idempotency-Key an earlier scenario's admin had used, made it fail as flaky.

Not finding a failure proves little if the sequence never happened, so the test records
every call and asserts, at the end, that a leave was accepted, the deleted users listed
that membership afterwards, and a restore of it succeeded after that; the audit log must
show the same transitions for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from api_helpers import token_for
from hypothesis import HealthCheck, Phase, settings
from schemathesis.generation.modes import GenerationMode
from sqlalchemy import select
from test_api_schemathesis import DOCUMENT, not_applicable

from memberships import admin, automatic
from memberships import provisioning as p
from memberships.principal import SYSTEM
from store.models import AuditEvent, Membership

# Scenarios (Hypothesis examples of the state machine) per database; each runs up to
# ``STEPS`` calls. .ci/run sets SCHEMATHESIS_EXAMPLES, which scales them.
SCENARIOS = 2 * int(os.environ.get("SCHEMATHESIS_EXAMPLES", "") or 12)
STEPS = 8
OPERATIONS = ["leaveOrganization", "listDeletedUsers", "restoreDeletedUser"]


@dataclass
class Call:
    operation: str
    status: int
    path: dict[str, Any]
    body: Any
    replayed: bool = False
    """Answered from the Idempotency-Key's stored response: nothing changed."""


@dataclass
class Calls:
    made: list[Call] = field(default_factory=list)

    def accepted_leaves(self) -> list[tuple[int, str]]:
        return [
            (i, c.body["id"])
            for i, c in enumerate(self.made)
            if c.operation == "leaveOrganization" and c.status == 202
        ]

    def listed_after(self, start: int, membership_id: str) -> int | None:
        for i, c in enumerate(self.made[start:], start):
            if (c.operation, c.status) == ("listDeletedUsers", 200) and membership_id in {
                m["id"] for m in c.body["items"]
            }:
                return i
        return None

    def restored_after(self, start: int, membership_id: str) -> int | None:
        for i, c in enumerate(self.made[start:], start):
            if (c.operation, c.status) == ("restoreDeletedUser", 200) and c.path.get(
                "membership_id"
            ) == membership_id:
                return i
        return None

    def full_sequences(self) -> list[str]:
        """The memberships left, then found among the deleted users, then restored."""
        found = []
        for at, membership_id in self.accepted_leaves():
            listed = self.listed_after(at + 1, membership_id)
            if listed is not None and self.restored_after(listed + 1, membership_id) is not None:
                found.append(membership_id)
        return found

    def count(self, operation: str, status: int) -> int:
        return sum(1 for c in self.made if (c.operation, c.status) == (operation, status))

    def changes(self, operation: str, status: int) -> int:
        """The calls that changed something: replays of an Idempotency-Key did not."""
        return sum(
            1
            for c in self.made
            if (c.operation, c.status) == (operation, status) and not c.replayed
        )


def replayed(headers: dict[str, Any]) -> bool:
    """Whether the answer is an Idempotency-Key's stored response (Schemathesis gives the
    headers by lower-case name, each with a list of values)."""
    values = {name.lower(): value for name, value in headers.items()}.get("idempotent-replayed")
    return values == ["true"] or values == "true"


def operation_id(case: Any) -> str:
    return str(case.operation.definition.raw["operationId"])


def test_leave_then_deleted_users_then_restore_follow_the_links(app: Any, world: Any) -> None:
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    schema.app = app
    # Valid input only: each call carries the scenario's own token and the first page of
    # the deleted users, so a negative case whose invalid part was the Authorization header
    # or the cursor would be sent valid and "accepted". The stateless test sends invalid
    # input to every operation.
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])
    schema = schema.include(operation_id=OPERATIONS)
    calls = Calls()
    members = iter(range(1_000_000))

    def new_people() -> tuple[str, str, str]:
        """A user of home.example who is a guest of open.example, and an admin of
        open.example: the member's user and membership ids, the admin's user id."""
        n = next(members)
        with world.uow() as uow:
            user = p.create_user(
                uow, world.clock, SYSTEM, f"m{n}@mail.example", f"M{n}", "home.example"
            )
        with world.uow() as uow:
            membership = p.add_guest(
                uow, world.clock, SYSTEM, world.orgs["open"], user.id, "b2b-collaboration"
            )
        with world.uow() as uow:
            admin_user = p.create_user(
                uow, world.clock, SYSTEM, f"a{n}@open.example", f"A{n}", "open.example"
            )
        with world.uow() as uow:
            p.grant_role(
                uow, world.clock, SYSTEM, admin_user.id, "global-administrator", world.orgs["open"]
            )
        return str(user.id), str(membership.id), str(admin_user.id)

    class Scenario(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # People of its own: nothing a scenario sends (an Idempotency-Key, say) meets
            # what an earlier one left
            user_id, self.membership_id, admin_id = new_people()
            self.member_headers = {"Authorization": f"Bearer {token_for(user_id)}"}
            self.admin_headers = {"Authorization": f"Bearer {token_for(admin_id)}"}

        def teardown(self) -> None:
            # A member left deleted is deleted permanently: the next scenario starts with
            # no deleted users
            with world.uow() as uow:
                row = uow.session.get(Membership, self.membership_id)
                deleted = row is not None and row.state == "soft-deleted"
            if deleted:
                with world.uow() as uow:
                    admin.purge(uow, world.clock, SYSTEM, world.orgs["open"], self.membership_id)
            super().teardown()

        def step(self, input: Any) -> Any:
            case = input.case
            if input.transition is None and operation_id(case) == "leaveOrganization":
                # The scenario starts at the member's own organization
                case.path_parameters = {**(case.path_parameters or {}), "org": "open.example"}
            if operation_id(case) == "listDeletedUsers" and case.query:
                # The first page: where a generated cursor falls among the random ids would
                # change the answer from run to run (the stateless test sends cursors)
                case.query = {k: v for k, v in case.query.items() if k != "cursor"}
            return super().step(input)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            mine = case.operation.path.startswith("/v1/me/")
            return {"headers": self.member_headers if mine else self.admin_headers}

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            body = response.json() if response.content else None
            operation = operation_id(case)
            calls.made.append(
                Call(
                    operation,
                    response.status_code,
                    dict(case.path_parameters or {}),
                    body,
                    replayed(response.headers),
                )
            )
            if (
                operation == "leaveOrganization"
                and response.status_code == 202
                and not calls.made[-1].replayed
            ):
                # The worker carries the leave out
                with world.uow() as uow:
                    automatic.complete_leave(uow, world.clock, body["id"])

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(
                response,
                excluded_checks=not_applicable(case),
                headers=kwargs.get("headers"),
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Scenario.run(
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            # Generate only, as Schemathesis does: a scenario cannot be replayed (or shrunk)
            # faithfully against a database earlier scenarios have changed
            phases=[Phase.generate],
            database=None,
        )
    )

    # The links were followed: leaves accepted, deleted users listed, restores done
    summary = {
        (operation, status): calls.count(operation, status)
        for operation, status in [
            ("leaveOrganization", 202),
            ("listDeletedUsers", 200),
            ("restoreDeletedUser", 200),
        ]
    }
    assert all(summary.values()), summary
    restored = calls.full_sequences()
    assert restored, (summary, [(c.operation, c.status) for c in calls.made])
    # And the audit log agrees: one allowed transition per accepted call (a replay of an
    # Idempotency-Key answers the first response again and changes nothing), and each of those
    # memberships left, soft-deleted by the worker, then restored
    with world.uow() as uow:
        allowed = {
            action: len(
                uow.session.scalars(
                    select(AuditEvent.id).where(
                        AuditEvent.action == action, AuditEvent.outcome == "allowed"
                    )
                ).all()
            )
            for action in ("request_leave", "complete_leave", "restore")
        }
        leaves = calls.changes("leaveOrganization", 202)
        assert allowed == {
            "request_leave": leaves,
            "complete_leave": leaves,
            "restore": calls.changes("restoreDeletedUser", 200),
        }
        for membership_id in restored:
            actions = list(
                uow.session.scalars(
                    select(AuditEvent.action)
                    .where(
                        AuditEvent.membership_id == membership_id,
                        AuditEvent.outcome == "allowed",
                    )
                    .order_by(AuditEvent.id)
                )
            )
            lifecycle = [a for a in actions if a in ("request_leave", "complete_leave", "restore")]
            assert lifecycle[:3] == ["request_leave", "complete_leave", "restore"], actions

"""Database errors are logged without their bound parameters: a failed statement about a
person must not copy their e-mail or name into the logs."""

from __future__ import annotations

import logging
import uuid

import pytest
from api_helpers import problem
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from memberships import invitations
from store.database import make_engine

SECRET_EMAIL = "quentin.privatestone@mail.example"
SECRET_NAME = "Quentin Privatestone"


def _failing_insert(connection_or_session, now) -> None:
    """Insert a person whose home organization does not exist: a foreign-key violation,
    whose message from the database names the organization's id, not the person."""
    connection_or_session.execute(
        text(
            "INSERT INTO users (id, email, display_name, home_organization_id, enabled, "
            "created_at) VALUES (:id, :email, :name, :home, :enabled, :now)"
        ),
        {
            "id": str(uuid.uuid4()),
            "email": SECRET_EMAIL,
            "name": SECRET_NAME,
            "home": str(uuid.uuid4()),
            "enabled": True,
            "now": now.replace(tzinfo=None),
        },
    )


def test_engines_hide_bound_parameters(database_url, clock):
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn, pytest.raises(IntegrityError) as failed:
            _failing_insert(conn, clock())
    finally:
        engine.dispose()
    assert engine.hide_parameters
    assert SECRET_EMAIL not in str(failed.value)
    assert SECRET_NAME not in str(failed.value)


def test_a_database_error_in_a_request_is_logged_without_its_parameters(
    api, world, monkeypatch, caplog
):
    # Given a request whose use case hits a database error over a person's data
    def failing(uow, clock, *args, **kwargs):
        _failing_insert(uow.session, clock())

    monkeypatch.setattr(invitations, "invite_guest", failing)
    caplog.set_level(logging.DEBUG)
    # When it is sent
    response = api("cadmin").post(
        "/v1/organizations/closed.example/guests",
        json={"email": "someone@mail.example", "kind": "b2b-collaboration"},
    )
    # Then the caller gets a 500 and the log has the error and its statement...
    problem(response, 500, "internal-error")
    logged = "\n".join(
        record.getMessage()
        + "\n"
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert "IntegrityError" in logged and "INSERT INTO users" in logged
    # ...but not the person's e-mail or name
    assert SECRET_EMAIL not in logged and SECRET_NAME not in logged
    assert "parameters hidden" in logged

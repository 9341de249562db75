"""sign-out ends a session everywhere; TRUNCATE cannot empty the audit log

``users.session_generation`` is written into each page session when it starts and
advanced by sign-out: a session cookie of an older generation (copied before sign-out)
is refused on the next request. On PostgreSQL a statement trigger refuses ``TRUNCATE
audit_events`` as the row triggers of 0001 refuse UPDATE and DELETE (SQLite has no
TRUNCATE; its DELETE trigger covers ``DELETE FROM audit_events``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "session_generation", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )
    if op.get_bind().dialect.name == "postgresql":
        # The function of 0001 raises whatever the trigger's level: a statement trigger
        # needs nothing else.
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_generation")

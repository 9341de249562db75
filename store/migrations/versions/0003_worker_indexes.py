"""worker indexes: the sweep's re-drive and overdue queries stay index scans at scale

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_IN_PROGRESS = "state IN ('leave-pending', 'purge-pending')"
_PURGE_PENDING = "state = 'purge-pending'"


def upgrade() -> None:
    # Every sweep looks for in-progress memberships with no recent progress (re-drive)
    # and counts purge-pending ones past their removal window (overdue); both are a
    # small part of the table, so partial indexes keep these reads cheap with millions
    # of memberships.
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(
            "ix_memberships_in_progress",
            ["state", "last_progress_at"],
            unique=False,
            sqlite_where=sa.text(_IN_PROGRESS),
            postgresql_where=sa.text(_IN_PROGRESS),
        )
        batch_op.create_index(
            "ix_memberships_removal_due",
            ["removal_due_by"],
            unique=False,
            sqlite_where=sa.text(_PURGE_PENDING),
            postgresql_where=sa.text(_PURGE_PENDING),
        )


def downgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_memberships_removal_due")
        batch_op.drop_index("ix_memberships_in_progress")

"""removal requests: a member's request that the organization remove them

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

- ``removal_requests``: one row per request, with its deadline (``due_by``, a durable
  timer the sweep reads), its answer and why it ended; at most one open per membership.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")
OPEN_NOT_MARKED = sa.text("status = 'open' AND overdue_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "removal_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("membership_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by", sa.String(length=64), nullable=True),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_reason", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'approved', 'declined', 'closed')",
            name=op.f("ck_removal_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["membership_id"],
            ["memberships.id"],
            name=op.f("fk_removal_requests_membership_id_memberships"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_removal_requests_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_removal_requests")),
    )
    with op.batch_alter_table("removal_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_removal_requests_membership_id"), ["membership_id"], unique=False
        )
        batch_op.create_index(
            "ix_removal_requests_org_due", ["organization_id", "due_by", "id"], unique=False
        )
        batch_op.create_index(
            "ix_removal_requests_open_due",
            ["due_by"],
            unique=False,
            sqlite_where=OPEN_NOT_MARKED,
            postgresql_where=OPEN_NOT_MARKED,
        )
        batch_op.create_index(
            "uq_removal_requests_open_membership",
            ["membership_id"],
            unique=True,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("removal_requests", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_removal_requests_open_membership", sqlite_where=OPEN, postgresql_where=OPEN
        )
        batch_op.drop_index(
            "ix_removal_requests_open_due",
            sqlite_where=OPEN_NOT_MARKED,
            postgresql_where=OPEN_NOT_MARKED,
        )
        batch_op.drop_index("ix_removal_requests_org_due")
        batch_op.drop_index(batch_op.f("ix_removal_requests_membership_id"))

    op.drop_table("removal_requests")

"""notices and mail: what a member is told of changes to their memberships

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

- ``notices``: one change a member is told of, addressed to the user (it outlives the
  membership's purge, without leading to the tombstone).
- ``mail_messages``: the mail outbox, each mail's attempts and when the next is due.
- ``users.email_own_changes``: the member asked to be mailed about their own changes too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KINDS = (
    "membership.left",
    "membership.removed",
    "membership.restored",
    "membership.removal_started",
    "membership.purged",
    "removal_request.approved",
    "removal_request.declined",
    "removal_request.overdue",
    "removal_request.closed",
)


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "email_own_changes", sa.Boolean(), server_default=sa.text("false"), nullable=False
            )
        )

    op.create_table(
        "notices",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("membership_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "caused_by_member", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text(), server_default="{}", nullable=False),
        sa.CheckConstraint(
            "kind IN (" + ", ".join(repr(k) for k in _KINDS) + ")", name=op.f("ck_notices_kind")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_notices_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_notices_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notices_membership_id"), ["membership_id"], unique=False
        )
        batch_op.create_index("ix_notices_user_occurred", ["user_id", "occurred_at"], unique=False)

    op.create_table(
        "mail_messages",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("notice_id", _ID, nullable=True),
        sa.Column("membership_id", sa.String(length=36), nullable=True),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body_text", sa.Text(), nullable=True),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'failed')", name=op.f("ck_mail_messages_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_messages")),
    )
    with op.batch_alter_table("mail_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mail_messages_notice_id"), ["notice_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_mail_messages_membership_id"), ["membership_id"], unique=False
        )
        batch_op.create_index(
            "ix_mail_messages_due",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("state = 'pending'"),
            postgresql_where=sa.text("state = 'pending'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("mail_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_messages_due")
        batch_op.drop_index(batch_op.f("ix_mail_messages_membership_id"))
        batch_op.drop_index(batch_op.f("ix_mail_messages_notice_id"))
    op.drop_table("mail_messages")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index("ix_notices_user_occurred")
        batch_op.drop_index(batch_op.f("ix_notices_membership_id"))
    op.drop_table("notices")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email_own_changes")

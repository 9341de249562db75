"""invitations and pseudonyms: a guest joins by accepting, and a purged one is gone

Revision ID: 0005
Revises: 0007
Create Date: 2026-11-30

- ``invitations``: an admin's invitation for an e-mail address; the membership is made
  only when the person accepts.
- ``memberships.pseudonym``: a random GUID per membership. The audit log names a guest
  who acts by it, and a purged membership shows it where its user id was.
- ``memberships.user_id`` may be null: a purge cuts the tombstone's link to the user.
- ``users.email`` and ``users.display_name`` may be null: erased once the user's last
  membership anywhere is purged.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0007"
branch_labels = None
depends_on = None

# The partial indexes of memberships, re-created after SQLite's table copy (the copy is
# how SQLite changes a column's nullability, and it may not carry a partial index's WHERE).
_PARTIAL_INDEXES = (
    ("ix_memberships_due_purge", ["purge_due_at"], False, "state = 'soft-deleted'"),
    ("uq_memberships_live_user_org", ["user_id", "organization_id"], True, "state <> 'purged'"),
    (
        "ix_memberships_in_progress",
        ["state", "last_progress_at"],
        False,
        "state IN ('leave-pending', 'purge-pending')",
    ),
    ("ix_memberships_removal_due", ["removal_due_by"], False, "state = 'purge-pending'"),
)


# A pseudonym the database makes itself, so that rows inserted by other means (bulk
# loads, scripts) get one too: a random version-4 GUID.
_POSTGRESQL_PSEUDONYM = "gen_random_uuid()::text"
_SQLITE_PSEUDONYM = (
    "(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
    "substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) "
    "|| substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))))"
)


def _fill_pseudonyms() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("UPDATE memberships SET pseudonym = gen_random_uuid()::text")
        return
    memberships = sa.table("memberships", sa.column("id"), sa.column("pseudonym"))
    ids = [row[0] for row in bind.execute(sa.select(memberships.c.id))]
    for start in range(0, len(ids), 5000):
        bind.execute(
            memberships.update()
            .where(memberships.c.id == sa.bindparam("b_id"))
            .values(pseudonym=sa.bindparam("b_pseudonym")),
            [{"b_id": i, "b_pseudonym": str(uuid.uuid4())} for i in ids[start : start + 5000]],
        )


def _recreate_partial_indexes(sqlite: bool) -> None:
    if not sqlite:
        return
    for name, columns, unique, where in _PARTIAL_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
        op.create_index(name, "memberships", columns, unique=unique, sqlite_where=sa.text(where))


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column("memberships", sa.Column("pseudonym", sa.String(length=36), nullable=True))
    _fill_pseudonyms()
    default = _SQLITE_PSEUDONYM if sqlite else _POSTGRESQL_PSEUDONYM
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.String(length=36), nullable=True)
        batch_op.alter_column(
            "pseudonym",
            existing_type=sa.String(length=36),
            nullable=False,
            server_default=sa.text(default),
        )
    _recreate_partial_indexes(sqlite)
    op.create_index("uq_memberships_pseudonym", "memberships", ["pseudonym"], unique=True)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("email", existing_type=sa.String(length=320), nullable=True)
        batch_op.alter_column("display_name", existing_type=sa.String(length=255), nullable=True)

    op.create_table(
        "invitations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("invited_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("membership_id", sa.String(length=36), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'declined', 'revoked')",
            name=op.f("ck_invitations_status"),
        ),
        sa.CheckConstraint(
            "kind IN ('home', 'b2b-collaboration', 'b2b-direct-connect')",
            name=op.f("ck_invitations_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_invitations_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
    )
    op.create_index("ix_invitations_org_email", "invitations", ["organization_id", "email_key"])
    op.create_index("ix_invitations_email_status", "invitations", ["email_key", "status"])
    op.create_index(op.f("ix_invitations_membership_id"), "invitations", ["membership_id"])


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_index(op.f("ix_invitations_membership_id"), table_name="invitations")
    op.drop_index("ix_invitations_email_status", table_name="invitations")
    op.drop_index("ix_invitations_org_email", table_name="invitations")
    op.drop_table("invitations")
    # Erased users and cut tombstones have nothing to go back to, so the columns that
    # may now be null stay so: a downgrade loses no row.
    op.drop_index("uq_memberships_pseudonym", table_name="memberships")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("pseudonym")
    _recreate_partial_indexes(sqlite)

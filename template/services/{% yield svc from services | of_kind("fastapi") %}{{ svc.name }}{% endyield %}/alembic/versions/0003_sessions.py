"""Sessions: per-user authorisation version, session start, single-use stream tickets.

* ``users.auth_version`` goes up whenever a user's rights change (role, activation,
  password): access tokens carry the version they were issued under, so a demoted
  or deactivated user's tokens stop working at once.
* ``refresh_tokens.family_started_at``: when the login (the token family) began, for
  the absolute session lifetime (SESSION_MAX_DAYS).
* ``stream_tickets``: the ids of event-stream tickets already redeemed (each is valid
  for one connection within 30 seconds).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("auth_version", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "refresh_tokens",
        sa.Column("family_started_at", TIMESTAMPTZ, server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "stream_tickets",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", TIMESTAMPTZ, nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_stream_tickets")),
    )
    op.create_index(op.f("ix_stream_tickets_expires_at"), "stream_tickets", ["expires_at"])


def downgrade() -> None:
    op.drop_table("stream_tickets")
    op.drop_column("refresh_tokens", "family_started_at")
    op.drop_column("users", "auth_version")

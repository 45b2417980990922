"""Grants for the export workers: what they read and change, and nothing more.

The workers log in as their own roles, members of ``<database>_exporter``
(created with the API's role by config/postgres/init/10-app-roles.sh). That
role may read users without the password hashes (column grants) and read,
update and delete export_jobs (status changes, retention). refresh_tokens
stays the API's alone. Where no such role exists (a native boot, the API's
own tests) the migration does nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01 00:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every users column a worker needs: the export rows and the job owner's scope.
USER_COLUMNS = ("id", "email", "full_name", "role", "is_active", "created_at", "updated_at")

# Run only when the exporter role of the current database exists; %I quotes its name.
_WHEN_EXPORTER_EXISTS = """
DO $$
DECLARE
    exporter text := current_database() || '_exporter';
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = exporter) THEN
        {statements}
    END IF;
END
$$;
"""


def _for_exporter(*statements: str) -> str:
    body = "\n        ".join(
        f"EXECUTE format('{statement}', exporter);" for statement in statements
    )
    return _WHEN_EXPORTER_EXISTS.format(statements=body)


def upgrade() -> None:
    columns = ", ".join(USER_COLUMNS)
    op.execute(
        _for_exporter(
            f"GRANT SELECT ({columns}) ON users TO %I",
            "GRANT SELECT, UPDATE, DELETE ON export_jobs TO %I",
        )
    )


def downgrade() -> None:
    op.execute(
        _for_exporter(
            "REVOKE ALL ON users FROM %I",
            "REVOKE ALL ON export_jobs FROM %I",
        )
    )

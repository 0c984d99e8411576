"""Pages walk each table in creation order by ``(created_at, id)``, the audit log by ``(at,
id)`` (SQLite's implicit rowid, used before, has no PostgreSQL equivalent), so each paged table
gets that index.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"

PAGED = (
    "api_keys", "artifacts", "binaries", "signing_keys", "signatures", "bundles", "bundle_signatures", "channels",
    "cohorts", "releases", "devices", "bundle_overrides",
)  # fmt: skip


def upgrade() -> None:
    for table in PAGED:
        op.create_index(f"{table}_created", table, ["created_at", "id"])
    op.create_index("events_at", "events", ["at", "id"])


def downgrade() -> None:
    raise NotImplementedError("the catalog's migrations go forward only")

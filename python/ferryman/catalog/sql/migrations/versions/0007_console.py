"""The web console: devices counted by the release they report (each node of a channel's graph
says how many devices sit on it), from an index rather than a scan of every device.

Revision ID: 0007
"""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_index("devices_reported_release", "devices", ["reported_release_id"])


def downgrade() -> None:
    raise NotImplementedError("the catalog's migrations go forward only")

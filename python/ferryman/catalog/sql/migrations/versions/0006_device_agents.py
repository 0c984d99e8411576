"""Stock device agents (hawkBit DDI, Mender): a binary's file name, SHA-1 and MD5 (computed
in the hashing pass) and the facts of a Mender artifact's header; a device's attributes (DDI
configData, Mender inventory), its admission (``pending`` until an operator accepts a device
that asked to join), its authentication key and identity, and when it last sent configData;
``device_actions``: each update offered to a device through an agent protocol, open until the
device closes it (a DDI action, a Mender deployment).

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    text = sa.Text
    for column in ("filename", "sha1", "md5", "mender"):
        op.add_column("binaries", sa.Column(column, text(), nullable=True))
    op.add_column("devices", sa.Column("attributes", text(), nullable=False, server_default="{}"))
    op.add_column("devices", sa.Column("admission", text(), nullable=False, server_default="accepted"))
    op.add_column("devices", sa.Column("auth_key", text(), nullable=True))
    op.add_column("devices", sa.Column("auth_keyid", text(), nullable=True))
    op.add_column("devices", sa.Column("identity", text(), nullable=True))
    op.add_column("devices", sa.Column("config_at", text(), nullable=True))
    op.create_index("devices_auth_keyid", "devices", ["auth_keyid"], unique=True)
    op.create_index("devices_admission", "devices", ["admission", "created_at", "id"])
    # An INTEGER primary key: SQLite's rowid, an identity column on PostgreSQL. DDI action IDs
    # are numbers (SWUpdate parses them as integers).
    op.create_table(
        "device_actions",
        sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True, nullable=False),
        sa.Column("device_id", text(), nullable=False),
        sa.Column("release_id", text(), nullable=True),
        sa.Column("bundle_id", text(), nullable=False),
        sa.Column("status", text(), nullable=False),
        sa.Column("result", text(), nullable=True),
        sa.Column("detail", text(), nullable=True),
        sa.Column("created_at", text(), nullable=False),
        sa.Column("updated_at", text(), nullable=False),
    )
    op.create_index("device_actions_device", "device_actions", ["device_id", "status"])


def downgrade() -> None:
    raise NotImplementedError("the catalog's migrations go forward only")

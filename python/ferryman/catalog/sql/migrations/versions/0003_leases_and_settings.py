"""Several processes on one catalog: a binary being hashed carries a lease (which process
hashes it, until when), so a job whose process died is taken over when the lease runs out;
``settings`` holds values every process shares (the download-grant secret).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("binaries", sa.Column("lease_owner", sa.Text(), nullable=True))
    op.add_column("binaries", sa.Column("lease_until", sa.Text(), nullable=True))
    op.create_table(
        "settings",
        sa.Column("key", sa.Text(), primary_key=True, nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the catalog's migrations go forward only")

"""Regions: each binary's copy in each region is a row of ``replicas`` (the durable replication
queue: its state, attempts, last error, when it is tried next, and the lease of the process
working on it); devices and cohorts may name the region they download from; a release may
require (or waive) that its bundle be verified in every region before it is offered.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    text = sa.Text
    op.create_table(
        "replicas",
        sa.Column("binary_id", text(), sa.ForeignKey("binaries.id"), primary_key=True, nullable=False),
        sa.Column("region", text(), primary_key=True, nullable=False),
        sa.Column("state", text(), nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("error", text(), nullable=True),
        sa.Column("next_attempt_at", text(), nullable=False),
        sa.Column("lease_owner", text(), nullable=True),
        sa.Column("lease_until", text(), nullable=True),
        sa.Column("verified_at", text(), nullable=True),
        sa.Column("created_at", text(), nullable=False),
        sa.Column("updated_at", text(), nullable=False),
    )
    op.create_index("replicas_due", "replicas", ["state", "next_attempt_at"])
    op.add_column("devices", sa.Column("region", text(), nullable=True))
    op.add_column("cohorts", sa.Column("region", text(), nullable=True))
    op.add_column("releases", sa.Column("require_replicated", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the catalog's migrations go forward only")

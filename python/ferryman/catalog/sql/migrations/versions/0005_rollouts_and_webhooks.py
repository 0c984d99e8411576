"""Fleet operations: each release's outcome on each device (``rollouts``: offered, then the
status of the device's last report for it), a bounded history of each device's reports
(``device_reports``), a release's halt rule, halted state and scheduled phase steps, webhooks
and their durable outbox (``webhook_deliveries``: written in the transaction of the event
itself, with attempts, the next one's time, the lease of the process delivering it, and the
last attempts' results).

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    text, big = sa.Text, sa.BigInteger
    op.create_table(
        "rollouts",
        sa.Column("release_id", text(), sa.ForeignKey("releases.id"), primary_key=True, nullable=False),
        sa.Column("device_id", text(), primary_key=True, nullable=False),
        sa.Column("channel_id", text(), nullable=False),
        sa.Column("cohort_id", text(), nullable=True),
        sa.Column("status", text(), nullable=False),
        sa.Column("reason", text(), nullable=True),
        sa.Column("offered_at", text(), nullable=False),
        sa.Column("installed_at", text(), nullable=True),
        sa.Column("updated_at", text(), nullable=False),
    )
    op.create_index("rollouts_release", "rollouts", ["release_id", "status"])
    op.create_index("rollouts_cohort", "rollouts", ["cohort_id", "status"])
    op.create_index("rollouts_channel", "rollouts", ["channel_id", "status"])
    op.create_table(
        "device_reports",
        sa.Column("device_id", text(), primary_key=True, nullable=False),
        sa.Column("seq", big(), primary_key=True, nullable=False),
        sa.Column("at", text(), nullable=False),
        sa.Column("release_id", text(), nullable=True),
        sa.Column("bundle_id", text(), nullable=False),
        sa.Column("version", text(), nullable=True),
        sa.Column("status", text(), nullable=False),
        sa.Column("reason", text(), nullable=True),
        sa.Column("detail", text(), nullable=True),
    )
    op.add_column("devices", sa.Column("reports", big(), nullable=False, server_default="0"))
    op.add_column("releases", sa.Column("halt", text(), nullable=True))
    op.add_column("releases", sa.Column("halted", big(), nullable=False, server_default="0"))
    op.add_column("releases", sa.Column("halted_reason", text(), nullable=True))
    op.add_column("releases", sa.Column("halted_at", text(), nullable=True))
    op.add_column("releases", sa.Column("advance", text(), nullable=True))
    op.create_table(
        "webhooks",
        sa.Column("id", text(), primary_key=True, nullable=False),
        sa.Column("url", text(), nullable=False),
        sa.Column("events", text(), nullable=False),
        sa.Column("description", text(), nullable=True),
        sa.Column("secret", text(), nullable=False),
        sa.Column("disabled", big(), nullable=False),
        sa.Column("created_at", text(), nullable=False),
        sa.Column("updated_at", text(), nullable=False),
    )
    op.create_index("webhooks_page", "webhooks", ["created_at", "id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", text(), primary_key=True, nullable=False),
        sa.Column("webhook_id", text(), sa.ForeignKey("webhooks.id"), nullable=False),
        sa.Column("event_id", text(), nullable=False),
        sa.Column("type", text(), nullable=False),
        sa.Column("payload", text(), nullable=False),
        sa.Column("state", text(), nullable=False),
        sa.Column("attempts", big(), nullable=False),
        sa.Column("next_attempt_at", text(), nullable=False),
        sa.Column("lease_owner", text(), nullable=True),
        sa.Column("lease_until", text(), nullable=True),
        sa.Column("last_status", big(), nullable=True),
        sa.Column("last_error", text(), nullable=True),
        sa.Column("log", text(), nullable=False),
        sa.Column("delivered_at", text(), nullable=True),
        sa.Column("created_at", text(), nullable=False),
        sa.Column("updated_at", text(), nullable=False),
    )
    op.create_index("webhook_deliveries_due", "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_index("webhook_deliveries_page", "webhook_deliveries", ["webhook_id", "created_at", "id"])


def downgrade() -> None:
    raise NotImplementedError("the catalog's migrations go forward only")

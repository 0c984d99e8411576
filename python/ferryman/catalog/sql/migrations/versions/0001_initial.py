"""The catalog as the embedded SQLite schema left it before versioned migrations (its
``PRAGMA user_version`` 6): an existing SQLite catalog at that version is stamped with this
revision rather than created.

Revision ID: 0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

TEXT = sa.Text
INT = sa.BigInteger


def _col(name: str, type_: type, *args: Any, null: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_(), *args, nullable=null, **kw)


def upgrade() -> None:
    pk = {"primary_key": True}
    op.create_table(
        "api_keys",
        _col("id", TEXT, **pk), _col("name", TEXT), _col("role", TEXT), _col("token_hash", TEXT, unique=True),
        _col("created_at", TEXT),
    )  # fmt: skip
    op.create_table(
        "artifacts",
        _col("id", TEXT, **pk), _col("name", TEXT, unique=True), _col("description", TEXT, null=True),
        _col("custom_metadata", TEXT), _col("created_at", TEXT), _col("updated_at", TEXT),
    )  # fmt: skip
    op.create_table(
        "versions",
        _col("id", TEXT, **pk), _col("artifact_id", TEXT, sa.ForeignKey("artifacts.id")), _col("version", TEXT),
        _col("semver", INT), _col("description", TEXT, null=True), _col("custom_metadata", TEXT),
        _col("created_at", TEXT), _col("updated_at", TEXT), sa.UniqueConstraint("artifact_id", "version"),
    )  # fmt: skip
    op.create_table(
        "binaries",
        _col("id", TEXT, **pk), _col("version_id", TEXT, sa.ForeignKey("versions.id")), _col("target", TEXT),
        _col("size", INT), _col("sha256", TEXT), _col("part_size", INT), _col("state", TEXT),
        _col("error", TEXT, null=True), _col("description", TEXT, null=True), _col("custom_metadata", TEXT),
        _col("created_at", TEXT), _col("updated_at", TEXT),
    )  # fmt: skip
    live = sa.text("state != 'destroyed'")
    op.create_index(
        "binaries_live_target", "binaries", ["version_id", "target"], unique=True, sqlite_where=live, postgresql_where=live
    )
    op.create_index("binaries_state", "binaries", ["state"])
    op.create_index("binaries_sha256", "binaries", ["sha256"])
    op.create_table(
        "parts",
        _col("binary_id", TEXT, sa.ForeignKey("binaries.id"), **pk), _col("index", INT, **pk), _col("size", INT),
        _col("sha256", TEXT), _col("created_at", TEXT),
    )  # fmt: skip
    op.create_table(
        "signing_keys",
        _col("id", TEXT, **pk), _col("name", TEXT, unique=True), _col("keyid", TEXT, unique=True),
        _col("algorithm", TEXT), _col("kind", TEXT), _col("bits", INT), _col("public_key", TEXT),
        _col("not_before", INT, null=True), _col("not_after", INT, null=True), _col("state", TEXT),
        _col("created_at", TEXT), _col("updated_at", TEXT),
    )  # fmt: skip
    op.create_table(
        "signatures",
        _col("id", TEXT, **pk), _col("binary_id", TEXT, sa.ForeignKey("binaries.id")),
        _col("signing_key_id", TEXT, sa.ForeignKey("signing_keys.id")), _col("signature", TEXT),
        _col("message", TEXT), _col("created_at", TEXT), sa.UniqueConstraint("binary_id", "signing_key_id"),
    )  # fmt: skip
    op.create_index("signatures_key", "signatures", ["signing_key_id"])
    op.create_table(
        "events",
        _col("id", TEXT, **pk), _col("at", TEXT), _col("actor", TEXT), _col("action", TEXT),
        _col("resource_type", TEXT), _col("resource_id", TEXT), _col("before", TEXT, null=True),
        _col("after", TEXT, null=True),
    )  # fmt: skip
    op.create_index("events_resource", "events", ["resource_id"])
    op.create_table(
        "uploads_in_flight",
        _col("id", TEXT, **pk), _col("binary_id", TEXT, sa.ForeignKey("binaries.id")), _col("index", INT),
        _col("started_at", TEXT), _col("expires_at", TEXT, server_default=""),
    )  # fmt: skip
    op.create_index("uploads_in_flight_binary", "uploads_in_flight", ["binary_id"])
    op.create_table(
        "bundles", _col("id", TEXT, **pk), _col("name", TEXT, null=True), _col("hash", TEXT), _col("created_at", TEXT)
    )
    op.create_index("bundles_hash", "bundles", ["hash"])
    op.create_table(
        "bundle_entries",
        _col("bundle_id", TEXT, sa.ForeignKey("bundles.id"), **pk), _col("position", INT, **pk),
        _col("binary_id", TEXT, sa.ForeignKey("binaries.id")), _col("custom_metadata", TEXT),
    )  # fmt: skip
    op.create_index("bundle_entries_binary", "bundle_entries", ["binary_id"])
    op.create_table(
        "bundle_signatures",
        _col("id", TEXT, **pk), _col("bundle_id", TEXT, sa.ForeignKey("bundles.id")),
        _col("signing_key_id", TEXT, sa.ForeignKey("signing_keys.id")), _col("signature", TEXT),
        _col("message", TEXT), _col("created_at", TEXT), sa.UniqueConstraint("bundle_id", "signing_key_id"),
    )  # fmt: skip
    op.create_table(
        "channels",
        _col("id", TEXT, **pk), _col("name", TEXT, unique=True), _col("description", TEXT, null=True),
        _col("created_at", TEXT), _col("updated_at", TEXT),
    )  # fmt: skip
    op.create_table(
        "cohorts",
        _col("id", TEXT, **pk), _col("name", TEXT, unique=True),
        _col("channel_id", TEXT, sa.ForeignKey("channels.id"), null=True), _col("description", TEXT, null=True),
        _col("created_at", TEXT), _col("updated_at", TEXT),
    )  # fmt: skip
    op.create_table(
        "releases",
        _col("id", TEXT, **pk), _col("channel_id", TEXT, sa.ForeignKey("channels.id")), _col("name", TEXT),
        _col("bundle_id", TEXT, sa.ForeignKey("bundles.id")), _col("version", TEXT, null=True),
        _col("version_requirement", TEXT, null=True),
        _col("next_release_id", TEXT, sa.ForeignKey("releases.id"), null=True), _col("required", INT),
        _col("disabled", INT), _col("schedule_at", TEXT, null=True), _col("phase", TEXT, null=True),
        _col("claimed", INT, server_default="0"), _col("created_at", TEXT), _col("updated_at", TEXT),
        sa.UniqueConstraint("channel_id", "name"),
    )  # fmt: skip
    op.create_index("releases_channel", "releases", ["channel_id"])
    op.create_table(
        "release_claims",
        _col("release_id", TEXT, sa.ForeignKey("releases.id"), **pk), _col("device_id", TEXT, **pk),
        _col("created_at", TEXT),
    )  # fmt: skip
    op.create_table(
        "devices",
        _col("id", TEXT, **pk), _col("identifier", TEXT, unique=True), _col("target", TEXT), _col("tags", TEXT),
        _col("cohort_id", TEXT, sa.ForeignKey("cohorts.id"), null=True), _col("quarantined", INT),
        _col("token_hash", TEXT, unique=True), _col("reported_release_id", TEXT, null=True),
        _col("reported_bundle_id", TEXT, null=True), _col("reported_version", TEXT, null=True),
        _col("last_status", TEXT, null=True), _col("last_detail", TEXT, null=True),
        _col("last_seen_at", TEXT, null=True), _col("created_at", TEXT), _col("updated_at", TEXT),
    )  # fmt: skip
    op.create_index("devices_cohort", "devices", ["cohort_id"])
    op.create_table(
        "bundle_overrides",
        _col("id", TEXT, **pk), _col("bundle_id", TEXT, sa.ForeignKey("bundles.id")), _col("starts_at", TEXT),
        _col("ends_at", TEXT, null=True), _col("created_at", TEXT), _col("updated_at", TEXT),
    )  # fmt: skip
    op.create_table(
        "override_devices",
        _col("override_id", TEXT, sa.ForeignKey("bundle_overrides.id"), **pk),
        _col("device_id", TEXT, sa.ForeignKey("devices.id"), **pk),
    )  # fmt: skip
    op.create_index("override_devices_device", "override_devices", ["device_id"])
    op.create_table("meta", _col("key", TEXT, **pk), _col("value", INT))
    op.execute("INSERT INTO meta (key, value) VALUES ('generation', 0)")


def downgrade() -> None:
    raise NotImplementedError("the catalog's migrations go forward only")

"""SQLite schema migrations, applied in order at start-up; ``PRAGMA user_version`` records the
last one applied."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE artifacts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT,
        custom_metadata TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE versions (
        id TEXT PRIMARY KEY,
        artifact_id TEXT NOT NULL REFERENCES artifacts(id),
        version TEXT NOT NULL,
        semver INTEGER NOT NULL,
        description TEXT,
        custom_metadata TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (artifact_id, version)
    );
    CREATE TABLE binaries (
        id TEXT PRIMARY KEY,
        version_id TEXT NOT NULL REFERENCES versions(id),
        target TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        part_size INTEGER NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        description TEXT,
        custom_metadata TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX binaries_live_target ON binaries (version_id, target) WHERE state != 'destroyed';
    CREATE INDEX binaries_state ON binaries (state);
    CREATE INDEX binaries_sha256 ON binaries (sha256);
    CREATE TABLE parts (
        binary_id TEXT NOT NULL REFERENCES binaries(id),
        idx INTEGER NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (binary_id, idx)
    );
    CREATE TABLE signing_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        keyid TEXT NOT NULL UNIQUE,
        algorithm TEXT NOT NULL,
        kind TEXT NOT NULL,
        bits INTEGER NOT NULL,
        public_key TEXT NOT NULL,
        not_before INTEGER,
        not_after INTEGER,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE signatures (
        id TEXT PRIMARY KEY,
        binary_id TEXT NOT NULL REFERENCES binaries(id),
        signing_key_id TEXT NOT NULL REFERENCES signing_keys(id),
        signature TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (binary_id, signing_key_id)
    );
    CREATE INDEX signatures_key ON signatures (signing_key_id);
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        before TEXT,
        after TEXT
    );
    CREATE INDEX events_resource ON events (resource_id);
    """,
]

MIGRATIONS.append(
    """
    CREATE TABLE uploads_in_flight (
        id TEXT PRIMARY KEY,
        binary_id TEXT NOT NULL REFERENCES binaries(id),
        idx INTEGER NOT NULL,
        started_at TEXT NOT NULL
    );
    CREATE INDEX uploads_in_flight_binary ON uploads_in_flight (binary_id);
    """
)

MIGRATIONS.append(
    """
    CREATE TABLE bundles (
        id TEXT PRIMARY KEY,
        name TEXT,
        hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX bundles_hash ON bundles (hash);
    CREATE TABLE bundle_entries (
        bundle_id TEXT NOT NULL REFERENCES bundles(id),
        position INTEGER NOT NULL,
        binary_id TEXT NOT NULL REFERENCES binaries(id),
        custom_metadata TEXT NOT NULL,
        PRIMARY KEY (bundle_id, position)
    );
    CREATE INDEX bundle_entries_binary ON bundle_entries (binary_id);
    CREATE TABLE bundle_signatures (
        id TEXT PRIMARY KEY,
        bundle_id TEXT NOT NULL REFERENCES bundles(id),
        signing_key_id TEXT NOT NULL REFERENCES signing_keys(id),
        signature TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (bundle_id, signing_key_id)
    );
    CREATE TABLE channels (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE cohorts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        channel_id TEXT REFERENCES channels(id),
        description TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE releases (
        id TEXT PRIMARY KEY,
        channel_id TEXT NOT NULL REFERENCES channels(id),
        name TEXT NOT NULL,
        bundle_id TEXT NOT NULL REFERENCES bundles(id),
        version TEXT,
        version_requirement TEXT,
        next_release_id TEXT REFERENCES releases(id),
        required INTEGER NOT NULL,
        disabled INTEGER NOT NULL,
        schedule_at TEXT,
        phase TEXT,
        claimed INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (channel_id, name)
    );
    CREATE INDEX releases_channel ON releases (channel_id);
    CREATE TABLE release_claims (
        release_id TEXT NOT NULL REFERENCES releases(id),
        device_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (release_id, device_id)
    );
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        identifier TEXT NOT NULL UNIQUE,
        target TEXT NOT NULL,
        tags TEXT NOT NULL,
        cohort_id TEXT REFERENCES cohorts(id),
        quarantined INTEGER NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        reported_release_id TEXT,
        reported_bundle_id TEXT,
        reported_version TEXT,
        last_status TEXT,
        last_detail TEXT,
        last_seen_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX devices_cohort ON devices (cohort_id);
    CREATE TABLE bundle_overrides (
        id TEXT PRIMARY KEY,
        bundle_id TEXT NOT NULL REFERENCES bundles(id),
        starts_at TEXT NOT NULL,
        ends_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE override_devices (
        override_id TEXT NOT NULL REFERENCES bundle_overrides(id),
        device_id TEXT NOT NULL REFERENCES devices(id),
        PRIMARY KEY (override_id, device_id)
    );
    CREATE INDEX override_devices_device ON override_devices (device_id);
    """
)

MIGRATIONS.append(
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta (key, value) VALUES ('generation', 0);
    """
)

# Leases on uploads in flight: a marker counts only until expires_at (renewed while the upload
# lives), so one left by a dead process or a failed write cannot block hashing.
MIGRATIONS.append(
    """
    ALTER TABLE uploads_in_flight ADD COLUMN expires_at TEXT NOT NULL DEFAULT ''
    """
)

# One name per concept: a part's number is its ``index`` in the API, the models and SQL alike.
MIGRATIONS.append(
    """
    ALTER TABLE parts RENAME COLUMN idx TO "index";
    ALTER TABLE uploads_in_flight RENAME COLUMN idx TO "index"
    """
)

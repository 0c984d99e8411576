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

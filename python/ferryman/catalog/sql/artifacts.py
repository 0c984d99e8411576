"""Artifacts and their versions."""

from __future__ import annotations

import msgspec
import semver

from ferryman.catalog import models as m
from ferryman.catalog.rules import check_id, decode_offset, encode_offset, now, version_order
from ferryman.catalog.sql.binaries import changes_of
from ferryman.catalog.sql.db import Database, Row, Tx, get_or_404, loads_fields, page_of, to, update_logged
from ferryman.errors import Conflict
from ferryman.ids import new_id

__all__ = ["Artifacts"]


def _version_view(row: Row) -> Row:
    out = loads_fields(dict(row))
    out["semver"] = bool(out["semver"])
    return out


class Artifacts:
    db: Database

    async def create_artifact(self, actor: str, body: m.ArtifactCreate) -> m.Artifact:
        m.check_metadata(body.custom_metadata)
        t = now()
        row: Row = {"id": new_id("artifact"), "name": body.name, "description": body.description,
                    "custom_metadata": msgspec.json.encode(body.custom_metadata).decode(), "created_at": t,
                    "updated_at": t}  # fmt: skip

        def run(tx: Tx) -> Row:
            if tx.one("SELECT id FROM artifacts WHERE name = ?", [body.name]):
                raise Conflict(f"an artifact named {body.name!r} exists", {"name": ["already taken"]})
            tx.insert("artifacts", row)
            view = loads_fields(dict(row))
            tx.event("create", "artifact", row["id"], None, view)
            return view

        return to(m.Artifact, await self.db.tx(actor, run, changes_answers=False))

    async def get_artifact(self, artifact_id: str) -> m.Artifact:
        check_id(artifact_id, "artifact", "artifact")
        row = await self.db.read(lambda tx: loads_fields(get_or_404(tx, "artifacts", artifact_id, "artifact")))
        return to(m.Artifact, row)

    async def list_artifacts(self, limit: int, cursor: str | None, name: str | None = None) -> m.Page[m.Artifact]:
        def run(tx: Tx) -> m.Page[Row]:
            page = tx.page("artifacts", limit, cursor, equal={"name": name} if name is not None else None)
            page.items = [loads_fields(r) for r in page.items]
            return page

        return page_of(m.Artifact, await self.db.read(run))

    async def patch_artifact(self, actor: str, artifact_id: str, body: m.ArtifactPatch) -> m.Artifact:
        check_id(artifact_id, "artifact", "artifact")
        changes = changes_of(body)

        def run(tx: Tx) -> Row:
            before = loads_fields(get_or_404(tx, "artifacts", artifact_id, "artifact"))
            return update_logged(tx, "artifacts", artifact_id, "artifact", changes, before, loads_fields)

        return to(m.Artifact, await self.db.tx(actor, run, changes_answers=False))

    async def delete_artifact(self, actor: str, artifact_id: str) -> None:
        check_id(artifact_id, "artifact", "artifact")

        def run(tx: Tx) -> None:
            before = loads_fields(get_or_404(tx, "artifacts", artifact_id, "artifact"))
            if tx.one("SELECT id FROM versions WHERE artifact_id = ? LIMIT 1", [artifact_id]):
                raise Conflict("the artifact has versions; it cannot be deleted")
            tx.run("DELETE FROM artifacts WHERE id = ?", [artifact_id])
            tx.event("delete", "artifact", artifact_id, before, None)

        await self.db.tx(actor, run, changes_answers=False)

    # Versions -------------------------------------------------------------------------------

    async def create_version(self, actor: str, artifact_id: str, body: m.VersionCreate) -> m.Version:
        check_id(artifact_id, "artifact", "artifact")
        m.check_metadata(body.custom_metadata)
        t = now()
        row: Row = {"id": new_id("version"), "artifact_id": artifact_id, "version": body.version,
                    "semver": int(semver.Version.is_valid(body.version)), "description": body.description,
                    "custom_metadata": msgspec.json.encode(body.custom_metadata).decode(), "created_at": t,
                    "updated_at": t}  # fmt: skip

        def run(tx: Tx) -> Row:
            get_or_404(tx, "artifacts", artifact_id, "artifact")
            if tx.one("SELECT id FROM versions WHERE artifact_id = ? AND version = ?", [artifact_id, body.version]):
                raise Conflict(f"version {body.version!r} exists", {"version": ["already exists for this artifact"]})
            tx.insert("versions", row)
            view = _version_view(row)
            tx.event("create", "version", row["id"], None, view)
            return view

        return to(m.Version, await self.db.tx(actor, run, changes_answers=False))

    async def get_version(self, version_id: str) -> m.Version:
        check_id(version_id, "version", "version")
        row = await self.db.read(lambda tx: _version_view(get_or_404(tx, "versions", version_id, "version")))
        return to(m.Version, row)

    async def list_versions(self, artifact_id: str, limit: int, cursor: str | None) -> m.Page[m.Version]:
        """All versions of an artifact in version order (DESIGN.md); the cursor is an offset."""
        check_id(artifact_id, "artifact", "artifact")
        start = decode_offset(cursor)

        def run(tx: Tx) -> list[Row]:
            get_or_404(tx, "artifacts", artifact_id, "artifact")
            return tx.all("SELECT * FROM versions WHERE artifact_id = ?", [artifact_id])

        rows = version_order(await self.db.read(run), lambda r: r["version"], lambda r: r["semver"], lambda r: r["created_at"])
        more = start + limit < len(rows)
        items = [to(m.Version, _version_view(r)) for r in rows[start : start + limit]]
        return m.Page(items, encode_offset(start + limit) if more else None)

    async def patch_version(self, actor: str, version_id: str, body: m.VersionPatch) -> m.Version:
        check_id(version_id, "version", "version")
        changes = changes_of(body)

        def run(tx: Tx) -> Row:
            before = _version_view(get_or_404(tx, "versions", version_id, "version"))
            return update_logged(tx, "versions", version_id, "version", changes, before, _version_view)

        return to(m.Version, await self.db.tx(actor, run, changes_answers=False))

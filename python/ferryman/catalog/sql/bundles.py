"""Bundles: immutable, ordered sets of signed binaries, and signatures over their hash."""

from __future__ import annotations

import json

import msgspec

from ferryman.agents.menderfile import refused_target
from ferryman.catalog import models as m
from ferryman.catalog.rules import bundle_hash, check_id, now
from ferryman.catalog.sql.db import Database, Row, Tx, get_or_404, page_of, to
from ferryman.errors import Invalid
from ferryman.ids import new_id

__all__ = ["Bundles"]

_ENTRIES = (
    "SELECT e.binary_id, e.custom_metadata, b.target, b.size, b.sha256, v.version, a.name AS artifact "
    "FROM bundle_entries e JOIN binaries b ON b.id = e.binary_id JOIN versions v ON v.id = b.version_id "
    "JOIN artifacts a ON a.id = v.artifact_id"
)
_SIGNATURES = (
    "SELECT s.*, k.keyid, k.algorithm, k.state AS key_state FROM bundle_signatures s "
    "JOIN signing_keys k ON k.id = s.signing_key_id"
)


def _bundle_view(tx: Tx, bundle: Row) -> Row:
    entries = tx.all(_ENTRIES + " WHERE e.bundle_id = ? ORDER BY e.position", [bundle["id"]])
    for e in entries:
        e["custom_metadata"] = json.loads(e["custom_metadata"])
    sigs = tx.all(_SIGNATURES + " WHERE s.bundle_id = ? ORDER BY s.created_at, s.id", [bundle["id"]])
    return {**bundle, "entries": entries, "signatures": sigs}


class Bundles:
    db: Database

    async def create_bundle(self, actor: str, body: m.BundleCreate) -> m.Bundle:
        entries_in = [e if isinstance(e, m.BundleEntryIn) else m.BundleEntryIn(binary_id=e) for e in body.binaries]
        for i, e in enumerate(entries_in):
            m.check_metadata(e.custom_metadata, f"binaries[{i}].custom_metadata")
            check_id(e.binary_id, "binary", "binary", f"binaries[{i}]")

        def run(tx: Tx) -> Row:
            seen: set[str] = set()
            for i, e in enumerate(entries_in):
                row = tx.one("SELECT state, target, mender FROM binaries WHERE id = ?", [e.binary_id])
                field = f"binaries[{i}]"
                if row is None:
                    raise Invalid(f"no binary {e.binary_id}", {field: ["unknown binary"]})
                if row["state"] != "signed":
                    raise Invalid(
                        f"binary {e.binary_id} is {row['state']}; bundles take signed binaries",
                        {field: [f"binary is {row['state']}"]},
                    )
                why = refused_target(row["target"], json.loads(row["mender"])["device_types"] if row["mender"] else None)
                if why:
                    raise Invalid(f"binary {e.binary_id}: {why}", {field: [why]})
                if e.binary_id in seen:
                    raise Invalid(f"binary {e.binary_id} is listed twice", {field: ["duplicate"]})
                seen.add(e.binary_id)
            bundle: Row = {"id": new_id("bundle"), "name": body.name, "hash": "", "created_at": now()}
            tx.insert("bundles", bundle)
            for pos, e in enumerate(entries_in):
                tx.insert("bundle_entries", {"bundle_id": bundle["id"], "position": pos, "binary_id": e.binary_id,
                                             "custom_metadata": msgspec.json.encode(e.custom_metadata).decode()})  # fmt: skip
            view = _bundle_view(tx, bundle)
            bundle["hash"] = view["hash"] = bundle_hash(view["entries"])
            tx.run("UPDATE bundles SET hash = ? WHERE id = ?", [bundle["hash"], bundle["id"]])
            tx.event("create", "bundle", bundle["id"], None, view)
            return view

        return to(m.Bundle, await self.db.tx(actor, run))

    async def get_bundle(self, bundle_id: str) -> m.Bundle:
        check_id(bundle_id, "bundle", "bundle")
        return to(m.Bundle, await self.db.read(lambda tx: _bundle_view(tx, get_or_404(tx, "bundles", bundle_id, "bundle"))))

    async def list_bundles(
        self, limit: int, cursor: str | None, signing_key_id: str | None = None, name: str | None = None
    ) -> m.Page[m.Bundle]:
        signed_by = "id IN (SELECT bundle_id FROM bundle_signatures WHERE signing_key_id = ?)"
        conditions = [(signed_by, signing_key_id)] if signing_key_id else []
        equal = {"name": name} if name is not None else None

        def run(tx: Tx) -> m.Page[Row]:
            page = tx.page("bundles", limit, cursor, equal=equal, conditions=conditions)
            page.items = [_bundle_view(tx, r) for r in page.items]
            return page

        return page_of(m.Bundle, await self.db.read(run))

    async def add_bundle_signature(
        self, actor: str, bundle_id: str, key: m.SigningKey, signature_hex: str, message: str
    ) -> tuple[m.BundleSignature, bool]:
        """Stores a verified signature over the bundle hash; returns it and whether it is new."""
        key_fields = {"keyid": key.keyid, "algorithm": key.algorithm}

        def run(tx: Tx) -> tuple[Row, bool]:
            get_or_404(tx, "bundles", bundle_id, "bundle")
            # Checked again here: a key revoked after the signature was verified signs nothing.
            if get_or_404(tx, "signing_keys", key.id, "signing key")["state"] != "active":
                raise Invalid("the signing key is revoked", {"signing_key_id": ["revoked"]})
            sql = "SELECT * FROM bundle_signatures WHERE bundle_id = ? AND signing_key_id = ?"
            existing = tx.one(sql, [bundle_id, key.id])
            if existing:
                return {**existing, **key_fields}, False
            row: Row = {"id": new_id("signature"), "bundle_id": bundle_id, "signing_key_id": key.id,
                        "signature": signature_hex, "message": message, "created_at": now()}  # fmt: skip
            tx.insert("bundle_signatures", row)
            tx.event("sign", "bundle", bundle_id, None, {**row, "keyid": key.keyid})
            return {**row, **key_fields}, True

        row, created = await self.db.tx(actor, run)
        return to(m.BundleSignature, row), created

"""The replication queue: each binary's copy in each region is a ``replicas`` row (see
``ferryman.replication`` for its states). Rows are added for every binary with content
(``queue_replicas``), taken by any process under a lease (``claim_replicas``, renewed with
``renew_replica``), and settled by ``finish_replica``; a binary reset or destroyed marks its
rows ``deleting`` in the same transaction (``binaries.move``). A copy becoming or ceasing to be
verified can change an update check's answer, so those commits bump the generation."""

from __future__ import annotations

from collections.abc import Sequence

from ferryman.catalog import models as m
from ferryman.catalog.protocol import ReplicaJob
from ferryman.catalog.rules import check_id, later, now, to_time
from ferryman.catalog.sql.db import Database, Row, Tx, to
from ferryman.replication import QUEUED

__all__ = ["Replicas", "replicas_of"]

_WITH_CONTENT = "('signable', 'signed')"
_FIELDS = "binary_id, region, state, attempts, error, next_attempt_at, verified_at, updated_at"
FAILURES_SHOWN = 20
# The state a row is in while a worker holds each kind of job (``ReplicaJob.kind``).
_HELD = {"copy": "copying", "check": "checking", "delete": "deleting"}
_KIND = {state: kind for kind, state in _HELD.items()}


def replicas_of(tx: Tx, binary_ids: Sequence[str]) -> dict[str, list[Row]]:
    """The copies of these binaries, by binary, in region order."""
    found: dict[str, list[Row]] = {b: [] for b in binary_ids}
    for at in range(0, len(binary_ids), 500):
        batch = list(binary_ids[at : at + 500])
        marks = ",".join("?" * len(batch))
        for r in tx.all(f"SELECT {_FIELDS} FROM replicas WHERE binary_id IN ({marks}) ORDER BY region", batch):
            found[r.pop("binary_id")].append(r)
    return found


def mark_deleting(tx: Tx, binary_id: str) -> None:
    """The binary's content is gone (reset or destroyed): its copies are to be removed. A copy
    in progress keeps its lease, so the removal waits for it."""
    t = now()
    tx.run(
        "UPDATE replicas SET state = 'deleting', error = NULL, next_attempt_at = ?, updated_at = ? WHERE binary_id = ?",
        [t, t, binary_id],
    )


class Replicas:
    db: Database

    async def queue_replicas(self, regions: Sequence[str], binary_id: str | None = None) -> int:
        """Adds the missing copies of every binary with content (with ``binary_id``, of that
        one) in ``regions`` (primary first): the primary's as verified (hashing verified it
        there), the others' as pending. Returns how many were added."""

        def run(tx: Tx) -> int:
            t = now()
            only, args = (" AND b.id = ?", [binary_id]) if binary_id else ("", [])
            added = 0
            for i, region in enumerate(regions):
                state, verified_at = ("verified", t) if i == 0 else ("pending", None)
                added += tx.run(
                    "INSERT INTO replicas (binary_id, region, state, attempts, error, next_attempt_at, verified_at, "
                    "created_at, updated_at) SELECT b.id, ?, ?, 0, NULL, ?, ?, ?, ? FROM binaries b "
                    f"WHERE b.state IN {_WITH_CONTENT}{only} AND NOT EXISTS "
                    "(SELECT 1 FROM replicas r WHERE r.binary_id = b.id AND r.region = ?)",
                    [region, state, t, verified_at, t, t, *args, region],
                )
            return added

        # Only pending copies (and the primary's, verified already) are added: no answer changes.
        return await self.db.tx("", run, changes_answers=False)

    async def claim_replicas(self, worker: str, lease: float, regions: Sequence[str], limit: int) -> list[ReplicaJob]:
        """Takes up to ``limit`` due jobs in ``regions`` whose lease is free or expired for
        ``worker`` for ``lease`` seconds; a queued or failed copy becomes ``copying``."""

        def run(tx: Tx) -> list[ReplicaJob]:
            t = now()
            states = ",".join("?" * len(QUEUED))
            places = ",".join("?" * len(regions))
            rows = tx.all(
                f"SELECT binary_id, region, state, attempts FROM replicas WHERE state IN ({states}) "
                f"AND region IN ({places}) AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?) "
                f"ORDER BY next_attempt_at LIMIT ?{tx.skip_locked()}",
                [*QUEUED, *regions, t, t, limit],
            )
            until, jobs = later(lease), []
            for r in rows:
                state = "copying" if r["state"] in ("pending", "failed") else r["state"]
                taken = tx.run(
                    "UPDATE replicas SET state = ?, lease_owner = ?, lease_until = ?, updated_at = ? "
                    "WHERE binary_id = ? AND region = ? AND state = ? AND (lease_until IS NULL OR lease_until < ?)",
                    [state, worker, until, t, r["binary_id"], r["region"], r["state"], t],
                )
                if taken != 1:
                    continue
                b = tx.one("SELECT size, sha256 FROM binaries WHERE id = ?", [r["binary_id"]])
                assert b is not None
                jobs.append(ReplicaJob(r["binary_id"], r["region"], _KIND[state], b["size"], b["sha256"], r["attempts"]))
            return jobs

        return await self.db.tx("", run, changes_answers=False, durable=False)

    async def renew_replica(self, binary_id: str, region: str, worker: str, lease: float) -> bool:
        """Extends ``worker``'s lease on a job; false if it holds it no longer."""
        sql = "UPDATE replicas SET lease_until = ? WHERE binary_id = ? AND region = ? AND lease_owner = ?"
        return await self.db.tx("", lambda tx: tx.run(sql, [later(lease), binary_id, region, worker]), durable=False) == 1

    async def finish_replica(self, job: ReplicaJob, worker: str, outcome: str, error: str | None = None,
                             retry_in: float = 0.0) -> bool:  # fmt: skip
        """Settles a job ``worker`` holds: ``verified`` (copied or checked, and matching),
        ``failed`` (tried again in ``retry_in`` seconds), ``corrupt`` (a check found it missing
        or different: copied again at once) or ``deleted`` (the row goes). Only if the row is
        still in the state the job left it in (a binary reset meanwhile has moved it to
        ``deleting``); the lease ends either way. Returns whether it was settled."""
        held = _HELD[job.kind]

        def run(tx: Tx) -> bool:
            t = now()
            key = [job.binary_id, job.region, held, worker]
            where = " WHERE binary_id = ? AND region = ? AND state = ? AND lease_owner = ?"
            if outcome == "deleted":
                done = tx.run("DELETE FROM replicas" + where, key)
            else:
                state, attempts, verified_at, next_at = {
                    "verified": ("verified", 0, t, t),
                    "failed": ("failed", job.attempts + 1, None, later(retry_in)),
                    "corrupt": ("pending", job.attempts + 1, None, t),
                }[outcome]
                done = tx.run(
                    "UPDATE replicas SET state = ?, attempts = ?, error = ?, verified_at = COALESCE(?, verified_at), "
                    "next_attempt_at = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?" + where,
                    [state, attempts, error, verified_at, next_at, t, *key],
                )
            if done != 1:
                tx.run(
                    "UPDATE replicas SET lease_owner = NULL, lease_until = NULL WHERE binary_id = ? AND region = ? "
                    "AND lease_owner = ?",
                    [job.binary_id, job.region, worker],
                )
                return False
            if outcome != "verified" or job.kind == "copy":  # a check that passed is no news
                after = {"region": job.region, "outcome": outcome, "error": error, "attempts": job.attempts + 1}
                tx.event(f"replica:{outcome}", "binary", job.binary_id, None, after)
            return True

        # A copy that becomes verified, or a verified one found corrupt, can change answers.
        changes = (outcome == "verified" and job.kind == "copy") or outcome == "corrupt"
        return await self.db.tx("", run, changes_answers=changes)

    async def request_verify(self, actor: str, regions: Sequence[str]) -> int:
        """Queues every verified copy in ``regions`` to be read back and checked; how many."""

        def run(tx: Tx) -> int:
            t = now()
            places = ",".join("?" * len(regions))
            n = tx.run(
                f"UPDATE replicas SET state = 'checking', next_attempt_at = ?, updated_at = ? "
                f"WHERE state = 'verified' AND region IN ({places})",
                [t, t, *regions],
            )
            tx.event("verify", "replication", "replication", None, {"regions": list(regions), "queued": n})
            return n

        return await self.db.tx(actor, run, changes_answers=False)

    async def replication_status(self, regions: Sequence[str]) -> dict[str, tuple[dict[str, int], float, list[m.ReplicaFailure]]]:
        """Per region: copies by state, the wait of the oldest copy not verified yet (seconds),
        and the most recent failures."""

        def run(tx: Tx) -> dict[str, tuple[dict[str, int], float, list[Row]]]:
            out = {}
            t = to_time(now())
            assert t is not None
            for region in regions:
                counts = {r["state"]: r["n"] for r in tx.all(
                    "SELECT state, count(*) AS n FROM replicas WHERE region = ? GROUP BY state", [region])}  # fmt: skip
                oldest = tx.one(
                    "SELECT min(created_at) AS t FROM replicas WHERE region = ? AND state IN ('pending', 'copying', 'failed')",
                    [region],
                )
                since = to_time(oldest["t"]) if oldest else None
                lag = (t - since).total_seconds() if since else 0.0
                failures = tx.all(
                    "SELECT binary_id, attempts, error, next_attempt_at FROM replicas WHERE region = ? AND state = 'failed' "
                    f"ORDER BY updated_at DESC LIMIT {FAILURES_SHOWN}",
                    [region],
                )
                out[region] = (counts, lag, failures)
            return out

        found = await self.db.read(run)
        return {r: (c, lag, [to(m.ReplicaFailure, f) for f in fs]) for r, (c, lag, fs) in found.items()}

    async def replica_states(self, binary_id: str) -> dict[str, str]:
        """A binary's copies: region → state."""
        check_id(binary_id, "binary", "binary")
        rows = await self.db.read(lambda tx: tx.all("SELECT region, state FROM replicas WHERE binary_id = ?", [binary_id]))
        return {r["region"]: r["state"] for r in rows}

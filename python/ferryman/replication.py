"""Replication decisions, as pure functions: which regions hold a copy a device may be sent to,
which region serves a device and which one a copy is taken from, and how long a failed job
waits before it is tried again. The queue itself is in the catalog (``replicas`` rows), the
work in ``services/replication.py``.

A copy's state, per binary and region: ``pending`` (queued), ``copying`` (a process holds it),
``verified`` (its bytes matched the binary's SHA-256 when written or last checked), ``checking``
(verified, queued to be read back by ``replication verify``), ``failed`` (the last attempt
failed; retried after a backoff), ``deleting`` (the binary was destroyed or reset: the copy is
removed, then the row).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

__all__ = ["QUEUED", "SERVED", "retry_delay", "serve_from", "source_for", "verified_regions"]

SERVED = frozenset({"verified", "checking"})
# Rows a worker may take: "copying" only once its lease has run out (its process died).
QUEUED = ("pending", "failed", "copying", "checking", "deleting")
# The primary copy is verified by hashing; it stops counting only when a check found it
# missing or different and it waits for (or is in) its repair.
_BROKEN = frozenset({"pending", "copying", "failed"})
RETRY_BASE = 2.0  # seconds before the first retry
RETRY_MAX = 600.0


def verified_regions(replicas: Mapping[str, str], primary: str) -> frozenset[str]:
    """The regions with a verified copy of a servable binary, from its copies' states by region.
    The primary region counts unless its copy is known broken: hashing verified the bytes there
    before the binary became servable, whether or not its row exists yet."""
    have = {region for region, state in replicas.items() if state in SERVED}
    if replicas.get(primary) not in _BROKEN:
        have.add(primary)
    return frozenset(have)


def serve_from(preferred: str | None, order: Sequence[str], verified: frozenset[str],
               healthy: Callable[[str], bool]) -> str | None:  # fmt: skip
    """The region a download is served from: the preferred one if its copy is verified and its
    store healthy, else the first such in ``order`` (primary first). If no store with a verified
    copy is healthy, the nearest verified copy all the same (a failed check may be stale; an
    unverified copy never). None: no verified copy anywhere."""
    candidates = [r for r in (preferred, *order) if r is not None and r in verified]
    for region in candidates:
        if healthy(region):
            return region
    return candidates[0] if candidates else None


def source_for(target: str, order: Sequence[str], verified: frozenset[str], healthy: Callable[[str], bool]) -> str | None:
    """The region a copy into ``target`` is read from: the first other region (primary first)
    with a verified copy and a healthy store; None if there is none now."""
    for region in order:
        if region != target and region in verified and healthy(region):
            return region
    return None


def retry_delay(attempts: int, jitter: float, cap: float = RETRY_MAX) -> float:
    """Seconds before attempt ``attempts + 1`` of a job that failed ``attempts`` times:
    doubling from RETRY_BASE up to ``cap``, scaled by ``jitter`` in [0, 1) to 50 to 100% so
    that jobs failed together do not retry together."""
    delay = min(cap, RETRY_BASE * 2.0 ** min(max(attempts - 1, 0), 16))
    return delay * (0.5 + jitter / 2)

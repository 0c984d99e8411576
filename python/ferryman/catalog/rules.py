"""Rules of the catalog that every backend applies the same way: ID shapes, token hashing,
times, phases, version requirements, version order and the bundle hash. Pure functions; no
storage here."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec
import semver

from ferryman.catalog import models as m
from ferryman.errors import Invalid, NotFound
from ferryman.ids import is_id
from ferryman.parsing import parse_rfc3339

__all__ = [
    "bundle_hash", "check_id", "hash_token", "later", "now", "parse_time", "phase", "requirement", "to_time",
    "version_order",
]  # fmt: skip

T = TypeVar("T")

_second: tuple[int, str] = (0, "")


def now() -> str:
    """The current time, RFC 3339 UTC with microseconds (text order is time order)."""
    global _second
    t = time.time_ns()
    sec, us = divmod(t // 1000, 1_000_000)
    if sec != _second[0]:  # formatting the seconds once per second keeps this cheap
        _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{_second[1]}.{us:06d}Z"


def later(seconds: float) -> str:
    """The time ``seconds`` from now, formatted as ``now()`` formats it (so they compare as text)."""
    t = time.time() + seconds
    sec, us = divmod(round(t * 1_000_000), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{us:06d}Z"


def to_time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def hash_token(token: str) -> str:
    """Tokens are stored as their SHA-256 (they are 256-bit random, so no salt or KDF is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_id(value: str, kind: str, what: str, field: str | None = None) -> None:
    """Refuses a malformed ID before it reaches a query: 404, or 422 naming ``field`` when the
    ID is a reference inside a request body."""
    if not is_id(value, kind):
        if field:
            raise Invalid(f"no {what} {value!r}", {field: [f"unknown {what}"]})
        raise NotFound(f"no {what} {value!r}")


def parse_time(value: str | None, field: str) -> str | None:
    """An RFC 3339 time, normalised to UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (so text order is
    time order)."""
    if value is None:
        return None
    t = parse_rfc3339(value)
    if t is None:
        raise Invalid(f"{field} is not an RFC 3339 time", {field: ["RFC 3339 with a zone, e.g. 2026-01-31T12:00:00Z"]})
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def phase(body: m.PhaseIn | None) -> dict[str, Any] | None:
    """A release phase as stored: percent (0..1), count (whole, >= 1) or tags (non-empty)."""
    if body is None:
        return None
    if body.mode == "percent":
        if body.value is None or not 0 <= body.value <= 1 or body.tags is not None:
            raise Invalid("a percent phase has a value from 0 to 1", {"phase": ["value: 0..1"]})
        return {"mode": "percent", "value": float(body.value)}
    if body.mode == "count":
        if body.value is None or body.value != int(body.value) or body.value < 1 or body.tags is not None:
            raise Invalid("a count phase has a whole value of at least 1", {"phase": ["value: integer >= 1"]})
        return {"mode": "count", "value": int(body.value)}
    if not body.tags or body.value is not None:
        raise Invalid("a tags phase lists at least one tag", {"phase": ["tags: non-empty list"]})
    return {"mode": "tags", "tags": sorted(set(body.tags))}


def halt(body: m.HaltIn | None) -> dict[str, Any] | None:
    """A release's halt rule as stored (``ferryman.rollouts.HaltRule``): at least one bound;
    ``min_reports`` only with a failure rate."""
    if body is None:
        return None
    if body.max_failure_rate is None and body.max_failures is None:
        raise Invalid("a halt rule needs max_failure_rate or max_failures", {"halt": ["no bound given"]})
    if body.min_reports is not None and body.max_failure_rate is None:
        raise Invalid("min_reports applies to max_failure_rate", {"halt.min_reports": ["needs max_failure_rate"]})
    return {k: v for k, v in (("max_failure_rate", body.max_failure_rate), ("min_reports", body.min_reports),
                              ("max_failures", body.max_failures)) if v is not None}  # fmt: skip


def advance(steps: list[m.AdvanceStep] | None) -> list[dict[str, Any]] | None:
    """Scheduled phase steps as stored, in time order (each time once)."""
    if not steps:
        return None
    out = sorted(({"at": parse_time(s.at, "advance.at") or "", "phase": phase(s.phase)} for s in steps),
                 key=lambda s: str(s["at"]))  # fmt: skip
    if len({s["at"] for s in out}) != len(out):
        raise Invalid("two advance steps at one time", {"advance": ["times must differ"]})
    return out


def requirement(text: str | None) -> str | None:
    """A SemVer requirement (``>=1.2.0,<2.0.0``), normalised; 422 if it does not parse."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        for p in parts:
            if not p or p[0] not in "<>=!":
                raise ValueError(p)
            semver.Version(0).match(p)
    except ValueError:
        raise Invalid(
            f"version_requirement {text!r} is not a SemVer requirement",
            {"version_requirement": ["comparisons like >=1.2.0,<2.0.0"]},
        ) from None
    return ",".join(parts)


def check_semver(version: str | None) -> None:
    if version is not None and not semver.Version.is_valid(version):
        raise Invalid(f"version {version!r} is not SemVer", {"version": ["SemVer 2.0, e.g. 1.4.0"]})


def version_order(items: Iterable[T], version: Callable[[T], str], is_semver: Callable[[T], bool],
                  created: Callable[[T], str]) -> list[T]:  # fmt: skip
    """SemVer precedence (pre-releases first), then non-SemVer strings by creation time."""
    items = list(items)
    semvers = sorted((i for i in items if is_semver(i)), key=lambda i: semver.Version.parse(version(i)))
    others = sorted((i for i in items if not is_semver(i)), key=created)
    return semvers + others


def bundle_hash(entries: list[dict[str, Any]]) -> str:
    """SHA-256 (hex) of the canonical JSON of the ordered entries: ``{"entries": [{"artifact",
    "custom_metadata", "sha256", "size", "target", "version"}, ...]}`` with keys sorted, no
    whitespace (separators ``,`` and ``:``), UTF-8, non-ASCII characters unescaped."""
    doc = {
        "entries": [{k: e[k] for k in ("artifact", "custom_metadata", "sha256", "size", "target", "version")} for e in entries]
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def encode_offset(n: int) -> str:
    """A cursor that is an offset into an ordered list (versions are ordered by SemVer)."""
    return msgspec.json.encode({"o": n}).hex()


def decode_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        n = msgspec.json.decode(bytes.fromhex(cursor))["o"]
    except (ValueError, KeyError, TypeError, msgspec.DecodeError):
        raise Invalid("malformed cursor", {"cursor": ["not a cursor this server issued"]}) from None
    if not isinstance(n, int) or n < 0:
        raise Invalid("malformed cursor", {"cursor": ["not a cursor this server issued"]})
    return n

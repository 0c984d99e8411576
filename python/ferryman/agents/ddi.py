"""hawkBit's Direct Device Integration (DDI) API: its documents and the rules for reading what
devices send. Pure; ``server/handlers/ddi.py`` does the HTTP.

Facts from running SWUpdate's suricatta against it (``DEVICE-AGENTS.md``): the polling sleep must
be ``HH:MM:SS`` or the whole answer is discarded; links are used verbatim, so they are absolute
and built from the public URL; a ``download`` link (HTTPS) is preferred over ``download-http``,
so only the one matching the scheme actually served is given; feedback is loosely typed (``id``
an integer, ``time`` local and zoneless), so only the fields that decide anything are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ferryman.catalog import ServedBinary
from ferryman.catalog import models as m

__all__ = [
    "CancelFeedback",
    "ConfigData",
    "Feedback",
    "cancel_doc",
    "deployment_doc",
    "feedback_outcome",
    "poll_doc",
    "sleep_text",
]

MAX_SLEEP = 24 * 3600 - 1  # hawkBit's bound, and what HH:MM:SS holds in a day


class _Result(msgspec.Struct):
    finished: str = "none"


class _Status(msgspec.Struct):
    execution: str
    result: _Result = msgspec.field(default_factory=_Result)
    details: list[Any] = []


class Feedback(msgspec.Struct):
    """A device's action feedback; ``id`` and ``time`` arrive in whatever form the agent writes
    them (read, never trusted)."""

    status: _Status
    id: int | str | None = None
    time: Any = None


CancelFeedback = Feedback


class ConfigData(msgspec.Struct):
    """``PUT …/configData``: attributes, merged into what the device sent before unless
    ``mode`` is ``replace`` (``remove`` drops the keys named)."""

    data: dict[str, Any]
    mode: str = "merge"


def sleep_text(seconds: float) -> str:
    """A polling interval as hawkBit writes it, ``HH:MM:SS``, within 1 s and a day."""
    s = int(min(max(seconds, 1), MAX_SLEEP))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def feedback_outcome(fb: Feedback) -> tuple[m.ReportStatus | None, str | None]:
    """What a feedback means for the device's report and its action: the report status (None:
    nothing worth reporting) and, when the device closed the action, its result (``success``
    only when it says it finished successfully)."""
    execution, finished = fb.status.execution.lower(), fb.status.result.finished.lower()
    if execution == "closed":
        return ("installed", "success") if finished == "success" else ("failed", "failure")
    if execution == "download":
        return "downloading", None
    if execution in ("proceeding", "downloaded"):
        return "installing", None
    return None, None  # scheduled, resumed, rejected, canceled: nothing changes


def details_text(fb: Feedback, limit: int = 2000) -> str | None:
    """The feedback's details, as one line of text, for the report's detail."""
    text = "; ".join(str(d) for d in fb.status.details if d not in (None, ""))
    return text[:limit] or None


def poll_doc(base: str, sleep: float, step_link: tuple[str, int] | None, config_wanted: bool) -> dict[str, Any]:
    """The root poll's answer. ``base``: the controller's absolute URL; ``step_link``:
    (``deploymentBase`` or ``cancelAction``, action ID) when one is due."""
    links: dict[str, Any] = {}
    if step_link is not None:
        kind, action_id = step_link
        # deploymentBase carries a cache-buster that changes with the action, as hawkBit's does;
        # cancelAction must not: suricatta appends "/feedback" to that link as it is.
        query = f"?c={action_id}" if kind == "deploymentBase" else ""
        links[kind] = {"href": f"{base}/{kind}/{action_id}{query}"}
    if config_wanted:
        links["configData"] = {"href": f"{base}/configData"}
    doc: dict[str, Any] = {"config": {"polling": {"sleep": sleep_text(sleep)}}}
    if links:
        doc["_links"] = links
    return doc


def deployment_doc(
    action_id: int, entries: Sequence[ServedBinary], urls: Sequence[str], forced: bool, history: str = "RUNNING"
) -> dict[str, Any]:
    """``deploymentBase/{id}``: one chunk per binary the device gets, each with its one
    artifact (file name, SHA-1, MD5, SHA-256, size, and its download link, ``download`` for an
    HTTPS URL else ``download-http``)."""
    chunks = []
    for e, url in zip(entries, urls, strict=True):
        link = "download" if url.startswith("https:") else "download-http"
        artifact = {
            "filename": e.filename or f"{e.artifact}-{e.version}",
            "hashes": {"sha1": e.sha1 or "", "md5": e.md5 or "", "sha256": e.sha256},
            "size": e.size,
            "_links": {link: {"href": url}},
        }
        part = e.custom_metadata.get("part")
        chunks.append({"part": part if isinstance(part, str) else "os", "version": e.version, "name": e.artifact,
                       "artifacts": [artifact]})  # fmt: skip
    mode = "forced" if forced else "attempt"
    return {
        "id": str(action_id),
        "deployment": {"download": mode, "update": mode, "chunks": chunks},
        "actionHistory": {"status": history, "messages": []},
    }


def cancel_doc(action_id: int) -> dict[str, Any]:
    return {"id": str(action_id), "cancelAction": {"stopId": str(action_id)}}

"""A release's phase in words, for people (the CLI's tables and the console's pages)."""

from __future__ import annotations

from typing import Any

__all__ = ["phase_words"]


def phase_words(p: dict[str, Any] | None) -> str:
    """A release's phase as the API holds it, in words: who is offered the release."""
    if p is None:
        return "every device"
    if p["mode"] == "percent":
        return f"{p['value']:.0%} of devices"
    if p["mode"] == "count":
        return f"the first {int(p['value'])} devices"
    return "devices tagged " + ",".join(p["tags"])

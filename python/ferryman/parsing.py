"""Parsing numbers and times from untrusted text: ASCII only, bounded in length, and never an
exception other than the caller's own error.

``str.isdigit`` is not enough for numbers: it accepts digits that ``int`` refuses (``²``), while
``int`` accepts other scripts' digits, underscores and surrounding blanks, and refuses numbers of
more than 4,300 digits. Times: ``datetime.fromisoformat`` accepts far more than RFC 3339 and
overflows at the ends of its range."""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["parse_int", "parse_rfc3339"]

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)", re.ASCII)


def parse_int(text: str, max_digits: int) -> int | None:
    """``text`` as a whole number if it is 1 to ``max_digits`` ASCII digits, else None."""
    # The length first: isdigit is never asked about a huge text ("" is not digits either).
    if len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def parse_rfc3339(text: str) -> dt.datetime | None:
    """An RFC 3339 date-time with its offset, in UTC; None if ``text`` is not one or is out of
    the representable range."""
    if not _RFC3339.fullmatch(text):
        return None
    # Python (3.11 on) takes any number of fraction digits and keeps the first six.
    try:
        return dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None

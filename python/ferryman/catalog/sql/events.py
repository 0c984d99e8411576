"""The audit log (written by every change through ``Tx.event``; read here)."""

from __future__ import annotations

from collections.abc import Mapping

from ferryman.catalog import models as m
from ferryman.catalog.rules import parse_time
from ferryman.catalog.sql.db import Database, Row, Tx, loads_fields, page_of

__all__ = ["Events"]


class Events:
    db: Database

    async def list_events(
        self, limit: int, cursor: str | None, filters: Mapping[str, str], newest_first: bool = False
    ) -> m.Page[m.Event]:
        equal: dict[str, str] = {c: filters[c] for c in ("resource_id", "resource_type", "action", "actor") if c in filters}
        # Times are stored normalised (text order is time order), so bounds compare as text.
        bounds = [(sql, parse_time(filters[c], c)) for c, sql in (("since", "at >= ?"), ("until", "at < ?")) if c in filters]

        def run(tx: Tx) -> m.Page[Row]:
            page = tx.page("events", limit, cursor, equal=equal, conditions=bounds, key=("at", "id"), descending=newest_first)
            page.items = [loads_fields(r, ("before", "after")) for r in page.items]
            return page

        return page_of(m.Event, await self.db.read(run))

"""A channel's release graph laid out for drawing: every release in a column of its own, each
after the releases that lead to it, so the latest is last (rightmost); a release's newest
predecessor continues its row, older ones branch into rows of their own below."""

from __future__ import annotations

from dataclasses import dataclass

from ferryman.catalog import models as m

__all__ = ["Edge", "Node", "layout"]


@dataclass(frozen=True)
class Node:
    release: m.Release
    column: int
    row: int


@dataclass(frozen=True)
class Edge:
    source: Node  # a release
    target: Node  # the release it leads to


def layout(releases: list[m.Release]) -> tuple[list[Node], list[Edge]]:
    """The nodes in column order and the edges between them (a channel's graph has one sink,
    the latest; releases pointing outside the list are drawn as their own sinks)."""
    ids = {r.id for r in releases}
    before: dict[str | None, list[m.Release]] = {}
    for r in sorted(releases, key=lambda r: (r.created_at, r.id)):
        before.setdefault(r.next_release_id if r.next_release_id in ids else None, []).append(r)
    rows: dict[str, int] = {}
    order: list[m.Release] = []
    last_row = -1

    def new_row() -> int:
        nonlocal last_row
        last_row += 1
        return last_row

    def place(r: m.Release, row: int) -> None:
        rows[r.id] = row
        preds = before.get(r.id, [])
        for p in preds[:-1]:  # older ones branch off below
            place(p, new_row())
        for p in preds[-1:]:  # the newest: the main line goes on in this row
            place(p, row)
        order.append(r)

    for sink in before.get(None, []):
        place(sink, new_row())
    nodes = {r.id: Node(r, column, rows[r.id]) for column, r in enumerate(order)}
    edges = [Edge(nodes[r.id], nodes[r.next_release_id]) for r in order if r.next_release_id in nodes]
    return [nodes[r.id] for r in order], edges

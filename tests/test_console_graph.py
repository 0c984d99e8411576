"""The channel graph's layout: columns in the order devices move, the latest last, branches
in rows of their own."""

from __future__ import annotations

from ferryman.catalog import models as m
from ferryman.console.graph import layout


def release(id_: str, next_id: str | None, created: str) -> m.Release:
    return m.Release(id=id_, channel_id="chn", name=id_, bundle_id="bun", version=None, version_requirement=None,
                     next_release_id=next_id, required=False, disabled=False, schedule_at=None, phase=None, claimed=0,
                     created_at=created, updated_at=created)  # fmt: skip


def placed(releases: list[m.Release]) -> tuple[list[tuple[str, int, int]], list[tuple[str, str]]]:
    nodes, edges = layout(releases)
    return [(n.release.id, n.column, n.row) for n in nodes], [(e.source.release.id, e.target.release.id) for e in edges]


def test_a_chain_is_one_row_latest_last():
    chain = [release("v3", None, "3"), release("v1", "v2", "1"), release("v2", "v3", "2")]
    assert placed(chain) == ([("v1", 0, 0), ("v2", 1, 0), ("v3", 2, 0)], [("v1", "v2"), ("v2", "v3")])


def test_older_predecessors_branch_below_the_main_line():
    # v1 -> v2 -> v3 (the main line), v2b -> v3 (older than v2), x -> v2b, y -> v2b (newer than x).
    graph = [
        release("v3", None, "4"), release("v2", "v3", "3"), release("v1", "v2", "1"), release("v2b", "v3", "2"),
        release("x", "v2b", "5"), release("y", "v2b", "6"),
    ]  # fmt: skip
    nodes, edges = placed(graph)
    assert nodes == [("x", 0, 2), ("y", 1, 1), ("v2b", 2, 1), ("v1", 3, 0), ("v2", 4, 0), ("v3", 5, 0)]
    assert sorted(edges) == [("v1", "v2"), ("v2", "v3"), ("v2b", "v3"), ("x", "v2b"), ("y", "v2b")]


def test_ties_in_time_are_broken_by_id_and_strays_are_their_own_sinks():
    graph = [release("b", "z", "1"), release("a", "z", "1"), release("z", None, "0"), release("s", "gone", "2")]
    nodes, edges = placed(graph)
    assert nodes == [("a", 0, 1), ("b", 1, 0), ("z", 2, 0), ("s", 3, 2)]
    assert sorted(edges) == [("a", "z"), ("b", "z")]
    assert layout([]) == ([], [])


def test_nodes_and_edges_do_not_change():
    import dataclasses

    import pytest

    nodes, edges = layout([release("a", "b", "1"), release("b", None, "2")])
    with pytest.raises(dataclasses.FrozenInstanceError):
        nodes[0].row = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        edges[0].target = nodes[0]  # type: ignore[misc]

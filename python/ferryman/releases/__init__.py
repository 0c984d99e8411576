"""Release channels: the graph rules (``graph``) and update resolution (``resolution``). Both
are pure: plain data in, decisions out, no HTTP and no SQL."""

from ferryman.releases.graph import GraphError, check_graph, insert_release
from ferryman.releases.resolution import (
    CountPhase,
    Decision,
    Device,
    Override,
    PercentPhase,
    Release,
    Reported,
    TagsPhase,
    in_percent,
    resolve,
)

__all__ = [
    "CountPhase",
    "Decision",
    "Device",
    "GraphError",
    "Override",
    "PercentPhase",
    "Release",
    "Reported",
    "TagsPhase",
    "check_graph",
    "in_percent",
    "insert_release",
    "resolve",
]

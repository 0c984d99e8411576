"""Update resolution and graph rules, table-driven over hand-drawn channel graphs."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from ferryman.releases import (
    CountPhase,
    Device,
    GraphError,
    Override,
    PercentPhase,
    Release,
    Reported,
    TagsPhase,
    check_graph,
    in_percent,
    insert_release,
    resolve,
)

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DEV = Device("dev_1", "aarch64-linux-gnu", frozenset({"lab"}))


def chain(spec: str, **attrs: dict) -> dict[str, Release]:
    """'a>b>c' -> a.next=b, b.next=c; several chains separated by spaces merge ('x>b' too).
    Bundle of release r is 'B' + r; creation order follows first appearance."""
    out: dict[str, Release] = {}
    order: list[str] = []
    for path in spec.split():
        names = path.split(">")
        for i, n in enumerate(names):
            if n not in out:
                order.append(n)
                out[n] = Release(
                    n, "B" + n, created_at=f"2026-01-01T00:00:{len(order):02d}Z", version=attrs.get(n, {}).get("version")
                )
            if i + 1 < len(names):
                out[n] = replace(out[n], next_id=names[i + 1])
    for n, a in attrs.items():
        out[n] = replace(out[n], **a)
    check_graph(out)
    return out


NOTHING = Reported()


def decide(graph, reported=NOTHING, device=DEV, overrides=(), servable=lambda b: True, claimed=frozenset(), now=NOW,
           replicated=lambda b: True):  # fmt: skip
    return resolve(device, reported, graph, list(overrides), now, servable, claimed, replicated)


LINEAR = "a>b>c>d"


@pytest.mark.parametrize(
    ("spec", "attrs", "reported", "want_release", "reason"),
    [
        # Linear: from each release to the latest.
        (LINEAR, {}, Reported(release_id="a"), "d", "release"),
        (LINEAR, {}, Reported(release_id="c"), "d", "release"),
        (LINEAR, {}, Reported(release_id="d", bundle_id="Bd"), "d", "at_latest"),
        # A fresh device enters at the latest.
        (LINEAR, {}, Reported(), "d", "release"),
        # Required releases stop the walk.
        (LINEAR, {"b": {"required": True}}, Reported(release_id="a"), "b", "release"),
        (LINEAR, {"b": {"required": True}}, Reported(release_id="b"), "d", "release"),
        (LINEAR, {"c": {"required": True}}, Reported(release_id="a"), "c", "release"),
        # Disabled releases are skipped going back (never past the first candidate).
        (LINEAR, {"d": {"disabled": True}}, Reported(release_id="a"), "c", "release"),
        (LINEAR, {"c": {"disabled": True}, "d": {"disabled": True}}, Reported(release_id="b"), None, "none_selectable"),
        # Scheduled in the future: not yet.
        (LINEAR, {"d": {"schedule_at": NOW + HOUR}}, Reported(release_id="a"), "c", "release"),
        (LINEAR, {"d": {"schedule_at": NOW - HOUR}}, Reported(release_id="a"), "d", "release"),
        # Tags phase.
        (LINEAR, {"d": {"phase": TagsPhase(frozenset({"lab"}))}}, Reported(release_id="a"), "d", "release"),
        (LINEAR, {"d": {"phase": TagsPhase(frozenset({"canary"}))}}, Reported(release_id="a"), "c", "release"),
        # Count phase: claimable while not full, or already claimed by this device.
        (LINEAR, {"d": {"phase": CountPhase(2, claimed=1)}}, Reported(release_id="a"), "d", "release"),
        (LINEAR, {"d": {"phase": CountPhase(2, claimed=2)}}, Reported(release_id="a"), "c", "release"),
        # Unknown reported IDs fall back to the bundle, then to the version, then to the latest.
        (LINEAR, {}, Reported(release_id="rel_unknown", bundle_id="Bb"), "d", "release"),
        (LINEAR, {}, Reported(release_id="rel_other_channel"), "d", "release"),
        # Merging channel: two branches into c.
        ("a>b>c>d x>y>c", {}, Reported(release_id="y"), "d", "release"),
        ("a>b>c>d x>y>c", {"c": {"required": True}}, Reported(release_id="x"), "c", "release"),
    ],
)
def test_resolution_table(spec, attrs, reported, want_release, reason):
    d = decide(chain(spec, **attrs), reported)
    assert d.reason == reason, d
    if want_release is None:
        assert d.release is None and d.status == "no_update"
    else:
        assert d.release is not None and d.release.id == want_release
        assert d.status == ("update" if reason == "release" else "no_update")


def test_version_requirement_entry():
    g = chain(
        "a>b>c",
        a={"version": "1.0.0", "version_requirement": ">=0.1.0,<1.0.0"},
        b={"version": "2.0.0", "version_requirement": ">=1.0.0,<2.0.0", "required": True},
        c={"version": "3.0.0", "version_requirement": ">=2.0.0"},
    )
    # 0.5 enters at a; required b stops the walk, but b wants >=1.0.0, so back to a.
    assert decide(g, Reported(version="0.5.0")).release.id == "a"
    assert decide(g, Reported(version="1.4.2")).release.id == "b"
    assert decide(g, Reported(version="2.1.0")).release.id == "c"
    # Version requirement not met on the way back: a 0.5 device cannot take c directly.
    g2 = chain(
        "a>b", a={"version": "1.0.0", "version_requirement": ">=0.1.0"}, b={"version": "2.0.0", "version_requirement": ">=1.0.0"}
    )
    assert decide(g2, Reported(version="0.5.0")).release.id == "a"


def test_entering_at_latest_follows_most_recent_predecessor():
    g = chain("a>c x>c", c={"disabled": True})  # x created after a
    assert decide(g).release.id == "x"


def test_percent_phase_is_stable_and_proportional():
    g = chain(LINEAR, d={"phase": PercentPhase(0.2)})
    devices = [Device(f"dev_{i}", "aarch64-linux-gnu") for i in range(2000)]
    first = [decide(g, Reported(release_id="a"), device=dv).release.id for dv in devices]
    again = [decide(g, Reported(release_id="a"), device=dv).release.id for dv in devices]
    assert first == again
    share = first.count("d") / len(first)
    assert 0.16 < share < 0.24
    assert all(in_percent(dv.id, "d", 1.0) for dv in devices)
    assert not any(in_percent(dv.id, "d", 0.0) for dv in devices)


def test_count_phase_claims():
    g = chain(LINEAR, d={"phase": CountPhase(1)})
    d = decide(g, Reported(release_id="a"))
    assert d.release.id == "d" and d.claim == "d"
    full = chain(LINEAR, d={"phase": CountPhase(1, claimed=1)})
    assert decide(full, Reported(release_id="a"), claimed=frozenset({"d"})).claim is None
    assert decide(full, Reported(release_id="a"), claimed=frozenset({"d"})).release.id == "d"


def test_overrides_start_and_end():
    g = chain(LINEAR)
    o1 = Override("ovr_1", "Bspecial", NOW - 2 * HOUR, NOW + HOUR)
    o2 = Override("ovr_2", "Bnewer", NOW - HOUR, None)
    expired = Override("ovr_0", "Bold", NOW - 3 * HOUR, NOW - HOUR)
    future = Override("ovr_3", "Bfuture", NOW + HOUR, None)
    d = decide(g, overrides=[o1, o2, expired, future])
    assert (d.status, d.source, d.bundle_id) == ("update", "override", "Bnewer")
    assert decide(g, Reported(bundle_id="Bnewer"), overrides=[o2]).reason == "override_current"
    assert decide(g, overrides=[expired, future]).source == "release"
    assert decide(g, overrides=[o1], servable=lambda b: b != "Bspecial").reason == "override_bundle_not_servable"


def test_quarantine_and_no_channel():
    assert decide(chain(LINEAR), device=replace(DEV, quarantined=True)).status == "quarantined"
    assert decide(None).reason == "no_channel"
    assert decide({}).reason == "channel_empty"


def test_unsigned_or_destroyed_bundle_is_not_served():
    d = decide(chain(LINEAR), Reported(release_id="a"), servable=lambda b: b != "Bd")
    assert (d.status, d.reason, d.release.id) == ("no_update", "bundle_not_servable", "d")


@pytest.mark.parametrize(("require", "replicated", "want"), [
    (None, False, ("no_update", "bundle_not_replicated")),  # required by default
    (True, False, ("no_update", "bundle_not_replicated")),
    (False, False, ("update", "release")),  # waived
    (None, True, ("update", "release")),
    (True, True, ("update", "release")),
])  # fmt: skip
def test_a_release_waits_for_its_bundle_to_be_replicated_unless_it_waives_it(require, replicated, want):
    g = chain(LINEAR, d={"require_replicated": require})
    d = decide(g, Reported(release_id="c", bundle_id="Bc"), replicated=lambda b: replicated or b != "Bd")
    assert (d.status, d.reason, d.release.id, d.bundle_id) == (*want, "d", "Bd")
    # Without a say on copies (one region), nothing waits for them.
    assert resolve(DEV, Reported(release_id="c", bundle_id="Bc"), g, [], NOW, lambda b: True).reason == "release"
    # Only the chosen release's bundle is asked about; an override never waits.
    assert decide(g, overrides=[Override("ovr_1", "Bx", NOW - HOUR)], replicated=lambda b: False).status == "update"


def test_current_bundle_is_no_update():
    g = chain(LINEAR, d={"bundle_id": "Bc"})  # a rollback-style latest pointing at c's bundle
    d = decide(g, Reported(release_id="c", bundle_id="Bc"))
    assert (d.status, d.reason) == ("no_update", "current")


# Graph rules.


def test_graph_rules_refuse_and_change_nothing():
    g = chain("a>b>c")
    with pytest.raises(GraphError, match="exactly one latest"):
        check_graph({**g, "x": Release("x", "Bx", "z")})
    with pytest.raises(GraphError, match="cycle"):
        check_graph({**g, "x": Release("x", "Bx", "z", next_id="y"), "y": Release("y", "By", "z", next_id="x")})
    with pytest.raises(GraphError, match="only the latest"):
        check_graph({**g, "b": replace(g["b"], phase=PercentPhase(0.5))})
    with pytest.raises(GraphError, match="not in this channel"):
        check_graph({**g, "c": replace(g["c"], next_id="zzz")})
    # A refused insertion leaves the graph it was given as it was.
    phased = {**g, "c": replace(g["c"], phase=PercentPhase(0.1))}
    before = dict(phased)
    with pytest.raises(GraphError, match="phased or scheduled"):
        insert_release(phased, Release("d", "Bd", "t"), NOW)
    assert phased == before
    scheduled = {**g, "c": replace(g["c"], schedule_at=NOW + HOUR)}
    before = dict(scheduled)
    with pytest.raises(GraphError, match="phased or scheduled"):
        insert_release(scheduled, Release("d", "Bd", "t"), NOW)
    assert scheduled == before


def test_insertions():
    g = chain("a>b>c")
    appended = insert_release(g, Release("d", "Bd", "t"), NOW)
    assert appended["c"].next_id == "d" and appended["d"].next_id is None
    before = insert_release(g, Release("x", "Bx", "t", next_id="c"), NOW)  # a merging branch
    assert before["x"].next_id == "c" and before["b"].next_id == "c"
    between = insert_release(g, Release("m", "Bm", "t", next_id="c"), NOW, previous_id="b")
    assert between["b"].next_id == "m" and between["m"].next_id == "c"
    with pytest.raises(GraphError, match="not directly before"):
        insert_release(g, Release("m", "Bm", "t", next_id="c"), NOW, previous_id="a")
    with pytest.raises(GraphError):
        insert_release(g, Release("m", "Bm", "t"), NOW, previous_id="a")
    first = insert_release({}, Release("a", "Ba", "t"), NOW)
    assert first["a"].next_id is None

"""Decision rules stated whole, so that a one-token change to any of them fails a test: the
binary lifecycle table, the edges of resolution (entry by version, unparseable versions,
schedule and override boundaries), grant expiry, and the authentication scheme."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest
from apiclient import ADMIN, Api
from test_releases import NOW, chain, decide

from ferryman import grants
from ferryman.errors import Forbidden, InvalidTransition
from ferryman.lifecycle import State, allowed, check_client_transition, check_server_transition
from ferryman.releases import (
    CountPhase,
    Decision,
    Device,
    GraphError,
    Override,
    PercentPhase,
    Release,
    Reported,
    TagsPhase,
    check_graph,
    insert_release,
)

S = State
# DESIGN.md section 2, written out: what a client may ask for from each state ...
CLIENT = {
    S.UPLOADABLE: {S.HASHABLE, S.DESTROYED},
    S.HASHABLE: {S.HASHING, S.UPLOADABLE, S.DESTROYED},
    S.HASHING: {S.DESTROYED},
    S.SIGNABLE: {S.UPLOADABLE, S.DESTROYED},
    S.SIGNED: {S.DESTROYED},
    S.DESTROYED: set(),
}
# ... and what only the server does (finish hashing; follow the signature count).
SERVER = {
    S.HASHABLE: {S.HASHING},
    S.HASHING: {S.SIGNABLE, S.HASHABLE},
    S.SIGNABLE: {S.SIGNED},
    S.SIGNED: {S.SIGNABLE},
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(State, State)))
def test_client_transitions_are_exactly_the_table(current: State, target: State):
    if target in CLIENT[current]:
        check_client_transition(current, target)
    else:
        with pytest.raises(InvalidTransition) as e:
            check_client_transition(current, target)
        assert e.value.extra == {"allowed_transitions": sorted(CLIENT[current]), "state": str(current)}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(State, State)))
def test_server_transitions_are_exactly_the_table(current: State, target: State):
    if target in SERVER.get(current, set()):
        check_server_transition(current, target)
    else:
        with pytest.raises(InvalidTransition):
            check_server_transition(current, target)


def test_allowed_lists_the_client_table_sorted():
    for state in State:
        assert allowed(state) == sorted(str(s) for s in CLIENT[state])


# Resolution at its edges.


def test_entry_by_version_is_at_the_lowest_matching_release():
    # Both releases accept a 0.5 device; entering at the lower one, the required a stops it.
    g = chain(
        "a>b",
        a={"version": "1.0.0", "version_requirement": ">=0.1.0", "required": True},
        b={"version": "2.0.0", "version_requirement": ">=0.1.0"},
    )
    assert decide(g, Reported(version="0.5.0")).release.id == "a"


def test_an_unparseable_reported_version_meets_no_requirement():
    g = chain("a>b>c", c={"version_requirement": ">=2.0.0"})
    assert decide(g, Reported(release_id="a", version="not-semver")).release.id == "b"
    assert decide(g, Reported(release_id="a", version="2.0.0")).release.id == "c"
    # No version at all holds nothing back.
    assert decide(g, Reported(release_id="a")).release.id == "c"


def test_a_release_is_selectable_from_its_scheduled_instant_on():
    at_now = chain("a>b", b={"schedule_at": NOW})
    assert decide(at_now, Reported(release_id="a")).release.id == "b"
    later = chain("a>b", b={"schedule_at": NOW + dt.timedelta(microseconds=1)})
    assert decide(later, Reported(release_id="a")).reason == "none_selectable"


def test_an_override_holds_from_its_start_until_just_before_its_end():
    g = chain("a>b")
    starts_now = Override("ovr_1", "Bx", NOW, None)
    assert decide(g, overrides=[starts_now]).source == "override"
    not_yet = Override("ovr_2", "Bx", NOW + dt.timedelta(microseconds=1), None)
    assert decide(g, overrides=[not_yet]).source == "release"
    ends_now = Override("ovr_3", "Bx", NOW - dt.timedelta(hours=1), NOW)
    assert decide(g, overrides=[ends_now]).source == "release"
    ends_later = Override("ovr_4", "Bx", NOW - dt.timedelta(hours=1), NOW + dt.timedelta(microseconds=1))
    assert decide(g, overrides=[ends_later]).source == "override"


def test_the_most_recently_started_override_wins():
    g = chain("a>b")
    # IDs in the opposite order, so that only the start times can decide.
    older = Override("ovr_9", "Bolder", NOW - dt.timedelta(hours=2), None)
    newer = Override("ovr_1", "Bnewer", NOW - dt.timedelta(hours=1), None)
    assert decide(g, overrides=[newer, older]).bundle_id == "Bnewer"
    assert decide(g, overrides=[older, newer]).bundle_id == "Bnewer"


# Grants: valid up to and including their expiry second.


def test_a_grant_is_valid_through_its_expiry_second():
    secret, binary = b"k" * 32, "bin_" + "0" * 26
    token = grants.issue(secret, binary, 1000)
    assert grants.verify(secret, token, now=999) == binary
    assert grants.verify(secret, token, now=1000) == binary
    with pytest.raises(Forbidden, match="expired"):
        grants.verify(secret, token, now=1000.001)


# Authentication: a valid token counts only as a Bearer token.


@pytest.mark.parametrize("scheme", ["Basic", "Token", "Bearerx", ""])
def test_a_valid_token_under_another_scheme_is_refused(server: Api, scheme: str):
    plain = server.as_(None)
    assert plain.get("/api/v1/artifacts", headers={"Authorization": f"Bearer {ADMIN}"}).status == 200
    r = plain.get("/api/v1/artifacts", headers={"Authorization": f"{scheme} {ADMIN}".strip()})
    assert r.status == 401, r
    assert plain.get("/api/v1/artifacts", headers={"Authorization": f"bearer {ADMIN}"}).status == 200


def test_a_device_reporting_only_a_bundle_continues_from_the_release_that_serves_it():
    # Bundle IDs out of creation order, so that only equality can pick the release.
    g = chain("x>y>z", x={"bundle_id": "B2"}, y={"bundle_id": "B1", "required": True}, z={"bundle_id": "B3"})
    assert decide(g, Reported(bundle_id="B2")).release.id == "y"
    assert decide(g, Reported(bundle_id="B1")).release.id == "z"


def test_entry_by_version_puts_releases_without_a_version_first():
    g = chain(
        "a>b",
        a={"version_requirement": ">=0.1.0", "required": True},
        b={"version": "1.0.0", "version_requirement": ">=0.1.0"},
    )
    assert decide(g, Reported(version="0.5.0")).release.id == "a"


def test_a_new_count_phase_has_no_claims():
    assert CountPhase(3).claimed == 0


def test_a_graph_with_two_latest_releases_is_refused_not_guessed():
    g = chain("a>b")
    broken = {**g, "x": Release("x", "Bx", "2026-01-01T00:00:09Z")}  # a second sink, check_graph bypassed
    with pytest.raises(AssertionError, match="exactly one sink"):
        decide(broken)


def test_reported_state_is_a_frozen_value():
    r = Reported(release_id="rel_1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.release_id = "rel_2"  # type: ignore[misc]
    assert hash(r) == hash(Reported(release_id="rel_1"))


def _fresh(text: str) -> str:
    """An equal string that is not the same object (as IDs read from a request or the catalog
    never are), so that identity can never stand in for equality."""
    return "".join(list(text))


def test_ids_are_compared_by_value_not_identity():
    g = chain("a>b>c", c={"bundle_id": "bundle_c"})
    assert decide(g, Reported(release_id="a", bundle_id=_fresh("bundle_c"))).reason == "current"
    g2 = chain("x>y>z", x={"bundle_id": "bundle_x"}, y={"required": True})
    assert decide(g2, Reported(bundle_id=_fresh("bundle_x"))).release.id == "y"
    o = Override("ovr_1", "bundle_o", NOW - dt.timedelta(hours=1), None)
    assert decide(g, Reported(bundle_id=_fresh("bundle_o")), overrides=[o]).reason == "override_current"


def test_entering_at_the_latest_walks_back_by_value():
    # The latest is disabled; its predecessor is found by comparing IDs that are equal but
    # not identical.
    rels = {
        "first_release": Release("first_release", "B1", "2026-01-01T00:00:01Z", next_id=_fresh("last_release")),
        "last_release": Release("last_release", "B2", "2026-01-01T00:00:02Z", disabled=True),
    }
    assert decide(rels).release.id == "first_release"


def test_a_graph_without_a_latest_release_is_refused():
    looped = {
        "a": Release("a", "Ba", "2026-01-01T00:00:01Z", next_id="b"),
        "b": Release("b", "Bb", "2026-01-01T00:00:02Z", next_id="a"),
    }
    with pytest.raises(AssertionError, match="exactly one sink"):
        decide(looped)


@pytest.mark.parametrize(
    "value",
    [
        Device("dev_1", "x86_64-linux-gnu"),
        Override("ovr_1", "B", NOW),
        PercentPhase(0.5),
        CountPhase(1),
        TagsPhase(frozenset({"t"})),
        Release("r", "B", "2026-01-01T00:00:01Z"),
        Decision("no_update", "current"),
    ],
)
def test_resolution_inputs_are_frozen(value: object):
    # The snapshot shares them between every check-in: none may change one for the others.
    field = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, getattr(value, field))


def test_a_count_phase_lowered_below_its_claims_is_full():
    # An operator may lower a count phase below the devices that claimed it already.
    assert decide(chain("a>b", b={"phase": CountPhase(5, claimed=8)}), Reported(release_id="a")).reason == "none_selectable"
    big = int("1000")  # not a cached small int: equality, not identity
    full = chain("a>b", b={"phase": CountPhase(big, claimed=int("1000"))})
    assert decide(full, Reported(release_id="a")).reason == "none_selectable"


def test_an_unknown_phase_serves_nobody():
    g = chain("a>b")
    g["b"] = dataclasses.replace(g["b"], phase=object())  # type: ignore[arg-type]
    assert decide(g, Reported(release_id="a")).reason == "none_selectable"


def test_a_fresh_device_with_nothing_selectable_gets_none():
    g = chain("a>b>c", a={"disabled": True}, b={"disabled": True}, c={"disabled": True})
    d = decide(g)
    assert (d.status, d.reason) == ("no_update", "none_selectable")


def test_a_release_without_a_version_counts_as_0_0_0_for_entry():
    g = chain(
        "a>b",
        a={"version_requirement": ">=0.1.0", "required": True},
        b={"version": "0.5.0", "version_requirement": ">=0.1.0", "required": True},
    )
    assert decide(g, Reported(version="0.6.0")).release.id == "a"


# Release graphs at their edges.


def test_appending_waits_only_for_a_schedule_still_in_the_future():
    # A schedule that has come is no longer a wait: the refusal is then the graph rule that
    # only the latest release carries one (lift it), not "still scheduled".
    new = Release("e", "Be", "2026-01-01T00:00:09Z")
    for when in (NOW - dt.timedelta(hours=1), NOW, _same_instant(NOW)):
        g = chain("a>b", b={"schedule_at": when})
        with pytest.raises(GraphError, match="only the latest release may be scheduled"):
            insert_release(g, new, NOW)
    ahead = chain("a>b", b={"schedule_at": NOW + dt.timedelta(microseconds=1)})
    with pytest.raises(GraphError, match="still phased or scheduled"):
        insert_release(ahead, new, NOW)


def _same_instant(t: dt.datetime) -> dt.datetime:
    """An equal datetime that is not the same object."""
    return t.astimezone(dt.timezone(dt.timedelta(hours=2)))


def test_a_release_cannot_be_its_own_next_even_by_an_equal_id():
    g = chain("a>b")
    with pytest.raises(GraphError, match="its own next"):
        check_graph({**g, "loop": Release("loop", "Bl", "2026-01-01T00:00:09Z", next_id=_fresh("loop"))})


def test_a_graph_that_is_only_a_cycle_has_no_latest():
    with pytest.raises(GraphError, match="exactly one latest"):
        check_graph({
            "a": Release("a", "Ba", "2026-01-01T00:00:01Z", next_id="b"),
            "b": Release("b", "Bb", "2026-01-01T00:00:02Z", next_id="a"),
        })  # fmt: skip


def test_only_the_latest_may_be_phased_whatever_the_ids():
    # The phased release's ID sorts after the latest's: only inequality may decide.
    g = chain("zz>aa")
    with pytest.raises(GraphError, match="only the latest"):
        check_graph({**g, "zz": dataclasses.replace(g["zz"], phase=PercentPhase(0.5))})


def test_inserting_between_needs_the_previous_directly_before_the_next():
    g = chain("a>b>c>d")
    new = Release("n", "Bn", "2026-01-01T00:00:09Z", next_id="b")
    with pytest.raises(GraphError, match="not directly before"):
        insert_release(g, new, NOW, previous_id="c")  # c's next is d, which sorts after b
    with pytest.raises(GraphError, match="not directly before"):
        insert_release(g, dataclasses.replace(new, next_id="c"), NOW, previous_id="a")
    assert insert_release(g, new, NOW, previous_id="a")["a"].next_id == "n"

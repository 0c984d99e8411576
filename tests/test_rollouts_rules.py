"""Rollout health as pure rules (ferryman.rollouts): halting, success rate, percentiles,
scheduled phase steps, and what resolution does with a halted release."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from test_releases import chain, decide

from ferryman.releases import Reported
from ferryman.rollouts import DEFAULT_MIN_REPORTS, STATUSES, HaltRule, counts_of, due_step, halt_reason, percentile, success_rate


def counts(**n: int) -> dict[str, int]:
    return {s: n.get(s, 0) for s in STATUSES}


@pytest.mark.parametrize(
    ("rule", "outcomes", "halts"),
    [
        # max_failures: more than the bound halts, the bound itself does not.
        (HaltRule(max_failures=2), counts(failed=2, installed=100), False),
        (HaltRule(max_failures=2), counts(failed=2, rolled_back=1), True),
        (HaltRule(max_failures=0), counts(rolled_back=1), True),
        (HaltRule(max_failures=0), counts(installed=5, offered=9, downloading=3, installing=2), False),
        (HaltRule(max_failures=5), counts(failed=1), False),
        # A rate needs min_reports ended devices (installed, failed, rolled back) first.
        (HaltRule(max_failure_rate=0.2, min_reports=10), counts(failed=5, installed=4, offered=50), False),
        (HaltRule(max_failure_rate=0.2, min_reports=10), counts(failed=5, installed=5), True),
        # Above the rate halts; exactly at it does not.
        (HaltRule(max_failure_rate=0.2, min_reports=10), counts(failed=2, installed=8), False),
        (HaltRule(max_failure_rate=0.5, min_reports=2), counts(failed=1, installed=9), False),
        (HaltRule(max_failure_rate=0.2, min_reports=10), counts(failed=1, rolled_back=2, installed=8), True),
        (HaltRule(max_failure_rate=0.0, min_reports=1), counts(failed=1), True),
        (HaltRule(max_failure_rate=0.0, min_reports=1), counts(installed=1, downloading=4), False),
        # Devices still on their way are not reports.
        (HaltRule(max_failure_rate=0.5, min_reports=3), counts(failed=2, downloading=10, installing=10), False),
        (HaltRule(max_failure_rate=0.5, min_reports=2), counts(failed=2, downloading=10, installing=10), True),
        # Either bound halts.
        (HaltRule(max_failure_rate=0.9, min_reports=100, max_failures=3), counts(failed=4, installed=1), True),
        (HaltRule(max_failure_rate=0.1, min_reports=5, max_failures=30), counts(failed=1, installed=4), True),
        (HaltRule(), counts(failed=1000), False),
    ],
)
def test_a_release_halts_exactly_when_its_rule_is_broken(rule: HaltRule, outcomes: dict[str, int], halts: bool):
    reason = halt_reason(rule, outcomes)
    assert (reason is not None) is halts


@pytest.mark.parametrize(
    ("rule", "sparse", "halts"),
    [
        (HaltRule(max_failures=1), {"failed": 2}, True),
        (HaltRule(max_failures=1), {"rolled_back": 2}, True),
        (HaltRule(max_failures=1), {"failed": 1}, False),
        (HaltRule(max_failure_rate=0.5, min_reports=2), {"failed": 2}, True),
        (HaltRule(max_failure_rate=0.5, min_reports=3), {"failed": 2}, False),
        (HaltRule(max_failure_rate=0.5, min_reports=2), {"installed": 2}, False),
        (HaltRule(max_failure_rate=0.1, min_reports=2), {"installed": 1, "failed": 1}, True),
    ],
)
def test_counts_may_leave_out_statuses_no_device_has(rule: HaltRule, sparse: dict[str, int], halts: bool):
    assert (halt_reason(rule, sparse) is not None) is halts


def test_a_rule_is_a_value():
    with pytest.raises(dataclasses.FrozenInstanceError):
        HaltRule(max_failures=1).max_failures = 2  # type: ignore[misc]


def test_the_halt_reason_says_what_was_exceeded():
    assert halt_reason(HaltRule(max_failures=2), counts(failed=3)) == "3 devices failed, more than max_failures 2"
    assert halt_reason(HaltRule(max_failure_rate=0.25, min_reports=4), counts(failed=2, installed=2)) == (
        "2 of 4 devices failed (50.0%), above max_failure_rate 25.0% (min_reports 4)"
    )


def test_a_rate_rule_waits_for_ten_reports_by_default():
    assert DEFAULT_MIN_REPORTS == 10
    rule = HaltRule(max_failure_rate=0.1)
    assert halt_reason(rule, counts(failed=9)) is None
    assert halt_reason(rule, counts(failed=9, installed=1)) is not None


@pytest.mark.parametrize(
    ("outcomes", "rate"),
    [
        (counts(), None),
        (counts(offered=5, downloading=2), None),
        (counts(installed=3), 1.0),
        (counts(installed=3, failed=1), 0.75),
        (counts(installed=1, failed=1, rolled_back=2), 0.25),
        (counts(failed=1), 0.0),
        ({"installed": 1}, 1.0),
        ({"installed": 1, "rolled_back": 3}, 0.25),
        ({"failed": 2}, 0.0),
        ({"offered": 2}, None),
    ],
)
def test_success_rate_is_installed_among_ended(outcomes: dict[str, int], rate: float | None):
    assert success_rate(outcomes) == rate


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([7.0], 50, 7.0),
        ([7.0], 95, 7.0),
        ([1.0, 2.0], 50, 1.0),
        ([1.0, 2.0], 51, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 75, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 76, 4.0),
        ([float(i) for i in range(1, 101)], 95, 95.0),
        ([float(i) for i in range(1, 101)], 100, 100.0),
        ([float(i) for i in range(1, 21)], 95, 19.0),
        ([float(i) for i in range(1, 1001)], 50, 500.0),
        ([float(i) for i in range(1, 1001)], 99, 990.0),
        ([1.0, 2.0, 3.0], 0, 1.0),
    ],
)
def test_percentiles_are_nearest_rank(values: list[float], q: float, expected: float | None):
    assert percentile(values, q) == expected


def test_counts_have_every_status_and_add_up_rows():
    rows = [{"status": "failed", "n": 2}, {"status": "installed", "n": "3"}, {"status": "failed", "n": 3}]
    assert counts_of(rows) == counts(failed=5, installed=3)
    assert list(counts_of([])) == list(STATUSES)


T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
STEPS = [(T0, "25%"), (T0 + dt.timedelta(hours=1), "50%"), (T0 + dt.timedelta(hours=2), "100%")]


@pytest.mark.parametrize(
    ("now", "halted", "expected"),
    [
        (T0 - dt.timedelta(microseconds=1), False, None),
        (T0, False, ("25%", 1)),
        (T0 + dt.timedelta(minutes=59), False, ("25%", 1)),
        (T0 + dt.timedelta(hours=1), False, ("50%", 2)),
        # Resumed late: straight to where the schedule stands, every earlier step settled.
        (T0 + dt.timedelta(hours=5), False, ("100%", 3)),
        (T0 + dt.timedelta(hours=5), True, None),
        (T0, True, None),
    ],
)
def test_the_due_step_is_the_last_one_whose_time_came(now: dt.datetime, halted: bool, expected):
    assert due_step(STEPS, now, halted) == expected


def test_no_steps_are_never_due():
    assert due_step([], T0, False) is None


# Resolution -----------------------------------------------------------------------------------


def test_a_halted_release_is_offered_to_no_device_on_its_way():
    g = chain("a>b", b={"halted": True})
    d = decide(g, Reported(release_id="a"))
    assert (d.status, d.reason) == ("no_update", "release_halted")


def test_a_device_on_a_halted_release_keeps_it_and_moves_on_past_it():
    g = chain("a>b>c", b={"halted": True})
    assert decide(g, Reported(release_id="b")).release.id == "c"
    g = chain("a>b", b={"halted": True})
    d = decide(g, Reported(release_id="b"))
    assert (d.status, d.reason) == ("no_update", "at_latest")


def test_a_new_device_gets_the_release_before_a_halted_latest():
    g = chain("a>b", b={"halted": True})
    d = decide(g, Reported())
    assert (d.status, d.release.id) == ("update", "a")
    g = chain("a>b", a={"halted": True}, b={"halted": True})
    assert decide(g, Reported()).reason == "release_halted"


def test_a_release_unselectable_for_other_reasons_is_not_called_halted():
    g = chain("a>b", b={"disabled": True})
    assert decide(g, Reported(release_id="a")).reason == "none_selectable"
    g = chain("a>b>c", b={"required": True, "disabled": True}, c={"halted": True})
    assert decide(g, Reported(release_id="a")).reason == "none_selectable"


def test_past_a_halted_release_a_device_still_reaches_the_next_one():
    g = chain("a>b>c", b={"halted": True})
    assert decide(g, Reported(release_id="a")).release.id == "c"

"""The replication decisions (``ferryman.replication``): which copies count as verified, which
region serves a download and which one a copy is read from, and the retry backoff."""

from __future__ import annotations

import pytest

from ferryman.replication import RETRY_BASE, RETRY_MAX, retry_delay, serve_from, source_for, verified_regions

ORDER = ("eu", "ap", "us")  # primary first


def healthy_but(*down: str):
    return lambda region: region not in down


@pytest.mark.parametrize(("states", "want"), [
    ({}, {"eu"}),  # the primary's row is not written yet: hashing verified it
    ({"eu": "verified", "ap": "verified", "us": "verified"}, {"eu", "ap", "us"}),
    ({"ap": "checking", "us": "copying"}, {"eu", "ap"}),  # a copy being checked still serves
    ({"ap": "pending", "us": "failed"}, {"eu"}),
    ({"ap": "deleting"}, {"eu"}),
    ({"eu": "deleting", "ap": "verified"}, {"eu", "ap"}),  # an old row of a reset binary
    ({"eu": "checking"}, {"eu"}),
    ({"eu": "pending", "ap": "verified"}, {"ap"}),  # a check found the primary broken
    ({"eu": "copying", "ap": "verified"}, {"ap"}),
    ({"eu": "failed", "us": "verified"}, {"us"}),
])  # fmt: skip
def test_verified_regions(states, want):
    assert verified_regions(states, "eu") == frozenset(want)


def test_serve_from_prefers_the_devices_region_then_the_order():
    every = frozenset(ORDER)
    assert serve_from("us", ORDER, every, healthy_but()) == "us"
    assert serve_from(None, ORDER, every, healthy_but()) == "eu"
    assert serve_from("us", ORDER, every, healthy_but("us")) == "eu"
    assert serve_from("us", ORDER, every, healthy_but("us", "eu")) == "ap"
    assert serve_from("us", ORDER, frozenset({"ap", "us"}), healthy_but("us")) == "ap"
    assert serve_from("mars", ORDER, every, healthy_but()) == "eu"  # not a region: ignored


def test_serve_from_never_picks_an_unverified_copy():
    assert serve_from("us", ORDER, frozenset({"ap"}), healthy_but()) == "ap"
    # Every store with a verified copy fails its checks: the nearest verified copy anyway.
    assert serve_from("us", ORDER, frozenset({"ap", "us"}), healthy_but("ap", "us")) == "us"
    assert serve_from(None, ORDER, frozenset({"ap", "us"}), healthy_but("ap", "us")) == "ap"
    assert serve_from("us", ORDER, frozenset(), healthy_but()) is None


def test_source_for_a_copy_is_another_healthy_verified_region():
    assert source_for("ap", ORDER, frozenset(ORDER), healthy_but()) == "eu"
    assert source_for("eu", ORDER, frozenset(ORDER), healthy_but()) == "ap"
    assert source_for("ap", ORDER, frozenset(ORDER), healthy_but("eu")) == "us"
    assert source_for("ap", ORDER, frozenset({"ap", "us"}), healthy_but()) == "us"
    assert source_for("ap", ORDER, frozenset({"ap"}), healthy_but()) is None
    assert source_for("ap", ORDER, frozenset({"eu", "us"}), healthy_but("eu", "us")) is None
    # A target named by an equal string that is not the same object (as read from a row).
    assert source_for("".join(["a", "p"]), ("ap", "eu"), frozenset({"ap", "eu"}), healthy_but()) == "eu"


def test_retry_delay_doubles_with_jitter_up_to_its_cap():
    assert (RETRY_BASE, RETRY_MAX) == (2.0, 600.0)  # the documented 2 s and 10 minutes
    assert retry_delay(1, 0.0) == RETRY_BASE / 2
    assert retry_delay(1, 0.999999) == pytest.approx(RETRY_BASE)
    assert retry_delay(0, 0.5) == retry_delay(1, 0.5) == 0.75 * RETRY_BASE
    assert [retry_delay(n, 0.5) / 0.75 for n in (2, 3, 4)] == [2 * RETRY_BASE, 4 * RETRY_BASE, 8 * RETRY_BASE]
    assert retry_delay(100, 0.999999) == pytest.approx(RETRY_MAX)
    assert retry_delay(9, 0.0) == RETRY_BASE * 2**8 / 2  # 512 s, under the cap
    assert retry_delay(10, 0.0) == RETRY_MAX / 2  # 1024 s, capped
    assert retry_delay(5, 0.999999, cap=1.0) == pytest.approx(1.0)
    assert retry_delay(10_000, 0.5) == 0.75 * RETRY_MAX  # no overflow however many attempts
    assert retry_delay(10_000, 0.5, cap=1e12) == 0.75 * RETRY_BASE * 2**16  # doubling stops at 2^16

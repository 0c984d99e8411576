"""The console's session cookies and CSRF tokens: what opens, what ends, what is refused."""

from __future__ import annotations

import pytest

from ferryman.console import sessions as s

SECRET = b"k" * 32
KEY = "apk_" + "0123456789abcdefghjkmnpqrs"
T0 = 1_800_000_000
IDLE, LIFE = 1800, 43200


def read(cookie: str, now: int) -> s.Session | None:
    return s.read(SECRET, cookie, now, IDLE, LIFE)


def test_a_session_lives_while_used_and_ends_when_idle_or_old():
    cookie = s.issue(SECRET, KEY, T0)
    assert cookie.startswith(f"v1.{KEY}.{T0}.{T0}.")
    assert read(cookie, T0) == s.Session(KEY, T0, T0)
    assert read(cookie, T0 + IDLE) == s.Session(KEY, T0, T0)
    assert read(cookie, T0 + IDLE + 1) is None  # idle too long
    # Used now and then, it lasts until its lifetime is over, not a second more.
    used = s.refreshed(SECRET, s.Session(KEY, T0, T0), T0 + LIFE - 10)
    assert read(used, T0 + LIFE) == s.Session(KEY, T0, T0 + LIFE - 10)
    assert read(used, T0 + LIFE + 1) is None
    assert read(cookie, T0 - 1) is None  # seen in the future: a clock or a forgery
    assert read(s.refreshed(SECRET, s.Session(KEY, T0, T0), T0 - 5), T0) is None  # seen before it was opened
    assert read(s.issue(SECRET, "env", T0), T0 + 5) == s.Session("env", T0, T0)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c.replace(KEY, "apk_" + "1123456789abcdefghjkmnpqrs"),  # another key
        lambda c: c.replace(f".{T0}.", f".{T0 + 100}.", 1),  # a younger session
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # a changed MAC
        lambda c: c.replace("v1.", "v2.", 1),
        lambda c: c.rsplit(".", 1)[0],  # no MAC
        lambda c: c + ".x",
        lambda c: "",
        lambda c: c.replace(KEY, "../../etc"),
        lambda c: c.replace(f".{T0}.", ".-5.", 1),
        lambda c: c.replace(f".{T0}.", ".1e9.", 1),
        lambda c: ".".join([*c.split(".")[:3], "-5", c.split(".")[4]]),  # the time it was last used
        lambda c: ".".join([*c.split(".")[:3], "1e9", c.split(".")[4]]),
        lambda c: "v0" + c[2:],
    ],
)
def test_a_changed_cookie_is_refused(tamper):
    assert read(tamper(s.issue(SECRET, KEY, T0)), T0 + 1) is None


def test_sessions_do_not_change():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        s.Session(KEY, T0, T0).seen = T0 + 1  # type: ignore[misc]


def test_another_secret_refuses_it():
    cookie = s.issue(SECRET, KEY, T0)
    assert s.read(b"o" * 32, cookie, T0, IDLE, LIFE) is None


def test_subjects_are_key_ids_or_env():
    for bad in ("", "root", "apk_short", "apk_" + "0" * 26 + "x", "env.x"):
        with pytest.raises(ValueError):
            s.issue(SECRET, bad, T0)


def test_csrf_tokens_belong_to_one_session():
    one, two = s.Session(KEY, T0, T0), s.Session(KEY, T0 + 1, T0 + 1)
    token = s.csrf_token(SECRET, one)
    assert s.csrf_valid(SECRET, one, token)
    assert s.csrf_valid(SECRET, s.Session(KEY, T0, T0 + 500), token)  # the same session, used later
    assert not s.csrf_valid(SECRET, two, token)
    assert not s.csrf_valid(SECRET, s.Session("env", T0, T0), token)
    assert not s.csrf_valid(b"o" * 32, one, token)
    assert not s.csrf_valid(SECRET, one, "")
    assert token != s.issue(SECRET, KEY, T0).rsplit(".", 1)[1]  # not the session's own MAC

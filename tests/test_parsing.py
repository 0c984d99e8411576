"""Numbers and times from untrusted text (ferryman/parsing.py), and a fuzz run of every place
the service parses client input: whatever arrives, the answer is never a 5xx."""

from __future__ import annotations

import datetime as dt
import http.client
import os
from urllib.parse import quote

import pytest
from apiclient import ADMIN, Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server_fleet import Fleet

from ferryman.parsing import parse_int, parse_rfc3339

API = "/api/v1"


@pytest.mark.parametrize(
    ("text", "digits", "want"),
    [
        ("0", 3, 0), ("500", 3, 500), ("1000", 3, None), ("", 3, None), ("²", 3, None), ("\u0663", 3, None),
        ("1_0", 3, None), (" 1", 3, None), ("1 ", 3, None), ("+1", 3, None), ("-1", 3, None), ("9" * 5000, 30, None),
        ("9" * 30, 30, int("9" * 30)),
    ],
)  # fmt: skip
def test_parse_int(text: str, digits: int, want: int | None):
    assert parse_int(text, digits) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-12-03T10:00:00Z", dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC)),
        ("2026-12-03t10:00:00z", dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC)),
        ("2026-12-03T10:00:00.5+01:00", dt.datetime(2026, 12, 3, 9, 0, 0, 500000, tzinfo=dt.UTC)),
        ("2026-12-03T10:00:00.123456789Z", dt.datetime(2026, 12, 3, 10, 0, 0, 123456, tzinfo=dt.UTC)),
        ("2026-12-03T10:00:00", None),  # no zone
        ("2026-12-03", None),
        ("2026-12-03T10:00:00Z\n", None),
        ("0001-01-01T00:00:00+01:00", None),  # before year 1 in UTC
        ("9999-12-31T23:59:59-01:00", None),  # after year 9999 in UTC
        ("2026-02-30T00:00:00Z", None),
        ("\uff12\uff10\uff12\uff16-12-03T10:00:00Z", None),  # fullwidth digits
    ],
)
def test_parse_rfc3339(text: str, want: dt.datetime | None):
    assert parse_rfc3339(text) == want


@given(st.text(max_size=40))
def test_parse_int_never_raises(text: str):
    n = parse_int(text, 20)
    assert n is None or (text.isascii() and str(n) == text.lstrip("0").rjust(1, "0"))


@given(st.text(max_size=60))
def test_parse_rfc3339_never_raises(text: str):
    parse_rfc3339(text)


# Values a parser might choke on: other scripts' digits, superscripts, huge numbers, controls.
HOSTILE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["²", "\u0661\u0662", "0x10", "1_0", "-1", "9" * 5000, "1e3", " 5", "\t", "\u0000", "bytes=²-5", "bytes=0-" + "9" * 400]
    ),
    st.builds(lambda a, b: f"bytes={a}-{b}", st.text("0123456789²³\u0661", max_size=6), st.text("0123456789²", max_size=6)),
)


def _raw(api: Api, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b""))
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture
def target(server: Api):
    """A device with an update (so /dl/ grants exist) and a binary still uploadable."""
    fleet = Fleet(server)
    bundle = fleet.bundle("1.0.0", targets=["aarch64-linux-gnu"])
    channel = fleet.channel("stable")
    fleet.release(channel, "v1", bundle, version="1.0.0")
    cohort = server.ok("POST", f"{API}/cohorts", {"name": "c", "channel_id": channel["id"]})
    _, device = fleet.device("d1", "aarch64-linux-gnu", cohort)
    manifest = device.ok("GET", "/device/v1/update")
    grant = "/" + manifest["binaries"][0]["url"].split("/", 3)[3]
    ver = fleet.binaries("2.0.0", targets=["x86_64-linux-gnu"])[0]["version_id"]
    up = server.ok("POST", f"{API}/versions/{ver}/binaries", {"target": "arm-linux-gnueabihf", "size": 10, "sha256": "0" * 64})
    return server, device, grant, up["id"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=HOSTILE)
def test_no_input_reaches_a_server_error(target, value: str):
    server, device, grant, binary_id = target
    auth = {"Authorization": f"Bearer {ADMIN}"}
    dev = {"Authorization": device.token and f"Bearer {device.token}"}
    q = quote(value, safe="")
    statuses = [
        _raw(server, "GET", grant, {"Range": value}),
        _raw(server, "GET", grant, {"Range": "bytes=0-5", "If-Range": value}),
        _raw(server, "GET", grant, {"If-None-Match": value, "If-Modified-Since": value}),
        _raw(server, "GET", f"/dl/{q}", {}),
        _raw(server, "GET", f"{API}/artifacts?limit={q}", auth),
        _raw(server, "GET", f"{API}/artifacts?cursor={q}", auth),
        _raw(server, "GET", f"{API}/artifacts/x/versions?cursor={q}", auth),
        _raw(server, "GET", f"{API}/binaries?state={q}&sha256={q}", auth),
        _raw(server, "PUT", f"{API}/binaries/{binary_id}/parts/{q}", auth, b"0123456789"),
        _raw(server, "PUT", f"{API}/binaries/{binary_id}/parts/1", {**auth, "Content-Digest": value}, b"0123456789"),
        _raw(server, "GET", "/device/v1/update", {**dev, "Ferryman-Release-Id": value, "Ferryman-Release-Version": value}),
        _raw(server, "GET", "/device/v1/update", {**dev, "Ferryman-Bundle-Id": value}),
        _raw(server, "GET", "/device/v1/update", {"Authorization": value}),
        _raw(server, "POST", f"{API}/bundle-overrides", {**auth, "Content-Type": "application/json"},
             b'{"bundle_id": "bun_00000000000000000000000000", "device_ids": ["dev_00000000000000000000000000"], "ends_at": "'
             + value.encode("utf-8", "surrogatepass").replace(b'"', b"").replace(b"\\", b"") + b'"}'),
    ]  # fmt: skip
    assert all(s < 500 for s in statuses), (value, statuses)


def test_regressions_from_the_probe(target):
    """The exact requests that answered 500 before."""
    server, _, grant, binary_id = target
    auth = {"Authorization": f"Bearer {ADMIN}"}
    assert _raw(server, "GET", grant, {"Range": "bytes=²-5"}) == 200  # ignored, whole body
    assert _raw(server, "GET", f"{API}/artifacts?limit=%C2%B2", auth) == 422
    assert _raw(server, "PUT", f"{API}/binaries/{binary_id}/parts/%C2%B2", auth, os.urandom(10)) == 422
    assert _raw(server, "GET", f"{API}/artifacts?cursor=" + "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", auth) == 422

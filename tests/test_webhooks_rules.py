"""Webhooks as pure rules (ferryman.webhooks): which audit events are webhook events, who is
subscribed, the Standard Webhooks signature (checked with the reference library), retry
delays, and which targets a delivery may reach."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from ferryman.webhooks import (
    EVENT_TYPES,
    RETRY_BASE,
    RETRY_MAX,
    address_allowed,
    check_url,
    event_type,
    payload,
    retry_delay,
    sign,
    subscribed,
)


@pytest.mark.parametrize(
    ("action", "resource", "status", "expected"),
    [
        ("state:signable", "binary", None, "binary.state_changed"),
        ("state:destroyed", "binary", None, "binary.state_changed"),
        ("sign", "binary", None, "signature.created"),
        ("create", "binary", None, None),
        ("part", "binary", None, None),
        ("create", "bundle", None, "bundle.created"),
        ("sign", "bundle", None, None),
        ("create", "release", None, "release.created"),
        ("update", "release", None, "release.changed"),
        ("relink", "release", None, "release.changed"),
        ("advance", "release", None, "release.changed"),
        ("resume", "release", None, "release.changed"),
        ("halt", "release", None, "release.halted"),
        ("halt", "device", None, None),
        ("first_seen", "device", None, "device.first_seen"),
        ("first_seen", "release", None, None),
        ("report", "device", "installed", "update.installed"),
        ("report", "device", "failed", "update.failed"),
        ("report", "device", "rolled_back", "update.rolled_back"),
        ("report", "device", "downloading", None),
        ("report", "device", "installing", None),
        ("report", "device", None, None),
        ("report", "release", "failed", None),
        ("resolve", "device", None, None),
        ("create", "channel", None, None),
        ("update", "device", None, None),
    ],
)
def test_audit_events_map_to_webhook_events(action: str, resource: str, status: str | None, expected: str | None):
    assert event_type(action, resource, status) == expected
    assert expected is None or expected in EVENT_TYPES


@pytest.mark.parametrize(
    ("events", "kind", "expected"),
    [
        (["*"], "release.halted", True),
        (["release.*"], "release.halted", True),
        (["release.*"], "bundle.created", False),
        (["release.halted"], "release.halted", True),
        (["release.halted"], "release.changed", False),
        (["update.failed", "release.halted"], "release.halted", True),
        ([], "release.halted", False),
        (["releases.*"], "release.halted", False),
        (["release"], "release.halted", False),
    ],
)
def test_subscriptions(events: list[str], kind: str, expected: bool):
    assert subscribed(events, kind) is expected


SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def test_signatures_verify_with_the_reference_library():
    body = b'{"type":"release.halted","timestamp":"2026-12-01T00:00:00Z","data":{}}'
    now = int(dt.datetime.now(dt.UTC).timestamp())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": sign(SECRET, "msg_1", now, body)}
    assert Webhook(SECRET).verify(body, headers)["type"] == "release.halted"
    for tampered in (
        {**headers, "webhook-id": "msg_2"},
        {**headers, "webhook-timestamp": str(now + 1)},
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(body, tampered)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    other = "whsec_" + base64.b64encode(bytes(32)).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


def test_the_signature_is_the_documented_hmac():
    # Standard Webhooks' own example: secret, id, timestamp, body and the signature they give.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    ("attempts", "jitter", "expected"),
    [
        (1, 0.0, RETRY_BASE * 0.5),
        (1, 0.999999, RETRY_BASE * (0.5 + 0.999999 / 2)),
        (2, 0.0, RETRY_BASE),
        (3, 0.0, RETRY_BASE * 2),
        (0, 0.0, RETRY_BASE * 0.5),
        (40, 0.0, RETRY_MAX * 0.5),
        (10_000, 0.5, RETRY_MAX * 0.75),
    ],
)
def test_retry_delays_double_with_jitter_up_to_the_cap(attempts: int, jitter: float, expected: float):
    assert retry_delay(attempts, jitter) == pytest.approx(expected)


def test_retries_start_after_five_seconds_and_wait_at_most_an_hour():
    assert (RETRY_BASE, RETRY_MAX) == (5.0, 3600.0)  # as the README and serve --help say
    assert retry_delay(1, 1.0) == pytest.approx(5.0) and retry_delay(100, 1.0) == pytest.approx(3600.0)


def test_the_doubling_stops_at_two_to_the_thirtieth():
    assert retry_delay(31, 1.0, base=1e-9, cap=1e9) == pytest.approx(1e-9 * 2.0**30)
    assert retry_delay(40, 1.0, base=1e-9, cap=1e9) == pytest.approx(1e-9 * 2.0**30)
    assert retry_delay(30, 1.0, base=1e-9, cap=1e9) == pytest.approx(1e-9 * 2.0**29)


def test_retry_delays_take_their_base_and_cap():
    assert retry_delay(1, 1.0, base=0.2, cap=100) == pytest.approx(0.2)
    assert retry_delay(4, 1.0, base=0.2, cap=1.0) == pytest.approx(1.0)
    assert retry_delay(3, 1.0, base=0.2, cap=1.0) == pytest.approx(0.8)
    assert [retry_delay(n, 0.0, base=1, cap=1e9) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # shared address space (carrier-grade NAT)
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("ff02::1", False),
    ],
)
def test_only_public_unicast_addresses_are_allowed(address: str, allowed: bool):
    assert address_allowed(address) is allowed


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("https://hooks.example.com/ferryman", None),
        ("https://zeta.example.com/", None),
        ("https://mail.localhost.example.com/", None),
        ("http://93.184.216.34:8080/x?y=1", None),
        ("ftp://hooks.example.com/", "http:// or https://"),
        ("https:///nohost", "http:// or https://"),
        ("hooks.example.com/x", "http:// or https://"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https://hooks.example.com/#frag", "fragment"),
        ("https://hooks.example.com:99999/", "not a URL"),
        ("http://localhost:9000/", "loopback"),
        ("http://api.localhost/", "loopback"),
        ("http://localhost./", "loopback"),
        ("http://127.0.0.1:9000/", "non-public address 127.0.0.1"),
        ("http://[::1]:9000/", "non-public address ::1"),
        ("http://169.254.169.254/latest/meta-data", "non-public"),
        ("http://10.0.0.5/", "non-public"),
    ],
)
def test_webhook_urls_are_checked(url: str, error: str | None):
    if error is None:
        assert check_url(url, allow_private=False) == url
    else:
        with pytest.raises(ValueError, match=error.replace("/", ".").replace(":", ".")):
            check_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/", "http://localhost/", "http://10.0.0.5/x", "http://[::1]:1/"])
def test_an_operator_may_allow_private_targets(url: str):
    assert check_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", ["ftp://x/", "http://u@127.0.0.1/", "http://h/#f"])
def test_allowing_private_targets_still_checks_the_url(url: str):
    with pytest.raises(ValueError):
        check_url(url, allow_private=True)


def test_payload_shape():
    assert payload("bundle.created", "2026-01-01T00:00:00Z", {"a": 1}) == {
        "type": "bundle.created",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {"a": 1},
    }

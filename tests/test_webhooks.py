"""Webhooks end to end: a real receiver on loopback verifies every delivery with the
``standardwebhooks`` reference library; events of every kind arrive; a receiver answering 500
gets retries with growing delays and a failed delivery can be redelivered; a hanging receiver
delays no other; a server SIGKILLed with deliveries pending loses and invents none; and
non-public targets are refused unless the operator allows them."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from apiclient import ADMIN, Api, ProcessServer, ThreadServer
from standardwebhooks import Webhook
from test_server_binaries import problem
from test_server_fleet import API, Fleet, check
from test_server_rollouts import wait_for

from ferryman.config import Config

TARGET = "x86_64-linux-gnu"


@dataclass
class Received:
    id: str
    type: str
    body: dict
    at: float
    path: str


@dataclass
class Receiver:
    """An HTTP receiver on loopback. Each path is one webhook's endpoint, with its secret and
    its behaviour: answer ``status``, after ``delay`` seconds (``hang``: until released)."""

    secrets: dict[str, str] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    got: list[Received] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                path = self.path
                try:
                    parsed = Webhook(receiver.secrets[path]).verify(body, dict(self.headers))
                except Exception as e:
                    with receiver.lock:
                        receiver.unverified.append(f"{path}: {e}")
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.got.append(Received(self.headers["webhook-id"], parsed["type"], parsed, time.monotonic(), path))
                delay = receiver.delay.get(path, 0.0)
                if delay == float("inf"):
                    receiver.release.wait(60)
                elif delay:
                    time.sleep(delay)
                self.send_response(receiver.status.get(path, 204))
                self.send_header("Location", receiver.url("/elsewhere"))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def of(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.got if r.path == path]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()
    assert r.unverified == []


def hook(api: Api, receiver: Receiver, path: str, events=("*",), **behaviour: object) -> dict:
    w = api.ok("POST", f"{API}/webhooks", {"url": receiver.url(path), "events": list(events), "description": path})
    assert w["secret"].startswith("whsec_")
    receiver.secrets[path] = w["secret"]
    if "status" in behaviour:
        receiver.status[path] = behaviour["status"]  # type: ignore[assignment]
    if "delay" in behaviour:
        receiver.delay[path] = behaviour["delay"]  # type: ignore[assignment]
    return w


def deliveries(api: Api, webhook: dict, state: str | None = None) -> list[dict]:
    query = f"?limit=500&state={state}" if state else "?limit=500"
    return api.ok("GET", f"{API}/webhooks/{webhook['id']}/deliveries{query}")["items"]


@pytest.fixture
def hooked(tmp_path: Path, catalog_url: str | None):
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, catalog=catalog_url, webhook_allow_private=True,
                              webhook_retry_base=0.2, webhook_max_attempts=4, webhook_timeout=2.0))  # fmt: skip
    api = srv.start()
    yield api
    srv.stop()


def test_every_kind_of_event_is_delivered_signed(hooked: Api, receiver: Receiver):
    everything = hook(hooked, receiver, "/all")
    releases_only = hook(hooked, receiver, "/releases", events=["release.*"])
    assert "secret" not in hooked.ok("GET", f"{API}/webhooks/{everything['id']}")
    assert all("secret" not in w for w in hooked.ok("GET", f"{API}/webhooks")["items"])
    fleet = Fleet(hooked)
    b1 = fleet.bundle("1.0.0", targets=[TARGET])
    b2 = fleet.bundle("2.0.0", targets=[TARGET])
    ch = fleet.channel("stable")
    cohort = hooked.ok("POST", f"{API}/cohorts", {"name": "c", "channel_id": ch["id"]})
    r1 = fleet.release(ch, "v1", b1)
    r2 = fleet.release(ch, "v2", b2, halt={"max_failures": 0})
    hooked.ok("PATCH", f"{API}/releases/{r1['id']}", {"required": True})
    (_, a1), (d2, a2) = fleet.device("d1", TARGET, cohort), fleet.device("d2", TARGET, cohort)
    check(a1, {"release_id": r1["id"]})
    a1.post("/device/v1/report", {"bundle_id": b2["id"], "release_id": r2["id"], "status": "installed"})
    a2.post("/device/v1/report", {"bundle_id": b2["id"], "release_id": r2["id"], "status": "failed", "reason": "io"})

    expected = {
        "binary.state_changed", "signature.created", "bundle.created", "release.created", "release.changed",
        "release.halted", "device.first_seen", "update.installed", "update.failed",
    }  # fmt: skip
    assert wait_for(lambda: {r.type for r in receiver.of("/all")} >= expected), {r.type for r in receiver.of("/all")}
    got = receiver.of("/all")
    by_type = Counter(r.type for r in got)
    assert by_type["bundle.created"] == 2 and by_type["release.created"] == 2 and by_type["release.halted"] == 1
    assert by_type["device.first_seen"] == 2  # d1 by its check-in, d2 by its report
    assert by_type["signature.created"] == 2 and by_type["binary.state_changed"] >= 6
    halted = next(r.body for r in got if r.type == "release.halted")
    assert halted["data"]["resource_id"] == r2["id"] and halted["data"]["actor"] == d2["id"]
    assert halted["data"]["object"]["halted_reason"] == "1 devices failed, more than max_failures 0"
    failed = next(r.body for r in got if r.type == "update.failed")["data"]
    assert failed["object"]["report"] == {"bundle_id": b2["id"], "status": "failed", "release_id": r2["id"], "version": None,
                                          "reason": "io", "detail": None}  # fmt: skip
    # Each delivery's body names its audit event; the event exists.
    events = {e["id"]: e for e in hooked.ok("GET", f"{API}/events?limit=500")["items"]}
    assert all(r.body["data"]["event_id"] in events for r in got)
    assert len({r.id for r in got}) == len(got)  # one delivery per event, none sent twice

    # The other webhook got only the release events, the same events under its own IDs.
    assert wait_for(lambda: len(receiver.of("/releases")) == by_type["release.created"] + by_type["release.changed"] + 1)
    assert {r.type for r in receiver.of("/releases")} == {"release.created", "release.changed", "release.halted"}
    assert wait_for(lambda: all(d["state"] == "delivered" for d in deliveries(hooked, releases_only)))
    log = deliveries(hooked, releases_only)
    assert all(d["attempts"] == 1 and d["last_status"] == 204 and d["log"][0]["status"] == 204 for d in log)
    assert {d["id"] for d in log} == {r.id for r in receiver.of("/releases")}


def test_a_failing_receiver_gets_retries_with_growing_delays_then_a_redelivery(hooked: Api, receiver: Receiver):
    w = hook(hooked, receiver, "/down", events=["bundle.created", "bundle.created"], status=500)
    assert w["events"] == ["bundle.created"]
    Fleet(hooked).bundle("1.0.0", targets=[TARGET])
    assert wait_for(lambda: len(receiver.of("/down")) == 4)
    time.sleep(0.5)
    attempts = receiver.of("/down")
    assert len(attempts) == 4 and len({a.id for a in attempts}) == 1  # max 4 attempts, one webhook-id
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    # base 0.2 s, doubling, 50 to 100% jitter: [0.1, 0.2], [0.2, 0.4], [0.4, 0.8] (plus latency).
    assert 0.1 <= gaps[0] < 0.35 and 0.2 <= gaps[1] < 0.6 and 0.4 <= gaps[2] < 1.1, gaps
    assert gaps[0] < gaps[2]
    [d] = wait_for(lambda: deliveries(hooked, w, "failed"))
    assert d["attempts"] == 4 and d["last_status"] == 500 and d["next_attempt_at"] is None
    assert [a["status"] for a in d["log"]] == [500] * 4 and d["last_error"] == "the receiver answered 500"

    receiver.status["/down"] = 200
    again = hooked.ok("POST", f"{API}/webhooks/{w['id']}/deliveries/{d['id']}/redeliver")
    assert again["state"] == "pending" and again["id"] == d["id"]
    assert wait_for(lambda: deliveries(hooked, w, "delivered"))
    assert len(receiver.of("/down")) == 5 and receiver.of("/down")[-1].id == d["id"]
    assert problem(hooked.post(f"{API}/webhooks/{w['id']}/deliveries/msg_00000000000000000000000000/redeliver"), 404)
    assert problem(hooked.get(f"{API}/webhooks/{w['id']}/deliveries?state=lost"), 422)


@pytest.mark.parametrize(("status", "delivered"), [(200, True), (299, True), (300, False), (302, False), (404, False)])
def test_only_a_2xx_answer_is_a_delivery_and_redirects_are_not_followed(hooked: Api, receiver: Receiver, status, delivered):
    w = hook(hooked, receiver, "/answer", events=["bundle.created"], status=status)
    receiver.secrets["/elsewhere"] = w["secret"]
    Fleet(hooked).bundle("1.0.0", targets=[TARGET])
    [d] = wait_for(lambda: [d for d in deliveries(hooked, w) if d["state"] != "pending" or d["attempts"] > 1])
    assert (d["state"] == "delivered") is delivered and d["last_status"] == status
    assert receiver.of("/elsewhere") == []


def test_a_hanging_receiver_does_not_delay_another(hooked: Api, receiver: Receiver):
    hook(hooked, receiver, "/hang", events=["release.*"], delay=float("inf"))
    fast = hook(hooked, receiver, "/fast", events=["release.*"])
    fleet = Fleet(hooked)
    bundle = fleet.bundle("1.0.0", targets=[TARGET])
    ch = fleet.channel("stable")
    r = fleet.release(ch, "v1", bundle)
    started = time.monotonic()
    for i in range(24):  # more than the hanging receiver's slots
        hooked.ok("PATCH", f"{API}/releases/{r['id']}", {"name": f"v1-{i}"})
    assert wait_for(lambda: len(receiver.of("/fast")) == 25, timeout=10)
    assert time.monotonic() - started < 1.9  # well before a hanging attempt times out (2 s)
    assert len(receiver.of("/hang")) <= 8  # its own slots only
    assert wait_for(lambda: len(deliveries(hooked, fast, "delivered")) == 25)


def test_a_webhook_can_be_changed_disabled_and_deleted(hooked: Api, receiver: Receiver):
    w = hook(hooked, receiver, "/x", events=["bundle.created"])
    for bad in ({"url": "ftp://x/"}, {"events": ["release.exploded"]}, {"events": []}, {"events": ["*x"]}):
        assert problem(hooked.patch(f"{API}/webhooks/{w['id']}", bad), 422)
    off = hooked.ok("PATCH", f"{API}/webhooks/{w['id']}", {"disabled": True, "description": "paused"})
    assert off["disabled"] is True and off["description"] == "paused"
    Fleet(hooked).bundle("1.0.0", targets=[TARGET])
    time.sleep(1.2)
    assert receiver.of("/x") == [] and deliveries(hooked, w) == []  # a disabled webhook queues nothing
    assert hooked.call("DELETE", f"{API}/webhooks/{w['id']}").status == 204
    assert problem(hooked.get(f"{API}/webhooks/{w['id']}"), 404)
    viewer = hooked.ok("POST", f"{API}/api-keys", {"name": "v", "role": "viewer"})["token"]
    assert problem(hooked.as_(viewer).get(f"{API}/webhooks"), 403)
    assert problem(hooked.as_(viewer).post(f"{API}/webhooks", {"url": "http://127.0.0.1/", "events": ["*"]}), 403)


def test_private_targets_are_refused_unless_allowed(tmp_path: Path, receiver: Receiver):
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN))
    api = srv.start()
    try:
        for url in ("http://127.0.0.1:9/", "http://localhost:9/", "http://[::1]/", "http://169.254.169.254/",
                    "http://10.1.2.3/", "http://[::ffff:127.0.0.1]/"):  # fmt: skip
            r = api.post(f"{API}/webhooks", {"url": url, "events": ["*"]})
            assert problem(r, 422) and "webhook-allow-private" in r.json["detail"], url
        assert api.ok("GET", f"{API}/webhooks")["items"] == []
        # A name is checked where it resolves: this machine's own name resolves to a
        # non-public address, so the delivery is refused and the attempt logged.
        name = socket.gethostname()
        if any(_public(a[4][0]) for a in socket.getaddrinfo(name, 80)):
            pytest.skip(f"{name} resolves to a public address here")
        receiver.secrets["/n"] = "whsec_AAAA"
        w = api.ok("POST", f"{API}/webhooks", {"url": f"http://{name}:{receiver.server.server_port}/n", "events": ["*"]})
        Fleet(api).bundle("1.0.0", targets=[TARGET])
        d = wait_for(lambda: [d for d in deliveries(api, w) if d["attempts"]])
        assert "non-public address" in d[0]["last_error"] and d[0]["state"] == "pending" and d[0]["last_status"] is None
        assert receiver.of("/n") == []
    finally:
        srv.stop()


def _public(address: str) -> bool:
    from ferryman.webhooks import address_allowed

    return address_allowed(address)


def test_deliveries_survive_a_sigkill_none_lost_none_invented(tmp_path: Path, receiver: Receiver, catalog_url: str | None):
    args = ("--webhook-allow-private", "--webhook-retry-base", "0.2", "--job-lease", "1", "--webhook-timeout", "1")
    server = ProcessServer(tmp_path / "data", catalog_url, *args)
    api = server.start()
    try:
        w = hook(api, receiver, "/slow", events=["release.*"], delay=0.15)
        fleet = Fleet(api)
        bundle = fleet.bundle("1.0.0", targets=[TARGET])
        r = fleet.release(fleet.channel("stable"), "v1", bundle)
        for i in range(60):
            api.ok("PATCH", f"{API}/releases/{r['id']}", {"name": f"v1-{i}"})
        # About 8 deliveries in flight at a time, 0.15 s each: a backlog when it is killed.
        assert wait_for(lambda: len(receiver.of("/slow")) >= 10)
        server.kill()
        killed_at = time.time()
        before = {x.id for x in receiver.of("/slow")}
        assert len(before) < 61, "everything was delivered before the kill; nothing was tested"
        api = server.start()
        assert wait_for(lambda: len(deliveries(api, w, "delivered")) == 61, timeout=30)
        rows = deliveries(api, w)
        got = receiver.of("/slow")
        counts = Counter(x.id for x in got)
        # None lost: every event's delivery arrived. None invented: nothing else arrived.
        assert set(counts) == {d["id"] for d in rows} and len(rows) == 61
        events = {e["id"] for e in api.ok("GET", f"{API}/events?resource_id={r['id']}&limit=500")["items"]}
        assert {x.body["data"]["event_id"] for x in got} == events and len(events) == 61
        # Each arrived once and was recorded before the kill, or arrived once more after the
        # restart because the kill came before its arrival was recorded (in flight, or its
        # result not yet written): recorded then, never sent a third time.
        assert all(n <= 2 for n in counts.values())
        delivered_at = {d["id"]: dt.datetime.fromisoformat(d["delivered_at"].replace("Z", "+00:00")).timestamp() for d in rows}
        for i, n in counts.items():
            arrived_before = i in before
            if n == 2:
                assert arrived_before and delivered_at[i] > killed_at, i
            elif arrived_before:
                assert delivered_at[i] < killed_at, i
    finally:
        server.stop()


def test_the_cli_creates_lists_and_shows_webhook_deliveries(hooked: Api, receiver: Receiver, capsys):
    from ferryman.cli import main

    base = ["--url", f"http://{hooked.host}:{hooked.port}", "--token", ADMIN]
    assert main(["webhooks", "create", receiver.url("/cli"), "--event", "bundle.created", "--json", *base]) == 0
    w = json.loads(capsys.readouterr().out)
    receiver.secrets["/cli"] = w["secret"]
    assert main(["webhooks", "list", *base]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == [w["id"], receiver.url("/cli")]
    Fleet(hooked).bundle("1.0.0", targets=[TARGET])
    assert wait_for(lambda: deliveries(hooked, w, "delivered"))
    assert main(["webhooks", "deliveries", w["id"], "--state", "delivered", *base]) == 0
    line = capsys.readouterr().out.split()
    assert line[1:3] == ["bundle.created", "delivered"]
    assert main(["webhooks", "redeliver", w["id"], line[0], *base]) == 0
    assert capsys.readouterr().out == f"{line[0]} queued again\n"
    assert main(["webhooks", "create", "ftp://x/", "--event", "*", *base]) == 1
    assert "webhook URL must be an http:// or https:// URL" in capsys.readouterr().err

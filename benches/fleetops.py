"""Fleet operations, three measurements in one run (catalog of ``benches.updates``: devices
in 50 channels of 20 releases, 2,000 of them drawn by wrk with 64 connections):

1. Update checks with metrics and a webhook on every event, against the same server with
   ``--no-metrics`` and no webhook (alternating runs, medians; target >= 0.95x).
2. Device reports per second against update checks per second on the same server (target
   >= 0.5x), with metrics and the webhook (as measured above) and without. Each report is a
   write: the device's state, its history, its outcome for the release, an audit event and a
   webhook delivery in the outbox (then sent, in the same process).
3. Webhook throughput: 10,000 events (device reports) delivered to a local receiver (its own
   process): events/s and the delay from each event to its arrival (p50, p99).

    python -m benches.fleetops            # 100,000 devices, 8 s per run
    python -m benches.fleetops --smoke    # 1,000 devices, 1 s runs, 500 events (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benches.service import free_port, start
from benches.updates import LUA, populate, wrk

REPORT_LUA = """
local tokens = {%s}
local bodies = {%s}
request = function()
  local i = math.random(#tokens)
  return wrk.format("POST", "/device/v1/report", {["Authorization"] = "Bearer " .. tokens[i],
                    ["Content-Type"] = "application/json"}, bodies[i])
end
"""
ADMIN = "bench"


def _api(port: int, method: str, path: str, body: object = None) -> object:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


def receiver(port: int) -> None:
    """A webhook receiver: answers 204 at once and keeps, per delivery, the event's time and
    its arrival (GET /stats)."""
    from aiohttp import web

    got: dict[str, tuple[float, float]] = {}

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        at = dt.datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp()
        got.setdefault(request.headers["webhook-id"], (at, time.time()))
        return web.Response(status=204)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(list(got.values()))

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _serve(tmp: Path, port: int, *flags: str):
    cmd = [sys.executable, "-m", "ferryman", "serve", "--port", str(port), "--data", str(tmp / "data"), *flags]
    return start(cmd, port, {"FERRYMAN_ADMIN_TOKEN": ADMIN})


def _stop(proc) -> None:
    proc.terminate()
    proc.wait(30)


async def _send_reports(port: int, tokens: list[str], bodies: list[str], count: int) -> None:
    import aiohttp

    sem = asyncio.Semaphore(64)
    async with aiohttp.ClientSession() as s:

        async def one(i: int) -> None:
            async with sem, s.post(f"http://127.0.0.1:{port}/device/v1/report", data=bodies[i % len(bodies)],
                                   headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}",
                                            "Content-Type": "application/json"}) as r:  # fmt: skip
                assert r.status == 200, await r.text()

        await asyncio.gather(*(one(i) for i in range(count)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    if args.smoke:
        args.devices, args.seconds, args.events, args.rounds = 1000, 1, 500, 1
    if shutil.which("wrk") is None:
        print("fleet-operations benchmark skipped: needs wrk (apt-get install wrk)")
        return 0
    with tempfile.TemporaryDirectory(prefix="ferryman-ops-") as d:
        tmp = Path(d)
        (tmp / "data").mkdir()
        tokens, reported = populate(f"sqlite:///{tmp / 'data' / 'catalog.sqlite3'}", args.devices, 50, 1000)
        checks = tmp / "check.lua"
        checks.write_text(LUA % (",".join(json.dumps(t) for t in tokens), ",".join(json.dumps(r) for r in reported)))
        rport = free_port()
        recv = start([sys.executable, "-m", "benches.fleetops", "--receiver", str(rport)], rport)
        port = free_port()
        try:
            # Reports name the latest release of the device's channel (its bundle is offered to it).
            db = sqlite3.connect(tmp / "data" / "catalog.sqlite3")
            latest = {
                cohort: (rid, bundle)
                for cohort, rid, bundle in db.execute(
                    "SELECT c.id, r.id, r.bundle_id FROM cohorts c JOIN releases r ON r.channel_id = c.channel_id "
                    "WHERE r.next_release_id IS NULL"
                )
            }
            cohort_of = dict(db.execute("SELECT identifier, cohort_id FROM devices"))
            db.close()
            bodies = []
            for i, _ in enumerate(tokens):
                rid, bundle = latest[cohort_of[f"unit-{i}"]]
                status = ("downloading", "installing", "installed")[i % 3]
                bodies.append(json.dumps({"bundle_id": bundle, "release_id": rid, "status": status}))
            reports = tmp / "report.lua"
            reports.write_text(REPORT_LUA % (",".join(json.dumps(t) for t in tokens), ",".join(json.dumps(b) for b in bodies)))

            off, on = [], []
            report_rps, report_off = [], []
            for _ in range(args.rounds):
                srv = _serve(tmp, port, "--no-metrics")
                wrk(f"http://127.0.0.1:{port}", checks, 1)
                off.append(wrk(f"http://127.0.0.1:{port}", checks, args.seconds)[0])
                report_off.append(wrk(f"http://127.0.0.1:{port}", reports, args.seconds)[0])
                _stop(srv)
                srv = _serve(tmp, port, "--webhook-allow-private")
                hook = _api(port, "POST", "/api/v1/webhooks", {"url": f"http://127.0.0.1:{rport}/hook", "events": ["*"]})
                wrk(f"http://127.0.0.1:{port}", checks, 1)
                on.append(wrk(f"http://127.0.0.1:{port}", checks, args.seconds)[0])
                report_rps.append(wrk(f"http://127.0.0.1:{port}", reports, args.seconds)[0])
                _api(port, "DELETE", f"/api/v1/webhooks/{hook['id']}")  # type: ignore[index]
                _stop(srv)

            # Webhook throughput: only update.installed events, to a receiver that kept none yet.
            srv = _serve(tmp, port, "--webhook-allow-private")
            _api(port, "POST", "/api/v1/webhooks", {"url": f"http://127.0.0.1:{rport}/hook", "events": ["update.installed"]})
            installed = [b for b in bodies if '"installed"' in b]
            seen = len(json.loads(urllib.request.urlopen(f"http://127.0.0.1:{rport}/stats").read()))
            asyncio.run(_send_reports(port, tokens[2::3], installed, args.events))
            deadline = time.monotonic() + 300
            while True:
                got = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{rport}/stats").read())[seen:]
                if len(got) >= args.events or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            _stop(srv)
        finally:
            _stop(recv)
    first = min(at for at, _ in got)
    last = max(arrived for _, arrived in got)
    delays = sorted(arrived - at for at, arrived in got)
    p50, p99 = delays[len(delays) // 2], delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    checks_off, checks_on, rep = statistics.median(off), statistics.median(on), statistics.median(report_rps)
    rep_off = statistics.median(report_off)
    judge = (lambda ok: "") if args.smoke else (lambda ok: "met" if ok else "MISSED")
    print(f"update checks/s: metrics and webhooks off {checks_off:.0f}, on {checks_on:.0f} (runs: {off} / {on})")
    print(f"  ratio {checks_on / checks_off:.2f}x (target >= 0.95x) {judge(checks_on / checks_off >= 0.95)}")
    print(f"device reports/s {rep:.0f} vs update checks/s {checks_on:.0f} on the same server (runs: {report_rps})")
    print(f"  ratio {rep / checks_on:.2f}x (target >= 0.5x) {judge(rep / checks_on >= 0.5)}")
    print(f"  without metrics and webhooks: reports/s {rep_off:.0f} vs checks/s {checks_off:.0f}, {rep_off / checks_off:.2f}x"
          f" (runs: {report_off})")  # fmt: skip
    rate = len(got) / (last - first)
    print(f"webhooks: {len(got)} of {args.events} events delivered in {last - first:.2f}s = {rate:.0f} events/s;"
          f" delay from event to arrival p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")  # fmt: skip
    if args.smoke:
        print("smoke run: sizes too small for the ratios to mean anything; targets not judged")
    return 0 if len(got) >= args.events else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--receiver":
        receiver(int(sys.argv[2]))
    else:
        sys.exit(main())

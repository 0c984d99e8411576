"""The console's devices page on a fleet of 100,000: a cohort's devices, fifty a page, walked
through their pages, against the API's JSON list of the same page (``GET /api/v1/devices``), same
server, same run. Target: the page at least half as fast (JSON p50 / page p50 >= 0.5).

    python -m benches.console            # 100,000 devices, 300 requests each
    python -m benches.console --smoke    # 1,000 devices, 30 requests (CI)

The catalog is filled with SQL before the server starts (``benches.updates.populate``). Requests
go one at a time on one kept-alive connection each, so the figure is the server's time per page
(plus a loopback round trip, the same for both).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from benches.service import free_port, start
from benches.updates import populate

TOKEN = "bench"


def _timed(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - t0
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
    return elapsed, body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args(argv)
    if args.smoke:
        args.devices, args.requests = 1000, 30
    with tempfile.TemporaryDirectory(prefix="ferryman-console-") as d:
        tmp = Path(d)
        (tmp / "data").mkdir()
        populate(f"sqlite:///{tmp / 'data' / 'catalog.sqlite3'}", args.devices, 50, 1000)
        port = free_port()
        server = start([sys.executable, "-m", "ferryman", "serve", "--port", str(port), "--data", str(tmp / "data")], port,
                       {"FERRYMAN_ADMIN_TOKEN": TOKEN})  # fmt: skip
        try:
            api = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            ui = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            ui.request("POST", "/ui/sign-in", body=urlencode({"token": TOKEN, "next": "/ui/"}),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            signed_in = ui.getresponse()
            signed_in.read()
            cookie = {"Cookie": signed_in.headers["Set-Cookie"].split(";")[0]}
            _, body = _timed(api, "/api/v1/cohorts?limit=1", bearer)
            cohort = json.loads(body)["items"][0]["id"]
            # The cohort's pages, by the API's own cursors: the page and the JSON ask for the same ones.
            cursors: list[str | None] = [None]
            while len(cursors) < 10:
                _, body = _timed(
                    api,
                    f"/api/v1/devices?cohort_id={cohort}&limit=50" + (f"&cursor={cursors[-1]}" if cursors[-1] else ""),
                    bearer,
                )
                nxt = json.loads(body)["next_cursor"]
                if not nxt:
                    break
                cursors.append(nxt)
            page_t, json_t = [], []
            for i in range(args.requests):
                cursor = cursors[i % len(cursors)]
                suffix = f"&cursor={quote(cursor)}" if cursor else ""
                json_t.append(_timed(api, f"/api/v1/devices?cohort_id={cohort}&limit=50{suffix}", bearer)[0])
                elapsed, html = _timed(ui, f"/ui/devices?cohort_id={cohort}{suffix}", cookie)
                assert html.count(b"<tr>") >= 2, "the page lists no device"
                page_t.append(elapsed)
        finally:
            server.terminate()
            server.wait(10)
    page_p50, json_p50 = statistics.median(page_t) * 1e3, statistics.median(json_t) * 1e3
    ratio = json_p50 / page_p50
    print(f"{'request':34} {'p50 ms':>7} {'p95 ms':>7}")
    for name, ts in (("console /ui/devices (HTML)", page_t), ("API /api/v1/devices (JSON)", json_t)):
        print(f"{name:34} {statistics.median(ts) * 1e3:7.2f} {statistics.quantiles(ts, n=20)[-1] * 1e3:7.2f}")
    verdict = "" if args.smoke else ("met" if ratio >= 0.5 else "MISSED")
    print(f"ratio {ratio:.2f}x (JSON p50 / page p50, target >= 0.5x) {verdict}; {args.devices} devices, 50 a page")
    if args.smoke:
        print("smoke run: sizes too small for the ratio to mean anything; target not judged")
    return 0


if __name__ == "__main__":
    sys.exit(main())

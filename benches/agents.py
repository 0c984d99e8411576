"""The stock device agents' protocols against Ferryman's own update check, same run:

- hawkBit DDI root polls per second (``GET /{tenant}/controller/v1/{id}``, TargetToken) vs
  ``GET /device/v1/update``: target >= 0.8x;
- Mender ``POST /api/devices/v2/deployments/device/deployments/next`` per second vs the same:
  target >= 0.8x;
- the server's hashing pass with SHA-1 and MD5 added (the DDI artifacts' hashes) vs SHA-256
  alone, on a 1 GiB file in the page cache: the ratio is reported.

    python -m benches.agents            # 100,000 devices, 10 s per server and round, 3 rounds
    python -m benches.agents --smoke    # 1,000 devices, 1 s, one round; 64 MiB file (CI)

The catalog is ``benches.updates``'s (50 channels, 1,000 releases), with every binary a Mender
artifact for its target. The same 2,000 devices are drawn at random by all three loads; half
run the latest release of their channel (nothing to do), half run nothing (an update: for the
agents, an action opened at the first poll and served from then on; for ``/device/v1/update``
a manifest with signed URLs). wrk loads each server with 64 connections; the three loads are
alternated over the rounds and the medians compared.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benches.service import free_port, start
from benches.updates import LUA as UPDATE_LUA
from benches.updates import populate, wrk

DDI_LUA = """
local tokens = {%s}
local ids = {%s}
request = function()
  local i = math.random(#tokens)
  return wrk.format("GET", "/DEFAULT/controller/v1/" .. ids[i], {["Authorization"] = "TargetToken " .. tokens[i]})
end
"""

MENDER_LUA = """
local tokens = {%s}
local names = {%s}
request = function()
  local i = math.random(#tokens)
  local body = '{"device_provides":{"artifact_name":"' .. names[i] .. '","device_type":"x"}}'
  local headers = {["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json"}
  return wrk.format("POST", "/api/devices/v2/deployments/device/deployments/next", headers, body)
end
"""


def as_agents(catalog: str, reported: list[str]) -> list[str]:
    """Makes every binary a Mender artifact (named after its binary ID) and records, for the
    devices wrk draws, the release each runs (the agents' poll uses what the device last
    reported); returns the artifact name each device reports ("factory" for none)."""
    from sqlalchemy import create_engine, text

    from ferryman.catalog.sql.engines import engine_url

    engine = create_engine(engine_url(catalog))
    with engine.begin() as conn:
        conn.execute(text(
            "UPDATE binaries SET mender = '{\"artifact_name\": \"' || id || '\", \"device_types\": [\"' || target"
            " || '\"], \"provides\": {}}', filename = id || '.mender'"
        ))  # fmt: skip
        rows = [{"r": r, "i": f"unit-{d}"} for d, r in enumerate(reported) if r]
        conn.execute(text("UPDATE devices SET reported_release_id = :r WHERE identifier = :i"), rows)
        names = []
        for d, r in enumerate(reported):
            target = "x86_64-linux-gnu" if d % 2 else "aarch64-linux-gnu"
            found = conn.execute(text(
                "SELECT b.id FROM releases r JOIN bundle_entries e ON e.bundle_id = r.bundle_id"
                " JOIN binaries b ON b.id = e.binary_id WHERE r.id = :r AND b.target = :t"
            ), {"r": r, "t": target}).scalar() if r else None  # fmt: skip
            names.append(found or "factory")
    engine.dispose()
    return names


def hashing(size: int, rounds: int) -> tuple[float, float]:
    """Seconds per GiB of the server's hashing pass (SHA-256 with 8 MiB parts) without and with
    SHA-1 and MD5, medians over alternated rounds."""
    from ferryman.hashing import hash_file

    with tempfile.NamedTemporaryFile(prefix="ferryman-agents-") as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
        f.flush()
        hash_file(f.name, part_size=8 << 20)  # into the page cache
        plain, legacy = [], []
        for _ in range(rounds):
            for out, flag in ((plain, False), (legacy, True)):
                t = time.perf_counter()
                hash_file(f.name, part_size=8 << 20, legacy=flag)
                out.append((time.perf_counter() - t) * (1 << 30) / size)
    return statistics.median(plain), statistics.median(legacy)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    size = 1 << 30
    if args.smoke:
        args.devices, args.seconds, args.rounds, size = 1000, 1, 1, 64 << 20
    plain, legacy = hashing(size, max(args.rounds, 3))
    print(f"server hashing, s/GiB: SHA-256 + parts {plain:.3f}, with SHA-1 and MD5 {legacy:.3f} "
          f"(cost {legacy / plain:.2f}x the time, {plain / legacy:.2f}x the speed)")  # fmt: skip
    if shutil.which("wrk") is None:
        print("protocol benchmark skipped: needs wrk (apt-get install wrk)")
        return 0
    random.seed(1)
    with tempfile.TemporaryDirectory(prefix="ferryman-agents-") as d:
        tmp = Path(d)
        (tmp / "data").mkdir()
        catalog = f"sqlite:///{tmp / 'data' / 'catalog.sqlite3'}"
        tokens, reported = populate(catalog, args.devices, 50, 1000)
        names = as_agents(catalog, reported)
        quoted = ",".join(json.dumps(t) for t in tokens)
        scripts = {
            "update": UPDATE_LUA % (quoted, ",".join(json.dumps(r) for r in reported)),
            "ddi": DDI_LUA % (quoted, ",".join(json.dumps(f"unit-{i}") for i in range(len(tokens)))),
            "mender": MENDER_LUA % (quoted, ",".join(json.dumps(n) for n in names)),
        }
        for name, text in scripts.items():
            (tmp / f"{name}.lua").write_text(text)
        port = free_port()
        server = start([sys.executable, "-m", "ferryman", "serve", "--port", str(port), "--data", str(tmp / "data")], port,
                       {"FERRYMAN_ADMIN_TOKEN": "bench"})  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in scripts}
        try:
            for name in scripts:
                wrk(url, tmp / f"{name}.lua", 2)  # warm-up; the agents' first polls open their actions
            for _ in range(args.rounds):
                for name in scripts:
                    results[name].append(wrk(url, tmp / f"{name}.lua", args.seconds))
        finally:
            server.terminate()
            server.wait(10)
    med = {name: tuple(statistics.median(r[i] for r in rs) for i in range(3)) for name, rs in results.items()}
    labels = {"update": "GET /device/v1/update", "ddi": "DDI root poll", "mender": "Mender deployments/next v2"}
    print(f"{'load':28} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7}  (medians of {args.rounds} rounds)")
    for name, (rps, p50, p99) in med.items():
        print(f"{labels[name]:28} {rps:9.0f} {p50:7.2f} {p99:7.2f}")
    for name in ("ddi", "mender"):
        ratio = med[name][0] / med["update"][0]
        verdict = "" if args.smoke else ("met" if ratio >= 0.8 else "MISSED")
        print(f"{labels[name]} / update check: {ratio:.2f}x (target >= 0.8x) {verdict}")
    print(f"catalog: {args.devices} devices, 50 channels, 1000 releases")
    if args.smoke:
        print("smoke run: sizes too small for the ratios to mean anything; targets not judged")
    return 0


if __name__ == "__main__":
    sys.exit(main())

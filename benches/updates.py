"""Update checks per second: Ferryman's ``GET /device/v1/update`` on a catalog of 100,000
devices, 50 channels and 1,000 releases, against the most trivial aiohttp JSON handler
(``benches/baseline_json.py``), both loaded by wrk with 64 connections, same run.

    python -m benches.updates            # full catalog, 15 s per server
    python -m benches.updates --smoke    # 1,000 devices, 2 s (CI)

Every request carries the token of a device drawn at random from 2,000 of them; half the
devices report the latest release of their channel (answer: no update), half report nothing
(answer: an update with its manifest: binaries, signatures and signed download URLs). The
catalog is filled with SQL before the server starts (building it through the API would take
longer than the measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from benches.service import free_port, start
from ferryman.catalog.rules import hash_token, now
from ferryman.ids import new_id

LUA = """
local tokens = {%s}
local releases = {%s}
request = function()
  local i = math.random(#tokens)
  local headers = {["Authorization"] = "Bearer " .. tokens[i]}
  if releases[i] ~= "" then headers["Ferryman-Release-Id"] = releases[i] end
  return wrk.format("GET", "/device/v1/update", headers)
end
"""


def _row(table: str, **values: object) -> tuple[str, dict[str, object]]:
    cols = ", ".join(f'"{c}"' for c in values)
    return f"INSERT INTO {table} ({cols}) VALUES ({', '.join(':' + c for c in values)})", values


def populate(catalog: str, devices: int, channels: int, releases: int) -> tuple[list[str], list[str]]:
    """Fills an empty catalog (``sqlite:///path`` or ``postgresql://…``, migrated here) and
    returns the tokens wrk draws from and the release each reports ("" for none)."""
    from sqlalchemy import create_engine, text

    from ferryman.catalog.sql.engines import engine_url
    from ferryman.catalog.sql.migrate import migrate

    url = engine_url(catalog)
    asyncio.run(migrate(url))
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # a plain synchronous connection for the bulk load
    engine = create_engine(url)
    batches: dict[str, list[dict[str, object]]] = {}

    def add(table: str, **values: object) -> None:
        sql, row = _row(table, **values)
        batches.setdefault(sql, []).append(row)

    t = now()
    sk = ed25519.Ed25519PrivateKey.generate()
    pem = sk.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    der = sk.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_id = new_id("signing_key")
    add("signing_keys", id=key_id, name="bench", keyid=hashlib.sha256(der).hexdigest(), algorithm="ed25519", kind="ed25519",
        bits=256, public_key=pem, not_before=None, not_after=None, state="active", created_at=t, updated_at=t)  # fmt: skip
    art = new_id("artifact")
    add("artifacts", id=art, name="rootfs", description=None, custom_metadata="{}", created_at=t, updated_at=t)
    per_channel = releases // channels
    bundles = []
    for b in range(per_channel):
        ver = new_id("version")
        add("versions", id=ver, artifact_id=art, version=f"1.{b}.0", semver=1, description=None, custom_metadata="{}",
            created_at=t, updated_at=t)  # fmt: skip
        bundle = new_id("bundle")
        add("bundles", id=bundle, name=None, hash="00" * 32, created_at=t)
        for pos, target in enumerate(["aarch64-linux-gnu", "x86_64-linux-gnu"]):
            bid, digest = new_id("binary"), hashlib.sha256(f"{b}{target}".encode()).digest()
            add("binaries", id=bid, version_id=ver, target=target, size=1 << 20, sha256=digest.hex(), part_size=8 << 20,
                state="signed", error=None, description=None, custom_metadata="{}", created_at=t, updated_at=t)  # fmt: skip
            add("signatures", id=new_id("signature"), binary_id=bid, signing_key_id=key_id, signature=sk.sign(digest).hex(),
                message="digest", created_at=t)  # fmt: skip
            add("bundle_entries", bundle_id=bundle, position=pos, binary_id=bid, custom_metadata="{}")
        bundles.append(bundle)
    cohorts, latest = [], []
    for c in range(channels):
        chn = new_id("channel")
        add("channels", id=chn, name=f"channel-{c}", description=None, created_at=t, updated_at=t)
        ids = [new_id("release") for _ in range(per_channel)]
        for i, rid in enumerate(ids):
            add("releases", id=rid, channel_id=chn, name=f"r{i}", bundle_id=bundles[i], version=f"1.{i}.0",
                version_requirement=None, next_release_id=ids[i + 1] if i + 1 < len(ids) else None, required=0,
                disabled=0, schedule_at=None, phase=None, claimed=0, created_at=f"{t}{i:04d}", updated_at=t)  # fmt: skip
        coh = new_id("cohort")
        add("cohorts", id=coh, name=f"cohort-{c}", channel_id=chn, description=None, created_at=t, updated_at=t)
        cohorts.append(coh)
        latest.append(ids[-1])
    tokens, reported = [], []
    for d in range(devices):
        token = f"fd_bench_{d}"
        c = d % channels
        add("devices", id=new_id("device"), identifier=f"unit-{d}", target="x86_64-linux-gnu" if d % 2 else "aarch64-linux-gnu",
            tags="[]", cohort_id=cohorts[c], quarantined=0, token_hash=hash_token(token), reported_release_id=None,
            reported_bundle_id=None, reported_version=None, last_status=None, last_detail=None, last_seen_at=None,
            created_at=t, updated_at=t)  # fmt: skip
        if d < 2000:
            tokens.append(token)
            reported.append(latest[c] if d % 2 else "")
    # Releases name their successors: insert them last first (the foreign key wants the target).
    with engine.begin() as conn:
        for sql, rows in batches.items():
            if sql.startswith("INSERT INTO releases"):
                rows = rows[::-1]
            conn.execute(text(sql), rows)
    engine.dispose()
    return tokens, reported


def wrk(url: str, script: Path, seconds: int) -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} failed requests:\n{out}")
    return rps, pct("50"), pct("99")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=15)
    args = ap.parse_args(argv)
    if args.smoke:
        args.devices, args.seconds = 1000, 2
    if shutil.which("wrk") is None:
        print("update-check benchmark skipped: needs wrk (apt-get install wrk)")
        return 0
    random.seed(1)
    with tempfile.TemporaryDirectory(prefix="ferryman-upd-") as d:
        tmp = Path(d)
        (tmp / "data").mkdir()
        tokens, reported = populate(f"sqlite:///{tmp / 'data' / 'catalog.sqlite3'}", args.devices, 50, 1000)
        script = tmp / "check.lua"
        script.write_text(LUA % (",".join(json.dumps(t) for t in tokens), ",".join(json.dumps(r) for r in reported)))
        port_f, port_b = free_port(), free_port()
        ours = start(
            [sys.executable, "-m", "ferryman", "serve", "--port", str(port_f), "--data", str(tmp / "data")],
            port_f,
            {"FERRYMAN_ADMIN_TOKEN": "bench"},
        )
        base = start([sys.executable, "-m", "benches.baseline_json", str(port_b)], port_b)
        try:
            wrk(f"http://127.0.0.1:{port_f}", script, 1)  # warm-up
            ours_r = wrk(f"http://127.0.0.1:{port_f}", script, args.seconds)
            base_r = wrk(f"http://127.0.0.1:{port_b}", script, args.seconds)
        finally:
            for proc in (ours, base):
                proc.terminate()
                proc.wait(10)
    print(f"{'server':28} {'checks/s':>9} {'p50 ms':>7} {'p99 ms':>7}")
    print(f"{'ferryman /device/v1/update':28} {ours_r[0]:9.0f} {ours_r[1]:7.2f} {ours_r[2]:7.2f}")
    print(f"{'trivial aiohttp JSON':28} {base_r[0]:9.0f} {base_r[1]:7.2f} {base_r[2]:7.2f}")
    ratio = ours_r[0] / base_r[0]
    verdict = "" if args.smoke else ("met" if ratio >= 0.4 else "MISSED")
    print(f"ratio {ratio:.2f}x (target >= 0.4x) {verdict}; catalog: {args.devices} devices, 50 channels, 1000 releases")
    if args.smoke:
        print("smoke run: sizes too small for the ratios to mean anything; targets not judged")
    return 0


if __name__ == "__main__":
    sys.exit(main())

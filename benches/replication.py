"""Replication benchmarks, each a ratio against its baseline in the same run.

    python -m benches.replication            # full sizes (about 3 minutes)
    python -m benches.replication --smoke    # tiny sizes (CI)

The S3 servers are ``rclone serve s3`` on loopback (Go, files on disk), one per region.

- **Copy**: one binary store to store (S3 to S3) the way replication copies it
  (``write_content`` of the source's ``read``: streamed, hashed on a thread beside the transfer,
  checked before it counts) vs obstore's own streamed copy of the same object between the
  same servers (GET stream into a multipart PUT, same chunk size), 1 GiB, in pairs (each side
  first in every other pair); the ratio is the median of the pairs' ratios.
- **Fan-out**: 100 binaries of 16 MiB uploaded to a server with one region, which then starts
  with three (the primary's file store and two S3 servers): the time from its start to every
  copy verified, vs copying the same files with obstore in a loop (each file to each S3 server,
  one after another). The server's time includes its own start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import obstore

from benches.scaleout import Rclone, median, serve, stop
from benches.service import TOKEN, ferryman_hash, ferryman_upload, free_port
from benches.throughput import MIB, make_file
from ferryman.blobs.objects import COPY_CONCURRENCY, PUT_CHUNK, READ_CHUNK, ObjectBlobStore, open_object_store
from ferryman.hashing import hash_file

KEY = "content/bin_00000000000000000000000000"
BINARY = KEY.split("/")[1]


async def _direct_copy(src: obstore.store.ObjectStore, dst: obstore.store.ObjectStore) -> float:
    t = time.perf_counter()
    got = await obstore.get_async(src, KEY)
    await obstore.put_async(dst, "direct/copy", got.stream(min_chunk_size=READ_CHUNK), chunk_size=PUT_CHUNK,
                            max_concurrency=COPY_CONCURRENCY)  # fmt: skip
    return time.perf_counter() - t


async def _replication_copy(src: ObjectBlobStore, dst: ObjectBlobStore, size: int, sha256: str) -> float:
    t = time.perf_counter()
    content = await src.open(BINARY)
    await dst.write_content(BINARY, content.read(0, size), size, sha256)
    return time.perf_counter() - t


def copy(tmp: Path, smoke: bool, repeat: int) -> tuple[float, float, float, int]:
    size = (32 if smoke else 1024) * MIB
    path = make_file(tmp / "copy.bin", size)
    sha = hash_file(path).sha256
    a, b = Rclone(tmp / "s3a", ["r"]), Rclone(tmp / "s3b", ["r"])
    try:

        async def rounds() -> tuple[list[float], list[float]]:
            src, dst = open_object_store(a.url("r", "fm")), open_object_store(b.url("r", "fm"))
            await obstore.put_async(src, KEY, path, chunk_size=PUT_CHUNK)
            ours, base = [], []
            for i in range(repeat):  # in turns, each side first every other round
                for side in ("base", "ours") if i % 2 == 0 else ("ours", "base"):
                    if side == "base":
                        base.append(await _direct_copy(src, dst))
                    else:
                        ours.append(await _replication_copy(ObjectBlobStore(src, "a"), ObjectBlobStore(dst, "b"), size, sha))
            return ours, base

        ours, base = asyncio.run(rounds())
    finally:
        a.stop()
        b.stop()
    # Both sides write 1 GiB to the same disk: the page cache's writeback lands on whichever
    # copy runs at the time, so each pair's ratio is taken and the median of those reported.
    return median(ours), median(base), median([b / o for b, o in zip(base, ours, strict=True)]), size


def _status(base: str) -> dict:
    req = urllib.request.Request(f"{base}/api/v1/replication", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def fan_out(tmp: Path, smoke: bool) -> tuple[float, float, int, int]:
    count, size = (5, 1 * MIB) if smoke else (100, 16 * MIB)
    a, b = Rclone(tmp / "fa", ["r"]), Rclone(tmp / "fb", ["r"])
    try:
        data, primary = tmp / "data", f"file://{tmp / 'data' / 'store'}"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = serve(port, data, "--store", primary)
        try:
            files = []
            for i in range(count):
                f = make_file(tmp / f"b{i}.bin", size - i)
                bid, _ = asyncio.run(ferryman_upload(base, f, size - i, hash_file(f).sha256))
                asyncio.run(ferryman_hash(base, bid))
                files.append(f)
        finally:
            stop(server)

        # The same files copied with obstore in a loop: the baseline.
        async def loop() -> float:
            stores = [open_object_store(a.url("r", "direct")), open_object_store(b.url("r", "direct"))]
            t = time.perf_counter()
            for i, f in enumerate(files):
                for store in stores:
                    await obstore.put_async(store, f"content/{i}", f, chunk_size=PUT_CHUNK, max_concurrency=COPY_CONCURRENCY)
            return time.perf_counter() - t

        base_seconds = asyncio.run(loop())
        t = time.perf_counter()
        server = serve(port, data, "--region", f"eu={primary}", "--region", f"ap={a.url('r', 'fm')}", "--region",
                       f"us={b.url('r', 'fm')}")  # fmt: skip
        try:
            while True:
                s = _status(base)
                if all(r["copies"].get("verified", 0) == count for r in s["regions"]):
                    break
                time.sleep(0.02)
            ours = time.perf_counter() - t
        finally:
            stop(server)
    finally:
        a.stop()
        b.stop()
    return ours, base_seconds, count, size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--repeat", type=int, default=6)
    args = p.parse_args(argv)
    repeat = 1 if args.smoke else args.repeat
    judge = (lambda ok: "") if args.smoke else (lambda ok: "met" if ok else "MISSED")
    with tempfile.TemporaryDirectory(prefix="ferryman-replication-") as d:
        tmp = Path(d)
        ours, base, ratio, size = copy(tmp, args.smoke, repeat)
        print(f"{'replication':34} {'ours s':>8} {'base s':>8} {'ratio':>7}  target")
        print(f"{f'copy {size // MIB} MiB S3 -> S3':34} {ours:8.2f} {base:8.2f} {ratio:6.2f}x  >= 0.9x {judge(ratio >= 0.9)}")
        ours, base, count, size = fan_out(tmp, args.smoke)
        ratio = base / ours
        what = f"{count} x {size // MIB} MiB to 3 regions"
        print(f"{what:34} {ours:8.2f} {base:8.2f} {ratio:6.2f}x  >= 0.8x {judge(ratio >= 0.8)}")
    if args.smoke:
        print("smoke run: sizes too small for the ratios to mean anything; targets not judged")
    return 0


if __name__ == "__main__":
    sys.exit(main())

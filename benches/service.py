"""Service benchmarks: uploads, server-side hashing and memory, each against its baseline in
the same run.

    python -m benches.service            # 1 GiB upload and hashing, 4 GiB upload for peak RSS
    python -m benches.service --smoke    # tiny sizes (CI)

- Upload: a 1 GiB binary in 8 MiB parts, 4 in flight, over loopback with aiohttp's client, to
  Ferryman (per-part SHA-256 by the native sink) and to a plain aiohttp handler that hashes
  inline with hashlib and writes the part (``benches/baseline_upload.py``). Same client, same
  bytes, both fsync each part.
- Hashing: from ``PATCH {"state": "hashable"}`` to ``signable`` (the server concatenates the
  parts into the content file and hashes it natively) vs ``openssl dgst -sha256`` on that file.
- Memory: the server's peak RSS (VmHWM) after receiving a 4 GiB upload.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

import ferryman
from benches.throughput import MIB, make_file, openssl_speed_sha256

PART = 8 * MIB
TOKEN = "bench-admin"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    import socket

    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{cmd} did not start")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def send_parts(url_of, path: Path, size: int, headers: dict[str, str], inflight: int = 4) -> float:
    """PUTs every part of ``path``; returns the seconds from the first request to the last answer."""
    count = max(1, -(-size // PART))
    sem = asyncio.Semaphore(inflight)
    fd = os.open(path, os.O_RDONLY)

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        async with sem:
            chunk = os.pread(fd, PART, (i - 1) * PART)
            async with session.put(url_of(i), data=chunk, headers=headers) as r:
                assert r.status == 200, await r.text()
                await r.read()

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            t = time.perf_counter()
            await asyncio.gather(*(one(session, i) for i in range(1, count + 1)))
            return time.perf_counter() - t
    finally:
        os.close(fd)


async def ferryman_upload(base: str, path: Path, size: int, sha256: str) -> tuple[str, float]:
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=h) as s:

        async def post(url: str, body: dict) -> dict:
            async with s.post(base + url, json=body) as r:
                assert r.status == 201, await r.text()
                return await r.json()

        art = await post("/api/v1/artifacts", {"name": f"bench-{time.monotonic_ns()}"})
        ver = await post(f"/api/v1/artifacts/{art['id']}/versions", {"version": "1.0.0"})
        b = await post(
            f"/api/v1/versions/{ver['id']}/binaries",
            {"target": "x86_64-linux-gnu", "size": size, "sha256": sha256, "part_size": PART},
        )
    seconds = await send_parts(lambda i: f"{base}/api/v1/binaries/{b['id']}/parts/{i}", path, size, h)
    return b["id"], seconds


async def ferryman_hash(base: str, binary_id: str) -> float:
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=h) as s:
        t = time.perf_counter()
        async with s.patch(f"{base}/api/v1/binaries/{binary_id}", json={"state": "hashable"}) as r:
            assert r.status == 200, await r.text()
        while True:
            async with s.get(f"{base}/api/v1/binaries/{binary_id}") as r:
                state = (await r.json())["state"]
            if state == "signable":
                return time.perf_counter() - t
            assert state == "hashing", state
            await asyncio.sleep(0.005)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--upload-mib", type=int, default=1024)
    p.add_argument("--rss-mib", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    if args.smoke:
        args.upload_mib, args.rss_mib, args.repeat = 16, 32, 1
    size = args.upload_mib * MIB
    rows = []
    with tempfile.TemporaryDirectory(prefix="ferryman-svc-") as d:
        tmp = Path(d)
        src = tmp / "upload.bin"
        make_file(src, size)
        sha = ferryman.hash_file(src).sha256
        port_f, port_b = free_port(), free_port()
        ours = start(
            [sys.executable, "-m", "ferryman", "serve", "--port", str(port_f), "--data", str(tmp / "f")],
            port_f,
            {"FERRYMAN_ADMIN_TOKEN": TOKEN},
        )
        base = start([sys.executable, "-m", "benches.baseline_upload", str(port_b), str(tmp / "b")], port_b)
        try:
            up_ours, up_base, hashing, dgst = [], [], [], []
            for _ in range(args.repeat):
                bid, t = asyncio.run(ferryman_upload(f"http://127.0.0.1:{port_f}", src, size, sha))
                up_ours.append(t)
                up_base.append(asyncio.run(send_parts(lambda i: f"http://127.0.0.1:{port_b}/parts/{i}", src, size, {})))
                hashing.append(asyncio.run(ferryman_hash(f"http://127.0.0.1:{port_f}", bid)))
                content = tmp / "f" / "store" / "content" / bid
                t = time.perf_counter()
                subprocess.run(["openssl", "dgst", "-sha256", str(content)], check=True, stdout=subprocess.DEVNULL)
                dgst.append(time.perf_counter() - t)
                shutil.rmtree(tmp / "b", ignore_errors=True)
                (tmp / "b").mkdir()
            med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
            rows.append(("upload, 8 MiB parts x4", "ferryman", "aiohttp+hashlib", size / med(up_ours), size / med(up_base), 1.3))
            rows.append(("server-side hashing", "PATCH->signable", "openssl dgst", size / med(hashing), size / med(dgst), 0.9))
            # Peak memory while receiving a larger upload (fresh server, so the peak is this upload's).
            ours.terminate()
            ours.wait(10)
            big = tmp / "big.bin"
            make_file(big, args.rss_mib * MIB)
            big_sha = ferryman.hash_file(big).sha256
            ours = start(
                [sys.executable, "-m", "ferryman", "serve", "--port", str(port_f), "--data", str(tmp / "g")],
                port_f,
                {"FERRYMAN_ADMIN_TOKEN": TOKEN},
            )
            idle = peak_rss_mib(ours.pid)
            asyncio.run(ferryman_upload(f"http://127.0.0.1:{port_f}", big, args.rss_mib * MIB, big_sha))
            peak = peak_rss_mib(ours.pid)
        finally:
            for proc in (ours, base):
                proc.terminate()
                proc.wait(10)
    print(f"{'case':28} {'ours':>18} {'baseline':>18} {'ours GB/s':>10} {'base GB/s':>10} {'ratio':>7}  target")
    for case, a, b, ours_bps, base_bps, target in rows:
        ratio = ours_bps / base_bps
        verdict = "" if args.smoke else ("met" if ratio >= target else "MISSED")
        print(f"{case:28} {a:>18} {b:>18} {ours_bps / 1e9:10.2f} {base_bps / 1e9:10.2f} {ratio:6.2f}x  >= {target}x {verdict}")
    limit = None if args.smoke else openssl_speed_sha256()
    if limit:
        print(f"single-stream SHA-256 limit (openssl speed -evp sha256): {limit:.2f} GB/s")
    verdict = "" if args.smoke else ("met" if peak < 200 else "MISSED")
    print(f"server peak RSS receiving {args.rss_mib} MiB: {peak:.0f} MiB (idle {idle:.0f} MiB), target < 200 MB {verdict}")
    if args.smoke:
        print("smoke run: sizes too small for the ratios to mean anything; targets not judged")
    return 0


if __name__ == "__main__":
    sys.exit(main())

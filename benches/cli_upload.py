"""``ferryman upload`` against ``curl -T``: a 1 GiB file to the same server over loopback, both
until the binary is ``signable`` (the server has hashed and verified it), same run.

    python -m benches.cli_upload            # 1 GiB
    python -m benches.cli_upload --smoke    # 16 MiB (CI)

``ferryman upload`` hashes the file locally (whole and per part, one native pass), uploads
8 MiB parts 4 at a time, and waits for the server's check. The baseline declares a one-part
binary through the API and sends the bytes with ``curl -T`` to ``PUT .../content``, then waits
for the same check; its SHA-256 is declared from a digest computed before the clock starts
(it does not count against curl)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benches.service import TOKEN, free_port, start
from benches.throughput import MIB, make_file
from ferryman import hash_file
from ferryman.catalog import models as m
from ferryman.client import SyncClient


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if args.smoke:
        args.size_mib, args.repeat = 16, 2  # two, so that the path of a repeat runs too
    if shutil.which("curl") is None:
        print("upload benchmark skipped: needs curl")
        return 0
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="ferryman-up-") as d:
        tmp = Path(d)
        src = tmp / "image.bin"
        make_file(src, size)
        sha = hash_file(src).sha256
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start(
            [sys.executable, "-m", "ferryman", "serve", "--port", str(port), "--data", str(tmp / "data")],
            port,
            {"FERRYMAN_ADMIN_TOKEN": TOKEN},
        )
        env = {**os.environ, "FERRYMAN_URL": url, "FERRYMAN_TOKEN": TOKEN}
        api = SyncClient(url, TOKEN)
        ours, base, breakdown = [], [], []
        try:
            for i in range(args.repeat):
                t = time.perf_counter()
                r = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "ferryman",
                        "upload",
                        str(src),
                        "--artifact",
                        "ours",
                        "--version",
                        f"1.0.{i}",
                        "--target",
                        "x86_64-linux-gnu",
                        "--create",
                        "--json",
                        "--quiet",
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                ours.append(time.perf_counter() - t)
                breakdown.append(json.loads(r.stdout))
                art = api.find_artifact("curl") or api.create_artifact(m.ArtifactCreate(name="curl"))
                ver = api.create_version(art.id, m.VersionCreate(version=f"1.0.{i}"))
                b = api.create_binary(
                    ver.id,
                    m.BinaryCreate(target="x86_64-linux-gnu", size=size, sha256=sha, part_size=max(size, 5 * MIB)),
                )
                t = time.perf_counter()
                subprocess.run(
                    [
                        "curl",
                        "-sf",
                        "-o",
                        "/dev/null",
                        "-T",
                        str(src),
                        "-H",
                        f"Authorization: Bearer {TOKEN}",
                        f"{url}/api/v1/binaries/{b.id}/content",
                    ],
                    check=True,
                )
                api.wait_state(b.id, {"signable"})
                base.append(time.perf_counter() - t)
        finally:
            server.terminate()
            server.wait(10)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    ratio = med(base) / med(ours)
    bd = breakdown[len(breakdown) // 2]
    verdict = "" if args.smoke else ("met" if ratio >= 0.6 else "MISSED")
    print(f"ferryman upload: {size / med(ours) / 1e9:.2f} GB/s end to end; curl -T: {size / med(base) / 1e9:.2f} GB/s")
    print(f"ratio {ratio:.2f}x (target >= 0.6x) {verdict}")
    print(
        f"breakdown (median run): local hashing {bd['hash_seconds']:.2f} s, parts upload {bd['upload_seconds']:.2f} s, "
        f"server check {bd['server_hash_seconds']:.2f} s, total {med(ours):.2f} s (process start included)"
    )
    if args.smoke:
        print("smoke run: sizes too small for the ratios to mean anything; targets not judged")
    return 0


if __name__ == "__main__":
    sys.exit(main())

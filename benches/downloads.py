"""Download throughput: Ferryman's /dl responder against nginx serving the same file, same run.

    python -m benches.downloads            # 1 GiB file
    python -m benches.downloads --smoke    # 16 MiB (CI)

nginx (Debian's) is started on a loopback port with ``sendfile on; tcp_nopush off`` and one
worker; Ferryman runs ``ferryman serve`` (one process). The client is curl writing to
/dev/null, so both servers see the same client. Cases: one full GET; four ranges fetched in
parallel (one curl each); one request for 16 ranges (multipart/byteranges), reported in MB/s.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benches.service import TOKEN, ferryman_hash, ferryman_upload, free_port, start
from benches.throughput import MIB, make_file
from ferryman import grants, hash_file

SECRET = "bench-url-secret"
NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def curl(url: str, *extra: str) -> None:
    subprocess.run(["curl", "-sf", "-o", "/dev/null", *extra, url], check=True)


def timed(ours, theirs, repeat: int) -> tuple[float, float]:
    """Median seconds of each, the two alternated so that a slow spell of the host falls on both."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, ts in zip((ours, theirs), times, strict=True):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return statistics.median(times[0]), statistics.median(times[1])


def parallel_ranges(url: str, size: int, n: int = 4) -> None:
    step = size // n
    procs = [
        subprocess.Popen(
            ["curl", "-sf", "-o", "/dev/null", "--range", f"{i * step}-{size - 1 if i == n - 1 else (i + 1) * step - 1}", url]
        )
        for i in range(n)
    ]
    for p in procs:
        assert p.wait() == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    if args.smoke:
        args.size_mib, args.repeat = 16, 1
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None or shutil.which("curl") is None:
        print("downloads benchmark skipped: needs nginx and curl (apt-get install nginx curl)")
        return 0
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="ferryman-dl-") as d:
        tmp = Path(d)
        tmp.chmod(0o755)  # nginx workers run as an unprivileged user
        (tmp / "www").mkdir(mode=0o755)
        src = tmp / "www" / "image.bin"
        make_file(src, size)
        sha = hash_file(src).sha256
        port_f, port_n = free_port(), free_port()
        ours = start(
            [sys.executable, "-m", "ferryman", "serve", "--port", str(port_f), "--data", str(tmp / "f")],
            port_f,
            {"FERRYMAN_ADMIN_TOKEN": TOKEN, "FERRYMAN_URL_SECRET": SECRET},
        )
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port_n, root=tmp / "www"))
        ng = start([nginx, "-c", str(conf), "-e", str(tmp / "nginx-error.log")], port_n)
        try:
            base = f"http://127.0.0.1:{port_f}"
            bid, _ = asyncio.run(ferryman_upload(base, src, size, sha))
            asyncio.run(ferryman_hash(base, bid))
            token = grants.issue(SECRET.encode(), bid, int(time.time()) + 3600)
            url_f, url_n = f"{base}/dl/{token}", f"http://127.0.0.1:{port_n}/image.bin"
            for url in (url_f, url_n):  # warm both (page cache, connections)
                curl(url)
            rows = []
            rows.append(("full GET", *timed(lambda: curl(url_f), lambda: curl(url_n), args.repeat), 0.9))
            ranges = timed(lambda: parallel_ranges(url_f, size), lambda: parallel_ranges(url_n, size), args.repeat)
            rows.append(("4 parallel ranges", *ranges, 0.9))
            step = size // 16
            multi = "bytes=" + ",".join(f"{i * step}-{i * step + step // 2 - 1}" for i in range(16))
            multi_bytes = 16 * (step // 2)
            header = f"Range: {multi}"
            t_f, t_n = timed(lambda: curl(url_f, "-H", header), lambda: curl(url_n, "-H", header), args.repeat)
        finally:
            for proc in (ours, ng):
                proc.terminate()
                proc.wait(10)
    print(f"{'case':20} {'ferryman GB/s':>14} {'nginx GB/s':>11} {'ratio':>7}  target")
    for case, t_ours, t_base, target in rows:
        ratio = t_base / t_ours
        verdict = "" if args.smoke else ("met" if ratio >= target else "MISSED")
        print(f"{case:20} {size / t_ours / 1e9:14.2f} {size / t_base / 1e9:11.2f} {ratio:6.2f}x  >= {target}x {verdict}")
    print(
        f"16-range request: ferryman {multi_bytes / t_f / 1e6:.0f} MB/s, nginx {multi_bytes / t_n / 1e6:.0f} MB/s "
        f"({multi_bytes // MIB} MiB of ranges)"
    )
    if args.smoke:
        print("smoke run: sizes too small for the ratios to mean anything; targets not judged")
    return 0


if __name__ == "__main__":
    sys.exit(main())

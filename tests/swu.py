"""SWUpdate images for the tests, made the way DEVICE-AGENTS.md describes: a test CA and a
signer certificate (openssl), a ``sw-description`` signed with CMS, packed with ``cpio``, and
SWUpdate's suricatta run unmodified against a server."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path

__all__ = ["Suricatta", "make_ca", "make_swu"]


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path) -> Path:
    """A CA and a signer certificate in ``d`` (``ca.crt``, ``signer.crt``, ``signer.key``); returns
    the CA's certificate, which SWUpdate takes with ``-k``."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "ca.ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n")
    (d / "signer.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=emailProtection\nkeyUsage=digitalSignature\n")
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
         "-subj", "/CN=ferryman test CA", "-addext", "basicConstraints=critical,CA:TRUE", cwd=d)  # fmt: skip
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "signer.key", "-out", "signer.csr",
         "-subj", "/CN=ferryman test signer", cwd=d)  # fmt: skip
    _run("openssl", "x509", "-req", "-in", "signer.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "signer.crt", "-days", "30", "-extfile", "signer.ext", cwd=d)  # fmt: skip
    return d / "ca.crt"


def make_swu(d: Path, ca_dir: Path, payload: bytes, dest: Path, version: str, name: str = "update.swu") -> Path:
    """A signed .swu whose one ``rawfile`` writes ``payload`` to ``dest``."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "payload").write_bytes(payload)
    (d / "sw-description").write_text(f"""software =
{{
    version = "{version}";
    hardware-compatibility: [ "1.0" ];
    files: (
        {{
            filename = "payload";
            path = "{dest}";
            sha256 = "{hashlib.sha256(payload).hexdigest()}";
        }}
    );
}}
""")
    _run("openssl", "cms", "-sign", "-in", "sw-description", "-out", "sw-description.sig", "-signer",
         str(ca_dir / "signer.crt"), "-inkey", str(ca_dir / "signer.key"), "-outform", "DER", "-nosmimecap", "-binary",
         cwd=d)  # fmt: skip
    out = d / name
    with open(out, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "crc"], cwd=d, input=b"sw-description\nsw-description.sig\npayload\n",
                       stdout=f, stderr=subprocess.DEVNULL, check=True)  # fmt: skip
    return out


class Suricatta:
    """SWUpdate with suricatta polling a hawkBit DDI server, in its own process group and
    temporary directory (its IPC sockets go there); ``confirm`` is ``-c`` (2: report success after
    a "reboot")."""

    def __init__(self, work: Path, ca: Path, url: str, device: str, token: str, *, confirm: int | None = None,
                 extra: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        args = ["-t", "DEFAULT", "-u", url, "-i", device, "-k", token, "-p", "1", "-r", "10", "-w", "1", *extra]
        if confirm is not None:
            args += ["-c", str(confirm)]
        self.log = open(work / "swupdate.log", "ab")  # noqa: SIM115 (closed in stop)
        env = {**os.environ, "TMPDIR": str(work)}
        self.proc = subprocess.Popen(["swupdate", "-v", "-k", str(ca), "-H", "board:1.0", "-u", " ".join(args)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()

    def output(self) -> str:
        return (self.work / "swupdate.log").read_text(errors="replace")

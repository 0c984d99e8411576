"""mender-client for the tests, run unmodified as DEVICE-AGENTS.md describes: in a private
mount namespace whose /etc/mender and /usr/share/mender are the test's directories, with an
identity script, a device type, the package's update modules, and a state directory of its own;
and Mender artifacts made with ``mender-artifact``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

__all__ = ["MenderClient", "make_artifact"]


def make_artifact(d: Path, name: str, device_type: str, payload: bytes, dest_dir: Path, filename: str = "payload.bin") -> Path:
    """A single-file module-image artifact that installs ``payload`` as ``dest_dir/filename``."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "dest_dir").write_text(str(dest_dir))
    (d / "filename").write_text(filename)
    (d / "permissions").write_text("644")
    (d / filename).write_bytes(payload)
    out = d / f"{name}.mender"
    subprocess.run(
        ["mender-artifact", "write", "module-image", "-T", "single-file", "-t", device_type, "-n", name, "-o", str(out),
         "-f", "dest_dir", "-f", "filename", "-f", "permissions", "-f", filename],
        cwd=d, check=True, capture_output=True,
    )  # fmt: skip
    return out


class MenderClient:
    """A mender-client daemon polling ``url`` every ``poll`` seconds; ``mac`` is its identity."""

    def __init__(self, work: Path, url: str, device_type: str, mac: str, poll: int = 2) -> None:
        self.work = work
        etc, share, self.data = work / "etc", work / "share", work / "data"
        for p in (etc, share / "identity", share / "inventory", self.data):
            p.mkdir(parents=True, exist_ok=True)
        conf = {"ServerURL": url, "UpdatePollIntervalSeconds": poll, "InventoryPollIntervalSeconds": poll,
                "RetryPollIntervalSeconds": poll, "DBus": {"Enabled": False}}  # fmt: skip
        (etc / "mender.conf").write_text(json.dumps(conf))
        (etc / "artifact_info").write_text("artifact_name=factory\n")
        (self.data / "device_type").write_text(f"device_type={device_type}\n")
        identity = share / "identity" / "mender-device-identity"
        identity.write_text(f"#!/bin/sh\necho mac={mac}\n")
        identity.chmod(0o755)
        inventory = share / "inventory" / "mender-inventory-test"
        inventory.write_text("#!/bin/sh\necho test_attribute=seen\n")
        inventory.chmod(0o755)
        if not (share / "modules").exists():
            shutil.copytree("/usr/share/mender/modules", share / "modules")
        self.log = open(work / "mender.log", "ab")  # noqa: SIM115 (closed in stop)
        script = (f"mount --bind {etc} /etc/mender && mount --bind {share} /usr/share/mender && "
                  f"exec mender --log-level debug --no-syslog --data {self.data} daemon")  # fmt: skip
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def check_now(self) -> None:
        """Makes the daemon check for an update at once (SIGUSR1)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGUSR1)

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
        return (self.work / "mender.log").read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            time.sleep(0.2)
        return False

"""The operator's workflow end to end: the README quickstart run as it stands, resumable uploads
and downloads, and every way the CLI must fail with one clear line. Against a live server."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apiclient import ADMIN, Api, ProcessServer, free_port
from cryptography.hazmat.primitives import serialization
from services import content_of, grant_secret, replace_content

from ferryman.cli import main

README = Path(__file__).parent.parent / "README.md"
MIB = 1 << 20

# The service tests here run on the file store and on S3 (see conftest.py).
pytestmark = pytest.mark.stores


@pytest.fixture
def live(tmp_path: Path, catalog_url: str | None, store_url: str | None):
    srv = ProcessServer(tmp_path / "data", catalog_url, *(["--store", store_url] if store_url else []))
    api = srv.start()
    yield srv, api
    srv.stop()


def env_for(api: Api) -> dict[str, str]:
    return {**os.environ, "FERRYMAN_URL": f"http://127.0.0.1:{api.port}", "FERRYMAN_TOKEN": ADMIN}


def cli(api: Api, *args: str, token: str | None = ADMIN, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = env_for(api)
    if token is None:
        env.pop("FERRYMAN_TOKEN")
    else:
        env["FERRYMAN_TOKEN"] = token
    r = subprocess.run([sys.executable, "-m", "ferryman", *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def one_line_error(r: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_readme_quickstart_runs(live, tmp_path: Path):
    _, api = live
    text = README.read_text()
    block = re.search(r"<!-- quickstart -->\s*```sh\n(.*?)```", text, re.S)
    assert block, "README quickstart block missing"
    work = tmp_path / "work"
    work.mkdir()
    bin_dir = Path(sys.executable).parent
    env = {**env_for(api), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    r = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.group(1)], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert (work / "downloads" / "gateway-rootfs-1.0.0-aarch64-linux-gnu.bin").read_bytes() == (
        work / "firmware.bin"
    ).read_bytes()
    assert oct((work / "keys" / "signing.pem").stat().st_mode & 0o777) == "0o600"


def test_upload_killed_and_resumed(tmp_path: Path):
    srv = ProcessServer(tmp_path / "data")
    api = srv.start()
    try:
        src = tmp_path / "image.bin"
        src.write_bytes(os.urandom(200 * MIB))
        args = [
            "upload",
            str(src),
            "--artifact",
            "big",
            "--version",
            "1.0.0",
            "--target",
            "x86_64-linux-gnu",
            "--create",
            "--part-size",
            "5MiB",
            "--concurrency",
            "1",
            "--json",
        ]
        proc = subprocess.Popen(
            [sys.executable, "-m", "ferryman", *args], env=env_for(api), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        held = 0
        while time.monotonic() < deadline:
            items = api.ok("GET", "/api/v1/binaries")["items"]
            if items:
                held = len(api.ok("GET", f"/api/v1/binaries/{items[0]['id']}/parts")["parts"])
                if held >= 8:
                    break
            time.sleep(0.05)
        srv.kill()
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
        api = srv.start()
        binary = api.ok("GET", "/api/v1/binaries")["items"][0]
        before = len(api.ok("GET", f"/api/v1/binaries/{binary['id']}/parts")["parts"])
        assert 8 <= before < 40
        r = cli(api, *args, check=True)
        result = json.loads(r.stdout)
        assert result["state"] == "signable"
        assert result["parts_sent"] == 40 - before  # only the missing ones
        assert result["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    finally:
        srv.stop()


def _uploaded(api: Api, tmp_path: Path, size: int = 3 * MIB) -> tuple[str, bytes, Path]:
    src = tmp_path / "fw.bin"
    data = os.urandom(size)
    src.write_bytes(data)
    keys = tmp_path / "keys"
    cli(api, "keys", "generate", "--out", str(keys), check=True)
    cli(api, "signing-keys", "create", "--name", "ci", "--public-key", str(keys / "signing.pub"), check=True)
    r = cli(
        api,
        "upload",
        str(src),
        "--artifact",
        "fw",
        "--version",
        "1.0.0",
        "--target",
        "x86_64-linux-gnu",
        "--create",
        "--sign",
        str(keys / "signing.pem"),
        "--json",
        check=True,
    )
    b = json.loads(r.stdout)
    assert b["state"] == "signed"
    return b["id"], data, keys


def test_download_interrupted_resumes_and_verifies(live, tmp_path: Path):
    _, api = live
    bid, data, keys = _uploaded(api, tmp_path)
    out = tmp_path / "out.bin"
    (tmp_path / "out.bin.part").write_bytes(data[:1234567])  # an interrupted earlier download
    cli(api, "download", bid, "-o", str(out), "--trusted-key", str(keys / "signing.pub"), check=True)
    assert out.read_bytes() == data and not (tmp_path / "out.bin.part").exists()
    # A stale partial file (other bytes) is caught by the digest: no file under the final name.
    out.unlink()
    (tmp_path / "out.bin.part").write_bytes(b"x" * 1000)
    line = one_line_error(cli(api, "download", bid, "-o", str(out)))
    assert "SHA-256" in line and not out.exists()
    # An untrusted key set refuses before downloading.
    cli(api, "keys", "generate", "--out", str(tmp_path / "other"), check=True)
    line = one_line_error(cli(api, "download", bid, "-o", str(out), "--trusted-key", str(tmp_path / "other" / "signing.pub")))
    assert "trusted key" in line and not out.exists()


def test_tampered_content_on_the_server_is_refused(live, tmp_path: Path):
    _, api = live
    bid, _data, _ = _uploaded(api, tmp_path)
    raw = bytearray(content_of(tmp_path / "data", bid) or b"")
    raw[100] ^= 0xFF
    replace_content(tmp_path / "data", bid, bytes(raw))
    out = tmp_path / "got.bin"
    line = one_line_error(cli(api, "download", bid, "-o", str(out)))
    assert "SHA-256" in line and not out.exists() and not (tmp_path / "got.bin.part").exists()


def test_clear_errors(live, tmp_path: Path):
    _, api = live
    bid, _, _ = _uploaded(api, tmp_path)
    viewer = json.loads(cli(api, "api-keys", "create", "--name", "v", "--role", "viewer", "--json", check=True).stdout)["token"]
    # Wrong role.
    line = one_line_error(cli(api, "channels", "create", "x", token=viewer))
    assert "403" in line
    # Wrong key: signing with a key the server does not know.
    cli(api, "keys", "generate", "--out", str(tmp_path / "rogue"), check=True)
    line = one_line_error(cli(api, "sign", bid, "--key", str(tmp_path / "rogue" / "signing.pem")))
    assert "422" in line and "unknown signing key" in line
    # A revoked (deleted) token.
    keys = api.ok("GET", "/api/v1/api-keys")["items"]
    api.call("DELETE", f"/api/v1/api-keys/{next(k['id'] for k in keys if k['name'] == 'v')}")
    assert "401" in one_line_error(cli(api, "channels", "create", "y", token=viewer))
    # No token at all.
    assert "401" in one_line_error(cli(api, "channels", "create", "z", token=None))
    # Unreachable server.
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ferryman",
            "channels",
            "create",
            "x",
            "--url",
            f"http://127.0.0.1:{free_port()}",
            "--token",
            ADMIN,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "cannot reach" in one_line_error(r)
    # An expired download grant, and a valid one.
    from ferryman import grants

    secret = grant_secret(tmp_path / "data")
    sha = api.ok("GET", f"/api/v1/binaries/{bid}")["sha256"]
    base = f"http://127.0.0.1:{api.port}/dl/"
    expired = base + grants.issue(secret, bid, int(time.time()) - 5)
    line = one_line_error(cli(api, "download", expired, "--sha256", sha, "-o", str(tmp_path / "x.bin")))
    assert "403" in line and "expired" in line and not (tmp_path / "x.bin").exists()
    fresh = base + grants.issue(secret, bid, int(time.time()) + 600)
    cli(api, "download", fresh, "--sha256", sha, "-o", str(tmp_path / "y.bin"), check=True)
    assert hashlib.sha256((tmp_path / "y.bin").read_bytes()).hexdigest() == sha
    assert cli(api, "download", fresh).returncode == 2  # a URL needs --sha256
    # Usage errors exit 2.
    assert main(["upload"]) == 2
    assert main(["releases", "create", "--channel", "c", "--name", "n", "--bundle", "b", "--percent", "0.1", "--count", "3"]) == 2


COMMANDS = [
    ["serve"],
    ["hash"],
    ["api-keys", "create"],
    ["keys", "generate"],
    ["signing-keys", "create"],
    ["upload"],
    ["sign"],
    ["bundles", "create"],
    ["channels", "create"],
    ["cohorts", "create"],
    ["releases", "create"],
    ["devices", "create"],
    ["device", "check"],
    ["download"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_lists_options(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: ferryman " + " ".join(command) in out
    if command not in (["serve"], ["hash"]):
        for opt in ("--url", "--token", "--json", "--quiet"):
            assert opt in out


def test_json_outputs_parse(live, tmp_path: Path):
    _, api = live
    ch = json.loads(cli(api, "channels", "create", "beta", "--json", check=True).stdout)
    co = json.loads(cli(api, "cohorts", "create", "lab", "--channel", ch["id"], "--json", check=True).stdout)
    dev = json.loads(
        cli(
            api,
            "devices",
            "create",
            "unit-9",
            "--target",
            "x86_64-linux-gnu",
            "--cohort",
            co["id"],
            "--tag",
            "lab",
            "--json",
            check=True,
        ).stdout
    )
    check = json.loads(cli(api, "device", "check", "--device-token", dev["token"], "--json", check=True).stdout)
    assert check["status"] == "no_update" and check["reason"] == "channel_empty"
    gen = json.loads(
        cli(api, "keys", "generate", "--out", str(tmp_path / "k"), "--algorithm", "rsa-3072", "--json", check=True).stdout
    )
    pub = serialization.load_pem_public_key(Path(gen["public_key"]).read_bytes())
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert gen["keyid"] == hashlib.sha256(der).hexdigest()

"""The OpenAPI document is complete and true: schemathesis generates requests from it, valid and
invalid, against a running service (real sockets, real catalog) with an admin and a device token,
and checks every answer against the document: no 5xx, only documented statuses and content
types, bodies matching their schemas, and invalid requests refused.

Not checked: that every schema-valid request is accepted (``positive_data_acceptance``): a valid
shape can still name a resource that does not exist or a cursor this server never issued, and
those are refused with 404 or 422 by design."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from apiclient import ADMIN, ProcessServer

from ferryman.server.openapi import document

EXAMPLES = "25"  # per operation and phase: about a minute in all


def _schemathesis(url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("schemathesis") or shutil.which("st")
    cmd = [exe] if exe else [sys.executable, "-m", "schemathesis.cli"]
    return subprocess.run(
        [*cmd, "run", f"{url}/api/v1/openapi.json", "-H", f"Authorization: Bearer {token}", "--max-examples", EXAMPLES,
         "--exclude-checks", "positive_data_acceptance", "--no-color", "--seed", "20261203", "--request-timeout", "30", *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture
def running(tmp_path: Path):
    srv = ProcessServer(tmp_path / "data")
    api = srv.start()
    yield api
    srv.stop()


def test_schemathesis_finds_no_failures(running):
    pytest.importorskip("schemathesis")
    url = f"http://{running.host}:{running.port}"
    device = running.ok("POST", "/api/v1/devices", {"identifier": "st-device", "target": "aarch64-linux-gnu"})
    done = _schemathesis(url, device["token"], "--include-path-regex", "^/device/")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
    done = _schemathesis(url, ADMIN, "--exclude-path-regex", "^/device/")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_every_operation_documents_its_problems():
    doc = document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"400", "422"} <= codes, (method, path)
            if "security" in op:
                assert {"401", "403"} <= codes, (method, path)
            if method in ("post", "put", "patch", "delete"):
                assert "507" in codes, (method, path)
            for p in op.get("parameters", []):
                assert p["schema"].get("pattern") or p["schema"].get("type") != "string" or p["in"] == "header", (path, p)


def test_downloads_and_update_checks_are_described():
    paths = document()["paths"]
    dl = paths["/dl/{token}"]["get"]
    assert {"200", "206", "304", "416"} <= set(dl["responses"])
    assert {"Range", "If-Range", "If-None-Match"} <= {p["name"] for p in dl["parameters"]}
    update = paths["/device/v1/update"]["get"]
    assert update["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/UpdateManifest")
    assert {"Ferryman-Release-Id", "Ferryman-Bundle-Id", "Ferryman-Release-Version"} <= {p["name"] for p in update["parameters"]}
    sig = paths["/api/v1/binaries/{binary_id}/signatures"]
    assert {"200", "201"} <= set(sig["post"]["responses"])
    assert {"limit", "cursor"} <= {p["name"] for p in sig["get"]["parameters"]}

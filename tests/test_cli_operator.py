"""The operator's CLI over the whole API, against a live server on each catalog: every resource
created, listed, shown, updated and deleted from the command line with its output checked
against the API's own answer; names for IDs; rollout steering; the audit log followed; errors as
one line with the right exit code; and the README's "Steering a rollout" block run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apiclient import ADMIN, Api
from test_server_catalog import make_key
from test_server_fleet import API, Fleet

from ferryman.cli import main

README = Path(__file__).parent.parent / "README.md"
TARGET = "x86_64-linux-gnu"


@pytest.fixture
def env(server: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Api:
    """The CLI pointed at the server by the environment, with no config file of its own."""
    monkeypatch.setenv("FERRYMAN_URL", f"http://{server.host}:{server.port}")
    monkeypatch.setenv("FERRYMAN_TOKEN", ADMIN)
    monkeypatch.setenv("FERRYMAN_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("FERRYMAN_PROFILE", raising=False)
    return server


def run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
    got = main(list(argv))
    captured = capsys.readouterr()
    assert got == code, (argv, got, captured.out, captured.err)
    return captured.out


def as_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    return json.loads(run(capsys, *argv, "--json"))


def error_line(capsys: pytest.CaptureFixture[str], *argv: str, code: int) -> str:
    assert main(list(argv)) == code, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ferryman: error: "), err
    return err[0]


def table(out: str) -> list[list[str]]:
    """A table's rows as cells (columns are two or more spaces apart), header first."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


def test_catalog_resources_round_trip(env: Api, capsys):
    fleet = Fleet(env)
    bundle = fleet.bundle("1.0.0", targets=[TARGET])
    binary_id = bundle["entries"][0]["binary_id"]

    # Artifacts: list (with --name), show, update, and --json equal to the API's answer.
    rows = table(run(capsys, "artifacts", "list"))
    assert rows[0][:2] == ["ID", "NAME"] and rows[1][:2] == [fleet.artifact["id"], "rootfs"]
    assert as_json(capsys, "artifacts", "show", "rootfs") == env.ok("GET", f"{API}/artifacts/{fleet.artifact['id']}")
    updated = as_json(capsys, "artifacts", "update", "rootfs", "--description", "root fs", "--metadata", '{"team": "os"}')
    assert updated["description"] == "root fs" and updated["custom_metadata"] == {"team": "os"}
    assert env.ok("GET", f"{API}/artifacts/{fleet.artifact['id']}")["description"] == "root fs"
    assert as_json(capsys, "artifacts", "update", "rootfs", "--description", "")["description"] is None

    # Versions by ARTIFACT@VERSION; binaries filtered by version and state, shown with signatures.
    [v] = as_json(capsys, "versions", "list", "rootfs")
    assert as_json(capsys, "versions", "show", "rootfs@1.0.0")["id"] == v["id"]
    assert as_json(capsys, "versions", "update", "rootfs@1.0.0", "--description", "first")["description"] == "first"
    [b] = as_json(capsys, "binaries", "list", "--version", "rootfs@1.0.0", "--state", "signed")
    assert b == env.ok("GET", f"{API}/binaries/{binary_id}")
    assert as_json(capsys, "binaries", "list", "--state", "hashing") == []
    shown = run(capsys, "binaries", "show", binary_id)
    assert f"{binary_id}  signed" in shown and "signatures (1):" in shown and fleet.key["id"] in shown
    assert as_json(capsys, "binaries", "update", binary_id, "--filename", "rootfs.img")["filename"] == "rootfs.img"
    [s] = as_json(capsys, "signatures", "list", binary_id)
    assert s["signing_key_id"] == fleet.key["id"] and s["key_state"] == "active"

    # Signing keys: by name and by keyid; renamed; bundles by name, shown with entries.
    assert as_json(capsys, "signing-keys", "show", fleet.key["keyid"])["id"] == fleet.key["id"]
    assert as_json(capsys, "signing-keys", "update", "ci", "--name", "ci-2027")["name"] == "ci-2027"
    assert [k["id"] for k in as_json(capsys, "signing-keys", "list", "--name", "ci-2027")] == [fleet.key["id"]]
    text = run(capsys, "bundles", "show", "rootfs 1.0.0")
    assert bundle["hash"] in text and binary_id in text and "entries (1):" in text
    assert as_json(capsys, "bundles", "list", "--signing-key", "ci-2027") == []  # the bundle itself is unsigned

    # Deleting: an artifact with versions is refused (409, exit 1); an empty one goes.
    assert "409" in error_line(capsys, "artifacts", "delete", "rootfs", code=1)
    env.ok("POST", f"{API}/artifacts", {"name": "scratch"})
    assert run(capsys, "artifacts", "delete", "scratch").strip().endswith("deleted")
    assert "no artifact named 'scratch'" in error_line(capsys, "artifacts", "show", "scratch", code=1)

    # Revoking the only key puts the binary back to signable.
    assert "revoked" in run(capsys, "signing-keys", "revoke", "ci-2027")
    assert env.ok("GET", f"{API}/binaries/{binary_id}")["state"] == "signable"


def test_fleet_resources_and_steering(env: Api, capsys, tmp_path: Path):
    fleet = Fleet(env)
    b1, b2 = fleet.bundle("1.0.0", targets=[TARGET]), fleet.bundle("2.0.0", targets=[TARGET])
    run(capsys, "channels", "create", "stable")
    run(capsys, "cohorts", "create", "field", "--channel", "stable")
    cohort = as_json(capsys, "cohorts", "show", "field")
    assert as_json(capsys, "cohorts", "list", "--channel", "stable") == [cohort]
    run(capsys, "releases", "create", "--channel", "stable", "--name", "v1", "--bundle", b1["id"])
    run(capsys, "releases", "create", "--channel", "stable", "--name", "v2", "--bundle", b2["id"], "--percent", "0.1")
    run(capsys, "releases", "create", "--channel", "stable", "--name", "v1.1", "--bundle", b1["id"], "--next", "v2", "--required")
    created = run(capsys, "devices", "create", "gw-1", "--target", TARGET, "--cohort", "field", "--tag", "old")
    device_id = created.split()[0]

    # Phases in an operator's words, each as the API then holds it.
    v2 = as_json(capsys, "releases", "show", "stable/v2")
    for words, phase in (
        ("50%", {"mode": "percent", "value": 0.5}),
        ("40", {"mode": "count", "value": 40}),
        ("tags:canary,beta", {"mode": "tags", "tags": ["beta", "canary"]}),
        ("100%", {"mode": "percent", "value": 1.0}),
    ):
        run(capsys, "releases", "update", "v2", "--phase", words)
        got = env.ok("GET", f"{API}/releases/{v2['id']}")["phase"]
        assert {k: got[k] for k in phase} == phase | ({"tags": sorted(got["tags"])} if "tags" in got else {}), words
    line = run(capsys, "releases", "update", "v2", "--phase", "none", "--schedule", "2030-01-01T06:00Z")
    assert "offered to every device" in line and "2030-01-01T06:00:00" in line
    r = env.ok("GET", f"{API}/releases/{v2['id']}")
    assert r["phase"] is None and r["schedule_at"].startswith("2030-01-01T06:00:00")
    run(capsys, "releases", "update", "v2", "--schedule", "none", "--hold")
    assert env.ok("GET", f"{API}/releases/{v2['id']}")["halted"] is True
    assert re.search(r"^halted\s+yes$", run(capsys, "releases", "show", "v2"), re.M)
    run(capsys, "releases", "update", "v2", "--resume", "--halt-failure-rate", "5%", "--halt-min-reports", "20")
    run(capsys, "releases", "update", "v2", "--halt-max-failures", "3")  # merges with the bounds already set
    r = env.ok("GET", f"{API}/releases/{v2['id']}")
    assert r["halted"] is False and r["halt"] == {"max_failure_rate": 0.05, "min_reports": 20, "max_failures": 3}
    run(capsys, "releases", "update", "v2", "--no-halt", "--disable")
    r = env.ok("GET", f"{API}/releases/{v2['id']}")
    assert r["halt"] is None and r["disabled"] is True
    run(capsys, "releases", "update", "v2", "--enable", "--no-required")

    # The graph: v1 and v1.1 lead to v2, drawn above it, the latest last and marked.
    graph = run(capsys, "channels", "show", "stable").split("releases (3")[1].splitlines()[1:]
    assert [g.split()[1] for g in graph] == ["v1", "v1.1", "v2"]
    assert graph[0].startswith("   └→ v1 ") and "REQUIRED" in graph[1] and graph[2].startswith("● v2") and "(latest)" in graph[2]
    rows = table(run(capsys, "releases", "list", "--channel", "stable"))
    assert [r[1] for r in rows[1:]] == ["v1", "v2", "v1.1"] and rows[3][-1] == "required"

    # A device moved, tagged, quarantined; the dry run says what it would get and why.
    d = as_json(capsys, "devices", "update", "gw-1", "--tag", "+canary", "--tag", "-old", "--quarantine")
    assert d["tags"] == ["canary"] and d["quarantined"] is True
    assert as_json(capsys, "devices", "resolve", "gw-1")["status"] == "quarantined"
    run(capsys, "devices", "update", device_id, "--no-quarantine")
    answer = as_json(capsys, "devices", "resolve", "gw-1")
    assert answer["status"] == "update" and answer["release"]["id"] == v2["id"], answer
    text = run(capsys, "devices", "resolve", "gw-1", "--release", "stable/v2")
    assert text.startswith("no_update (")
    assert as_json(capsys, "devices", "update", "gw-1", "--cohort", "")["cohort_id"] is None
    assert as_json(capsys, "devices", "list", "--tag", "canary")[0]["id"] == device_id
    assert as_json(capsys, "devices", "list", "--cohort", "field") == []
    run(capsys, "devices", "update", "gw-1", "--cohort", "field")

    # Overrides: created, listed by device, their end moved, deleted.
    o = as_json(capsys, "bundle-overrides", "create", "--bundle", b1["id"], "--device", "gw-1", "--ends-at", "2031-01-01T00:00Z")
    assert [x["id"] for x in as_json(capsys, "bundle-overrides", "list", "--device", "gw-1")] == [o["id"]]
    assert as_json(capsys, "bundle-overrides", "update", o["id"], "--ends-at", "none")["ends_at"] is None
    run(capsys, "bundle-overrides", "delete", o["id"])
    assert env.call("GET", f"{API}/bundle-overrides/{o['id']}").status == 404

    # Channels and cohorts renamed; the device deleted by its identifier.
    assert as_json(capsys, "channels", "update", "stable", "--description", "customers")["description"] == "customers"
    assert as_json(capsys, "cohorts", "update", "field", "--name", "field-units")["name"] == "field-units"
    run(capsys, "devices", "delete", "gw-1")
    assert env.call("GET", f"{API}/devices/{device_id}").status == 404


def test_lists_page_and_stream(env: Api, capsys):
    for i in range(7):
        env.ok("POST", f"{API}/channels", {"name": f"ch-{i}"})
    assert main(["channels", "list", "--limit", "3"]) == 0
    captured = capsys.readouterr()
    assert len(table(captured.out)) == 4 and "--all" in captured.err
    every = as_json(capsys, "channels", "list", "--all")
    assert [c["name"] for c in every] == [f"ch-{i}" for i in range(7)]
    lines = run(capsys, "channels", "list", "--all", "--jsonl").splitlines()
    assert [json.loads(x) for x in lines] == every
    assert as_json(capsys, "channels", "list", "--limit", "2", "--name", "ch-5")[0]["name"] == "ch-5"
    assert run(capsys, "webhooks", "list").strip() == "no webhooks"


def test_api_keys_and_webhooks(env: Api, capsys):
    key = as_json(capsys, "api-keys", "create", "--name", "ci", "--role", "publisher")
    shown = as_json(capsys, "api-keys", "show", "ci")
    assert shown == {k: v for k, v in key.items() if k != "token"} and "token" not in shown
    as_json(capsys, "api-keys", "create", "--name", "ci", "--role", "viewer")
    line = error_line(capsys, "api-keys", "show", "ci", code=2)
    assert "2 API keys are named 'ci'" in line and key["id"] in line
    run(capsys, "api-keys", "delete", key["id"])
    assert env.as_(key["token"]).get(f"{API}/artifacts").status == 401

    w = as_json(capsys, "webhooks", "create", "https://ops.example.com/hook", "--event", "release.*")
    updated = as_json(capsys, "webhooks", "update", w["id"], "--endpoint", "https://ops.example.com/v2",
                      "--event", "release.halted", "--event", "update.*", "--disable")  # fmt: skip
    assert updated["url"] == "https://ops.example.com/v2" and updated["disabled"] is True
    assert updated["events"] == ["release.halted", "update.*"]
    assert as_json(capsys, "webhooks", "show", w["id"]) == env.ok("GET", f"{API}/webhooks/{w['id']}")
    rows = table(run(capsys, "webhooks", "list"))
    assert rows[1][:2] == [w["id"], "https://ops.example.com/v2"]
    run(capsys, "webhooks", "delete", w["id"])
    assert env.call("GET", f"{API}/webhooks/{w['id']}").status == 404


def test_events_list_and_tail(env: Api, capsys):
    for name in ("a", "b", "c"):
        env.ok("POST", f"{API}/channels", {"name": name})
    events = as_json(capsys, "events", "list", "--type", "channel", "--all")
    assert [e["after"]["name"] for e in events] == ["a", "b", "c"]
    assert as_json(capsys, "events", "list", "--type", "channel", "--since", events[1]["at"], "--all") == events[1:]
    assert as_json(capsys, "events", "list", "--type", "channel", "--until", events[1]["at"], "--all") == events[:1]
    lines = run(capsys, "events", "tail", "-n", "2", "--type", "channel").splitlines()
    assert [x.split()[-1] for x in lines] == [events[1]["resource_id"], events[2]["resource_id"]]
    env.ok("PATCH", f"{API}/channels/{events[0]['resource_id']}", {"description": "x"})
    assert run(capsys, "events", "tail", "-n", "1", "--type", "channel").split()[-1] == "description"
    assert "not an RFC 3339 time" in error_line(capsys, "events", "list", "--since", "yesterday", code=1)


def test_events_follow_prints_each_new_event_once(env: Api, tmp_path: Path):
    environ = {**os.environ, "FERRYMAN_URL": f"http://{env.host}:{env.port}", "FERRYMAN_TOKEN": ADMIN,
               "FERRYMAN_CONFIG": str(tmp_path / "none.toml")}  # fmt: skip
    env.ok("POST", f"{API}/channels", {"name": "before"})
    argv = [sys.executable, "-m", "ferryman", "events", "tail", "-n", "1", "--follow", "--interval", "0.2", "--jsonl",
            "--type", "channel"]  # fmt: skip
    with subprocess.Popen(argv, env=environ, stdout=subprocess.PIPE, text=True) as follow:
        assert follow.stdout is not None
        try:
            first = json.loads(follow.stdout.readline())
            assert first["after"]["name"] == "before"
            time.sleep(0.5)
            for name in ("one", "two"):
                env.ok("POST", f"{API}/channels", {"name": name})
            env.ok("POST", f"{API}/cohorts", {"name": "not-a-channel"})
            got = [json.loads(follow.stdout.readline())["after"]["name"] for _ in range(2)]
            assert got == ["one", "two"]
            env.ok("POST", f"{API}/channels", {"name": "three"})
            assert json.loads(follow.stdout.readline())["after"]["name"] == "three"  # nothing printed twice in between
        finally:
            follow.terminate()


def test_errors_are_one_line_with_the_right_code(env: Api, capsys):
    assert "404" in error_line(capsys, "channels", "show", "chn_" + "0" * 26, code=1)
    assert "no channel named 'nope'" in error_line(capsys, "channels", "show", "nope", code=1)
    assert "is a release ID, not a channel ID" in error_line(capsys, "channels", "show", "rel_" + "0" * 26, code=1)
    assert "is not a webhook ID" in error_line(capsys, "webhooks", "show", "hook", code=1)
    viewer = make_key(env, "viewer")
    env.ok("POST", f"{API}/channels", {"name": "stable"})
    assert "403" in error_line(capsys, "channels", "update", "stable", "--name", "x", "--token", viewer, code=1)
    assert "nothing to change" in error_line(capsys, "channels", "update", "stable", code=2)
    assert main(["releases", "update", "x", "--phase", "0.5"]) == 2
    assert "not a phase" in capsys.readouterr().err
    assert "cannot reach" in error_line(capsys, "channels", "list", "--url", "http://127.0.0.1:9", code=1)
    assert "401" in error_line(capsys, "channels", "list", "--token", "fm_wrong", code=1)


def test_profiles_choose_server_and_token(env: Api, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "cfg" / "config.toml"
    monkeypatch.setenv("FERRYMAN_CONFIG", str(config))
    monkeypatch.delenv("FERRYMAN_URL")
    monkeypatch.delenv("FERRYMAN_TOKEN")
    url = f"http://{env.host}:{env.port}"
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(ADMIN + "\n"))
    run(capsys, "profiles", "add", "lab", "--url", url, "--token-stdin")
    run(capsys, "profiles", "add", "dead", "--url", "http://127.0.0.1:9")
    assert oct((config.parent / "lab.token").stat().st_mode & 0o777) == "0o600"
    assert oct(config.stat().st_mode & 0o777) == "0o600" and ADMIN not in config.read_text()
    env.ok("POST", f"{API}/channels", {"name": "stable"})
    assert as_json(capsys, "channels", "list")[0]["name"] == "stable"  # the default profile (the first)
    assert "cannot reach" in error_line(capsys, "channels", "list", "--profile", "dead", code=1)
    monkeypatch.setenv("FERRYMAN_PROFILE", "dead")
    assert as_json(capsys, "channels", "list", "--profile", "lab")[0]["name"] == "stable"  # the flag wins
    monkeypatch.delenv("FERRYMAN_PROFILE")
    # The profile's token never goes to another URL.
    assert as_json(capsys, "channels", "list", "--url", url + "/")[0]["name"] == "stable"  # same URL, trailing slash
    other = f"http://{'localhost' if env.host == '127.0.0.1' else '127.0.0.1'}:{env.port}"
    assert "401" in error_line(capsys, "channels", "list", "--url", other, code=1)
    (config.parent / "lab.token").chmod(0o644)
    assert "chmod 600" in error_line(capsys, "channels", "list", code=1)
    assert "no profile 'nope'" in error_line(capsys, "channels", "list", "--profile", "nope", code=1)
    rows = table(run(capsys, "profiles", "list"))
    assert rows[1][0] == "* lab" and rows[2][:2] == ["dead", "http://127.0.0.1:9"]


def test_readme_steering_block_runs(env: Api, tmp_path: Path):
    text = README.read_text()
    quickstart = re.search(r"<!-- quickstart -->\s*```sh\n(.*?)```", text, re.S)
    steering = re.search(r"<!-- steering -->\s*```sh\n(.*?)```", text, re.S)
    assert quickstart and steering, "README blocks missing"
    work = tmp_path / "work"
    work.mkdir()
    environ = {**os.environ, "FERRYMAN_URL": f"http://{env.host}:{env.port}", "FERRYMAN_TOKEN": ADMIN,
               "FERRYMAN_CONFIG": str(tmp_path / "none.toml"),
               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", quickstart.group(1) + steering.group(1)], cwd=work, env=environ,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "rolled out: 10 installed" in r.stdout
    v2 = next(x for ch in env.ok("GET", f"{API}/channels")["items"]
              for x in env.ok("GET", f"{API}/channels/{ch['id']}/releases")["items"] if x["name"] == "v2")  # fmt: skip
    devices = env.ok("GET", f"{API}/devices?limit=50")["items"]
    assert len(devices) == 10 and all(d["reported_release_id"] == v2["id"] for d in devices)
    # The audit log holds each step: 10% to 50%, held, resumed at 100%.
    changes = [(e["before"], e["after"]) for e in env.ok("GET", f"{API}/events?resource_id={v2['id']}")["items"] if e["before"]]
    phases = [(b["phase"], a["phase"]) for b, a in changes if b["phase"] != a["phase"]]
    assert [(b["value"], a["value"]) for b, a in phases] == [(0.1, 0.5), (0.5, 1.0)]
    assert [a["halted"] for b, a in changes if b["halted"] != a["halted"]] == [True, False]
    assert json.loads((work / "unit-1" / "state.json").read_text())["release_id"] == v2["id"]


def test_signing_stats_and_reports(env: Api, capsys, tmp_path: Path):
    from cryptography.hazmat.primitives import serialization

    fleet = Fleet(env)
    b = fleet.binaries("1.0.0", targets=[TARGET], sign=False)[0]
    signed = fleet.binaries("1.1.0", targets=[TARGET])[0]
    bundle = env.ok("POST", f"{API}/bundles", {"name": "one", "binaries": [{"binary_id": signed["id"]}]})
    # A signature made elsewhere (here: with the fleet's key) is submitted by key name, then by keyid.
    sig = fleet.sk.sign(bytes.fromhex(b["sha256"])).hex()
    assert f"binary {b['id']} signed" in run(capsys, "signatures", "add", b["id"], "--key", "ci", "--signature", sig)
    again = as_json(capsys, "signatures", "add", b["id"], "--keyid", fleet.key["keyid"], "--signature", sig)
    assert again["binary_id"] == b["id"]  # a repeat is the same signature
    assert "422" in error_line(capsys, "signatures", "add", b["id"], "--key", "ci", "--signature", "00" * 64, code=1)
    # Bundles signed from a key file, by name.
    pem = tmp_path / "ci.pem"
    pem.write_bytes(fleet.sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    pem.chmod(0o600)
    assert "bundle " + bundle["id"] + " signed by " + fleet.key["id"] in run(capsys, "bundles", "sign", "one", "--key", str(pem))
    assert [s["signing_key_id"] for s in env.ok("GET", f"{API}/bundles/{bundle['id']}")["signatures"]] == [fleet.key["id"]]
    assert [x["id"] for x in as_json(capsys, "bundles", "list", "--signing-key", "ci")] == [bundle["id"]]

    # A device's reports, and the stats of its cohort and channel.
    channel = fleet.channel("stable")
    rel = fleet.release(channel, "v1", bundle)
    cohort = env.ok("POST", f"{API}/cohorts", {"name": "field", "channel_id": channel["id"]})
    _, device = fleet.device("gw-1", TARGET, cohort)
    assert device.ok("GET", "/device/v1/update")["status"] == "update"
    device.ok("POST", "/device/v1/report", {"bundle_id": bundle["id"], "status": "failed", "reason": "disk_full"})
    rows = table(run(capsys, "devices", "reports", "gw-1"))
    assert rows[0][:2] == ["AT", "STATUS"] and rows[1][1:5] == ["failed", rel["id"], bundle["id"], "disk_full"]
    for group, name in (("cohorts", "field"), ("channels", "stable")):
        stats = as_json(capsys, group, "stats", name)
        assert stats["outcomes"]["failed"] == 1 and stats["releases"][0]["release_id"] == rel["id"], group
        assert "FAILED" in run(capsys, group, "stats", name)
    assert as_json(capsys, "releases", "stats", "stable/v1")["success_rate"] == 0.0
    make_key(env, "viewer")
    [viewer] = as_json(capsys, "api-keys", "list", "--name", "k-viewer")
    assert viewer["role"] == "viewer" and viewer in as_json(capsys, "api-keys", "list", "--all")


def test_admission_token_and_replication_from_the_cli(env: Api, capsys):
    created = as_json(capsys, "devices", "create", "gw-9", "--target", TARGET)
    device = env.as_(created["token"])
    assert device.get("/device/v1/update").status == 200
    rotated = as_json(capsys, "devices", "rotate-token", "gw-9")
    assert device.get("/device/v1/update").status == 401 and env.as_(rotated["token"]).get("/device/v1/update").status == 200
    assert run(capsys, "devices", "reject", "gw-9").split()[1:] == ["gw-9", "rejected"]
    assert env.as_(rotated["token"]).get("/device/v1/update").status == 401
    assert as_json(capsys, "devices", "list", "--admission", "rejected")[0]["id"] == created["id"]
    status = as_json(capsys, "replication", "status")
    assert [r["region"] for r in status["regions"]] == [env.ok("GET", f"{API}/replication")["regions"][0]["region"]]
    assert run(capsys, "replication", "status").startswith("REGION")

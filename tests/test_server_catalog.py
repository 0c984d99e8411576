"""The service over HTTP: auth and roles, artifacts and versions, errors, OpenAPI, audit log."""

from __future__ import annotations

import pytest
from apiclient import Api

from ferryman.server.routes import ROUTES

API = "/api/v1"
ROLES = ["admin", "publisher", "signer", "releaser", "viewer"]


def make_key(api: Api, role: str) -> str:
    return api.ok("POST", f"{API}/api-keys", {"name": f"k-{role}", "role": role})["token"]


def problem(r, status: int) -> dict:
    assert r.status == status, r
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json
    assert body["status"] == status and body["title"] and body["detail"]
    assert isinstance(body["errors"], dict)
    return body


def test_health_and_openapi_are_public(server: Api):
    anon = server.as_(None)
    assert anon.get("/healthz").json == {"status": "ok"}
    doc = anon.get(f"{API}/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    assert "BinaryCreate" in doc["components"]["schemas"]
    assert set(doc["paths"][f"{API}/binaries/{{binary_id}}"]) == {"get", "patch"}
    # Every route of the table is documented.
    assert sum(len(v) for v in doc["paths"].values()) == len([r for r in ROUTES if r.documented])


def test_no_token_bad_token(server: Api):
    problem(server.as_(None).get(f"{API}/artifacts"), 401)
    problem(server.as_("nope").get(f"{API}/artifacts"), 401)
    r = server.call("GET", f"{API}/artifacts", headers={"Authorization": "Basic abc"})
    problem(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"


def _path_for(path: str) -> str:
    ids = {
        "{artifact_id}": "art_" + "0" * 26,
        "{version_id}": "ver_" + "0" * 26,
        "{binary_id}": "bin_" + "0" * 26,
        "{key_id}": "key_" + "0" * 26,
        "{bundle_id}": "bun_" + "0" * 26,
        "{channel_id}": "chn_" + "0" * 26,
        "{release_id}": "rel_" + "0" * 26,
        "{cohort_id}": "coh_" + "0" * 26,
        "{device_id}": "dev_" + "0" * 26,
        "{override_id}": "ovr_" + "0" * 26,
        "{webhook_id}": "whk_" + "0" * 26,
        "{delivery_id}": "msg_" + "0" * 26,
        "{deployment_id}": "00000000-0000-0000-0000-000000000001",
        "{index}": "1",
    }
    for k, v in ids.items():
        path = path.replace(k, v)
    return path


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(server: Api, role: str):
    """Each role reaches exactly the routes the table grants it; everyone else gets 403."""
    as_role = server.as_(make_key(server, role))
    for route in ROUTES:
        if route.roles in (frozenset({"public"}), frozenset({"device"}), frozenset({"ddi"}), frozenset({"console"})):
            if route.roles == frozenset({"device"}):  # API tokens never reach the device API
                assert as_role.call(route.method, _path_for(route.path), {}).status == 401
            continue
        path = _path_for(route.path)
        kw = {"body": b"x", "headers": {"Content-Length": "1"}} if route.raw_body and route.method == "PUT" else {}
        r = as_role.call(route.method, path, {} if route.body is not None else None, **kw)
        allowed = role == "admin" or role in route.roles
        anonymous = server.as_(None).call(route.method, path)
        if route.method == "HEAD":  # no body to inspect
            assert (r.status not in (401, 403) and r.status < 500) if allowed else r.status == 403, (role, route.path, r)
            assert anonymous.status == 401
            continue
        if allowed:
            # Past authorisation: the request's own answer (404 for the placeholder IDs, 422 for
            # the empty bodies...), never a server failure.
            assert r.status not in (401, 403) and r.status < 500, (role, route.method, route.path, r)
        else:
            problem(r, 403)
        problem(anonymous, 401)


def test_lists_find_by_name_and_the_log_reads_backwards(server: Api):
    """The filters names are resolved with, and the audit log newest first, paged and bounded."""
    channels = [server.ok("POST", f"{API}/channels", {"name": n}) for n in ("alpha", "beta")]
    assert [c["id"] for c in server.ok("GET", f"{API}/channels?name=beta")["items"]] == [channels[1]["id"]]
    assert server.ok("GET", f"{API}/channels?name=gamma")["items"] == []
    co = server.ok("POST", f"{API}/cohorts", {"name": "field", "channel_id": channels[0]["id"]})
    server.ok("POST", f"{API}/cohorts", {"name": "lab"})
    assert [c["id"] for c in server.ok("GET", f"{API}/cohorts?name=field")["items"]] == [co["id"]]
    assert [c["id"] for c in server.ok("GET", f"{API}/cohorts?channel_id={channels[0]['id']}")["items"]] == [co["id"]]
    d = server.ok("POST", f"{API}/devices", {"identifier": "gw-1", "target": "x86_64-linux-gnu"})
    server.ok("POST", f"{API}/devices", {"identifier": "gw-2", "target": "x86_64-linux-gnu"})
    assert [x["id"] for x in server.ok("GET", f"{API}/devices?identifier=gw-1")["items"]] == [d["id"]]
    k = server.ok("POST", f"{API}/api-keys", {"name": "ci", "role": "viewer"})
    assert [x["id"] for x in server.ok("GET", f"{API}/api-keys?name=ci")["items"]] == [k["id"]]
    assert server.ok("GET", f"{API}/api-keys/{k['id']}") == {x: v for x, v in k.items() if x != "token"}
    problem(server.get(f"{API}/api-keys/apk_{'0' * 26}"), 404)
    problem(server.get(f"{API}/api-keys/nope"), 404)

    oldest_first = server.ok("GET", f"{API}/events?resource_type=channel")["items"]
    assert [e["after"]["name"] for e in oldest_first] == ["alpha", "beta"]
    newest = server.ok("GET", f"{API}/events?order=desc&limit=2")
    older = server.ok("GET", f"{API}/events?order=desc&limit=2&cursor={newest['next_cursor']}")
    every = server.ok("GET", f"{API}/events?limit=500")["items"]
    assert newest["items"] + older["items"] == list(reversed(every))[:4]
    at = oldest_first[1]["at"]
    assert server.ok("GET", f"{API}/events?resource_type=channel&since={at}")["items"] == oldest_first[1:]
    assert server.ok("GET", f"{API}/events?resource_type=channel&until={at}")["items"] == oldest_first[:1]
    problem(server.get(f"{API}/events?order=sideways"), 422)
    problem(server.get(f"{API}/events?since=yesterday"), 422)


def test_api_keys_are_shown_once_and_deletable(server: Api):
    created = server.ok("POST", f"{API}/api-keys", {"name": "ci", "role": "publisher"})
    assert created["token"].startswith("fm_")
    listed = server.ok("GET", f"{API}/api-keys")["items"]
    assert all("token" not in k and "token_hash" not in k for k in listed)
    pub = server.as_(created["token"])
    assert pub.get(f"{API}/artifacts").status == 200
    assert server.call("DELETE", f"{API}/api-keys/{created['id']}").status == 204
    problem(pub.get(f"{API}/artifacts"), 401)
    problem(server.call("DELETE", f"{API}/api-keys/{created['id']}"), 404)
    problem(server.post(f"{API}/api-keys", {"name": "x", "role": "root"}), 422)


def test_artifacts_and_versions(server: Api):
    a = server.ok("POST", f"{API}/artifacts", {"name": "gateway-rootfs", "custom_metadata": {"team": "os"}})
    assert a["id"].startswith("art_") and a["custom_metadata"] == {"team": "os"}
    problem(server.post(f"{API}/artifacts", {"name": "gateway-rootfs"}), 409)
    for v in ["2.0.0", "1.1.0", "2.0.0-beta.1", "nightly-7", "1.1.0-rc.1", "2.0.0-beta.2", "latest"]:
        server.ok("POST", f"{API}/artifacts/{a['id']}/versions", {"version": v})
    problem(server.post(f"{API}/artifacts/{a['id']}/versions", {"version": "1.1.0"}), 409)
    got = server.ok("GET", f"{API}/artifacts/{a['id']}/versions")["items"]
    assert [v["version"] for v in got] == ["1.1.0-rc.1", "1.1.0", "2.0.0-beta.1", "2.0.0-beta.2", "2.0.0", "nightly-7", "latest"]
    assert [v["semver"] for v in got] == [True] * 5 + [False] * 2
    # Paging walks the same order.
    page1 = server.ok("GET", f"{API}/artifacts/{a['id']}/versions?limit=4")
    page2 = server.ok("GET", f"{API}/artifacts/{a['id']}/versions?limit=4&cursor={page1['next_cursor']}")
    assert [v["version"] for v in page1["items"] + page2["items"]] == [v["version"] for v in got]
    assert page2["next_cursor"] is None
    patched = server.ok("PATCH", f"{API}/artifacts/{a['id']}", {"description": "root filesystem"})
    assert patched["description"] == "root filesystem" and patched["name"] == "gateway-rootfs"
    problem(server.patch(f"{API}/artifacts/{a['id']}", {"name": "renamed"}), 422)  # names are immutable
    problem(server.call("DELETE", f"{API}/artifacts/{a['id']}"), 409)
    assert server.ok("GET", f"{API}/artifacts?name=gateway-rootfs")["items"][0]["id"] == a["id"]


def test_list_pagination(server: Api):
    for i in range(7):
        server.ok("POST", f"{API}/artifacts", {"name": f"a{i}"})
    seen, cursor = [], ""
    while True:
        page = server.ok("GET", f"{API}/artifacts?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        seen += [a["name"] for a in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert seen == [f"a{i}" for i in range(7)]
    problem(server.get(f"{API}/artifacts?limit=0"), 422)
    problem(server.get(f"{API}/artifacts?limit=501"), 422)
    problem(server.get(f"{API}/artifacts?cursor=!!!"), 422)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{", 400, None),
        (b"\xff\xfe not utf-8", 400, None),
        (b"[" * 100_000 + b"]" * 100_000, 422, "body"),
        (b'{"name": "x", "custom_metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", 400, None),
        (b'{"name": 5}', 422, "name"),
        (b'{"name": "ok", "extra": 1}', 422, None),
        (b'{"name": "../etc"}', 422, "name"),
        (b'{"name": ""}', 422, "name"),
        (b'{"name": "x", "custom_metadata": {"k": "' + b"v" * 20000 + b'"}}', 422, "custom_metadata"),
        (b'{"name": "x", "custom_metadata": [1]}', 422, "custom_metadata"),
        (b"", 400, None),
    ],
)
def test_malformed_bodies(server: Api, body: bytes, status: int, field: str | None):
    r = server.call("POST", f"{API}/artifacts", body=body, headers={"Content-Type": "application/json"})
    p = problem(r, status)
    if field:
        assert field in p["errors"], p
    assert server.ok("GET", f"{API}/artifacts")["items"] == []


def test_oversize_and_wrong_media_type(server: Api):
    big = b'{"name": "x", "description": "' + b"a" * (2 << 20) + b'"}'
    problem(server.call("POST", f"{API}/artifacts", body=big, headers={"Content-Type": "application/json"}), 413)
    problem(server.call("POST", f"{API}/artifacts", body=b"name=x", headers={"Content-Type": "text/plain"}), 415)


def test_hostile_ids_and_paths(server: Api):
    for bad in ["..%2F..%2Fetc%2Fpasswd", "art_../../x", "art_" + "A" * 26, "%00", "bin_" + "0" * 26]:
        r = server.get(f"{API}/artifacts/{bad}")
        assert r.status == 404, (bad, r)
    problem(server.get(f"{API}/no/such/route"), 404)
    r = server.call("DELETE", f"{API}/artifacts")
    assert problem(r, 405) and "GET" in r.headers["Allow"]


def test_huge_headers_are_refused(server: Api):
    r = server.call("GET", f"{API}/artifacts", headers={"X-Junk": "x" * 100_000})
    assert r.status == 400, r  # aiohttp's parser refuses it before any handler: 400, not 431


def test_audit_log_records_who_did_what(server: Api):
    token = make_key(server, "publisher")
    pub = server.as_(token)
    a = pub.ok("POST", f"{API}/artifacts", {"name": "fw"})
    pub.ok("PATCH", f"{API}/artifacts/{a['id']}", {"description": "d"})
    events = server.ok("GET", f"{API}/events?resource_id={a['id']}")["items"]
    assert [e["action"] for e in events] == ["create", "update"]
    assert events[1]["before"]["description"] is None and events[1]["after"]["description"] == "d"
    keys = server.ok("GET", f"{API}/api-keys")["items"]
    pub_id = next(k["id"] for k in keys if k["role"] == "publisher")
    assert {e["actor"] for e in events} == {pub_id}
    assert all(e["at"].endswith("Z") for e in events)


def test_first_start_prints_a_working_admin_key(tmp_path, capsys, catalog_url):
    from apiclient import ThreadServer

    from ferryman.config import Config

    srv = ThreadServer(Config(data_dir=tmp_path / "d", admin_token=None, catalog=catalog_url))
    api = srv.start()
    try:
        out = capsys.readouterr().out
        token = out.strip().splitlines()[-1]
        assert token.startswith("fm_")
        assert api.as_(token).get(f"{API}/api-keys").status == 200
        assert api.as_("test-admin-token").get(f"{API}/api-keys").status == 401  # no env token here
    finally:
        srv.stop()
    # A second start finds keys and prints none.
    srv = ThreadServer(Config(data_dir=tmp_path / "d", admin_token=None, catalog=catalog_url))
    srv.start()
    srv.stop()
    assert "fm_" not in capsys.readouterr().out

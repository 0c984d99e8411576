"""The web console in a real browser (Debian's chromium, driven by Playwright) against a live
server: signing in and out, what each role sees and may do, steering a release from its page and
seeing the change in the API, finding a device among many, forged forms refused, and every page
valid HTML with no error in the browser's console."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import html5lib
import pytest
from apiclient import ADMIN, Api
from test_server_catalog import make_key
from test_server_fleet import API, Fleet

from conftest import _missing

TARGET = "x86_64-linux-gnu"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser(site) -> Iterator[object]:
    """Chromium, started after the server: Playwright's sync API runs an event loop in this
    thread, under which the catalog fixtures could not start theirs."""
    if shutil.which(CHROMIUM) is None:
        _missing("chromium (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def site(server: Api):
    """A channel with v1 and a phased v2, a cohort and a device on it."""
    fleet = Fleet(server)
    channel = fleet.channel("stable")
    v1 = fleet.release(channel, "v1", fleet.bundle("1.0.0", targets=[TARGET]))
    v2 = fleet.release(channel, "v2", fleet.bundle("2.0.0", targets=[TARGET]), phase={"mode": "percent", "value": 0.1})
    cohort = server.ok("POST", f"{API}/cohorts", {"name": "field", "channel_id": channel["id"]})
    return server, {"channel": channel, "v1": v1, "v2": v2, "cohort": cohort}


class Page:
    """A browser tab on the server that records the console's errors and checks each page's HTML."""

    def __init__(self, browser: object, api: Api) -> None:
        self.base = f"http://{api.host}:{api.port}"
        self.context = browser.new_context()  # type: ignore[attr-defined]
        self.tab = self.context.new_page()
        self.errors: list[str] = []
        self.tab.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.tab.on("pageerror", lambda e: self.errors.append(str(e)))

    def go(self, path: str) -> None:
        self.tab.goto(self.base + path)
        self.check()

    def check(self) -> None:
        # Strict parsing: any parse error (unclosed or misnested tags, bad attributes) raises.
        html5lib.HTMLParser(strict=True).parse(self.tab.content())
        assert self.errors == [], self.errors

    def submit(self, selector: str) -> None:
        """Clicks what sends a form or follows a link, and waits for the page it leads to."""
        with self.tab.expect_navigation():
            self.tab.click(selector)
        self.check()

    def sign_in(self, token: str) -> None:
        self.go("/ui/")
        assert self.tab.url.startswith(self.base + "/ui/sign-in")
        self.tab.fill("#token", token)
        self.submit("form[action='/ui/sign-in'] button[type=submit]")


def test_sign_in_steer_a_release_and_sign_out(browser, site):
    api, s = site
    page = Page(browser, api)
    page.go("/ui/devices")
    assert "/ui/sign-in?next=/ui/devices" in page.tab.url  # every page wants a session
    page.tab.fill("#token", "fm_not_a_key")
    with page.tab.expect_navigation():
        page.tab.click("form[action='/ui/sign-in'] button[type=submit]")
    assert page.tab.locator("[role=alert]").inner_text() == "That API key is not valid."
    # The refusal is a 401, which the browser notes; that one is expected.
    assert len(page.errors) == 1 and "401" in page.errors[0]
    page.errors.clear()
    page.tab.fill("#token", ADMIN)
    page.submit("form[action='/ui/sign-in'] button[type=submit]")
    assert page.tab.url == page.base + "/ui/devices"  # back where it was going
    cookie = next(c for c in page.context.cookies() if c["name"] == "ferryman_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui/"

    page.go("/ui/")
    assert "v2" in page.tab.locator("#rollouts + table").inner_text()  # the phased release is rolling out
    assert page.tab.locator("#fleet").inner_text().split("\n")[1] == "stable\tnone reported yet"
    page.submit("text=stable")
    items = page.tab.locator("ol.graph li").all_inner_texts()
    assert items[0].startswith("v1") and items[1].startswith("v2") and "latest" in items[1] and "10% of devices" in items[1]

    page.submit("ol.graph >> text=v2")
    assert page.tab.locator("#phase").inner_text() == "10% of devices"
    page.tab.on("dialog", lambda d: d.accept())  # the confirmation before a change
    page.tab.fill("#percent", "50")
    page.submit("text=Change phase")
    assert page.tab.locator("#phase").inner_text() == "50% of devices"
    assert api.ok("GET", f"{API}/releases/{s['v2']['id']}")["phase"] == {"mode": "percent", "value": 0.5}
    page.submit("button:text('Hold')")
    assert page.tab.locator("#state").inner_text().startswith("halted")
    assert api.ok("GET", f"{API}/releases/{s['v2']['id']}")["halted"] is True
    page.submit("button:text('Resume')")
    assert api.ok("GET", f"{API}/releases/{s['v2']['id']}")["halted"] is False
    # The audit log names the console's user as the API would.
    events = api.ok("GET", f"{API}/events?resource_id={s['v2']['id']}")["items"]
    assert events[-1]["actor"] == "env:FERRYMAN_ADMIN_TOKEN" and events[-1]["after"]["halted"] is False

    copy = page.context.cookies()
    page.submit("text=Sign out")
    assert page.tab.url.startswith(page.base + "/ui/sign-in")
    page.go("/ui/")
    assert page.tab.url.startswith(page.base + "/ui/sign-in")
    # A copy of the cookie taken before signing out opens nothing either.
    page.context.add_cookies(copy)
    page.go("/ui/")
    assert page.tab.url.startswith(page.base + "/ui/sign-in")
    page.sign_in(ADMIN)  # and signing in again works at once
    assert page.tab.url == page.base + "/ui/"


def test_a_viewer_sees_no_controls_and_forged_forms_are_refused(browser, site):
    api, s = site
    viewer = make_key(api, "viewer")
    page = Page(browser, api)
    page.sign_in(viewer)
    page.go(f"/ui/releases/{s['v2']['id']}")
    assert page.tab.locator("#phase").inner_text() == "10% of devices"
    assert page.tab.locator("form[action^='/ui/releases']").count() == 0  # no write control for a viewer
    # The server refuses the form anyway, even with this session's own token.
    csrf = page.tab.locator("input[name=csrf]").first.get_attribute("value")
    r = page.context.request.post(page.base + f"/ui/releases/{s['v2']['id']}", form={"csrf": csrf, "action": "hold"})
    assert r.status == 403
    assert api.ok("GET", f"{API}/releases/{s['v2']['id']}")["halted"] is False

    releaser = Page(browser, api)
    releaser.sign_in(make_key(api, "releaser"))
    path = f"/ui/releases/{s['v2']['id']}"
    for form in ({"action": "hold"}, {"action": "hold", "csrf": csrf}, {"action": "hold", "csrf": "x" * 43}):
        # No token, or another session's: refused, and nothing changes.
        assert releaser.context.request.post(releaser.base + path, form=form).status == 403
    own = releaser.tab
    releaser.go(path)
    token = own.locator("input[name=csrf]").first.get_attribute("value")
    forged = releaser.context.request.post(releaser.base + path, form={"action": "hold", "csrf": token},
                                           headers={"Origin": "https://evil.example"})  # fmt: skip
    assert forged.status == 403
    assert api.ok("GET", f"{API}/releases/{s['v2']['id']}")["halted"] is False
    assert releaser.context.request.post(releaser.base + path, form={"action": "hold", "csrf": token}).status == 200
    assert api.ok("GET", f"{API}/releases/{s['v2']['id']}")["halted"] is True
    # No other site signs a browser in, whatever the key.
    elsewhere = releaser.context.request.post(releaser.base + "/ui/sign-in", form={"token": ADMIN, "next": "/ui/"},
                                              headers={"Origin": "https://evil.example"}, max_redirects=0)  # fmt: skip
    assert elsewhere.status == 403 and "set-cookie" not in elsewhere.headers
    # A deleted API key ends its sessions at once.
    key_id = next(k["id"] for k in api.ok("GET", f"{API}/api-keys?name=k-viewer")["items"])
    api.call("DELETE", f"{API}/api-keys/{key_id}")
    page.go("/ui/")
    assert page.tab.url.startswith(page.base + "/ui/sign-in")


def _many_devices(tmp_path: Path, catalog_url: str | None, cohort_id: str, count: int) -> None:
    """``count`` devices written straight into the running server's catalog (the API would take
    a minute): gw-00000, gw-00001…, every tenth tagged canary, every other seen a day ago."""
    from sqlalchemy import create_engine, text

    from ferryman.catalog.rules import hash_token, now
    from ferryman.catalog.sql.engines import engine_url
    from ferryman.ids import new_ids

    url = engine_url(catalog_url or f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite3'}")
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    t = now()
    rows = [
        {"id": i, "identifier": f"gw-{n:05d}", "target": TARGET, "tags": '["canary"]' if n % 10 == 0 else "[]",
         "cohort_id": cohort_id, "quarantined": 0, "token_hash": hash_token(f"fd_many_{n}"),
         "last_seen_at": "2026-01-01T00:00:00.000000Z" if n % 2 else None,
         "created_at": f"2026-01-02T00:00:00.{n:06d}Z", "updated_at": t}  # created in this order
        for n, i in enumerate(new_ids("device", count))
    ]  # fmt: skip
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO devices (id, identifier, target, tags, cohort_id, quarantined, token_hash, last_seen_at, "
                          "created_at, updated_at) VALUES (:id, :identifier, :target, :tags, :cohort_id, :quarantined, "
                          ":token_hash, :last_seen_at, :created_at, :updated_at)"), rows)  # fmt: skip
    engine.dispose()


def test_find_a_device_among_ten_thousand_and_resolve_it(browser, site, tmp_path: Path, catalog_url: str | None):
    api, s = site
    _many_devices(tmp_path, catalog_url, s["cohort"]["id"], 10_000)
    page = Page(browser, api)
    page.sign_in(ADMIN)
    page.go("/ui/devices")
    assert page.tab.locator("tbody tr").count() == 50  # one page
    page.submit("a[rel=next]")
    assert page.tab.locator("tbody tr").first.inner_text().startswith("gw-00050")
    page.go("/ui/devices")
    page.tab.fill("#identifier", "gw-07777")
    page.submit("text=Filter")
    rows = page.tab.locator("tbody tr").all_inner_texts()
    assert len(rows) == 1 and rows[0].startswith("gw-07777")
    page.submit("text=gw-07777")
    page.submit("text=Resolve now (a dry run)")
    shown = page.tab.locator("#resolution").inner_text()
    device_id = page.tab.url.split("/ui/devices/")[1].split("?")[0]
    answer = api.ok("POST", f"{API}/devices/{device_id}/update", {})
    assert shown.startswith(f"{answer['status'].replace('_', ' ')} ({answer['reason'].replace('_', ' ')})"), shown
    assert answer["release"]["id"] in shown
    # Filters combine, in the catalog: tag, not seen since a date, a cohort; the last page has no "next".
    page.go("/ui/devices?tag=canary&seen_before=2026-06-01T00:00:00Z")
    assert page.tab.locator("tbody").inner_text().strip() == "No device matches."  # canaries (even) were never seen
    page.go("/ui/devices?tag=canary&identifier=gw-09990")
    assert page.tab.locator("tbody tr").count() == 1 and page.tab.locator("a[rel=next]").count() == 0
    page.go(f"/ui/devices?seen_since=2025-12-31T00:00:00Z&cohort_id={s['cohort']['id']}")
    assert page.tab.locator("tbody tr").first.inner_text().startswith("gw-00001")
    page.go("/ui/devices?identifier=nobody")
    assert page.tab.locator("tbody").inner_text().strip() == "No device matches."
    page.tab.goto(page.base + "/ui/devices?seen_since=yesterday")
    assert "seen_since is not an RFC 3339 time" in page.tab.locator("[role=alert]").inner_text()


def test_walk_from_an_artifact_to_a_binarys_signatures_and_manage_keys(browser, site):
    api, _ = site
    page = Page(browser, api)
    page.sign_in(ADMIN)
    page.submit("nav >> text=Artifacts")
    page.submit("text=rootfs")
    assert page.tab.locator("tbody tr").all_inner_texts()[0].startswith("1.0.0")  # version order
    page.submit("text=2.0.0")
    page.submit(f"text={TARGET}")
    assert page.tab.locator("#state").inner_text() == "signed"
    assert page.tab.locator("#signatures tbody tr").first.inner_text().startswith("ci\tactive\ted25519")
    page.submit("nav >> text=Bundles")
    page.submit("text=rootfs 1.0.0")
    assert "entries" in page.tab.content().lower() and TARGET in page.tab.locator("table").first.inner_text()

    # Keys: a signer adds one and revokes it; each change is in the audit log.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    signer = Page(browser, api)
    signer.sign_in(make_key(api, "signer"))
    signer.go("/ui/keys")
    assert signer.tab.locator("#api-keys").count() == 0  # API keys are for admins
    signer.tab.fill("#key-name", "release-2027")
    signer.tab.fill("#key-pem", pem)
    signer.submit("text=Add key")
    assert "release-2027\tactive" in signer.tab.locator("#signing-keys").inner_text()
    signer.tab.on("dialog", lambda d: d.accept())
    signer.submit("text=Revoke release-2027")
    key = next(k for k in api.ok("GET", f"{API}/signing-keys?name=release-2027")["items"])
    assert key["state"] == "revoked"
    signer.tab.fill("#key-name", "broken")
    signer.tab.fill("#key-pem", "not a key")
    signer.submit("text=Add key")
    assert signer.tab.locator("[role=alert]").count() == 1  # the API's reason, on the page

    page.go("/ui/keys")
    assert "k-signer" in page.tab.locator("#api-keys").inner_text()
    # The other lists filter in the catalog too.
    page.go("/ui/keys?state=revoked")
    assert [r.split("\t")[0] for r in page.tab.locator("#signing-keys tbody tr").all_inner_texts()] == ["release-2027"]
    page.go("/ui/artifacts?name=nothing")
    assert page.tab.locator("tbody").inner_text().strip() == "No artifact matches."
    page.go("/ui/artifacts?name=rootfs")
    assert page.tab.locator("tbody tr").count() == 1
    page.go("/ui/bundles?name=rootfs+2.0.0")
    assert [r.split("\t")[0] for r in page.tab.locator("tbody tr").all_inner_texts()] == ["rootfs 2.0.0"]
    page.go("/ui/cohorts?name=elsewhere")
    assert page.tab.locator("tbody").inner_text().strip() == "No cohort matches."
    page.go(f"/ui/events?resource_id={key['id']}")
    actions = [row.split("\t")[2] for row in page.tab.locator("#event-list tbody tr").all_inner_texts()]
    assert actions == ["revoke", "create"]  # newest first
    page.tab.goto(page.base + "/ui/events?since=yesterday")
    assert page.tab.locator("[role=alert]").inner_text().startswith("since is not an RFC 3339 time")
    assert len(page.errors) == 1 and "422" in page.errors[0]  # the page answers 422, as the API would


def test_add_a_release_and_see_the_graph_change(browser, site):
    api, s = site
    page = Page(browser, api)
    page.sign_in(make_key(api, "releaser"))
    page.tab.on("dialog", lambda d: d.accept())
    page.submit("nav >> text=Cohorts")
    page.submit("tbody >> text=stable")
    nodes = page.tab.locator("svg.graph a.node")
    assert nodes.count() == 2 and "★" in (nodes.nth(1).text_content() or "")  # v2 is the latest
    page.tab.fill("#rel-name", "v3")
    page.tab.select_option("#rel-bundle", label="rootfs 1.0.0")
    page.submit("text=Add release")
    # v2 is still phased: the API's refusal, on the page; nothing added.
    assert "phased or scheduled" in page.tab.locator("[role=alert]").inner_text()
    assert len(api.ok("GET", f"{API}/channels/{s['channel']['id']}/releases")["items"]) == 2
    page.submit("svg.graph >> text=v2")
    page.tab.check("input[value=all]")
    page.submit("text=Change phase")
    page.submit("h1 >> text=stable")
    page.tab.fill("#rel-name", "v3")
    page.tab.select_option("#rel-bundle", label="rootfs 1.0.0")
    page.tab.check("input[name=required]")
    page.submit("text=Add release")
    texts = page.tab.locator("svg.graph a.node").all_text_contents()
    assert [t.split()[0] for t in texts] == ["v1", "v2", "v3"] and "★" in texts[2] and "required" in texts[2]
    v3 = next(r for r in api.ok("GET", f"{API}/channels/{s['channel']['id']}/releases")["items"] if r["name"] == "v3")
    assert v3["required"] is True and api.ok("GET", f"{API}/releases/{s['v2']['id']}")["next_release_id"] == v3["id"]


def test_an_admin_creates_and_deletes_api_keys(browser, site):
    api, _ = site
    page = Page(browser, api)
    page.sign_in(ADMIN)
    page.go("/ui/keys")
    page.tab.fill("#api-name", "ci")
    page.tab.select_option("#api-role", "publisher")
    page.submit("text=Create API key")
    token = page.tab.locator("#token").inner_text()
    assert token.startswith("fm_") and token not in page.tab.url
    assert api.as_(token).get(f"{API}/artifacts").status == 200
    # A role the form never offers is refused by the server as the API would.
    csrf = page.tab.locator("input[name=csrf]").first.get_attribute("value")
    r = page.context.request.post(
        page.base + "/ui/api-keys", form={"csrf": csrf, "action": "create", "name": "x", "role": "root"}
    )
    assert "invalid form" in r.text() and not api.ok("GET", f"{API}/api-keys?name=x")["items"]
    page.errors.clear()
    page.go("/ui/keys")
    page.tab.on("dialog", lambda d: d.accept())
    page.submit("text=Delete ci")
    assert api.as_(token).get(f"{API}/artifacts").status == 401
    assert "ci" not in [k["name"] for k in api.ok("GET", f"{API}/api-keys")["items"]]
    # A releaser is shown no API keys and may not create one.
    other = Page(browser, api)
    other.sign_in(make_key(api, "releaser"))
    other.go("/ui/keys")
    assert other.tab.locator("#api-keys").count() == 0
    csrf = other.tab.locator("input[name=csrf]").first.get_attribute("value")
    forged = other.context.request.post(
        other.base + "/ui/api-keys", form={"csrf": csrf, "action": "create", "name": "y", "role": "admin"}
    )
    assert forged.status == 403 and not api.ok("GET", f"{API}/api-keys?name=y")["items"]


def test_a_release_page_follows_its_rollout_live(browser, site):
    from playwright.sync_api import expect

    api, s = site
    api.ok("PATCH", f"{API}/releases/{s['v2']['id']}", {"phase": None})
    page = Page(browser, api)
    # Signed in from the keyboard alone: the key field has the focus, Enter sends the form.
    page.go("/ui/")
    page.tab.keyboard.type(ADMIN)
    with page.tab.expect_navigation():
        page.tab.keyboard.press("Enter")
    page.go(f"/ui/releases/{s['v2']['id']}")
    cells = page.tab.locator("#rollout tbody td")
    assert cells.nth(0).inner_text() == "0"  # offered
    created = api.ok("POST", f"{API}/devices", {"identifier": "gw-live", "target": TARGET, "cohort_id": s["cohort"]["id"]})
    device = api.as_(created["token"])
    assert device.ok("GET", "/device/v1/update")["release"]["id"] == s["v2"]["id"]
    expect(page.tab.locator("#rollout tbody td").nth(0)).to_have_text("1", timeout=15_000)  # no reload
    assert page.errors == []


def test_firefox_signs_in_steers_and_shows_every_page(site):
    """The same console in Debian's Firefox ESR (over WebDriver BiDi): sign in, walk the main
    pages, change a phase; no error in its console."""
    import asyncio

    from bidi import Firefox, firefox_path

    if firefox_path() is None:
        _missing("firefox (Debian package firefox-esr)")
    from apiclient import free_port

    api, s = site
    base = f"http://{api.host}:{api.port}"

    async def walk() -> None:
        async with Firefox(free_port()) as ff:
            await ff.go(base + "/ui/")
            assert "/ui/sign-in" in await ff.run("location.pathname")
            await ff.submit(f"document.getElementById('token').value = {ADMIN!r}; document.querySelector('form').submit()")
            assert await ff.run("location.pathname") == "/ui/"
            for path in ("/ui/devices", "/ui/cohorts", f"/ui/channels/{s['channel']['id']}", "/ui/artifacts", "/ui/keys",
                         "/ui/events", f"/ui/releases/{s['v2']['id']}"):  # fmt: skip
                await ff.go(base + path)
                assert await ff.run("document.querySelector('h1') !== null"), path
            assert await ff.run("document.querySelectorAll('svg.graph a.node').length") == 0  # the release page
            # The confirmation is a browser dialog: answered yes for this form.
            await ff.run("window.confirm = () => true")
            await ff.submit("document.getElementById('percent').value = '50'; "
                            "document.querySelector('form[data-confirm] button[type=submit]').click()")  # fmt: skip
            assert await ff.run("document.getElementById('phase').textContent") == "50% of devices"
            assert ff.errors == [], ff.errors

    asyncio.run(walk())
    assert api.ok("GET", f"{API}/releases/{s['v2']['id']}")["phase"] == {"mode": "percent", "value": 0.5}

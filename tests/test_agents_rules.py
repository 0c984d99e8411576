"""The agent protocols' pure rules (ferryman.agents): what a poll tells a device about its
action, DDI's documents and feedback, Mender's authentication requests and statuses, and a
Mender artifact's header."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import tarfile
import zlib
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from ferryman.agents import ddi, mender
from ferryman.agents.actions import Step, next_step, pulled
from ferryman.agents.menderfile import HEADER_PREFIX, MenderFileError, is_mender, parse_header, refused_target
from ferryman.catalog import ServedBinary
from ferryman.catalog import models as m
from ferryman.errors import Invalid, Unauthenticated
from ferryman.releases import Decision, Release

R1 = Release("rel_1", "bun_1", "2026-01-01T00:00:00Z")
R2 = Release("rel_2", "bun_2", "2026-01-02T00:00:00Z")
UPDATE_R2 = Decision("update", "next", "release", R2, "bun_2")
NO_UPDATE = Decision("no_update", "up_to_date")


def action(status: str, release_id: str | None = "rel_2", bundle_id: str = "bun_2", result: str | None = None) -> m.DeviceAction:
    return m.DeviceAction(id=7, device_id="dev_1", release_id=release_id, bundle_id=bundle_id, status=status,  # type: ignore[arg-type]
                          result=result, detail=None, created_at="t", updated_at="t")  # fmt: skip


def releases(*found: Release):
    by_id = {r.id: r for r in found}
    return by_id.get


# What a poll tells the device ----------------------------------------------------------------------


def test_an_update_with_no_action_opens_one_and_nothing_opens_nothing():
    assert next_step(None, UPDATE_R2, releases(R2)) == Step("start", "next")
    assert next_step(None, NO_UPDATE, releases(R2)) == Step("none", "up_to_date")
    no_bundle = Decision("update", "next", "release", R2, None)
    assert next_step(None, no_bundle, releases(R2)).kind == "none"


def test_an_open_action_is_served_until_closed_whatever_resolution_now_says():
    open_ = action("open")
    assert next_step(open_, NO_UPDATE, releases(R2)) == Step("deploy", "open", open_)
    newer = Decision("update", "next", "release", R1, "bun_1")
    assert next_step(open_, newer, releases(R1, R2)) == Step("deploy", "open", open_)


@pytest.mark.parametrize(
    "release",
    [None, Release("rel_2", "bun_2", "t", disabled=True), Release("rel_2", "bun_2", "t", halted=True)],
    ids=["gone", "disabled", "halted"],
)
def test_an_open_action_whose_release_was_pulled_is_canceled(release: Release | None):
    open_ = action("open")
    found = releases(release) if release else releases()
    assert next_step(open_, UPDATE_R2, found) == Step("cancel", "release_pulled", open_, mark=True)


def test_an_override_action_has_no_release_to_pull():
    open_ = action("open", release_id=None)
    assert next_step(open_, NO_UPDATE, releases()) == Step("deploy", "open", open_)


def test_a_canceling_action_is_canceled_again_without_marking():
    canceling = action("canceling")
    assert next_step(canceling, UPDATE_R2, releases(R2)) == Step("cancel", "canceled", canceling)


@pytest.mark.parametrize("result", ["success", "failure", None])
def test_a_release_the_device_finished_is_not_offered_again(result: str | None):
    done = action("closed", result=result)
    assert next_step(done, UPDATE_R2, releases(R2)) == Step("none", f"finished_{result or 'failure'}")


def test_a_finished_action_of_another_release_or_bundle_does_not_block_a_new_one():
    assert next_step(action("closed", release_id="rel_1", result="failure"), UPDATE_R2, releases(R2)).kind == "start"
    assert next_step(action("closed", bundle_id="bun_1", result="failure"), UPDATE_R2, releases(R2)).kind == "start"
    override = Decision("update", "override", "override", None, "bun_2")
    assert next_step(action("closed", result="success"), override, releases(R2)).kind == "start"


def test_an_operator_cancel_sticks_but_a_pulled_release_is_offered_again_when_it_returns():
    assert next_step(action("canceled", result="canceled"), UPDATE_R2, releases(R2)) == Step("none", "canceled_by_operator")
    assert next_step(action("canceled", result="pulled"), UPDATE_R2, releases(R2)).kind == "start"
    assert next_step(action("canceled", result=None), UPDATE_R2, releases(R2)).kind == "start"
    other = action("canceled", release_id="rel_1", result="canceled")
    assert next_step(other, UPDATE_R2, releases(R2)).kind == "start"


def test_a_newer_bundle_of_the_same_release_is_a_new_action():
    # Built at run time, so equal IDs are not the same string objects.
    same = action("closed", release_id="".join(["rel_", "2"]), bundle_id="".join(["bun_", "2"]), result="success")
    assert next_step(same, UPDATE_R2, releases(R2)) == Step("none", "finished_success")
    newer_done = action("closed", bundle_id="bun_3", result="success")  # IDs that sort after
    assert next_step(newer_done, UPDATE_R2, releases(R2)).kind == "start"


def test_a_decision_not_to_update_starts_nothing_even_with_its_bundle():
    current = Decision("no_update", "current", "release", R2, "bun_2")
    assert next_step(None, current, releases(R2)) == Step("none", "current")
    assert next_step(None, Decision("quarantined", "quarantined"), releases(R2)) == Step("none", "quarantined")


def test_a_step_is_a_value_and_marks_nothing_unless_told():
    step = next_step(action("open"), UPDATE_R2, releases(R2))
    assert step.mark is False
    with pytest.raises(AttributeError):
        step.kind = "none"  # type: ignore[misc]


def test_pulled():
    assert pulled(None) and not pulled(R1)
    assert pulled(Release("r", "b", "t", disabled=True)) and pulled(Release("r", "b", "t", halted=True))


# DDI ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "00:00:01"), (1, "00:00:01"), (59.9, "00:00:59"), (61, "00:01:01"), (3600, "01:00:00"), (86399, "23:59:59"),
     (86400, "23:59:59"), (10**9, "23:59:59"), (-5, "00:00:01"), (3725, "01:02:05"), (3660, "01:01:00"),
     (7260, "02:01:00"), (45296, "12:34:56"), (3599, "00:59:59")],
)  # fmt: skip
def test_the_polling_sleep_is_hh_mm_ss_within_a_day(seconds: float, text: str):
    assert ddi.sleep_text(seconds) == text


def feedback(execution: str, finished: str | None = None, details: list[object] | None = None, **extra: object) -> ddi.Feedback:
    status: dict[str, object] = {"execution": execution}
    if finished is not None:
        status["result"] = {"finished": finished}
    if details is not None:
        status["details"] = details
    return msgspec.convert({"status": status, **extra}, ddi.Feedback)


@pytest.mark.parametrize(
    ("execution", "finished", "outcome"),
    [
        ("closed", "success", ("installed", "success")),
        ("CLOSED", "SUCCESS", ("installed", "success")),
        ("closed", "failure", ("failed", "failure")),
        ("closed", "none", ("failed", "failure")),
        ("closed", None, ("failed", "failure")),
        ("closed", "unknown", ("failed", "failure")),  # only "success" succeeds
        ("proceeding", "none", ("installing", None)),
        ("downloaded", "none", ("installing", None)),
        ("download", None, ("downloading", None)),
        ("scheduled", None, (None, None)),
        ("resumed", "success", (None, None)),
        ("rejected", "failure", (None, None)),
        ("canceled", "success", (None, None)),
    ],
)
def test_feedback_outcomes(execution: str, finished: str | None, outcome: tuple[object, object]):
    assert ddi.feedback_outcome(feedback(execution, finished)) == outcome


@pytest.mark.parametrize("time", ["20261204T050000", "2026-12-04T05:00:00Z", 1764824400, None, "", "yesterday", [1]])
@pytest.mark.parametrize("id_", [12, "12", None])
def test_feedback_takes_any_time_and_id_it_never_trusts(time: object, id_: object):
    fb = feedback("closed", "success", time=time, id=id_)
    assert ddi.feedback_outcome(fb) == ("installed", "success")


def test_feedback_details_become_one_bounded_line():
    assert ddi.details_text(feedback("proceeding", details=["a", "", None, 3])) == "a; 3"
    assert ddi.details_text(feedback("proceeding")) is None
    assert len(ddi.details_text(feedback("proceeding", details=["x" * 5000])) or "") == 2000


def test_a_poll_links_what_is_due_absolutely():
    base = "https://u.example/DEFAULT/controller/v1/d1"
    doc = ddi.poll_doc(base, 90, ("deploymentBase", 12), True)
    assert doc == {
        "config": {"polling": {"sleep": "00:01:30"}},
        "_links": {
            "deploymentBase": {"href": f"{base}/deploymentBase/12?c=12"},
            "configData": {"href": f"{base}/configData"},
        },
    }
    assert ddi.poll_doc(base, 5, None, False) == {"config": {"polling": {"sleep": "00:00:05"}}}
    assert ddi.poll_doc(base, 5, ("cancelAction", 3), False)["_links"] == {"cancelAction": {"href": f"{base}/cancelAction/3"}}


def served(**kw: object) -> ServedBinary:
    fields: dict[str, object] = {"binary_id": "bin_1", "artifact": "fw", "version": "1.0.1", "target": "x86_64-linux-gnu",
                                 "size": 2560, "sha256": "a" * 64, "custom_metadata": {}, "signatures": [],
                                 "filename": "fw.swu", "sha1": "b" * 40, "md5": "c" * 32, **kw}  # fmt: skip
    return msgspec.convert(fields, ServedBinary)


def test_a_deployment_lists_each_binary_with_its_hashes_and_one_download_link():
    doc = ddi.deployment_doc(8, [served(), served(custom_metadata={"part": "bootloader"}, filename=None)],
                             ["http://h/dl/a", "https://h/dl/b"], forced=False)  # fmt: skip
    assert doc["id"] == "8" and doc["actionHistory"] == {"status": "RUNNING", "messages": []}
    assert doc["deployment"]["download"] == doc["deployment"]["update"] == "attempt"
    first, second = doc["deployment"]["chunks"]
    assert first == {
        "part": "os", "version": "1.0.1", "name": "fw",
        "artifacts": [{"filename": "fw.swu", "hashes": {"sha1": "b" * 40, "md5": "c" * 32, "sha256": "a" * 64},
                       "size": 2560, "_links": {"download-http": {"href": "http://h/dl/a"}}}],
    }  # fmt: skip
    assert second["part"] == "bootloader"
    assert second["artifacts"][0]["filename"] == "fw-1.0.1"
    assert second["artifacts"][0]["_links"] == {"download": {"href": "https://h/dl/b"}}
    forced = ddi.deployment_doc(8, [], [], forced=True, history="FINISHED")
    assert forced["deployment"]["update"] == "forced" and forced["actionHistory"]["status"] == "FINISHED"
    with pytest.raises(ValueError):
        ddi.deployment_doc(8, [served()], [], forced=False)
    assert ddi.cancel_doc(4) == {"id": "4", "cancelAction": {"stopId": "4"}}


# Mender ------------------------------------------------------------------------------------------


def _pem(key: object) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()  # type: ignore[attr-defined]


def auth_body(pem: str, identity: dict[str, str]) -> bytes:
    return (json.dumps({"id_data": json.dumps(identity, sort_keys=True), "tenant_token": "", "pubkey": pem}) + "\n").encode()


def test_an_rsa_signed_request_verifies_only_over_its_exact_bytes():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raw = auth_body(_pem(key), {"mac": "52:54:00:aa:bb:cc"})
    sig = base64.b64encode(key.sign(raw, padding.PKCS1v15(), hashes.SHA256())).decode()
    req = mender.verify_auth_request(raw, sig)
    assert json.loads(req.identity) == {"mac": "52:54:00:aa:bb:cc"}
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert req.keyid == hashlib.sha256(der).hexdigest()
    # The same document re-serialised (no trailing newline, other spacing) does not verify.
    for other in (raw.rstrip(b"\n"), json.dumps(json.loads(raw)).encode(), raw + b" "):
        with pytest.raises(Unauthenticated):
            mender.verify_auth_request(other, sig)


def test_an_ed25519_signed_request_verifies():
    key = ed25519.Ed25519PrivateKey.generate()
    raw = auth_body(_pem(key), {"serial": "x1"})
    assert mender.verify_auth_request(raw, base64.b64encode(key.sign(raw)).decode()).identity == '{"serial": "x1"}'
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(Unauthenticated):
        mender.verify_auth_request(raw, base64.b64encode(other.sign(raw)).decode())


@pytest.mark.parametrize(
    ("raw", "signature", "error"),
    [
        (b'{"id_data": "{}", "pubkey": "x"}', None, Unauthenticated),
        (b'{"id_data": "{}", "pubkey": "x"}', "", Unauthenticated),
        (b"not json", "AAAA", Invalid),
        (b'{"pubkey": "x"}', "AAAA", Invalid),
        (b'{"id_data": "{}", "pubkey": "not a key"}', "AAAA", Invalid),
    ],
)
def test_bad_requests_are_refused_before_anything_is_trusted(raw: bytes, signature: str | None, error: type[Exception]):
    with pytest.raises(error):
        mender.verify_auth_request(raw, signature)


def test_a_verified_request_is_a_value():
    key = ed25519.Ed25519PrivateKey.generate()
    raw = auth_body(_pem(key), {"serial": "x1"})
    req = mender.verify_auth_request(raw, base64.b64encode(key.sign(raw)).decode())
    with pytest.raises(AttributeError):
        req.keyid = "other"  # type: ignore[misc]


def test_a_signature_that_is_not_base64_is_refused():
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(Unauthenticated, match="base64"):
        mender.verify_auth_request(auth_body(_pem(key), {"a": "b"}), "***")


@pytest.mark.parametrize(
    ("identity", "identifier"),
    [
        ('{"mac": "52:54:00:12:34:56"}', "52:54:00:12:34:56"),
        ('{"serial": "b2", "mac": "aa"}', "aa_b2"),
        ('{"mac": "has space"}', "mender-" + hashlib.sha256(b'{"mac": "has space"}').hexdigest()[:24]),
        ("{}", "mender-" + hashlib.sha256(b"{}").hexdigest()[:24]),
        ("not json", "mender-" + hashlib.sha256(b"not json").hexdigest()[:24]),
        ('["a"]', "mender-" + hashlib.sha256(b'["a"]').hexdigest()[:24]),
        ('{"k": "' + "x" * 300 + '"}', "mender-" + hashlib.sha256(('{"k": "' + "x" * 300 + '"}').encode()).hexdigest()[:24]),
    ],
)
def test_identifiers_from_identity_data(identity: str, identifier: str):
    assert mender.identifier_of(identity) == identifier


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("downloading", ("downloading", None)), ("installing", ("installing", None)), ("rebooting", ("installing", None)),
     ("success", ("installed", "success")), ("already-installed", ("installed", "success")),
     ("failure", ("failed", "failure")), ("pause_before_installing", (None, None)), ("noartifact", (None, None))],
)  # fmt: skip
def test_deployment_statuses(status: str, outcome: tuple[object, object]):
    assert mender.status_outcome(status) == outcome


def test_only_statuses_under_way_can_be_aborted():
    assert {"downloading", "installing", "rebooting"} <= mender.ABORTABLE
    assert not {"success", "failure", "already-installed"} & mender.ABORTABLE


# Mender artifacts ------------------------------------------------------------------------------------


def _tar(members: list[tuple[str, bytes]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.USTAR_FORMAT) as t:  # type: ignore[call-overload]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def artifact(header_info: dict[str, object] | bytes, version: dict[str, object] | None = None, header: str = "header.tar.gz",
             payload: bytes = b"p" * 10000) -> bytes:  # fmt: skip
    info = header_info if isinstance(header_info, bytes) else json.dumps(header_info).encode()
    mode = {"header.tar.gz": "w:gz", "header.tar.xz": "w:xz", "header.tar": "w", "header.tar.zst": "w"}[header]
    inner = _tar([("header-info", info)], mode)
    ver = json.dumps(version or {"format": "mender", "version": 3}).encode()
    return _tar([("version", ver), ("manifest", b"x  data/0000.tar.gz\n"), (header, inner), ("data/0000.tar.gz", payload)])


V2 = {"format": "mender", "version": 2}
V3_VERSION = b'{"format": "mender", "version": 3}'
V3 = {"payloads": [{"type": "single-file"}], "artifact_provides": {"artifact_name": "rel-2", "rootfs-image.version": "2"},
      "artifact_depends": {"device_type": ["board-a", "board-b"]}}  # fmt: skip


@pytest.mark.parametrize("header", ["header.tar.gz", "header.tar.xz", "header.tar"])
def test_a_format_3_header_is_read(header: str):
    got = parse_header(artifact(V3, header=header), whole=True)
    assert got == m.MenderHeader(
        artifact_name="rel-2", device_types=["board-a", "board-b"], provides={"rootfs-image.version": "2"}
    )


def test_a_format_2_header_is_read():
    v2 = {"updates": [{"type": "rootfs-image"}], "artifact_name": "old", "device_types_compatible": ["qemu-x86"]}
    got = parse_header(artifact(v2, {"format": "mender", "version": 2}), whole=True)
    assert got == m.MenderHeader(artifact_name="old", device_types=["qemu-x86"])


def test_a_mender_artifact_is_known_by_its_first_tar_header():
    data = artifact(V3)
    assert is_mender(data) and is_mender(data[:512])
    assert not is_mender(data[:511]) and not is_mender(data[:300])  # less than a whole tar header
    header = bytearray(data[:512])
    header[257:262] = b"\0" * 5  # no ustar magic
    assert not is_mender(bytes(header))
    header[257:262] = b"zzzzz"
    assert not is_mender(bytes(header))
    for first in ("aaaa", "zzzz", "versions"):
        assert not is_mender(_tar([(first, b"{}")]))


def test_members_it_does_not_know_are_passed_over_until_the_payloads():
    ver = json.dumps({"format": "mender", "version": 3}).encode()
    inner = _tar([("header-info", json.dumps(V3).encode())], "w:gz")
    extra = _tar([("version", ver), ("zz-extra", b"not json"), ("header.tar.gz", inner)])
    assert parse_header(extra, whole=True) is not None
    late = _tar([("version", ver), ("data/0000.tar.gz", b"p"), ("header.tar.gz", inner)])
    with pytest.raises(MenderFileError, match=r"no header\.tar member"):
        parse_header(late, whole=True)  # a header after the payloads is not the artifact's header


def test_provides_are_kept_whatever_their_names_but_the_artifact_name():
    info = {**V3, "artifact_provides": {"artifact_name": "n", "abc.version": "1", "rootfs-image.version": "2", "n": 3}}
    got = parse_header(artifact(info), whole=True)
    assert got is not None and got.provides == {"abc.version": "1", "rootfs-image.version": "2"}


def _corrupt_gzip_checksum() -> bytes:
    # The header's tar (its first member only) gzipped, with a CRC-32 that does not match.
    tar = _tar([("header-info", json.dumps(V3).encode())])[:1024]
    z = zlib.compressobj(0, zlib.DEFLATED, 31)
    inner = bytearray(z.compress(tar) + z.flush())
    inner[-8] ^= 0xFF
    return _tar([("version", b'{"format": "mender", "version": 3}'), ("header.tar.gz", bytes(inner))])


def test_other_bytes_are_not_mender_artifacts():
    assert parse_header(b"\0" * 2048, whole=True) is None
    assert parse_header(_tar([("README", b"hi")]), whole=True) is None
    assert parse_header(artifact(V3, {"format": "other", "version": 3}), whole=True) is None
    assert not is_mender(b"version\0")  # too short to be a tar header


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (artifact(V3, {"format": "mender", "version": 9}), "version 9"),
        (artifact(V3, header="header.tar.zst"), "only gzip and xz"),
        (artifact(b"not json"), "not JSON"),
        (artifact(b"[1]"), "not a JSON object"),
        (artifact({**V3, "artifact_provides": {}}), "names no artifact"),
        (artifact({**V3, "artifact_depends": {"device_type": []}}), "no compatible device types"),
        (artifact({**V3, "artifact_depends": {"device_type": "board-a"}}), "no compatible device types"),
        (artifact({**V3, "artifact_depends": None}), "no compatible device types"),
        (_tar([("version", b'{"format": "mender", "version": 3}'), ("manifest", b"")]), "no header.tar member"),
        (_tar([("version", b'{"format": "mender", "version": 3}'), ("data/0000.tar.gz", b"")]), "no header.tar member"),
        (_tar([("version", b"{"), ("header.tar.gz", b"")]), "version is not JSON"),
        (_tar([("version", b'{"format": "mender", "version": 3}'), ("header.tar.gz", b"garbage")]), "unreadable"),
        (artifact({**V3, "artifact_provides": {"artifact_name": ""}}), "names no artifact"),
        (
            artifact({"artifact_name": 5, "device_types_compatible": ["a"]}, {"format": "mender", "version": 2}),
            "names no artifact",
        ),
        (artifact({**V3, "artifact_depends": {"device_type": ["a", 5]}}), "no compatible device types"),
        (_corrupt_gzip_checksum(), "header.tar.gz is unreadable"),
        (
            _tar(
                [
                    ("version", b'{"format": "mender", "version": 3}'),
                    ("header.tar.gz", _tar([("header-info", b"{}" * 5000)], "w:gz")[:60]),
                ]
            ),
            "header.tar.gz is unreadable",
        ),
        (
            _tar([("version", b'{"format": "mender", "version": 3}'), ("header.tar.gz", _tar([("other", b"{}")], "w:gz"))]),
            "header.tar.gz is unreadable",
        ),
        (_tar([("version", b'{"format": "abc", "version": 3}'), ("header.tar.gz", b"garbage")]), None),
    ],
)
def test_an_unreadable_header_says_why(data: bytes, says: str | None):
    if says is None:  # not a Mender artifact after all: its header is not read
        assert parse_header(data, whole=True) is None
        return
    with pytest.raises(MenderFileError, match=says):
        parse_header(data, whole=True)


def test_a_cut_artifact_is_refused_and_a_header_past_the_prefix_says_so():
    data = artifact(V3)
    for cut in (1500, 2048):
        with pytest.raises(MenderFileError, match=r"no header\.tar member"):
            parse_header(data[:cut], whole=True)
    with pytest.raises(MenderFileError, match="not a readable tar"):
        parse_header(data[:2600], whole=True)  # cut inside the header member
    for cut in (2048, 2600):
        with pytest.raises(MenderFileError, match=f"first {cut} bytes"):
            parse_header(data[:cut], whole=False)
    big = _tar([("version", b'{"format": "mender", "version": 3}'), ("manifest", b"m" * HEADER_PREFIX)])
    with pytest.raises(MenderFileError, match=f"first {HEADER_PREFIX} bytes"):
        parse_header(big[:HEADER_PREFIX], whole=False)


@pytest.mark.skipif(shutil.which("mender-artifact") is None, reason="mender-artifact is not installed (.ci/run installs it)")
def test_an_artifact_written_by_mender_artifact_is_read(tmp_path: Path):
    from mender_client import make_artifact

    path = make_artifact(tmp_path, "release-7", "ferry-board", b"x" * 5000, tmp_path / "dest")
    assert parse_header(path.read_bytes(), whole=True) == m.MenderHeader(artifact_name="release-7", device_types=["ferry-board"])


def test_a_mender_artifact_goes_only_to_a_target_it_names():
    assert refused_target("any", None) is None and refused_target("x86_64-linux", None) is None
    assert refused_target("board-a", ["board-a", "board-b"]) is None
    assert "board-c" in (refused_target("board-c", ["board-a"]) or "")
    assert "every target" in (refused_target("any", ["board-a"]) or "")
    assert refused_target("aarch64", ["aarch64"]) is None  # a target that sorts before "any"

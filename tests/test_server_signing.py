"""Signing keys and signatures over HTTP: openssl- and cryptography-made signatures, revocation,
certificates, thresholds, and every way a signature can be refused."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
from apiclient import ADMIN, Api, ThreadServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from test_server_binaries import problem, upload

from ferryman.config import Config

API = "/api/v1"
PEM, SPKI = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo


def signable(api: Api, data: bytes | None = None, version: str = "1.0.0") -> tuple[dict, bytes]:
    data = data if data is not None else os.urandom(70_000)
    b = upload(api, data, version=version)
    api.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    return api.wait_state(b["id"], {"signable"}), data


def register(api: Api, name: str, public_key: str, algorithm: str | None = None) -> dict:
    body = {"name": name, "public_key": public_key}
    if algorithm:
        body["algorithm"] = algorithm
    return api.ok("POST", f"{API}/signing-keys", body)


def sign(api: Api, binary_id: str, key_id: str, sig: bytes, encode=lambda s: base64.b64encode(s).decode()):
    return api.post(f"{API}/binaries/{binary_id}/signatures", {"signing_key_id": key_id, "signature": encode(sig)})


def test_openssl_ed25519_and_rsa_signatures(server: Api, tmp_path: Path):
    b, data = signable(server)
    (tmp_path / "fw.bin").write_bytes(data)
    (tmp_path / "digest.bin").write_bytes(bytes.fromhex(b["sha256"]))

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    openssl("genpkey", "-algorithm", "ed25519", "-out", "ed.pem")
    openssl("pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub")
    openssl("pkeyutl", "-sign", "-rawin", "-inkey", "ed.pem", "-in", "digest.bin", "-out", "ed.sig")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem")
    openssl("pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub")
    openssl("dgst", "-sha256", "-sign", "rsa.pem", "-out", "rsa.sig", "fw.bin")

    ed = register(server, "ed", (tmp_path / "ed.pub").read_text())
    assert ed["algorithm"] == "ed25519" and len(ed["keyid"]) == 64
    rk = register(server, "rsa", (tmp_path / "rsa.pub").read_text())
    assert rk["algorithm"] == "rsa-pkcs1v15-sha256" and rk["bits"] == 2048
    r = sign(server, b["id"], ed["id"], (tmp_path / "ed.sig").read_bytes())
    assert r.status == 201 and r.json["message"] == "digest"
    assert server.ok("GET", f"{API}/binaries/{b['id']}")["state"] == "signed"
    r = server.post(
        f"{API}/binaries/{b['id']}/signatures",
        {"keyid": rk["keyid"], "signature": (tmp_path / "rsa.sig").read_bytes().hex()},
    )
    assert r.status == 201, r
    sigs = server.ok("GET", f"{API}/binaries/{b['id']}/signatures")["items"]
    assert {s["keyid"] for s in sigs} == {ed["keyid"], rk["keyid"]}


def test_cryptography_signatures_all_algorithms(server: Api):
    b, data = signable(server)
    digest = bytes.fromhex(b["sha256"])
    ed = ed25519.Ed25519PrivateKey.generate()
    raw = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    k1 = register(server, "ed-raw", base64.b64encode(raw).decode())
    r = sign(server, b["id"], k1["id"], ed.sign(digest.hex().encode()), encode=lambda s: s.hex().upper())
    assert r.status == 201 and r.json["message"] == "hex"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    k2 = register(server, "pss", rsa_key.public_key().public_bytes(PEM, SPKI).decode(), "rsa-pss-sha256")
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH)
    assert sign(server, b["id"], k2["id"], rsa_key.sign(data, pss, hashes.SHA256())).status == 201


def test_bad_signatures_are_refused_and_not_stored(server: Api):
    b, _ = signable(server)
    digest = bytes.fromhex(b["sha256"])
    sk = ed25519.Ed25519PrivateKey.generate()
    k = register(server, "k", sk.public_key().public_bytes(PEM, SPKI).decode())
    sig = bytearray(sk.sign(digest))
    sig[3] ^= 1
    assert "signature" in problem(sign(server, b["id"], k["id"], bytes(sig)), 422)["errors"]
    problem(sign(server, b["id"], k["id"], b"short"), 422)
    problem(server.post(f"{API}/binaries/{b['id']}/signatures", {"signing_key_id": k["id"], "signature": "%%%"}), 422)
    other = ed25519.Ed25519PrivateKey.generate()
    problem(sign(server, b["id"], k["id"], other.sign(digest)), 422)
    unknown = problem(sign(server, b["id"], "key_" + "0" * 26, sk.sign(digest)), 422)
    assert "signing_key_id" in unknown["errors"]
    problem(server.post(f"{API}/binaries/{b['id']}/signatures", {"signature": "00"}), 422)
    assert server.ok("GET", f"{API}/binaries/{b['id']}/signatures")["items"] == []
    assert server.ok("GET", f"{API}/binaries/{b['id']}")["state"] == "signable"


def test_duplicate_signature_is_idempotent(server: Api):
    b, _ = signable(server)
    sk = ed25519.Ed25519PrivateKey.generate()
    k = register(server, "k", sk.public_key().public_bytes(PEM, SPKI).decode())
    sig = sk.sign(bytes.fromhex(b["sha256"]))
    first = sign(server, b["id"], k["id"], sig)
    again = sign(server, b["id"], k["id"], sig)
    assert (first.status, again.status) == (201, 200) and first.json["id"] == again.json["id"]
    signs = [e for e in server.ok("GET", f"{API}/events?resource_id={b['id']}")["items"] if e["action"] == "sign"]
    assert len(signs) == 1


def test_signatures_only_once_signable(server: Api):
    b = upload(server, b"not yet")
    sk = ed25519.Ed25519PrivateKey.generate()
    k = register(server, "k", sk.public_key().public_bytes(PEM, SPKI).decode())
    problem(sign(server, b["id"], k["id"], sk.sign(bytes.fromhex(b["sha256"]))), 409)


def test_revocation_stops_counting_and_falls_back(server: Api):
    b, _ = signable(server)
    sk = ed25519.Ed25519PrivateKey.generate()
    k = register(server, "k", sk.public_key().public_bytes(PEM, SPKI).decode())
    sign(server, b["id"], k["id"], sk.sign(bytes.fromhex(b["sha256"])))
    assert server.ok("GET", f"{API}/binaries/{b['id']}")["state"] == "signed"
    assert server.ok("PATCH", f"{API}/signing-keys/{k['id']}", {"state": "revoked"})["state"] == "revoked"
    assert server.ok("GET", f"{API}/binaries/{b['id']}")["state"] == "signable"
    problem(server.patch(f"{API}/signing-keys/{k['id']}", {"state": "active"}), 409)
    b2, _ = signable(server, b"another", version="2.0.0")
    problem(sign(server, b2["id"], k["id"], sk.sign(bytes.fromhex(b2["sha256"]))), 422)
    actions = [e["action"] for e in server.ok("GET", f"{API}/events?resource_id={k['id']}")["items"]]
    assert actions == ["create", "revoke"]


def test_threshold_of_two_distinct_keys(tmp_path: Path, catalog_url: str | None):
    srv = ThreadServer(Config(data_dir=tmp_path / "d", admin_token=ADMIN, signature_threshold=2, catalog=catalog_url))
    api = srv.start()
    try:
        b, _ = signable(api)
        digest = bytes.fromhex(b["sha256"])
        keys = [ed25519.Ed25519PrivateKey.generate() for _ in range(2)]
        ids = [register(api, f"k{i}", k.public_key().public_bytes(PEM, SPKI).decode())["id"] for i, k in enumerate(keys)]
        sign(api, b["id"], ids[0], keys[0].sign(digest))
        sign(api, b["id"], ids[0], keys[0].sign(digest))
        assert api.ok("GET", f"{API}/binaries/{b['id']}")["state"] == "signable"
        sign(api, b["id"], ids[1], keys[1].sign(digest))
        assert api.ok("GET", f"{API}/binaries/{b['id']}")["state"] == "signed"
    finally:
        srv.stop()


def _certificate(not_before: dt.datetime, not_after: dt.datetime) -> tuple[ed25519.Ed25519PrivateKey, str]:
    sk = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "release signer")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(sk.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
        .sign(sk, None)
    )  # fmt: skip
    return sk, cert.public_bytes(PEM).decode()


@pytest.mark.parametrize(("start_days", "end_days", "accepted"), [(-1, 30, True), (-30, -1, False), (1, 30, False)])
def test_certificate_validity_window(server: Api, start_days: int, end_days: int, accepted: bool):
    now = dt.datetime.now(dt.UTC)
    sk, pem = _certificate(now + dt.timedelta(days=start_days), now + dt.timedelta(days=end_days))
    k = register(server, "cert", pem)
    assert k["not_before"] and k["not_after"]
    b, _ = signable(server)
    r = sign(server, b["id"], k["id"], sk.sign(bytes.fromhex(b["sha256"])))
    assert r.status == (201 if accepted else 422), r


def test_key_registration_errors(server: Api):
    problem(server.post(f"{API}/signing-keys", {"name": "x", "public_key": "garbage"}), 422)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(PEM, SPKI).decode()
    assert "public_key" in problem(server.post(f"{API}/signing-keys", {"name": "x", "public_key": small}), 422)["errors"]
    ed = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(PEM, SPKI).decode()
    r = server.post(f"{API}/signing-keys", {"name": "x", "public_key": ed, "algorithm": "rsa-pss-sha256"})
    assert "algorithm" in problem(r, 422)["errors"]
    register(server, "x", ed)
    problem(server.post(f"{API}/signing-keys", {"name": "y", "public_key": ed}), 409)
    problem(server.post(f"{API}/signing-keys", {"name": "x", "public_key": "AAAA"}), 422)
    private = ed25519.Ed25519PrivateKey.generate().private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    problem(server.post(f"{API}/signing-keys", {"name": "z", "public_key": private.decode()}), 422)

"""Production signing: keys generated in and used from a PKCS#11 token (SoftHSM2, from Debian, as
the HSM), signing programs (``exec:``), and a key rotation walked with devices polling
throughout. The CLI as a release engineer runs it, against a live server; signatures are checked
by the server, by openssl with the exported public keys, and by the devices."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apiclient import ADMIN, Api, ProcessServer, free_port
from cryptography.hazmat.primitives import serialization

from conftest import _missing
from ferryman.client.signers import open_signer
from ferryman.signing import load_public_key

API = "/api/v1"
PIN = "46813579"
TOKEN = "ferryman-ci"
TARGET = "x86_64-linux-gnu"
MODULES = [Path("/usr/lib/softhsm/libsofthsm2.so"), Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")]


def uri(label: str) -> str:
    return f"pkcs11:token={TOKEN};object={label}"


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory):
    """A fresh SoftHSM2 token, one for the module (a process initialises a PKCS#11 library once,
    with the configuration it finds then), and the environment the CLI needs to reach it. Each
    test names its keys apart."""
    module = next((m for m in MODULES if m.exists()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        _missing("SoftHSM2 (Debian package softhsm2)")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(conf), "FERRYMAN_PKCS11_MODULE": str(module), "FERRYMAN_PKCS11_PIN": PIN}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", "97531"],
                       check=True, capture_output=True)  # fmt: skip
        yield env


@pytest.fixture
def live(tmp_path: Path, request):
    threshold = getattr(request, "param", 1)
    srv = ProcessServer(tmp_path / "data", None, "--signature-threshold", str(threshold))
    api = srv.start()
    yield api
    srv.stop()


def cli(api: Api | None, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "FERRYMAN_TOKEN": ADMIN, **(env or {})}
    full["FERRYMAN_URL"] = f"http://127.0.0.1:{api.port if api else free_port()}"
    r = subprocess.run([sys.executable, "-m", "ferryman", *args], env=full, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)  # fmt: skip
    if check:
        assert r.returncode == 0, r.stderr
    return r


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def generate(api: Api | None, label: str, algorithm: str, keys: Path) -> str:
    """A key pair made in the token; returns its keyid (its public key is written to keys/)."""
    r = cli(api, "keys", "generate", "--pkcs11", uri(label), "--algorithm", algorithm, "--out", str(keys), "--name", label,
            "--json")  # fmt: skip
    return json.loads(r.stdout)["keyid"]


def register(api: Api, name: str, public: Path, algorithm: str | None = None) -> dict:
    extra = ["--algorithm", algorithm] if algorithm else []
    return json.loads(cli(api, "signing-keys", "create", "--name", name, "--public-key", str(public), *extra, "--json").stdout)


def upload(api: Api, tmp_path: Path, version: str, *sign: str) -> tuple[str, Path]:
    src = tmp_path / f"fw-{version}.bin"
    src.write_bytes(os.urandom(50_000) + version.encode())
    r = cli(api, "upload", str(src), "--artifact", "fw", "--version", version, "--target", TARGET, "--create", *sign, "--json")
    return json.loads(r.stdout)["id"], src


def signatures(api: Api, binary_id: str) -> dict[str, dict]:
    """The binary's signatures by keyid."""
    return {s["keyid"]: s for s in api.ok("GET", f"{API}/binaries/{binary_id}/signatures")["items"]}


def openssl_verifies(public: Path, src: Path, signature_hex: str, algorithm: str, tmp_path: Path) -> bool:
    sig = tmp_path / "sig.bin"
    sig.write_bytes(bytes.fromhex(signature_hex))
    if algorithm == "ed25519":
        digest = tmp_path / "digest.bin"
        digest.write_bytes(hashlib.sha256(src.read_bytes()).digest())
        argv = [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(public),
            "-rawin",
            "-in",
            str(digest),
            "-sigfile",
            str(sig),
        ]
    else:
        pss = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"] if algorithm == "rsa-pss-sha256" else []
        argv = ["openssl", "dgst", "-sha256", "-verify", str(public), *pss, "-signature", str(sig), str(src)]
    return subprocess.run(argv, capture_output=True).returncode == 0


def test_keys_made_in_a_token_sign_binaries_that_the_server_and_openssl_verify(token, live: Api, tmp_path: Path):
    keys = tmp_path / "keys"
    kinds = {"t1-ed": ("ed25519", None), "t1-rsa": ("rsa-2048", None), "t1-pss": ("rsa-2048", "rsa-pss-sha256")}
    keyids = {label: generate(live, label, algorithm, keys) for label, (algorithm, _) in kinds.items()}
    for label, (_, algorithm) in kinds.items():
        assert register(live, label, keys / f"{label}.pub", algorithm)["keyid"] == keyids[label]
        assert load_public_key((keys / f"{label}.pub").read_text()).keyid == keyids[label]
    assert not list(keys.glob("*.pem"))  # the private halves stay in the token
    # One binary signed as it is uploaded; two more signed in one batch (one session).
    first, first_src = upload(live, tmp_path, "1.0.0", "--sign", uri("t1-ed"))
    assert live.ok("GET", f"{API}/binaries/{first}")["state"] == "signed"
    second, second_src = upload(live, tmp_path, "1.0.1")
    third, third_src = upload(live, tmp_path, "1.0.2")
    r = cli(live, "sign", second, third, "--key", uri("t1-ed"))
    assert len(r.stdout.strip().splitlines()) == 2 and r.stdout.count("signed") == 2
    cli(live, "sign", second, "--key", uri("t1-rsa"))
    cli(live, "sign", third, "--key", uri("t1-pss"), "--algorithm", "rsa-pss-sha256")
    for binary_id, src, labels in (
        (first, first_src, ["t1-ed"]),
        (second, second_src, ["t1-ed", "t1-rsa"]),
        (third, third_src, ["t1-ed", "t1-pss"]),
    ):
        found = signatures(live, binary_id)
        assert set(found) == {keyids[label] for label in labels}
        for label in labels:
            s = found[keyids[label]]
            assert openssl_verifies(keys / f"{label}.pub", src, s["signature"], s["algorithm"], tmp_path), (label, s)
        assert live.ok("GET", f"{API}/binaries/{binary_id}")["state"] == "signed"


def test_a_token_error_is_one_clear_line(token, tmp_path: Path):
    import pkcs11
    from pkcs11 import KeyType

    keys = tmp_path / "keys"
    generate(None, "t2-ed", "ed25519", keys)
    with pkcs11.lib(token["FERRYMAN_PKCS11_MODULE"]).get_token(token_label=TOKEN).open(user_pin=PIN, rw=True) as s:
        s.generate_key(KeyType.AES, 256, label="t2-aes", store=True)
        from pkcs11.util.ec import encode_named_curve_parameters

        params = s.create_domain_parameters(KeyType.EC, {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                                            local=True)  # fmt: skip
        params.generate_keypair(store=True, label="t2-p256")
    cases = [
        ({"FERRYMAN_PKCS11_PIN": "11111111"}, uri("t2-ed"), f"wrong PIN for PKCS#11 token {TOKEN}"),
        ({}, uri("t2-missing"), f"PKCS#11 token token={TOKEN} has no private key object=t2-missing"),
        ({}, uri("t2-aes"), f"PKCS#11 token token={TOKEN} has no private key object=t2-aes"),
        ({}, uri("t2-p256"), "PKCS#11 key object=t2-p256 has key type EC; Ferryman signs with Ed25519 or RSA keys"),
        ({}, "pkcs11:token=nowhere;object=t2-ed", "no PKCS#11 token token=nowhere"),
        ({"FERRYMAN_PKCS11_MODULE": ""}, uri("t2-ed"), "name the PKCS#11 module: --pkcs11-module, FERRYMAN_PKCS11_MODULE or"),
        ({"FERRYMAN_PKCS11_PIN": ""}, uri("t2-ed"), "the PKCS#11 token needs a PIN: set FERRYMAN_PKCS11_PIN"),
        ({}, f"pkcs11:token={TOKEN}", "PKCS#11 URI: name the key with object=LABEL or id="),
        ({}, str(tmp_path / "nothing.pem"), "no such key file"),
    ]
    for env, key, says in cases:
        # The key is opened before the server is asked anything (there is none here).
        line = one_line_error(cli(None, "sign", "bin_" + "0" * 26, "--key", key, env=env, check=False))
        assert says in line, (key, line)
    line = one_line_error(cli(None, "keys", "generate", "--pkcs11", uri("t2-ed"), check=False))
    assert "already has a key object=t2-ed" in line


def test_a_signing_program_signs_through_exec(token, live: Api, tmp_path: Path):
    keys = tmp_path / "keys"
    cli(None, "keys", "generate", "--out", str(keys), "--name", "ed")
    cli(None, "keys", "generate", "--out", str(keys), "--name", "rsa", "--algorithm", "rsa-2048")
    register(live, "ed", keys / "ed.pub")
    register(live, "rsa", keys / "rsa.pub")
    ed_pem, rsa_pem = keys / "ed.pem", keys / "rsa.pem"
    programs = {
        # OpenSSL 3.0's pkeyutl -rawin cannot read a pipe: the digest goes through a file.
        "ed": f"exec:sh -c 'f=$(mktemp); cat >$f; openssl pkeyutl -sign -rawin -inkey {ed_pem} -in $f; rm $f'",
        # Text on stdout works too: hex here.
        "rsa": f"exec:sh -c 'openssl pkeyutl -sign -inkey {rsa_pem} -pkeyopt digest:sha256 | od -An -v -tx1 | tr -d \" \\n\"'",
    }
    binary_id, src = upload(live, tmp_path, "2.0.0")
    for label, program in programs.items():
        cli(live, "sign", binary_id, "--key", program, "--public-key", str(keys / f"{label}.pub"))
    found = signatures(live, binary_id)
    assert len(found) == 2
    for label in programs:
        s = found[load_public_key((keys / f"{label}.pub").read_text()).keyid]
        assert openssl_verifies(keys / f"{label}.pub", src, s["signature"], s["algorithm"], tmp_path)
    pub = ["--public-key", str(keys / "ed.pub")]
    for args, says in [
        (["--key", "exec:sh -c 'echo no key here >&2; exit 3'", *pub], "signing program sh failed (exit 3): no key here"),
        (["--key", "exec:sh -c 'head -c 64 /dev/urandom'", *pub], "made a signature that does not verify with key"),
        (["--key", "exec:no-such-program-here", *pub], "signing program no-such-program-here: not found"),
        (["--key", programs["ed"]], "an exec: signer needs --public-key FILE"),
        (["--key", programs["ed"], "--public-key", str(keys / "rsa.pub")], "does not verify"),
    ]:
        assert says in one_line_error(cli(live, "sign", binary_id, *args, check=False))
    assert len(signatures(live, binary_id)) == 2  # nothing was added by the failures


class Devices:
    """Devices polling their update in a thread the whole time; each checks every manifest
    against the keys it trusts now, as a device's verifier would."""

    def __init__(self, api: Api, cohort_id: str, threshold: int) -> None:
        self.api, self.threshold = api, threshold
        self.trust: dict[str, set[str]] = {}
        self.clients: dict[str, Api] = {}
        self.cohort_id = cohort_id
        self.lock = threading.Lock()
        self.failures: list[str] = []
        self.polls = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def add(self, name: str, trusted: set[str]) -> None:
        d = self.api.ok("POST", f"{API}/devices", {"identifier": name, "target": TARGET, "cohort_id": self.cohort_id})
        with self.lock:
            self.clients[name], self.trust[name] = self.api.as_(d["token"]), set(trusted)

    def trusting(self, name: str, trusted: set[str]) -> None:
        with self.lock:
            self.trust[name] = set(trusted)

    def _poll(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                for name, client in self.clients.items():
                    manifest = client.ok("GET", "/device/v1/update")
                    self.polls += 1
                    for b in manifest.get("binaries", []):
                        ok = {s["keyid"] for s in b["signatures"] if s["keyid"] in self.trust[name] and _verifies(b, s)}
                        if len(ok) < min(self.threshold, len(self.trust[name])):
                            self.failures.append(f"{name} (trusting {sorted(self.trust[name])}) cannot verify {b['sha256']}")

    def __enter__(self) -> Devices:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def certificate(public: Path, out: Path) -> Path:
    """An X.509 certificate for the public key in ``public``, valid for a year, from a test CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    ca = ed25519.Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "firmware signing 2027")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(serialization.load_pem_public_key(public.read_bytes()))  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=366)).sign(ca, None)
    )  # fmt: skip
    out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out


def _verifies(b: dict, s: dict) -> bool:
    key = load_public_key(s["public_key"])
    try:
        key.verify_binary(bytes.fromhex(b["sha256"]), key.decode_signature(s["signature"]), s["algorithm"])
    except Exception:
        return False
    return key.keyid == s["keyid"]


def _release(api: Api, channel_id: str, name: str, binary_id: str) -> dict:
    """A release of a bundle of one binary; returns the bundle."""
    bundle = api.ok("POST", f"{API}/bundles", {"name": name, "binaries": [binary_id]})
    api.ok("POST", f"{API}/channels/{channel_id}/releases", {"name": name, "bundle_id": bundle["id"]})
    return bundle


@pytest.mark.parametrize("live", [1, 2], indirect=True, ids=["threshold-1", "threshold-2"])
def test_a_key_rotation_keeps_every_device_updating(token, live: Api, tmp_path: Path, request):
    threshold = request.node.callspec.params["live"]
    old_label, new_label = f"fw-2026-t{threshold}", f"fw-2027-t{threshold}"
    keys = tmp_path / "keys"
    old = generate(live, old_label, "ed25519", keys)
    old_key = register(live, "fw-2026", keys / f"{old_label}.pub")
    signing = ["--sign", uri(old_label)]
    if threshold == 2:  # a second, steady key (a file) signs everything too
        cli(live, "keys", "generate", "--out", str(keys), "--name", "steady")
        steady = register(live, "steady", keys / "steady.pub")["keyid"]
    v1, _ = upload(live, tmp_path, "1.0.0", *signing)
    if threshold == 2:
        cli(live, "sign", v1, "--key", str(keys / "steady.pem"))
    assert live.ok("GET", f"{API}/binaries/{v1}")["state"] == "signed"
    channel = live.ok("POST", f"{API}/channels", {"name": "stable"})
    bundle_v1 = _release(live, channel["id"], "v1", v1)
    with open_signer(uri(old_label)) as signer:  # the bundle hash is signed too (from the token)
        signature = signer.sign(bytes.fromhex(bundle_v1["hash"])).hex()
    live.ok("POST", f"{API}/bundles/{bundle_v1['id']}/signatures", {"keyid": old, "signature": signature})
    cohort = live.ok("POST", f"{API}/cohorts", {"name": "field", "channel_id": channel["id"]})
    trusted_before = {old} | ({steady} if threshold == 2 else set())

    # Retiring the only key that signs v1 is refused: v1 would fall back to signable.
    if threshold == 1:
        assert "would fall back to signable" in one_line_error(cli(live, "signing-keys", "retire", old_key["id"], check=False))

    with Devices(live, cohort["id"], threshold) as devices:
        for name in ("a", "b"):
            devices.add(name, trusted_before)
        # Step 1: the new key, made in the token, signs everything the old one signed.
        new = generate(live, new_label, "ed25519", keys)
        rotate = ["signing-keys", "rotate", old_key["id"], "--key", uri(new_label), "--name", "fw-2027"]
        wrong = certificate(keys / f"{old_label}.pub", tmp_path / "wrong.crt")
        line = one_line_error(cli(live, *rotate, "--certificate", str(wrong), check=False))
        assert line == f"ferryman: error: the certificate is for key {old}, not the signer's {new}"
        cert = certificate(keys / f"{new_label}.pub", tmp_path / "new.crt")
        done = json.loads(cli(live, *rotate, "--certificate", str(cert), "--json").stdout)
        assert done["key"]["not_before"] and done["key"]["not_after"]  # the certificate's validity window
        assert (done["registered"], done["binaries_signed"], done["key"]["keyid"]) == (True, [v1], new)
        assert done["bundles_signed"] == [bundle_v1["id"]]
        bundle_keys = {s["keyid"] for s in live.ok("GET", f"{API}/bundles/{bundle_v1['id']}")["signatures"]}
        assert bundle_keys == {old, new}
        again = json.loads(cli(live, "signing-keys", "rotate", old_key["id"], "--key", uri(new_label), "--json").stdout)
        assert (again["registered"], again["binaries_signed"], again["binaries_already"]) == (False, [], [v1])
        manifest = devices.clients["a"].ok("GET", "/device/v1/update")
        assert {s["keyid"] for s in manifest["binaries"][0]["signatures"]} == trusted_before | {new}
        # A release made meanwhile is signed with both keys.
        v2, _ = upload(live, tmp_path, "2.0.0", *signing)
        cli(live, "sign", v2, "--key", uri(new_label))
        if threshold == 2:
            cli(live, "sign", v2, "--key", str(keys / "steady.pem"))
        _release(live, channel["id"], "v2", v2)
        # Step 2: devices learn to trust the new key; a device built now trusts only it.
        devices.trusting("a", trusted_before | {new})
        devices.trusting("b", trusted_before | {new})
        devices.add("c", {new} | ({steady} if threshold == 2 else set()))
        # Step 3: the old key is retired; v1 and v2 stay signed by the keys that remain.
        r = cli(live, "signing-keys", "retire", old_key["id"])
        assert r.stdout.strip() == f"{old_key['id']} revoked"
        for b in (v1, v2):
            assert live.ok("GET", f"{API}/binaries/{b}")["state"] == "signed"
        manifest = devices.clients["c"].ok("GET", "/device/v1/update")
        assert {s["keyid"] for s in manifest["binaries"][0]["signatures"]} == {new} | ({steady} if threshold == 2 else set())
        polls_before = devices.polls
        while devices.polls < polls_before + 6:  # every device polls again after the retirement
            threading.Event().wait(0.05)
    assert devices.failures == [] and devices.polls > 20

    # New uploads: the old key's signatures are refused; the new key's accepted.
    v3, _ = upload(live, tmp_path, "3.0.0")
    assert "revoked" in one_line_error(cli(live, "sign", v3, "--key", uri(old_label), check=False))
    cli(live, "sign", v3, "--key", uri(new_label))
    assert set(signatures(live, v3)) == {new}

"""Where a release engineer's signatures are made, on the client side (the server never holds a
private key): a PEM file, a key in a PKCS#11 token (an HSM, a smart card, a cloud KMS's PKCS#11
library; RFC 7512 URIs), or an external program (``exec:``) for signing services Ferryman does not
know. Each signs a binary's SHA-256 digest, computed natively beforehand, as DESIGN.md says
(Ed25519 over the raw 32-byte digest; RSA PKCS#1 v1.5 or PSS over the content, from its digest),
so nothing reads the file a second time.

    with open_signer("pkcs11:token=ci;object=release-2027", module="/usr/lib/softhsm/libsofthsm2.so") as s:
        for digest in digests:
            s.sign(digest)          # one session, one login, for the whole batch

Every signature is checked against the signer's public key before it is returned, so a broken
token or program is named here rather than by the server's 422.
"""

from __future__ import annotations

import base64
import getpass
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from ferryman.errors import FerrymanError
from ferryman.signing import PublicKey, load_private_key, load_public_key, sign_digest

__all__ = ["MODULE_ENV", "PIN_ENV", "Pkcs11Uri", "Signer", "generate_pkcs11_key", "open_signer", "parse_pkcs11_uri"]

PIN_ENV = "FERRYMAN_PKCS11_PIN"
MODULE_ENV = "FERRYMAN_PKCS11_MODULE"
# The DER DigestInfo prefix of a SHA-256 digest (RFC 8017, section 9.2, note 1): CKM_RSA_PKCS
# pads what it is given, so PKCS#1 v1.5 over a digest needs it in front.
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
# How long an external signing program may take for one digest (a remote KMS included).
EXEC_TIMEOUT = 60.0


class Signer:
    """Signs digests with one key. ``keyid`` and ``public_pem`` name the key as the server knows
    it; ``algorithm`` is one of ferryman.signing.ALGORITHMS."""

    keyid: str
    algorithm: str
    public_key: PublicKey

    @property
    def public_pem(self) -> str:
        return self.public_key.spki_pem

    def sign(self, digest: bytes) -> bytes:
        """A signature over a binary whose SHA-256 is ``digest`` (32 bytes), checked."""
        if len(digest) != 32:
            raise FerrymanError("a SHA-256 digest has 32 bytes")
        signature = self._sign(digest)
        try:
            self.public_key.verify_binary(digest, signature, self.algorithm)
        except Exception:
            raise FerrymanError(f"{self.describe()} made a signature that does not verify with key {self.keyid}") from None
        return signature

    def _sign(self, digest: bytes) -> bytes:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Ends the signer's session, if it has one."""

    def __enter__(self) -> Signer:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def _algorithm_for(kind: str, wanted: str | None) -> str:
    if kind == "ed25519":
        if wanted not in (None, "ed25519"):
            raise FerrymanError(f"an Ed25519 key signs with ed25519, not {wanted}")
        return "ed25519"
    if wanted not in (None, "rsa-pkcs1v15-sha256", "rsa-pss-sha256"):
        raise FerrymanError(f"an RSA key signs with rsa-pkcs1v15-sha256 or rsa-pss-sha256, not {wanted}")
    return wanted or "rsa-pkcs1v15-sha256"


# A PEM file ---------------------------------------------------------------------------------------


class PemSigner(Signer):
    def __init__(self, path: str | Path, algorithm: str | None) -> None:
        from cryptography.hazmat.primitives import serialization

        self.path = Path(path)
        if not self.path.is_file():
            raise FerrymanError(f"{path}: no such key file")
        self.key = load_private_key(self.path)
        der = self.key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key = load_public_key(der)
        self.keyid = self.public_key.keyid
        self.algorithm = _algorithm_for(self.public_key.kind, algorithm)

    def _sign(self, digest: bytes) -> bytes:
        return sign_digest(self.key, digest, self.algorithm)

    def describe(self) -> str:
        return f"key file {self.path}"


# PKCS#11 ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of an RFC 7512 ``pkcs11:`` URI Ferryman uses: path attributes (``token``,
    ``object``, ``id``, ``serial``, ``slot-id``…) and query attributes (``pin-value``,
    ``pin-source``, ``module-path``), percent-decoded; ``id`` stays bytes."""

    path: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    id: bytes | None = None


def parse_pkcs11_uri(uri: str) -> Pkcs11Uri:
    """Parses a PKCS#11 URI (RFC 7512). Written here: the Python PKCS#11 libraries take token
    labels and key labels, not URIs, and the grammar is a few lines."""
    if not uri.startswith("pkcs11:"):
        raise FerrymanError(f"not a PKCS#11 URI (pkcs11:…): {uri}")
    body, _, query_text = uri[len("pkcs11:") :].partition("?")
    path: dict[str, str] = {}
    raw_id = None
    for part in filter(None, body.split(";")):
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise FerrymanError(f"PKCS#11 URI: {part!r} is not attribute=value")
        if name in path or (name == "id" and raw_id is not None):
            raise FerrymanError(f"PKCS#11 URI: {name} is given twice")
        if name == "id":
            raw_id = unquote(value, encoding="latin-1").encode("latin-1")
        else:
            path[name] = unquote(value)
    query: dict[str, str] = {}
    for part in filter(None, query_text.split("&")):
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise FerrymanError(f"PKCS#11 URI: {part!r} is not attribute=value")
        query[name] = unquote(value)
    if "type" in path and path["type"] not in ("private", "public"):
        raise FerrymanError(f"PKCS#11 URI: type={path['type']} names no key pair (private or public)")
    if "object" not in path and raw_id is None:
        raise FerrymanError("PKCS#11 URI: name the key with object=LABEL or id=%XX…")
    return Pkcs11Uri(path, query, raw_id)


def _module(uri: Pkcs11Uri, module: str | None) -> str:
    chosen = module or uri.query.get("module-path") or os.environ.get(MODULE_ENV)
    if not chosen:
        raise FerrymanError(f"name the PKCS#11 module: --pkcs11-module, {MODULE_ENV} or module-path= in the URI")
    if not Path(chosen).is_file():
        raise FerrymanError(f"PKCS#11 module {chosen}: no such file")
    return chosen


def _pin(uri: Pkcs11Uri, pin: str | None) -> str:
    """The user PIN: given, then the environment, the URI (pin-value, or pin-source=file:…), a
    prompt on a terminal."""
    if pin is not None:
        return pin
    if os.environ.get(PIN_ENV):
        return os.environ[PIN_ENV]
    if "pin-value" in uri.query:
        return uri.query["pin-value"]
    source = uri.query.get("pin-source")
    if source:
        path = source.removeprefix("file:")
        try:
            return Path(path).read_text().rstrip("\r\n")
        except OSError as e:
            raise FerrymanError(f"PKCS#11 pin-source {path}: {e.strerror}") from None
    if sys.stdin.isatty():
        return getpass.getpass(f"PIN for PKCS#11 token {uri.path.get('token', '')}: ")
    raise FerrymanError(f"the PKCS#11 token needs a PIN: set {PIN_ENV} (or run where it can be asked for)")


def _open_session(uri: Pkcs11Uri, module: str | None, pin: str | None, write: bool = False) -> Any:
    import pkcs11
    from pkcs11 import exceptions as e

    try:
        lib = pkcs11.lib(_module(uri, module))
    except RuntimeError as err:  # python-pkcs11 says RuntimeError for a library it cannot load
        raise FerrymanError(f"cannot load the PKCS#11 module: {err}") from None
    criteria = {k: v for k, v in (("token_label", uri.path.get("token")), ("token_serial", uri.path.get("serial"))) if v}
    try:
        if "slot-id" in uri.path:
            slots = [s for s in lib.get_slots(token_present=True) if str(s.slot_id) == uri.path["slot-id"]]
            if not slots:
                raise FerrymanError(f"no PKCS#11 token in slot {uri.path['slot-id']}")
            token = slots[0].get_token()
        else:
            token = lib.get_token(**{k: (v.encode() if k == "token_serial" else v) for k, v in criteria.items()})
    except e.NoSuchToken:
        raise FerrymanError(f"no PKCS#11 token {_token_words(uri)}") from None
    except e.MultipleTokensReturned:
        raise FerrymanError("several PKCS#11 tokens match; name one with token= or serial=") from None
    try:
        return token.open(user_pin=_pin(uri, pin), rw=write)
    except (e.PinIncorrect, e.PinLenRange, e.PinInvalid):
        raise FerrymanError(f"wrong PIN for PKCS#11 token {token.label}") from None
    except e.PinLocked:
        raise FerrymanError(f"the PIN of PKCS#11 token {token.label} is locked") from None
    except e.PKCS11Error as err:
        raise FerrymanError(f"PKCS#11 token {token.label}: cannot log in ({type(err).__name__})") from None


def _token_words(uri: Pkcs11Uri) -> str:
    return " ".join(f"{k}={uri.path[k]}" for k in ("token", "serial", "slot-id") if k in uri.path) or "(any)"


def _key_words(uri: Pkcs11Uri) -> str:
    words = [f"object={uri.path['object']}"] if "object" in uri.path else []
    if uri.id is not None:
        words.append(f"id=%{uri.id.hex()}")
    return " ".join(words)


def _find(session: Any, object_class: Any, uri: Pkcs11Uri) -> list[Any]:
    from pkcs11 import Attribute

    attrs: dict[Any, Any] = {Attribute.CLASS: object_class}
    if "object" in uri.path:
        attrs[Attribute.LABEL] = uri.path["object"]
    if uri.id is not None:
        attrs[Attribute.ID] = uri.id
    return list(session.get_objects(attrs))


def _public_of(session: Any, private: Any, uri: Pkcs11Uri) -> PublicKey:
    """The public half of a key pair in the token: an RSA private key carries its modulus and
    exponent; an Ed25519 one needs its public key object (same label or ID)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from pkcs11 import Attribute, KeyType, ObjectClass

    key_type = private[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(private[Attribute.PUBLIC_EXPONENT], "big"), int.from_bytes(private[Attribute.MODULUS], "big")
        )
        der = numbers.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return load_public_key(der)
    if key_type == KeyType.EC_EDWARDS:
        publics = _find(session, ObjectClass.PUBLIC_KEY, uri)
        if len(publics) != 1:
            raise FerrymanError(f"PKCS#11: no single public key object {_key_words(uri)} beside the private key")
        point = bytes(publics[0][Attribute.EC_POINT])
        # PKCS#11 3.0 stores the point DER-wrapped (an OCTET STRING); some tokens store it bare.
        raw = point[2:] if len(point) == 34 and point[:2] == b"\x04\x20" else point
        if len(raw) != 32:
            raise FerrymanError(f"PKCS#11 key {_key_words(uri)} is an Edwards key but not Ed25519")
        return load_public_key(raw)
    name = getattr(key_type, "name", str(key_type))
    raise FerrymanError(f"PKCS#11 key {_key_words(uri)} has key type {name}; Ferryman signs with Ed25519 or RSA keys")


class Pkcs11Signer(Signer):
    def __init__(self, uri: str, module: str | None, pin: str | None, algorithm: str | None) -> None:
        from pkcs11 import ObjectClass

        self.uri = parse_pkcs11_uri(uri)
        self.session = _open_session(self.uri, module, pin)
        try:
            privates = _find(self.session, ObjectClass.PRIVATE_KEY, self.uri)
            if not privates:
                raise FerrymanError(f"PKCS#11 token {_token_words(self.uri)} has no private key {_key_words(self.uri)}")
            if len(privates) > 1:
                raise FerrymanError(f"PKCS#11: several private keys match {_key_words(self.uri)}; add id=")
            self.key = privates[0]
            self.public_key = _public_of(self.session, self.key, self.uri)
            self.keyid = self.public_key.keyid
            self.algorithm = _algorithm_for(self.public_key.kind, algorithm)
        except BaseException:
            self.session.close()
            raise

    def _sign(self, digest: bytes) -> bytes:
        from pkcs11 import MGF, Mechanism
        from pkcs11 import exceptions as e

        try:
            if self.algorithm == "ed25519":
                return bytes(self.key.sign(digest, mechanism=Mechanism.EDDSA))
            if self.algorithm == "rsa-pss-sha256":
                params = (Mechanism.SHA256, MGF.SHA256, 32)
                return bytes(self.key.sign(digest, mechanism=Mechanism.RSA_PKCS_PSS, mechanism_param=params))
            return bytes(self.key.sign(_SHA256_DIGEST_INFO + digest, mechanism=Mechanism.RSA_PKCS))
        except e.PKCS11Error as err:
            raise FerrymanError(f"{self.describe()} refused to sign ({type(err).__name__})") from None

    def describe(self) -> str:
        return f"PKCS#11 key {_key_words(self.uri)}"

    def close(self) -> None:
        self.session.close()


def generate_pkcs11_key(uri: str, kind: str, module: str | None = None, pin: str | None = None) -> PublicKey:
    """Creates a key pair in the token, named by the URI's ``object`` (and ``id``), its private
    half sensitive and not extractable. ``kind``: ``ed25519`` or ``rsa-3072``/``rsa-2048``/``rsa-4096``.
    Returns its public key. Refuses if the token already has a key of that name."""
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11 import exceptions as e
    from pkcs11.util.ec import encode_named_curve_parameters

    parsed = parse_pkcs11_uri(uri)
    if "object" not in parsed.path:
        raise FerrymanError("PKCS#11 URI: a new key needs object=LABEL")
    label = parsed.path["object"]
    key_id = parsed.id if parsed.id is not None else label.encode()
    private_template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}
    with _open_session(parsed, module, pin, write=True) as session:
        if _find(session, ObjectClass.PRIVATE_KEY, parsed) or _find(session, ObjectClass.PUBLIC_KEY, parsed):
            raise FerrymanError(f"PKCS#11 token {_token_words(parsed)} already has a key {_key_words(parsed)}")
        try:
            if kind == "ed25519":
                ed25519_oid = "1.3.101.112"
                params = session.create_domain_parameters(
                    KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: encode_named_curve_parameters(ed25519_oid)}, local=True
                )
                params.generate_keypair(store=True, label=label, id=key_id, private_template=private_template)
            elif kind.startswith("rsa-") and kind[4:] in ("2048", "3072", "4096"):
                session.generate_keypair(
                    KeyType.RSA, int(kind[4:]), store=True, label=label, id=key_id, private_template=private_template
                )
            else:
                raise FerrymanError(f"cannot generate a {kind} key: ed25519, rsa-2048, rsa-3072 or rsa-4096")
        except e.PKCS11Error as err:
            raise FerrymanError(
                f"PKCS#11 token {_token_words(parsed)} cannot generate a {kind} key ({type(err).__name__})"
            ) from None
        private = _find(session, ObjectClass.PRIVATE_KEY, parsed)[0]
        return _public_of(session, private, parsed)


# An external program ---------------------------------------------------------------------------


class ExecSigner(Signer):
    """Runs ``command`` once per digest: the raw 32-byte digest on its stdin, the signature
    (raw bytes, hex or base64) on its stdout; ``FERRYMAN_SIGN_DIGEST`` (hex),
    ``FERRYMAN_SIGN_ALGORITHM`` and ``FERRYMAN_SIGN_KEYID`` in its environment. With OpenSSL:
    ``exec:openssl pkeyutl -sign -inkey k.pem -pkeyopt digest:sha256`` (RSA PKCS#1 v1.5); for
    Ed25519, ``pkeyutl -rawin`` of OpenSSL 3.0 cannot read a pipe, so through a file:
    ``exec:sh -c 'f=$(mktemp); cat >$f; openssl pkeyutl -sign -rawin -inkey k.pem -in $f; rm $f'``."""

    def __init__(self, command: str, public_key_file: str | Path | None, algorithm: str | None) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise FerrymanError("exec: names no program")
        if public_key_file is None:
            raise FerrymanError("an exec: signer needs --public-key FILE: the key its signatures verify with")
        try:
            self.public_key = load_public_key(Path(public_key_file).read_text())
        except OSError as e:
            raise FerrymanError(f"{public_key_file}: {e.strerror}") from None
        except ValueError as e:
            raise FerrymanError(f"{public_key_file}: {e}") from None
        self.keyid = self.public_key.keyid
        self.algorithm = _algorithm_for(self.public_key.kind, algorithm)

    def _sign(self, digest: bytes) -> bytes:
        env = {**os.environ, "FERRYMAN_SIGN_DIGEST": digest.hex(), "FERRYMAN_SIGN_ALGORITHM": self.algorithm,
               "FERRYMAN_SIGN_KEYID": self.keyid}  # fmt: skip
        try:
            done = subprocess.run(self.argv, input=digest, capture_output=True, env=env, timeout=EXEC_TIMEOUT, check=False)
        except FileNotFoundError:
            raise FerrymanError(f"signing program {self.argv[0]}: not found") from None
        except subprocess.TimeoutExpired:
            raise FerrymanError(f"signing program {self.argv[0]} gave no signature in {EXEC_TIMEOUT:.0f} s") from None
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            raise FerrymanError(
                f"signing program {self.argv[0]} failed (exit {done.returncode})" + (f": {said[-1]}" if said else "")
            )
        return _signature_bytes(done.stdout)

    def describe(self) -> str:
        return f"signing program {self.argv[0]}"


def _signature_bytes(out: bytes) -> bytes:
    """A program's signature as bytes: text (hex or base64) when it reads as such, else raw (a
    raw signature that happens to read as hex or base64 has odds below 2^-128)."""
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True)):
        try:
            return decode(out.strip().decode("ascii"))
        except ValueError:  # binascii.Error and UnicodeDecodeError are ones
            continue
    return out


def open_signer(
    key: str | Path, *, algorithm: str | None = None, module: str | None = None, pin: str | None = None,
    public_key: str | Path | None = None,
) -> Signer:  # fmt: skip
    """The signer ``key`` names: ``pkcs11:…`` (RFC 7512), ``exec:PROGRAM ARGS…`` or a PEM file's
    path. Close it (or use ``with``) when done."""
    text = str(key)
    if text.startswith("pkcs11:"):
        return Pkcs11Signer(text, module, pin, algorithm)
    if text.startswith("exec:"):
        return ExecSigner(text[len("exec:") :], public_key, algorithm)
    return PemSigner(text, algorithm)

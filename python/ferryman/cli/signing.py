"""The signing commands: key pairs (in files or in a PKCS#11 token), the public keys the server
trusts, signing binaries, and key rotation. A private key never leaves the machine (or token)
that signs; ``--key`` names it: a PEM file, ``pkcs11:token=…;object=…`` (RFC 7512; PIN from
$FERRYMAN_PKCS11_PIN or a prompt) or ``exec:PROGRAM ARGS…`` (digest on stdin, signature on stdout).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ferryman.catalog import models as m
from ferryman.cli.config import client
from ferryman.cli.output import out
from ferryman.cli.refs import ref
from ferryman.client import Client
from ferryman.client.rotation import retire, rotate
from ferryman.client.signers import MODULE_ENV, Signer, generate_pkcs11_key, open_signer
from ferryman.errors import FerrymanError
from ferryman.signing import keyid_of

__all__ = ["add_parsers", "signer_of", "signer_options"]

ALGORITHMS = ["ed25519", "rsa-pkcs1v15-sha256", "rsa-pss-sha256"]
KEY_HELP = "a PEM private key file, pkcs11:token=…;object=… or exec:PROGRAM"


def signer_options(p: argparse.ArgumentParser, key_flag: str, required: bool) -> None:
    """The options that say which key signs (``key_flag``: ``--key``, or ``--sign`` on upload)."""
    p.add_argument(key_flag, required=required, metavar="KEY", help=KEY_HELP)
    p.add_argument("--algorithm", choices=ALGORITHMS, help="for RSA keys: PKCS#1 v1.5 (default) or PSS")
    p.add_argument(
        "--pkcs11-module",
        default=os.environ.get(MODULE_ENV) or None,
        metavar="PATH",
        help=f"the PKCS#11 library of the token (default ${MODULE_ENV})",
    )
    p.add_argument("--public-key", metavar="FILE", help="with exec:, the public key its signatures verify with")


def signer_of(args: argparse.Namespace, spec: str) -> Signer:
    return open_signer(spec, algorithm=args.algorithm, module=args.pkcs11_module, public_key=args.public_key)


def add_parsers(group: Callable[[str, str], Any], cmd: Callable[..., argparse.ArgumentParser], sub: Any) -> None:
    keys = group("keys", "signing key pairs, in files or in a PKCS#11 token")
    k = cmd(keys, "generate", "generate a key pair: in files (private key mode 0600), or in a PKCS#11 token", cmd_keys_generate)
    k.add_argument("--algorithm", choices=["ed25519", "rsa-2048", "rsa-3072", "rsa-4096"], default="ed25519")
    k.add_argument("--out", metavar="DIR", help="write NAME.pem and NAME.pub here (with --pkcs11: NAME.pub only)")
    k.add_argument("--name", default="signing", help="file name stem (default signing)")
    k.add_argument("--pkcs11", metavar="URI", help="create the key in this token: pkcs11:token=…;object=LABEL")
    k.add_argument("--pkcs11-module", default=os.environ.get(MODULE_ENV) or None, metavar="PATH",
                   help=f"the PKCS#11 library (default ${MODULE_ENV})")  # fmt: skip

    sk = group("signing-keys", "public keys the server trusts")
    c = cmd(sk, "create", "register a public key", cmd_signing_keys_create)
    c.add_argument("--name", required=True)
    c.add_argument("--public-key", required=True, metavar="FILE", help="PEM/DER public key or X.509 certificate")
    c.add_argument("--algorithm", choices=ALGORITHMS)
    r = cmd(sk, "rotate", "register a new key and sign with it everything an old key signed (step 1 of a rotation)", cmd_rotate)
    r.add_argument("old", type=ref("signing_key"), metavar="OLD_KEY")
    signer_options(r, "--key", required=True)
    r.add_argument("--name", help="the new key's name, if it is not registered yet")
    r.add_argument("--certificate", metavar="FILE", help="register the new key as this X.509 certificate (its validity window)")
    t = cmd(sk, "retire", "revoke an old key once the others sign all it signed (step 3 of a rotation)", cmd_retire)
    t.add_argument("old", type=ref("signing_key"), metavar="OLD_KEY")
    t.add_argument("--force", action="store_true", help="revoke even if binaries fall back to signable")

    p = cmd(sk, "revoke", "revoke a key: its signatures stop counting", cmd_signing_keys_revoke)
    p.add_argument("id", type=ref("signing_key"), metavar="SIGNING_KEY")

    p = cmd(
        group("bundles", "bundles"),
        "sign",
        "sign bundles' hashes (one session for all) and submit the signatures",
        cmd_bundles_sign,
    )
    p.add_argument("ids", nargs="+", type=ref("bundle"), metavar="BUNDLE")
    signer_options(p, "--key", required=True)

    sg = cmd(sub, "sign", "sign binaries (one session for all) and submit the signatures", cmd_sign)
    sg.add_argument("binary_ids", nargs="+", type=ref("binary"), metavar="BINARY")
    signer_options(sg, "--key", required=True)


def cmd_keys_generate(args: argparse.Namespace) -> int:
    if args.pkcs11:
        key = generate_pkcs11_key(args.pkcs11, args.algorithm, args.pkcs11_module)
        public = None
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            public = Path(args.out) / f"{args.name}.pub"
            if public.exists():
                raise FerrymanError(f"{public} exists; not overwriting a key")
            public.write_text(key.spki_pem)
        shown = f"{public} (public)\n" if public else key.spki_pem
        out(args, {"uri": args.pkcs11, "public_key": key.spki_pem, "keyid": key.keyid}, f"{shown}keyid {key.keyid}")
        return 0
    if not args.out:
        raise FerrymanError("--out DIR is needed for a key pair in files")
    return _generate_files(args)


def _generate_files(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if args.algorithm == "ed25519":
        key: Any = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(65537, int(args.algorithm.removeprefix("rsa-")))
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / f"{args.name}.pem", folder / f"{args.name}.pub"
    if private.exists() or public.exists():
        raise FerrymanError(f"{private} or {public} exists; not overwriting a key")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    keyid = keyid_of(key)
    out(
        args,
        {"private_key": str(private), "public_key": str(public), "keyid": keyid},
        f"{private} (private, mode 0600)\n{public} (public)\nkeyid {keyid}",
    )
    return 0


async def cmd_signing_keys_create(args: argparse.Namespace) -> int:
    body = m.SigningKeyCreate(name=args.name, public_key=Path(args.public_key).read_text(), algorithm=args.algorithm)
    async with client(args) as c:
        k = await c.create_signing_key(body)
    out(args, k, f"{k.id} {k.algorithm} keyid {k.keyid}")
    return 0


async def _sign_each(args: argparse.Namespace, ids: list[str], sign: Any) -> int:
    """Signs each of ``ids`` with one open key (``sign(client, id, signer)`` returns the
    signature and a line for people); the key is opened first, so a wrong PIN or a missing
    object fails before anything is sent."""
    done = []
    with signer_of(args, args.key) as signer:
        async with client(args) as c:
            for id_ in ids:
                signature, line = await sign(c, id_, signer)
                done.append(signature)
                if not (args.json or args.jsonl or args.quiet):
                    print(line, flush=True)
    if args.json or args.jsonl:
        out(args, done if len(done) > 1 else done[0], "")
    return 0


async def _binary(c: Client, binary_id: str, signer: Signer) -> tuple[m.Signature, str]:
    s = await c.sign_binary(binary_id, signer)
    b = await c.get_binary(binary_id)
    return s, f"{s.id} by {s.keyid}; binary {binary_id} {b.state}"


async def _bundle(c: Client, bundle_id: str, signer: Signer) -> tuple[m.BundleSignature, str]:
    s = await c.sign_bundle(bundle_id, signer)
    return s, f"bundle {bundle_id} signed by {s.signing_key_id} (keyid {s.keyid})"


async def cmd_sign(args: argparse.Namespace) -> int:
    return await _sign_each(args, args.binary_ids, _binary)


async def cmd_bundles_sign(args: argparse.Namespace) -> int:
    return await _sign_each(args, args.ids, _bundle)


async def cmd_rotate(args: argparse.Namespace) -> int:
    certificate = Path(args.certificate).read_text() if args.certificate else None
    with signer_of(args, args.key) as signer:
        async with client(args) as c:
            done = await rotate(c, args.old, signer, args.name, certificate)
    line = (
        f"{'registered' if done.registered else 'found'} {done.key.id} (keyid {done.key.keyid}); signed "
        f"{len(done.binaries_signed)} binaries and {len(done.bundles_signed)} bundles now, "
        f"{len(done.binaries_already)} and {len(done.bundles_already)} were already.\n"
        f"Once devices trust {done.key.id}: ferryman signing-keys retire {args.old}"
    )
    out(args, done, line)
    return 0


async def cmd_retire(args: argparse.Namespace) -> int:
    async with client(args) as c:
        done = await retire(c, args.old, args.force)
    extra = f"; {len(done.unsigned)} binaries fell back to signable" if done.unsigned else ""
    out(args, done, f"{done.key.id} revoked{extra}")
    return 0


async def cmd_signing_keys_revoke(args: argparse.Namespace) -> int:
    async with client(args) as c:
        k = await c.revoke_signing_key(args.id)
    out(args, k, f"{k.id} {k.name} revoked: its signatures no longer count (binaries it alone signed are signable again)")
    return 0

"""Signing through a PKCS#11 token vs a PEM file, same digests, same run:

- 1,000 binaries' SHA-256 digests signed with a key in SoftHSM2 through Ferryman's signer (one
  session, one login, the digest handed to the token: no second pass over any file) vs the same
  digests signed with ``cryptography`` from a PEM file: the ratio is reported (the token is
  expected to be slower; the point is that the overhead stays small);
- for scale, the token with a session and login per signature (what a naive batch would do).

Ed25519 and RSA-2048 (PKCS#1 v1.5), each signature checked as the signer always does.

    python -m benches.hsm_signing            # 1,000 digests, 5 rounds, medians
    python -m benches.hsm_signing --smoke    # 50 digests, one round (CI)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODULES = [Path("/usr/lib/softhsm/libsofthsm2.so"), Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")]
PIN = "24681357"


def _token(root: Path) -> Path:
    module = next((m for m in MODULES if m.exists()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        sys.exit("SoftHSM2 is not installed (Debian package softhsm2; .ci/run installs it)")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # before the library is first loaded
    os.environ["FERRYMAN_PKCS11_PIN"] = PIN
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", PIN, "--so-pin", "1357"],
                   check=True, capture_output=True)  # fmt: skip
    return module


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--count", type=int)
    ap.add_argument("--rounds", type=int)
    args = ap.parse_args(argv)
    count = args.count or (50 if args.smoke else 1000)
    rounds = args.rounds or (1 if args.smoke else 5)

    from cryptography.hazmat.primitives import serialization

    from ferryman.client.signers import PemSigner, generate_pkcs11_key, open_signer

    digests = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(count)]
    results = {}
    with tempfile.TemporaryDirectory(prefix="ferryman-hsm-bench-") as tmp:
        root = Path(tmp)
        module = str(_token(root))
        for kind, pem_kind in (("ed25519", "ed25519"), ("rsa-2048", "rsa-2048")):
            uri = f"pkcs11:token=bench;object={kind}"
            generate_pkcs11_key(uri, kind, module)
            pem = root / f"{kind}.pem"
            from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

            key = ed25519.Ed25519PrivateKey.generate() if pem_kind == "ed25519" else rsa.generate_private_key(65537, 2048)
            pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))  # fmt: skip
            times: dict[str, list[float]] = {"pem": [], "token": [], "token_session_each": []}
            for _ in range(rounds):
                with PemSigner(pem, None) as s:
                    times["pem"].append(_timed(lambda s=s: [s.sign(d) for d in digests]))
                with open_signer(uri, module=module) as s:
                    times["token"].append(_timed(lambda s=s: [s.sign(d) for d in digests]))

                def each(uri: str = uri) -> None:
                    for d in digests:
                        with open_signer(uri, module=module) as s:
                            s.sign(d)

                times["token_session_each"].append(_timed(each))
            med = {k: statistics.median(v) for k, v in times.items()}
            results[kind] = {
                "count": count,
                "seconds": med,
                "per_signature_ms": {k: round(v / count * 1000, 3) for k, v in med.items()},
                "token_vs_pem": round(med["token"] / med["pem"], 2),
                "session_each_vs_one_session": round(med["token_session_each"] / med["token"], 2),
            }
            print(
                f"{kind}: {count} signatures, medians of {rounds}: PEM {med['pem']:.3f} s, token (one session) "
                f"{med['token']:.3f} s = {results[kind]['token_vs_pem']}x, token (a session each) "
                f"{med['token_session_each']:.3f} s = {results[kind]['session_each_vs_one_session']}x one session",
                flush=True,
            )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

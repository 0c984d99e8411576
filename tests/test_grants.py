"""Download grants on their own: what a token is, what refuses it, and the secret behind it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ferryman import grants
from ferryman.errors import Forbidden

BIN = "bin_" + "a" * 26
SECRET = b"s" * 32


def test_a_token_names_its_binary_and_expiry_and_verifies():
    t = grants.issue(SECRET, BIN, 2_000_000_000)
    assert t.startswith(f"{BIN}.2000000000.") and len(t.rsplit(".", 1)[1]) == 43
    assert grants.verify(SECRET, t, now=1_000_000_000) == BIN
    with pytest.raises(Forbidden, match="expired"):
        grants.verify(SECRET, t, now=3_000_000_000)


@pytest.mark.parametrize(
    "token",
    [
        grants.issue(b"another secret", BIN, 2_000_000_000),  # not ours
        grants.issue(SECRET, BIN, 2_000_000_000)[:-1] + "A",  # one character of the MAC changed
        grants.issue(SECRET, BIN, 2_000_000_000).replace(".2000000000.", ".2000000001."),  # expiry moved
        grants.issue(SECRET, BIN, 2_000_000_000).replace("bin_a", "bin_b"),  # another binary
    ],
)
def test_a_forged_token_is_refused(token: str):
    with pytest.raises(Forbidden, match="signature"):
        grants.verify(SECRET, token, now=1_000_000_000)


@pytest.mark.parametrize("token", ["", "garbage", f"{BIN}.1", f"{BIN}.x.{'A' * 43}", f"art_{'a' * 26}.1.{'A' * 43}"])
def test_a_malformed_token_is_refused(token: str):
    with pytest.raises(Forbidden, match="malformed"):
        grants.verify(SECRET, token, now=0)


def test_the_secret_is_kept_private_and_stable(tmp_path: Path):
    first = grants.load_secret(tmp_path, None)
    path = tmp_path / "url-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64 and int(first, 16) >= 0  # 256 random bits, as hex
    assert grants.load_secret(tmp_path, None) == first  # survives a restart
    assert grants.load_secret(tmp_path, "configured") == b"configured"
    assert not (tmp_path / "url-secret.tmp").exists()

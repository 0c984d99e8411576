"""The ferryman CLI, called as a function."""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys

import pytest

from ferryman.cli import main, parse_size


def test_hash_table(write_file, capsys):
    a = write_file(b"hello", "a.bin")
    b = write_file(b"", "b.bin")
    assert main(["hash", str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["SIZE", "SHA-256", "PATH"]
    assert out[1].split() == ["5", hashlib.sha256(b"hello").hexdigest(), str(a)]
    assert out[2].split() == ["0", hashlib.sha256(b"").hexdigest(), str(b)]


def test_hash_json_with_everything(write_file, capsys):
    data = bytes(range(256)) * 40000
    path = write_file(data)
    assert main(["hash", "--json", "--part-size", "4MiB", "--chunking", "--blake3", str(path)]) == 0
    [d] = json.loads(capsys.readouterr().out)
    assert d["sha256"] == hashlib.sha256(data).hexdigest()
    assert d["part_size"] == 4 << 20
    assert [p["size"] for p in d["parts"]] == [4 << 20, 4 << 20, len(data) - (8 << 20)]
    assert d["chunking"]["algorithm"] == "fastcdc-2020"
    assert sum(c["length"] for c in d["chunks"]) == len(data)
    assert len(d["blake3"]) == 64


def test_missing_file_is_one_line_and_exit_1(tmp_path, capsys):
    assert main(["hash", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nope" in err and "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["hash"]) == 2
    assert main(["hash", "--part-size", "lots", "x"]) == 2
    assert main(["bogus"]) == 2
    capsys.readouterr()


def test_help_lists_options(capsys):
    assert main(["hash", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--part-size", "--chunking", "--blake3", "--threads", "--json"):
        assert opt in out


@pytest.mark.parametrize(("text", "n"), [("1", 1), ("8MiB", 8 << 20), ("8M", 8_000_000), ("1.5GiB", 3 << 29), ("64kib", 65536)])
def test_parse_size(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "0", "-1", "1.5", "ten", "5 TB"])
def test_parse_size_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match=r"size|bytes"):
        parse_size(text)


def test_module_entry_point(write_file):
    path = write_file(b"x")
    r = subprocess.run([sys.executable, "-m", "ferryman", "hash", "--json", str(path)], capture_output=True, text=True)
    assert r.returncode == 0
    assert json.loads(r.stdout)[0]["size"] == 1

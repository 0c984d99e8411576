"""Hashing: streaming SHA-256 and BLAKE3, one-pass file digests and batch file digests.

``hash_file`` reads a file once and computes the whole-file SHA-256 plus, when asked, the
SHA-256 of every ``part_size`` piece (as the upload API numbers parts), FastCDC chunks with
their BLAKE3 digests, the whole-file BLAKE3, and (``legacy``) the SHA-1 and MD5 that hawkBit's
DDI lists. ``Sha1Md5`` streams those two for stores read as streams. ``hash_files`` does the same for many files
on one process-wide thread pool.
"""

from __future__ import annotations

from ferryman._native import (
    Blake3,
    FileDigest,
    PartDigest,
    Sha1Md5,
    Sha256,
    get_threads,
    hash_file,
    hash_files,
    set_threads,
)

__all__ = [
    "Blake3",
    "FileDigest",
    "PartDigest",
    "Sha1Md5",
    "Sha256",
    "blake3",
    "get_threads",
    "hash_file",
    "hash_files",
    "set_threads",
    "sha256",
]


def sha256(data: bytes | bytearray | memoryview = b"", /) -> Sha256:
    """A new SHA-256 hasher, optionally fed ``data`` (like ``hashlib.sha256``)."""
    return Sha256(data)


def blake3(data: bytes | bytearray | memoryview = b"", /) -> Blake3:
    """A new BLAKE3 hasher, optionally fed ``data``."""
    return Blake3(data)

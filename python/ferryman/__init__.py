"""Ferryman: organise, version, hash, sign, bundle, release and distribute binaries to fleets.

The byte work (hashing, chunking, upload sinks, signature verification) runs in a native
extension; this package is its public face::

    import ferryman
    digests = ferryman.hash_files(paths, part_size=8 << 20)
    key = ferryman.load_public_key(pem)
    key.verify_binary(bytes.fromhex(digests[0].sha256), signature)
"""

from __future__ import annotations

from ferryman import errors
from ferryman._native import __version__
from ferryman.chunking import Chunk, ChunkParams, Part, chunk_bytes, chunk_file, part_plan
from ferryman.errors import (
    FerrymanError,
    FileChangedError,
    InvalidKey,
    InvalidSignature,
    SizeLimitExceeded,
)
from ferryman.hashing import (
    Blake3,
    FileDigest,
    PartDigest,
    Sha256,
    get_threads,
    hash_file,
    hash_files,
    set_threads,
)
from ferryman.signing import PublicKey, Verdict, load_public_key, verify_many
from ferryman.sink import Sink, SinkResult

__all__ = [
    "Blake3",
    "Chunk",
    "ChunkParams",
    "FerrymanError",
    "FileChangedError",
    "FileDigest",
    "InvalidKey",
    "InvalidSignature",
    "Part",
    "PartDigest",
    "PublicKey",
    "Sha256",
    "Sink",
    "SinkResult",
    "SizeLimitExceeded",
    "Verdict",
    "__version__",
    "chunk_bytes",
    "chunk_file",
    "errors",
    "get_threads",
    "hash_file",
    "hash_files",
    "load_public_key",
    "part_plan",
    "set_threads",
    "verify_many",
]

"""Content-defined chunking (FastCDC 2020) and the fixed part plan of multipart uploads.

The default parameters are 16 KiB minimum, 64 KiB average, 256 KiB maximum, normalisation
level 1 (``ChunkParams()``); every result that holds chunks also holds the parameters used.
Chunk digests are BLAKE3.
"""

from __future__ import annotations

import os

from ferryman._native import Chunk, ChunkParams, Part, chunk_bytes, hash_file, part_plan

__all__ = ["Chunk", "ChunkParams", "Part", "chunk_bytes", "chunk_file", "part_plan"]


def chunk_file(path: str | os.PathLike[str], params: ChunkParams | None = None) -> list[Chunk]:
    """The FastCDC chunks of a file, read once (the file's SHA-256 comes along for free).

    Raises:
        OSError: the file cannot be read (the exception names it).
        FileChangedError: the file changed while it was being read.
    """
    digest = hash_file(path, chunking=params or ChunkParams())
    assert digest.chunks is not None
    return digest.chunks

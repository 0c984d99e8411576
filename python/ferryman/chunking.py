"""Content-defined chunking (FastCDC 2020) and the fixed part plan of multipart uploads.

The default parameters are 16 KiB minimum, 64 KiB average, 256 KiB maximum, normalisation
level 1 (``ChunkParams()``); every result that holds chunks also holds the parameters used.
Chunk digests are BLAKE3.
"""

from __future__ import annotations

from ferryman._native import Chunk, ChunkParams, Part, chunk_bytes, part_plan

__all__ = ["Chunk", "ChunkParams", "Part", "chunk_bytes", "part_plan"]

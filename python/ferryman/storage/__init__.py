"""Content stores: where binary bytes live. ``FsStore`` keeps them under the data directory."""

from ferryman.storage.fs import FsStore

__all__ = ["FsStore"]

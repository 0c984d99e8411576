"""Exceptions raised by Ferryman, including those raised from the native core.

Operating-system errors on files are raised as the standard :class:`OSError` subclasses
(``FileNotFoundError``, ``IsADirectoryError``...) with ``filename`` set.
"""

from __future__ import annotations

__all__ = [
    "FerrymanError",
    "FileChangedError",
    "InvalidKey",
    "InvalidSignature",
    "SizeLimitExceeded",
]


class FerrymanError(Exception):
    """Base class of Ferryman's own exceptions."""


class InvalidSignature(FerrymanError):
    """A signature did not verify, or could not be decoded. Verification never returns False."""


class InvalidKey(FerrymanError, ValueError):
    """A public key or certificate could not be parsed or is not acceptable (e.g. RSA < 2048 bits)."""


class FileChangedError(FerrymanError):
    """A file's size or modification time changed while it was being hashed."""


class SizeLimitExceeded(FerrymanError, ValueError):
    """More bytes were written to a sink than its limit allows."""

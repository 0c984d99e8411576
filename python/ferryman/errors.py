"""Exceptions raised by Ferryman, including those raised from the native core.

Operating-system errors on files are raised as the standard :class:`OSError` subclasses
(``FileNotFoundError``, ``IsADirectoryError``...) with ``filename`` set.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "DomainError",
    "FerrymanError",
    "FileChangedError",
    "Forbidden",
    "InsufficientStorage",
    "Invalid",
    "InvalidKey",
    "InvalidSignature",
    "InvalidTransition",
    "LengthRequired",
    "NotFound",
    "RequestTimeout",
    "SizeLimitExceeded",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
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


# Domain errors: raised by the catalog, lifecycle and storage code, which know nothing of HTTP;
# the server turns each into one RFC 9457 problem (see ferryman.server.middlewares).


class DomainError(FerrymanError):
    """Base of the errors a request can cause; ``status`` is the HTTP status it maps to."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}
        self.extra = extra


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class InvalidTransition(Conflict):
    title = "Invalid state transition"


class Invalid(DomainError):
    """A well-formed request whose content is not acceptable (field errors in ``errors``)."""

    status = 422
    title = "Unprocessable content"


class Unauthenticated(DomainError):
    status = 401
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class TooLarge(DomainError):
    status = 413
    title = "Content too large"


class LengthRequired(DomainError):
    status = 411
    title = "Length required"


class UnsupportedMediaType(DomainError):
    status = 415
    title = "Unsupported media type"


class RequestTimeout(DomainError):
    """The client stopped sending a request body (see ``Config.upload_idle_timeout``)."""

    status = 408
    title = "Request timeout"


class InsufficientStorage(DomainError):
    """The server's disk (content store or catalog) is full; nothing was changed."""

    status = 507
    title = "Insufficient storage"


class Unavailable(DomainError):
    """A store the request needs (the catalog database, an object store) cannot be reached; nothing
    was changed, and the request may be retried after ``retry_after`` seconds."""

    status = 503
    title = "Service unavailable"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

"""Server configuration, with the embedded defaults: ``ferryman serve`` needs no flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["Config"]


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("ferryman-data")
    # Where the catalog lives: sqlite:///path or postgresql://user:password@host:port/database.
    # Default: the SQLite file in the data directory.
    catalog: str | None = field(default_factory=lambda: os.environ.get("FERRYMAN_CATALOG") or None)
    # Where binaries' bytes live: file:///path, s3://bucket/prefix, az://container/prefix or
    # gs://bucket/prefix (see blobs/objects.py). Default: "store" in the data directory.
    store: str | None = field(default_factory=lambda: os.environ.get("FERRYMAN_STORE") or None)
    # How /dl/ grants deliver bytes: "proxy" (this service streams them, with ranges) or
    # "redirect" (302 to a presigned URL of the object store).
    download_mode: str = field(default_factory=lambda: os.environ.get("FERRYMAN_DOWNLOAD_MODE") or "proxy")
    # Distinct active keys whose signatures make a binary "signed".
    signature_threshold: int = 1
    # Accepted as an admin token when set (automation, tests); never stored.
    admin_token: str | None = field(default_factory=lambda: os.environ.get("FERRYMAN_ADMIN_TOKEN") or None)
    # JSON request bodies larger than this are refused with 413.
    max_json_bytes: int = 1 << 20
    # Secret for download grants; default: kept in the data directory (see ferryman.grants).
    url_secret: str | None = field(default_factory=lambda: os.environ.get("FERRYMAN_URL_SECRET") or None)
    # How long a download grant stays valid, in seconds.
    grant_ttl: int = 3600
    # One log line per request (aiohttp's access log) on stderr.
    access_log: bool = False
    # Scheme, host and port (and path prefix) that devices reach this service at, e.g.
    # "https://updates.example.com": absolute URLs in answers are built from it, never from a
    # request's Host header. Without it, from the bind address.
    public_url: str | None = field(default_factory=lambda: os.environ.get("FERRYMAN_PUBLIC_URL") or None)
    # An upload that sends no byte for this many seconds is refused and its part released.
    upload_idle_timeout: float = 60.0
    # How long a part in flight holds hashing back without being renewed (renewed every third
    # of it while its upload runs): the wait after a crash or a failed write.
    upload_lease: float = 30.0
    # How long a hashing job of a server that died waits to be taken over by another (renewed
    # every third of it while the job runs).
    job_lease: float = 30.0
    # A connection must deliver a request's complete headers within this many seconds of
    # opening (or of the previous response); idle keep-alive connections close after it too.
    header_timeout: float = 10.0
    # Connections beyond this many are refused at once with 503 (see server/runner.py).
    max_connections: int = 1024
    # Server processes sharing the port (SO_REUSEPORT; see server/workers.py).
    workers: int = 1

    def __post_init__(self) -> None:
        if self.public_url is not None:
            url = urlsplit(self.public_url)
            url.port  # noqa: B018 (raises ValueError for a malformed port)
            if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment or url.username:
                raise ValueError(f"public URL {self.public_url!r} must be http(s)://host[:port][/prefix]")
        for name in ("upload_idle_timeout", "upload_lease", "job_lease", "header_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.download_mode not in ("proxy", "redirect"):
            raise ValueError(f"download mode {self.download_mode!r} must be proxy or redirect")
        if self.download_mode == "redirect" and not (self.store and "://" in self.store and not self.store.startswith("file:")):
            raise ValueError("download mode redirect needs an object store (--store s3://… or az://… or gs://…)")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")

    @property
    def base_url(self) -> str:
        """The origin (and prefix) of absolute URLs handed to devices."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def catalog_path(self) -> Path:
        """The embedded catalog's file (used when ``catalog`` is not set)."""
        return self.data_dir / "catalog.sqlite3"

    @property
    def catalog_url(self) -> str:
        return self.catalog or f"sqlite:///{self.catalog_path}"

    @property
    def embedded_catalog(self) -> bool:
        """Whether the catalog is a SQLite file (only processes on this machine can use it)."""
        return self.catalog_url.startswith("sqlite:")

    @property
    def content_dir(self) -> Path:
        return self.data_dir / "store"

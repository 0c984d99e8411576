"""Server configuration, with the embedded defaults: ``ferryman serve`` needs no flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Config"]


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("ferryman-data")
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

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite3"

    @property
    def content_dir(self) -> Path:
        return self.data_dir / "store"

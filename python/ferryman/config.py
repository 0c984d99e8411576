"""Server configuration, with the embedded defaults: ``ferryman serve`` needs no flags."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["Config", "Region", "parse_region"]

REGION_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
DEFAULT_REGION = "default"


@dataclass(frozen=True)
class Region:
    """A named store (see blobs/regions.py). ``store``: its URL (None: the data directory's
    store); ``cdn_base_url``: where a CDN serves this region's downloads, with Ferryman as its
    origin (None: devices download from Ferryman itself)."""

    name: str
    store: str | None
    cdn_base_url: str | None = None


def parse_region(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (a ``--region`` or ``--cdn-base-url`` option) as its two halves."""
    name, sep, value = text.partition("=")
    if not sep or not REGION_NAME.fullmatch(name) or not value:
        raise ValueError(f"{text!r}: expected NAME=VALUE with a region NAME of a-z, 0-9 and -")
    return name, value


def regions_from(options: list[str], cdn: list[str], file: Path | None) -> tuple[tuple[Region, ...], str | None, str | None]:
    """The regions of ``--region NAME=URL`` options or a TOML file (``[regions.NAME]`` tables
    with ``store``, optional ``cdn_base_url`` and ``primary = true``), with ``--cdn-base-url
    [NAME=]URL`` options: (regions, primary region, the CDN base URL of the single default
    region). ValueError for anything malformed."""
    stores: dict[str, str | None] = {}
    cdns: dict[str, str] = {}
    primary = None
    if file is not None:
        import tomllib

        try:
            table = tomllib.loads(file.read_text()).get("regions", {})
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"regions file {file}: {e}") from None
        for name, region in table.items():
            if not isinstance(region, dict) or set(region) - {"store", "cdn_base_url", "primary"}:
                raise ValueError(f"regions file {file}: [regions.{name}] takes store, cdn_base_url and primary")
            stores[name] = region.get("store")
            if region.get("cdn_base_url"):
                cdns[name] = region["cdn_base_url"]
            if region.get("primary"):
                primary = name
    for option in options:
        name, url = parse_region(option)
        if name in stores:
            raise ValueError(f"region {name!r} is configured twice")
        stores[name] = url
    single = None
    for option in cdn:
        if "=" in option.split("://", 1)[0]:
            name, url = parse_region(option)
            cdns[name] = url
        else:
            single = option
    unknown = set(cdns) - set(stores)
    if unknown:
        raise ValueError(f"a CDN base URL names no configured region: {', '.join(sorted(unknown))}")
    regions = tuple(Region(name, url, cdns.get(name)) for name, url in stores.items())
    if single is not None and regions:
        raise ValueError("with regions, give each region's CDN as --cdn-base-url NAME=URL")
    return regions, primary, single


def _check_base_url(what: str, value: str) -> None:
    url = urlsplit(value)
    url.port  # noqa: B018 (raises ValueError for a malformed port)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment or url.username:
        raise ValueError(f"{what} {value!r} must be http(s)://host[:port][/prefix]")


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
    # Named stores binaries are replicated to (see blobs/regions.py); empty: one region,
    # "default", whose store is ``store``. With regions, ``store`` is not set.
    regions: tuple[Region, ...] = ()
    # The region uploads land in and hashing verifies (default: the first).
    primary_region: str | None = None
    # Where a CDN serves downloads of the single default region (with regions: per region).
    cdn_base_url: str | None = None
    # How often each region's store is checked (a failing one is skipped when serving).
    region_check_interval: float = 10.0
    # Replication jobs (copies, checks, deletions) this process runs at once.
    replication_concurrency: int = 4
    # The longest wait before a failed replication job is tried again (the backoff's cap).
    replication_retry_max: float = 600.0
    # Prometheus metrics at /metrics (any API role may read them).
    metrics: bool = True
    # Webhooks may target loopback, private and other non-public addresses (off by default:
    # whoever can create a webhook could otherwise make the server call internal services).
    webhook_allow_private: bool = False
    # A delivery attempt ends after this many seconds without a complete answer.
    webhook_timeout: float = 10.0
    # Attempts before a delivery is given up (it can be redelivered by hand).
    webhook_max_attempts: int = 10
    # The wait before the first retry of a failed delivery; it doubles up to the maximum.
    webhook_retry_base: float = 5.0
    webhook_retry_max: float = 3600.0
    # How often scheduled phase steps of releases are looked for.
    rollout_check_interval: float = 10.0
    # hawkBit DDI: the one tenant its paths name (compared without case, as hawkBit does), a key
    # that authenticates as any of its devices (``GatewayToken``; never stored), and the
    # polling interval agents are told.
    ddi_tenant: str = "default"
    ddi_gateway_token: str | None = field(default_factory=lambda: os.environ.get("FERRYMAN_DDI_GATEWAY_TOKEN") or None)
    agent_poll_interval: float = 300.0

    def __post_init__(self) -> None:
        if self.public_url is not None:
            _check_base_url("public URL", self.public_url)
        self._check_regions()
        for name in (
            "upload_idle_timeout",
            "upload_lease",
            "job_lease",
            "header_timeout",
            "region_check_interval",
            "replication_retry_max",
            "webhook_timeout",
            "webhook_retry_base",
            "webhook_retry_max",
            "rollout_check_interval",
            "agent_poll_interval",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.download_mode not in ("proxy", "redirect"):
            raise ValueError(f"download mode {self.download_mode!r} must be proxy or redirect")
        objects = [r for r in self.region_list if r.store and "://" in r.store and not r.store.startswith("file:")]
        if self.download_mode == "redirect" and not objects:
            raise ValueError("download mode redirect needs an object store (--store s3://… or az://… or gs://…)")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.replication_concurrency < 1:
            raise ValueError("replication_concurrency must be at least 1")
        if self.webhook_max_attempts < 1:
            raise ValueError("webhook_max_attempts must be at least 1")

    def _check_regions(self) -> None:
        names = [r.name for r in self.regions]
        for r in self.regions:
            if not REGION_NAME.fullmatch(r.name):
                raise ValueError(f"region name {r.name!r}: use a-z, 0-9 and - (up to 32, starting with a letter)")
            if names.count(r.name) > 1:
                raise ValueError(f"region {r.name!r} is configured twice")
        if self.regions and self.store is not None:
            raise ValueError("with regions, each region names its store (--region NAME=URL); --store is for one store")
        if self.regions and self.cdn_base_url is not None:
            raise ValueError("with regions, a CDN base URL belongs to a region (--cdn-base-url NAME=URL)")
        if self.primary_region is not None and self.primary_region not in [r.name for r in self.region_list]:
            raise ValueError(f"primary region {self.primary_region!r} is not a configured region")
        for r in self.region_list:
            if r.cdn_base_url is not None:
                _check_base_url(f"CDN base URL of region {r.name}", r.cdn_base_url)

    @property
    def region_list(self) -> tuple[Region, ...]:
        """The regions, primary first."""
        regions = self.regions or (Region(DEFAULT_REGION, self.store, self.cdn_base_url),)
        primary = self.primary_region or regions[0].name
        return tuple(sorted(regions, key=lambda r: r.name != primary))

    @property
    def primary(self) -> Region:
        return self.region_list[0]

    def store_dir(self, region: Region) -> Path:
        """Where a region without a store URL keeps its bytes: the data directory's ``store``
        for the primary, ``store-<name>`` beside it for the others."""
        return self.content_dir if region.name == self.primary.name else self.data_dir / f"store-{region.name}"

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

"""The object-store blob store: S3 (and what speaks it), Azure Blob and GCS, through obstore
(the Python binding of Rust's ``object_store``, one library for all three).

Layout under the store's prefix (every name a validated binary ID, never user input)::

    uploads/<binary_id>/<offset>   one object per part, named by its byte offset (20 digits,
                                   so names sort in offset order); an upload of the part again
                                   replaces it (a PUT is atomic: readers see the old object or
                                   the new one)
    content/<binary_id>            the verified content, assembled from the parts when hashing
                                   succeeds; the part objects are deleted after. A copy from
                                   another region (``write_content``) is one PUT here, atomic;
                                   if its bytes turn out not to match, it is deleted again (and
                                   was never served: the catalog did not list it as verified)

Why a part is an object rather than a part of one multipart upload: obstore (like
``object_store``) does not expose S3's part numbers, and S3 cannot read an unfinished multipart
upload, so hashing could not read the parts anyway; a part object can be uploaded again alone
and read back at once. Each part streams through with bounded memory (obstore buffers
``PUT_CHUNK`` times ``PUT_CONCURRENCY + 1``, 16 MiB) and is hashed natively on the way.

A store that cannot be reached is ``Unavailable`` (503, retried by clients), never an answer:
nothing is recorded for a part the store did not take, and hashing waits for the store rather
than blame the upload. obstore's own retries are bounded (``RETRY``) so no request waits long.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import ObjectStore, from_url

from ferryman.blobs import Mismatch
from ferryman.errors import NotFound, TooLarge, Unavailable
from ferryman.hashing import Sha1Md5, Sha256
from ferryman.ids import is_id

__all__ = ["Hashed", "ObjectBlobStore", "PartSum", "Sums", "open_object_store"]

log = logging.getLogger("ferryman.blobs")
PUT_CHUNK = 8 << 20
PUT_CONCURRENCY = 1
READ_CHUNK = 1 << 20
# A copy between regions: parts uploaded at once, and chunks waiting to be hashed.
COPY_CONCURRENCY = 2
HASH_BACKLOG = 8
# obstore retries a failed request with backoff; bounded so a dead store is a prompt 503.
RETRY: Any = {"max_retries": 2, "retry_timeout": dt.timedelta(seconds=10)}
# Query parameters of a store URL that configure the HTTP client rather than the store.
_CLIENT_KEYS = {"allow_http", "allow_invalid_certificates", "connect_timeout", "timeout", "proxy_url"}
_ENV_PREFIX = {"s3": "AWS_", "s3a": "AWS_", "az": "AZURE_", "azure": "AZURE_", "abfs": "AZURE_", "abfss": "AZURE_",
               "gs": "GOOGLE_"}  # fmt: skip
SCHEMES = tuple(_ENV_PREFIX)
# obstore raises the builtin for most missing objects, its own class for some.
_MISSING = (NotFoundError, FileNotFoundError)


@dataclass(frozen=True)
class PartSum:
    index: int
    size: int
    sha256: str


@dataclass(frozen=True)
class Sums:
    """What hashing found: the whole content's size and SHA-256, and each part's."""

    size: int
    sha256: str
    parts: list[PartSum] | None
    sha1: str | None = None
    md5: str | None = None


def open_object_store(url: str) -> ObjectStore:
    """The object store a URL names: ``s3://bucket/prefix``, ``az://container/prefix``,
    ``gs://bucket/prefix``; credentials, region and endpoint from the usual environment
    variables (``AWS_*``, ``AZURE_*``, ``GOOGLE_*``) or from query parameters
    (``?endpoint=http://127.0.0.1:9000&region=eu-west-1&allow_http=true``). Raises ValueError
    for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.netloc:
        raise ValueError(
            f"store URL {url!r}: expected file:///path, s3://bucket/prefix, az://container/prefix or gs://bucket/prefix"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    # obstore reads the store's settings from the environment but drops the client's once any
    # client option is passed (we pass timeouts): so those are read here, e.g. AWS_ALLOW_HTTP.
    env = _ENV_PREFIX[parts.scheme]
    client = {k: os.environ[env + k.upper()] for k in _CLIENT_KEYS if env + k.upper() in os.environ}
    client.update({k: query.pop(k) for k in list(query) if k in _CLIENT_KEYS})
    client.setdefault("connect_timeout", "5s")
    client.setdefault("timeout", "60s")
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    try:
        return from_url(bare, config=query or None, client_options=client, retry_config=RETRY)  # type: ignore[call-overload]
    except Exception as e:  # obstore's configuration errors, in its words
        raise ValueError(f"store URL {url!r}: {str(e).splitlines()[0]}") from None


def _unavailable(e: Exception) -> Unavailable:
    log.warning("object store error: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
    return Unavailable("the object store is unavailable; nothing was recorded, retry")


class ObjectContent:
    """Published content in the object store, read by ranged GETs."""

    def __init__(self, store: ObjectStore, key: str, size: int, modified: float) -> None:
        self._store = store
        self._key = key
        self.size = size
        self.modified = modified

    def file(self) -> None:
        return None

    async def read(self, offset: int, count: int) -> AsyncIterator[bytes]:
        if count <= 0:
            return
        # The whole object is a plain GET (no range to answer: some S3 servers answer a range
        # that covers everything with 200, which obstore refuses).
        whole = offset == 0 and count == self.size
        try:
            try:
                ranged: Any = None if whole else {"range": (offset, offset + count)}
                got = await obstore.get_async(self._store, self._key, options=ranged)
            except Exception as e:
                if "NotPartial" not in str(e):
                    raise
                # A server that ignores Range (rclone's serve s3 does) sends the whole object:
                # read it from the start and skip to the range, rather than fail the download.
                got, skip = await obstore.get_async(self._store, self._key), offset
            else:
                skip = 0
            async for chunk in got.stream(min_chunk_size=READ_CHUNK):
                piece = bytes(chunk)[skip : skip + count] if skip or len(chunk) > count else bytes(chunk)
                skip = max(0, skip - len(chunk))
                if piece:
                    yield piece
                    count -= len(piece)
                if count <= 0:
                    break
        except _MISSING:
            raise ConnectionResetError("the content disappeared from the store") from None

    def close(self) -> None:
        pass


class ObjectBlobStore:
    """See the module doc. ``where`` names the store in messages."""

    def __init__(self, store: ObjectStore, where: str) -> None:
        self.store = store
        self.where = where

    def _id(self, binary_id: str) -> str:
        if not is_id(binary_id, "binary"):
            raise ValueError(f"unsafe binary id {binary_id!r}")
        return binary_id

    def _part(self, binary_id: str, offset: int) -> str:
        return f"uploads/{self._id(binary_id)}/{offset:020d}"

    def _content(self, binary_id: str) -> str:
        return f"content/{self._id(binary_id)}"

    async def receive_part(self, binary_id: str, stream: AsyncIterator[bytes], offset: int, size: int) -> PartSum:
        """Streams one part into its own object, hashing it on the way. The object is replaced
        only if exactly ``size`` bytes arrive (a short or long body fails the PUT)."""
        hasher = Sha256()
        count = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal count
            async for chunk in stream:
                count += len(chunk)
                if count > size:
                    raise TooLarge(f"the part has more than its {size} bytes")
                hasher.update(chunk)
                yield chunk
            if count != size:
                raise _Short()

        try:
            await obstore.put_async(
                self.store, self._part(binary_id, offset), counted(), chunk_size=PUT_CHUNK, max_concurrency=PUT_CONCURRENCY
            )
        except _Short:
            return PartSum(offset, count, hasher.hexdigest())  # the caller refuses it
        except (TooLarge, asyncio.CancelledError, ConnectionError):
            raise
        except Exception as e:
            cause = _cause(e)
            if cause is not None:
                raise cause from None
            raise _unavailable(e) from None
        return PartSum(offset, count, hasher.hexdigest())

    async def _parts(self, binary_id: str) -> list[tuple[int, str]]:
        prefix = f"uploads/{self._id(binary_id)}/"
        found = []
        async for batch in obstore.list(self.store, prefix=prefix):
            found += [(int(o["path"].rsplit("/", 1)[1]), o["path"]) for o in batch]
        return sorted(found)

    async def _stream(self, key: str) -> AsyncIterator[bytes]:
        got = await obstore.get_async(self.store, key)
        async for chunk in got.stream(min_chunk_size=READ_CHUNK):
            yield bytes(chunk)

    async def digest(self, binary_id: str, part_size: int | None = None, *, keep: bool = False, legacy: bool = False) -> Sums:
        """Reads the parts back in order (or, after a crash that published them, the content),
        hashing the whole natively and, with ``part_size``, each part. With ``keep``, what is
        read is also written, in the same pass, to the content object: it is served only once
        the catalog says the binary is verified, and ``publish`` then only drops the parts."""
        whole, size, parts = Sha256(), 0, []
        others = Sha1Md5() if legacy else None

        async def read(keys: list[str]) -> AsyncIterator[bytes]:
            nonlocal size
            for key in keys:
                part, n = Sha256(), 0
                async for chunk in self._stream(key):
                    whole.update(chunk)
                    if others is not None:
                        others.update(chunk)
                    if part_size:
                        part.update(chunk)
                    n += len(chunk)
                    yield chunk
                if part_size:
                    parts.append(PartSum(size // part_size + 1, n, part.hexdigest()))
                size += n

        try:
            keys = [key for _, key in await self._parts(binary_id)]
            if keys and keep:
                await obstore.put_async(
                    self.store, self._content(binary_id), read(keys), chunk_size=PUT_CHUNK, max_concurrency=PUT_CONCURRENCY
                )
            else:
                async for _ in read(keys or [self._content(binary_id)]):
                    pass
        except _MISSING:
            raise FileNotFoundError(f"no uploaded content for {binary_id}") from None
        except Exception as e:
            raise _unavailable(e) from None
        sha1, md5 = others.hexdigests() if others is not None else (None, None)
        return Sums(size, whole.hexdigest(), parts if part_size else None, sha1, md5)

    async def first_bytes(self, binary_id: str, count: int) -> bytes:
        """From the first part (every part but the last holds at least ``MIN_PART`` bytes) or
        the content; read as a stream and cut, since some servers ignore ranges."""
        got = bytearray()
        try:
            keys = [key for _, key in await self._parts(binary_id)][:1] or [self._content(binary_id)]
            async for chunk in self._stream(keys[0]):
                got += chunk[: count - len(got)]
                if len(got) >= count:
                    break
        except _MISSING:
            raise FileNotFoundError(f"no uploaded content for {binary_id}") from None
        except Exception as e:
            raise _unavailable(e) from None
        return bytes(got)

    async def publish(self, binary_id: str) -> None:
        """Drops the parts once ``digest(keep=True)`` has written the content; assembles the
        content first if it is missing (a hashing that ran without ``keep``). A crash in
        between leaves the parts, and publishing again ends the same way."""
        try:
            keys = [key for _, key in await self._parts(binary_id)]
            if not keys:
                return  # published before a crash
            try:
                await obstore.head_async(self.store, self._content(binary_id))
            except _MISSING:
                await self.digest(binary_id, keep=True)
            await obstore.delete_async(self.store, keys)
        except Unavailable:
            raise
        except Exception as e:
            raise _unavailable(e) from None

    async def delete(self, binary_id: str) -> None:
        await self.discard_parts(binary_id)
        try:
            await obstore.delete_async(self.store, self._content(binary_id))
        except _MISSING:
            pass
        except Exception as e:
            raise _unavailable(e) from None

    async def open(self, binary_id: str) -> ObjectContent:
        key = self._content(binary_id)
        try:
            meta = await obstore.head_async(self.store, key)
        except _MISSING:
            raise NotFound("the content is missing from the store") from None
        except Exception as e:
            raise _unavailable(e) from None
        return ObjectContent(self.store, key, meta["size"], meta["last_modified"].timestamp())

    async def redirect_url(self, binary_id: str, expires_in: float) -> str:
        """A presigned URL of the content, valid for ``expires_in`` seconds."""
        try:
            return await obstore.sign_async(  # type: ignore[call-overload]
                self.store, "GET", self._content(binary_id), dt.timedelta(seconds=expires_in)
            )
        except Exception as e:
            raise _unavailable(e) from None

    async def discard_parts(self, binary_id: str) -> None:
        """Removes a binary's part objects (not its content)."""
        try:
            keys = [key for _, key in await self._parts(binary_id)]
            if keys:
                await obstore.delete_async(self.store, keys)
        except Exception as e:
            raise _unavailable(e) from None

    async def uploads_held(self) -> dict[str, float]:
        """The binaries that have part objects, with the newest part's time (Unix), for the
        janitor to compare with the catalog."""
        held: dict[str, float] = {}
        try:
            async for batch in obstore.list(self.store, prefix="uploads/"):
                for o in batch:
                    binary_id = o["path"].split("/")[1]
                    if not is_id(binary_id, "binary"):
                        continue  # not ours: never touched
                    held[binary_id] = max(held.get(binary_id, 0.0), o["last_modified"].timestamp())
        except Exception as e:
            raise _unavailable(e) from None
        return held

    async def write_content(self, binary_id: str, stream: AsyncIterator[bytes], size: int, sha256: str) -> None:
        """Streams a copy into the content object, hashed on a thread beside the upload (see
        ``hashed``); deletes it again if it does not match."""
        key = self._content(binary_id)
        hashed = Hashed(stream, size)
        try:
            await obstore.put_async(self.store, key, hashed.chunks(), chunk_size=PUT_CHUNK, max_concurrency=COPY_CONCURRENCY)
            got = await hashed.result()
        except (Mismatch, asyncio.CancelledError, ConnectionError):
            raise
        except Exception as e:
            cause = _cause(e)
            if isinstance(cause, Mismatch | ConnectionError):
                raise cause from None
            raise _unavailable(e) from None
        if got != (size, sha256):
            try:
                await obstore.delete_async(self.store, key)
            except Exception as e:
                raise _unavailable(e) from None
            raise Mismatch(f"the copy has {got[0]} bytes with SHA-256 {got[1]}; expected {size} bytes, {sha256}")

    async def hash_content(self, binary_id: str) -> tuple[int, str]:
        hashed = Hashed(self._stream(self._content(binary_id)), None)
        try:
            async for _ in hashed.chunks():
                pass
            return await hashed.result()
        except _MISSING:
            raise NotFound("the content is missing from the store") from None
        except Exception as e:
            raise _unavailable(e) from None

    async def check(self) -> None:
        """Raises (in obstore's words) unless the store can be listed: reachable, credentials
        accepted, bucket present."""
        await obstore.list_with_delimiter_async(self.store, prefix="content/")


class Hashed:
    """A stream passed through unchanged while a thread hashes it: the SHA-256 of a copy costs
    no time on the event loop and overlaps the transfer (``Sha256.update`` releases the GIL).
    One thread per stream keeps the chunks in order; at most ``HASH_BACKLOG`` chunks wait for
    it. ``size``: more bytes than this is a Mismatch at once."""

    def __init__(self, stream: AsyncIterator[bytes], size: int | None) -> None:
        self._stream = stream
        self._size = size
        self._hasher = Sha256()
        self._count = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="copy-hash")
        self._backlog: deque[asyncio.Future[None]] = deque()

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            async for chunk in self._stream:
                self._count += len(chunk)
                if self._size is not None and self._count > self._size:
                    raise Mismatch(f"the copy has more than {self._size} bytes")
                self._backlog.append(loop.run_in_executor(self._pool, self._hasher.update, chunk))
                while len(self._backlog) > HASH_BACKLOG:
                    await self._backlog.popleft()
                yield chunk
        finally:
            self._pool.shutdown(wait=False)  # queued hashing still runs; nothing new is taken

    async def result(self) -> tuple[int, str]:
        """The size and SHA-256 of everything the stream yielded."""
        while self._backlog:
            await self._backlog.popleft()
        return self._count, self._hasher.hexdigest()


class _Short(Exception):
    """The body ended before the part's size: the PUT is abandoned."""


def _cause(e: BaseException) -> BaseException | None:
    """Our own exception raised inside the body stream, if obstore wrapped it."""
    seen = e
    while seen is not None:
        if isinstance(seen, TooLarge | _Short | Mismatch | asyncio.CancelledError | ConnectionError):
            return seen
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return None

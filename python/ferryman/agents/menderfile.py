"""The header of a Mender artifact (``.mender``), read from the start of a binary's bytes.

A Mender artifact is an uncompressed tar whose first member, ``version``, says
``{"format": "mender", "version": 3}``; ``header.tar.gz`` (or ``.xz``) follows the manifest and
holds ``header-info``: the artifact's name and the device types it installs on (format 3:
``artifact_provides.artifact_name`` and ``artifact_depends.device_type``; format 2:
``artifact_name`` and ``device_types_compatible``). mender-client compares both with what the
server announces, so the server takes them from the artifact itself.

The standard library's ``tarfile`` reads both tars: the outer one from a bounded prefix of the
binary (the header comes before the payload, so the payload is never read).
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from ferryman.catalog import models as m

__all__ = ["HEADER_PREFIX", "MenderFileError", "is_mender", "parse_header", "refused_target"]

# How much of a binary is read for its header: the version, manifest (one line per payload
# file), signature and header members come first and are small; a header larger than this is
# refused rather than read without bound.
HEADER_PREFIX = 4 << 20
_TAR_BLOCK = 512


class MenderFileError(ValueError):
    """The bytes begin like a Mender artifact but its header cannot be read; says why."""


def is_mender(first_block: bytes) -> bool:
    """Whether bytes begin with a tar member named ``version`` (a Mender artifact's first), so
    only such binaries are read further."""
    return len(first_block) >= _TAR_BLOCK and first_block[:8] == b"version\0" and first_block[257:262] == b"ustar"


def parse_header(prefix: bytes, whole: bool) -> m.MenderHeader | None:
    """The header of the artifact whose first bytes are ``prefix`` (``whole``: the binary has no
    more); None if these bytes are not a Mender artifact; raises MenderFileError if they say
    they are one but its header is unreadable."""
    if not is_mender(prefix[:_TAR_BLOCK]):
        return None
    version: dict[str, Any] | None = None
    try:
        outer = tarfile.open(fileobj=io.BytesIO(prefix), mode="r|")  # noqa: SIM115 (a stream over bytes: nothing to close)
        for member in outer:
            if member.name == "version":
                version = _json(_read(outer, member), "version")
                if version.get("format") != "mender":
                    return None
                if version.get("version") not in (2, 3):
                    raise MenderFileError(f"Mender artifact format version {version.get('version')!r} is not supported")
            elif member.name.startswith("header.tar"):
                if version is None:
                    raise MenderFileError("the header comes before the version member")
                return _header_info(member.name, _read(outer, member))
            elif member.name.startswith("data/"):
                break
    except tarfile.TarError as e:
        # A stream over bytes fails only where they end: in the whole binary, a cut tar; in a
        # prefix, a header that goes past it.
        if whole:
            raise MenderFileError(f"not a readable tar: {e}") from e
    if not whole:
        raise MenderFileError(f"no header in the first {len(prefix)} bytes")
    raise MenderFileError("the artifact has no header.tar member")


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    if f is None:
        raise MenderFileError(f"{member.name} is not a file")
    return f.read()  # raises tarfile.ReadError if the bytes end first


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as e:
        raise MenderFileError(f"{what} is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise MenderFileError(f"{what} is not a JSON object")
    return value


def _header_info(name: str, data: bytes) -> m.MenderHeader:
    compression = {"header.tar.gz": "r:gz", "header.tar.xz": "r:xz", "header.tar": "r:"}.get(name)
    if compression is None:
        raise MenderFileError(f"{name}: only gzip and xz headers are read")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode=compression) as inner:  # type: ignore[call-overload]
            info = inner.extractfile("header-info")
            if info is None:
                raise MenderFileError("header-info is not a file")
            header = _json(info.read(), "header-info")
    except (tarfile.TarError, EOFError, OSError, KeyError) as e:
        raise MenderFileError(f"{name} is unreadable: {e}") from None
    provides = header.get("artifact_provides")
    if isinstance(provides, dict):  # format 3
        name_ = provides.get("artifact_name")
        depends = header.get("artifact_depends") or {}
        types = depends.get("device_type") if isinstance(depends, dict) else None
    else:  # format 2
        name_, types, provides = header.get("artifact_name"), header.get("device_types_compatible"), {}
    if not isinstance(name_, str) or not name_:
        raise MenderFileError("header-info names no artifact")
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise MenderFileError("header-info names no compatible device types")
    kept = {k: v for k, v in provides.items() if isinstance(v, str) and k != "artifact_name"}
    return m.MenderHeader(artifact_name=name_, device_types=types, provides=kept)


def refused_target(target: str, device_types: list[str] | None) -> str | None:
    """Why a binary for ``target`` must not go into a bundle, if it is a Mender artifact for
    ``device_types`` that excludes devices it would be offered to (a bundle offers a binary to
    the devices of its target, or to every device for ``any``); None when it may."""
    if device_types is None:
        return None
    if target == "any":
        return f"a Mender artifact for {', '.join(device_types)} cannot go to every target; give the binary one of them"
    if target not in device_types:
        return f"a Mender artifact for {', '.join(device_types)} cannot go to devices of target {target}"
    return None

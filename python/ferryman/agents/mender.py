"""Mender's device API: authentication requests, deployment statuses, and the identity a
device joins with. Pure; ``server/handlers/mender.py`` does the HTTP.

mender-client signs the exact bytes of its authentication request (``X-MEN-Signature``, base64
of an RSA PKCS#1 v1.5 SHA-256 or an Ed25519 signature), so the signature is checked against the
raw body before anything parses it, with the key the body itself carries; whether that key may
join is the catalog's business (admission).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Literal

import msgspec

from ferryman.catalog import models as m
from ferryman.errors import Invalid, InvalidSignature, Unauthenticated
from ferryman.signing import load_public_key

__all__ = ["ABORTABLE", "AuthRequest", "NextRequest", "StatusUpdate", "identifier_of", "status_outcome", "verify_auth_request"]

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,255}")
# Statuses of a deployment still under way: a pulled release aborts them (409).
ABORTABLE = frozenset({"downloading", "pause_before_installing", "installing", "pause_before_committing",
                       "pause_before_rebooting", "rebooting"})  # fmt: skip


class _AuthBody(msgspec.Struct):
    id_data: str
    pubkey: str
    tenant_token: str = ""


@dataclass(frozen=True)
class AuthRequest:
    """A verified authentication request: the identity (JSON text, as sent), the device's key
    (PEM, as sent) and its keyid."""

    identity: str
    public_key: str
    keyid: str


class DeviceProvides(msgspec.Struct):
    artifact_name: str = ""
    device_type: str = ""


class NextRequest(msgspec.Struct):
    device_provides: DeviceProvides = msgspec.field(default_factory=DeviceProvides)


# The statuses mender-client sends; anything else is refused (422), as Mender's server does.
DeploymentStatus = Literal["downloading", "pause_before_installing", "installing", "pause_before_committing",
                           "pause_before_rebooting", "rebooting", "success", "failure", "already-installed",
                           "noartifact"]  # fmt: skip


class StatusUpdate(msgspec.Struct):
    status: DeploymentStatus
    substate: str | None = None


def verify_auth_request(raw: bytes, signature: str | None) -> AuthRequest:
    """Checks ``signature`` over the exact ``raw`` body with the key the body names, then reads
    it; raises Unauthenticated for a missing or wrong signature, Invalid for a body that is not
    an authentication request."""
    if not signature:
        raise Unauthenticated("an X-MEN-Signature header is required")
    try:
        body = msgspec.json.decode(raw, type=_AuthBody)
    except msgspec.DecodeError as e:
        raise Invalid(f"not an authentication request: {e}") from None
    try:
        key = load_public_key(body.pubkey.encode())
    except ValueError as e:
        raise Invalid(f"pubkey is not a public key: {e}", {"pubkey": ["not an RSA or Ed25519 public key"]}) from None
    try:
        sig = base64.b64decode(signature.strip(), validate=True)
    except ValueError:  # binascii.Error is one
        raise Unauthenticated("X-MEN-Signature is not base64") from None
    algorithm = "ed25519" if key.kind == "ed25519" else "rsa-pkcs1v15-sha256"
    message = raw if algorithm == "ed25519" else hashlib.sha256(raw).digest()
    try:
        key.verify(message, sig, algorithm)
    except (InvalidSignature, ValueError):
        raise Unauthenticated("the signature does not verify over the request body with its pubkey") from None
    return AuthRequest(identity=body.id_data, public_key=key.spki_pem, keyid=key.keyid)


def identifier_of(identity: str) -> str:
    """A device identifier from Mender identity data (a JSON object of attributes): its values
    in key order joined by ``_`` when that makes a valid identifier (``52:54:00:12:34:56``),
    else ``mender-`` and a digest of the identity."""
    try:
        attrs = json.loads(identity)
    except ValueError:
        attrs = None
    if isinstance(attrs, dict) and attrs:
        joined = "_".join(str(attrs[k]) for k in sorted(attrs))
        if _IDENTIFIER.fullmatch(joined):
            return joined
    return "mender-" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def status_outcome(status: str) -> tuple[m.ReportStatus | None, str | None]:
    """What a deployment status means for the device's report and its action: the report
    status (None: nothing to report) and, for a final status, the action's result."""
    match status:
        case "downloading":
            return "downloading", None
        case "installing" | "rebooting":
            return "installing", None
        case "success" | "already-installed":
            return "installed", "success"
        case "failure":
            return "failed", "failure"
    return None, None

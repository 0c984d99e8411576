"""A client for the Ferryman API: ``Client`` (async, aiohttp) and ``SyncClient`` for scripts.

Typed operations (``create_binary``, ``create_release``, ``upload``, ``check_in``, ...) take
and return the server's own msgspec models (``ferryman.catalog.models``); ``get``, ``post``,
``patch``, ``delete`` and ``pages`` reach every route of ``GET /api/v1/openapi.json`` and
return decoded JSON. Errors raise :class:`ApiError`, which carries the RFC 9457 problem
(``status``, ``title``, ``detail``, ``errors``), or :class:`TransportError` when the server
cannot be reached.
"""

from ferryman.client.api import Client, SyncClient
from ferryman.client.transport import ApiError, TransportError
from ferryman.client.upload import Uploaded

__all__ = ["ApiError", "Client", "SyncClient", "TransportError", "Uploaded"]

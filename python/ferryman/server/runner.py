"""Running the app on a socket, with the limits that keep a flood of connections cheap.

aiohttp bounds neither how many connections it holds nor how long a client may take to send a
request's headers (an idle connection is closed only after its keep-alive timeout). Two limits
are added here:

- **Header timeout.** aiohttp's keep-alive timer already runs from the moment a connection opens
  and from the end of each response, and closes the connection if no complete request has
  arrived by then; it is set to ``Config.header_timeout``. So a client that sends partial headers
  (or nothing) is dropped after that many seconds, and so is an idle keep-alive connection.
  Bodies are not covered: uploads have their own idle timeout (``Config.upload_idle_timeout``).
- **Connection cap.** Beyond ``Config.max_connections`` open connections a new one is answered
  with a fixed 503 and closed, without parsing anything. Connections accepted in one burst are
  counted once they start, so the cap can be passed by at most one accept burst (the listen
  backlog).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from ferryman.config import Config

__all__ = ["RUNNER_OPTIONS", "start_site"]

log = logging.getLogger("ferryman.server")

# A refused upload is answered at once; the rest of its body is read and dropped for at most a
# second (aiohttp's "lingering close") so that the client sees the answer rather than a reset.
RUNNER_OPTIONS: dict[str, Any] = {"lingering_time": 1.0, "shutdown_timeout": 10.0}
BACKLOG = 128
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Type: application/problem+json\r\nContent-Length: 119\r\n\r\n"
    b'{"type":"about:blank","title":"Service unavailable","status":503,'
    b'"detail":"too many open connections","errors":{}}\n'
)


class _Refuse(asyncio.Protocol):
    """Answers 503 and closes: the whole cost of a connection over the cap."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(BUSY)
        transport.close()


class CappedSite(web.TCPSite):
    """A TCP site that refuses connections beyond ``max_connections`` (see the module doc)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, max_connections: int, reuse_port: bool = False) -> None:
        super().__init__(runner, host, port, backlog=BACKLOG, reuse_address=True, reuse_port=reuse_port)
        self._max = max_connections

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        server = self._runner.server
        assert server is not None
        limit = self._max

        def factory() -> asyncio.Protocol:
            if len(server.connections) >= limit:
                return _Refuse()
            return server()

        self._server = await asyncio.get_running_loop().create_server(
            factory,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


async def start_site(app: web.Application, config: Config, port: int | None = None) -> tuple[web.AppRunner, CappedSite]:
    """Sets the app up and listens on ``config.host`` and ``port`` (default ``config.port``)."""
    runner = web.AppRunner(
        app,
        keepalive_timeout=config.header_timeout,
        access_log=logging.getLogger("aiohttp.access") if config.access_log else None,
        **RUNNER_OPTIONS,
    )
    await runner.setup()
    # With several workers each listens on the port itself; the kernel spreads connections.
    site = CappedSite(runner, config.host, config.port if port is None else port, config.max_connections, config.workers > 1)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site

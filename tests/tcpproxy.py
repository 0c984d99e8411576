"""A TCP proxy in front of a test server that can misbehave on downloads: the first response to
a request for ``/dl/`` is cut (the connection closed) or stalled (held until released) after a
number of bytes. Requests' first lines are recorded, with their Range headers, so a test can
see what a client asked for."""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["Proxy"]


class Proxy:
    def __init__(self, upstream_port: int, *, after: int, mode: str = "cut") -> None:
        assert mode in ("cut", "stall")
        self.upstream = upstream_port
        self.after = after
        self.mode = mode
        self.released = threading.Event()
        self.tripped = threading.Event()  # the misbehaviour happened
        self.requests: list[str] = []  # "GET /dl/... | Range: bytes=N-" per request seen
        self._armed = True
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.released.set()
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:
            client.close()
            return
        misbehave = threading.Event()  # this connection carries the download to break
        threading.Thread(target=self._requests, args=(client, upstream, misbehave), daemon=True).start()
        sent = 0
        try:
            while chunk := upstream.recv(65536):
                if misbehave.is_set():
                    room = self.after - sent
                    if room <= len(chunk):
                        client.sendall(chunk[: max(room, 0)])
                        self.tripped.set()
                        if self.mode == "stall":
                            self.released.wait()
                            client.sendall(chunk[max(room, 0) :])
                            misbehave.clear()
                            continue
                        return
                    sent += len(chunk)
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            # shutdown, not just close: the other thread's recv on the socket would keep the
            # connection open (no FIN) until it returned.
            for s in (client, upstream):
                for end in (lambda s=s: s.shutdown(socket.SHUT_RDWR), s.close):
                    with contextlib.suppress(OSError):
                        end()

    def _requests(self, client: socket.socket, upstream: socket.socket, misbehave: threading.Event) -> None:
        try:
            while chunk := client.recv(65536):
                head = chunk.split(b"\r\n\r\n", 1)[0].decode("latin-1")
                lines = head.split("\r\n")
                if lines and " HTTP/1." in lines[0]:
                    ranges = [h for h in lines[1:] if h.lower().startswith("range:")]
                    self.requests.append(" | ".join([lines[0], *ranges]))
                    if lines[0].split(" ")[1].startswith("/dl/") and lines[0].startswith("GET"):
                        with self._lock:
                            if self._armed:
                                self._armed = False
                                misbehave.set()
                upstream.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

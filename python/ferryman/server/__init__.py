"""The HTTP service (aiohttp): ``create_app(config)`` builds it, ``serve(config)`` runs it, and
``start_site`` listens for it with the connection limits (tests use it too)."""

from ferryman.server.app import create_app, serve
from ferryman.server.runner import start_site

__all__ = ["create_app", "serve", "start_site"]

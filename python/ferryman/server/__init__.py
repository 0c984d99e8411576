"""The HTTP service (aiohttp): ``create_app(config)`` builds it, ``serve(config)`` runs it."""

from ferryman.server.app import create_app, serve

__all__ = ["create_app", "serve"]

"""The HTTP service (aiohttp): ``create_app(config)`` builds it, ``serve(config)`` runs it."""

from ferryman.server.app import RUNNER_OPTIONS, create_app, serve

__all__ = ["RUNNER_OPTIONS", "create_app", "serve"]

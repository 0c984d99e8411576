"""Where the CLI connects, and with which token: flags, then a profile chosen by name
(``--profile``, ``$FERRYMAN_PROFILE``), then ``FERRYMAN_URL`` / ``FERRYMAN_TOKEN``, then the
config file's default profile, then the local server. Profiles live in ``~/.config/ferryman/config.toml`` (``$FERRYMAN_CONFIG`` or
``$XDG_CONFIG_HOME`` move it)::

    default = "prod"

    [profiles.prod]
    url = "https://ferryman.example.com"
    token_file = "prod.token"      # relative to the config file; readable by its owner only

A token written into the config file itself is accepted only when that file is readable by its
owner only, as ssh treats its keys: a token others can read is refused, not used.
"""

from __future__ import annotations

import argparse
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from ferryman.client import Client
from ferryman.errors import FerrymanError

__all__ = ["LOCAL", "add_options", "client", "config_path", "connection", "load", "save_profile"]

LOCAL = "http://127.0.0.1:8080"


class ConfigError(FerrymanError):
    """The config file or a token file is unusable (the message says how to fix it)."""


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="server URL (default: the profile's, else $FERRYMAN_URL, else " + LOCAL + ")")
    parser.add_argument("--token", help="API token (default: the profile's, else $FERRYMAN_TOKEN)")
    parser.add_argument(
        "--profile", metavar="NAME", help="a profile of the config file (default $FERRYMAN_PROFILE, else its default)"
    )


def config_path() -> Path:
    if os.environ.get("FERRYMAN_CONFIG"):
        return Path(os.environ["FERRYMAN_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "ferryman" / "config.toml"


def _private(path: Path) -> None:
    """Refuses a file that holds a token when anyone but its owner may read or change it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:  # any permission for the group or others
        raise ConfigError(f"{path} holds a token but others may read it (mode {mode:o}): chmod 600 {path}")


def load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None


def _profile(path: Path, config: dict[str, Any], name: str) -> tuple[str | None, str | None]:
    profiles = config.get("profiles", {})
    entry = profiles.get(name) if isinstance(profiles, dict) else None
    if not isinstance(entry, dict):
        known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) else ""
        raise ConfigError(f"no profile {name!r} in {path} (profiles: {known or 'none'})")
    token = entry.get("token")
    if token is not None:
        _private(path)
    elif entry.get("token_file"):
        token_file = path.parent / Path(str(entry["token_file"])).expanduser()
        try:
            _private(token_file)
            token = token_file.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(f"profile {name!r}: token file {token_file} does not exist") from None
    url = entry.get("url")
    return (str(url) if url else None), (str(token) if token else None)


def connection(args: argparse.Namespace) -> tuple[str, str | None]:
    """The server URL and token this invocation uses (see the module doc for the order). A
    profile's token goes only to that profile's URL: ``--url`` elsewhere sends no token."""
    path = config_path()
    url, token = getattr(args, "url", None), getattr(args, "token", None)
    chosen = getattr(args, "profile", None) or os.environ.get("FERRYMAN_PROFILE")
    env_url, env_token = os.environ.get("FERRYMAN_URL"), os.environ.get("FERRYMAN_TOKEN")
    if chosen:
        p_url, p_token = _profile(path, load(path), chosen)
    elif env_url or env_token:
        return url or env_url or LOCAL, token or env_token
    else:
        config = load(path)
        if not config.get("default"):
            return url or LOCAL, token
        p_url, p_token = _profile(path, config, str(config["default"]))
    if token is None and (url is None or url.rstrip("/") == (p_url or "").rstrip("/")):
        token = p_token
    return url or p_url or LOCAL, token


def client(args: argparse.Namespace) -> Client:
    return Client(*connection(args))


def _toml_string(value: str) -> str:
    # TOML basic strings take JSON's escapes for the characters that need one.
    import json

    return json.dumps(value)


def save_profile(name: str, url: str, token: str | None, make_default: bool) -> tuple[Path, Path | None]:
    """Adds or replaces a profile in the config file, its token in a file of its own (mode 600);
    returns both paths. The file is rewritten from what it held (comments are not kept)."""
    path = config_path()
    config = load(path)
    profiles = config.setdefault("profiles", {})
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    entry: dict[str, Any] = {"url": url}
    token_file = None
    if token:
        token_file = path.parent / f"{name}.token"
        _write_private(token_file, token + "\n")
        entry["token_file"] = token_file.name
    profiles[name] = entry
    if make_default or "default" not in config:
        config["default"] = name
    lines = [f"default = {_toml_string(str(config['default']))}"]
    for pname, p in profiles.items():
        lines.append(f"\n[profiles.{_toml_string(pname)}]")
        lines += [f"{k} = {_toml_string(str(v))}" for k, v in p.items() if isinstance(v, str)]
    _write_private(path, "\n".join(lines) + "\n")
    return path, token_file


def _write_private(path: Path, text: str) -> None:
    """Writes ``text`` to ``path``, readable by its owner only, whole or not at all: into a new
    file (so no mode or content of an older one survives) renamed over the old."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)

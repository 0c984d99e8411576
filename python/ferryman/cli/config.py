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
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} holds a token but others may read it (mode {stat.S_IMODE(mode):o}): chmod 600 {path}")


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
        known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) and profiles else "none"
        raise ConfigError(f"no profile {name!r} in {path} (profiles: {known})")
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
    env = os.environ.get("FERRYMAN_URL"), os.environ.get("FERRYMAN_TOKEN")
    if chosen:
        base, bound = _profile(path, load(path), chosen), True
    elif any(env):
        base, bound = env, False
    else:
        config = load(path)
        base, bound = (_profile(path, config, str(config["default"])), True) if config.get("default") else ((None, None), False)
    if token is None and (not bound or url is None or url.rstrip("/") == (base[0] or "").rstrip("/")):
        token = base[1]
    return url or base[0] or LOCAL, token


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
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        entry["token_file"] = token_file.name
    profiles[name] = entry
    if make_default or "default" not in config:
        config["default"] = name
    lines = [f"default = {_toml_string(str(config['default']))}"]
    for pname, p in profiles.items():
        lines.append(f"\n[profiles.{_toml_string(pname)}]")
        lines += [f"{k} = {_toml_string(str(v))}" for k, v in p.items() if isinstance(v, str)]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path, token_file

"""The operator CLI's parts that need no server: phases and tags in an operator's words, the
channel graph drawn as text, which server and token a run uses, the help of every command, and
the completion scripts run in real bash, zsh and fish."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import _missing
from ferryman.catalog import models as m
from ferryman.cli import commands, main, parser
from ferryman.cli.completion import script
from ferryman.cli.config import LOCAL, connection, save_profile
from ferryman.cli.examples import EXAMPLES
from ferryman.cli.output import fields_text, table
from ferryman.cli.resources import rfc3339, time_or_none
from ferryman.cli.steering import graph_lines, parse_phase, parse_tag
from ferryman.errors import FerrymanError


@pytest.mark.parametrize(
    ("words", "phase"),
    [
        ("25%", m.PhaseIn(mode="percent", value=0.25)),
        ("100%", m.PhaseIn(mode="percent", value=1.0)),
        ("0%", m.PhaseIn(mode="percent", value=0.0)),
        ("12.5%", m.PhaseIn(mode="percent", value=0.125)),
        ("40", m.PhaseIn(mode="count", value=40)),
        ("1", m.PhaseIn(mode="count", value=1)),
        ("tags:canary,beta", m.PhaseIn(mode="tags", tags=["canary", "beta"])),
        ("tags: canary , beta,", m.PhaseIn(mode="tags", tags=["canary", "beta"])),
        ("TAGS:Canary", m.PhaseIn(mode="tags", tags=["Canary"])),
        ("none", None),
        (" None ", None),
    ],
)
def test_phase_words(words: str, phase: m.PhaseIn | None):
    assert parse_phase(words) == phase


@pytest.mark.parametrize("words", ["0.5", "0", "-3", "101%", "-1%", "x%", "%", "tags:", "tags: ,", "half", "", "4.0"])
def test_phase_words_refused(words: str):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_phase(words)


def test_tags_add_and_remove():
    assert parse_tag("+canary") == ("+", "canary")
    assert parse_tag("canary") == ("+", "canary")
    assert parse_tag("-old") == ("-", "old")
    for bad in ("+", "-", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_tag(bad)


def test_times_take_minutes_and_none():
    assert rfc3339("2026-12-24T06:00Z") == "2026-12-24T06:00:00Z"
    assert rfc3339("2026-12-24T06:00+01:00") == "2026-12-24T06:00:00+01:00"
    assert rfc3339("2026-12-24T06:00:30Z") == "2026-12-24T06:00:30Z"
    assert rfc3339("2026-12-24") == "2026-12-24"  # left for the server to refuse or take
    assert rfc3339("2026-12-24T06:00") == "2026-12-24T06:00:00"
    assert rfc3339("2026-12-24T06:00-05:30") == "2026-12-24T06:00:00-05:30"
    assert rfc3339("2026-12-24T06:00:00.5Z") == "2026-12-24T06:00:00.5Z"
    assert rfc3339("2026-12-24 06:00Z") == "2026-12-24 06:00Z"
    assert rfc3339("2026-12-24T06:00Zjunk") == "2026-12-24T06:00Zjunk"
    assert time_or_none("none") is None and time_or_none("") is None
    assert time_or_none("2026-12-24T06:00Z") == "2026-12-24T06:00:00Z"


def _release(id_: str, name: str, next_id: str | None, created: str, **kw: object) -> m.Release:
    fields = {"version": None, "version_requirement": None, "required": False, "disabled": False, "schedule_at": None,
              "phase": None, "claimed": 0, "updated_at": created} | kw  # fmt: skip
    return m.Release(id=id_, channel_id="chn_x", name=name, bundle_id="bun_x", next_release_id=next_id, created_at=created,
                     **fields)  # type: ignore[arg-type]  # fmt: skip


def test_graph_draws_predecessors_above_and_the_latest_last():
    # a -> b -> d, c -> d (c made before b), e -> b: d is the latest.
    releases = [
        _release(
            "rel_d",
            "d",
            None,
            "4",
            phase={"mode": "percent", "value": 0.25},
            halted=True,
            halted_reason="failures",
            schedule_at="2030-01-01T00:00:00Z",
        ),
        _release("rel_b", "b", "rel_d", "3", required=True, version="1.1.0"),
        _release("rel_a", "a", "rel_b", "1"),
        _release("rel_c", "c", "rel_d", "2", disabled=True),
        _release("rel_e", "e", "rel_b", "5"),
    ]
    lines = graph_lines(releases, {"rel_b": 4})
    assert [line.split("  rel_")[0].rstrip() for line in lines] == ["   └→ c", "      └→ a", "      └→ e", "   └→ b", "● d"]
    assert "DISABLED" in lines[0] and "REQUIRED" in lines[3] and "1.1.0" in lines[3] and "4 installed" in lines[3]
    assert "phase 25% of devices" in lines[4] and "HALTED (failures)" in lines[4] and lines[4].endswith("(latest)")
    assert "from 2030-01-01T00:00:00Z" in lines[4]
    assert all("phase" not in line and "HALTED" not in line and " from " not in line for line in lines[:4])
    assert graph_lines([_release("rel_h", "h", None, "1", halted=True)]) == ["● h  rel_h  HALTED  (latest)"]
    assert graph_lines([]) == []


def test_tables_and_fields():
    assert table([["a", "bb"], ["ccc", "d"]], ["H1", "H2"]).splitlines() == ["H1   H2", "a    bb", "ccc  d"]
    text = fields_text({"id": "x", "tags": ["a", "b"], "none": None, "meta": {"k": 1}, "pem": "L1\nL2\n", "on": True})
    assert text.splitlines() == ["id    x", "tags  a,b", "none  -", "meta:", "  k  1", "pem   L1", "      L2", "on    yes"]


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"url": None, "token": None, "profile": None} | kw)


def test_connection_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "config.toml"
    monkeypatch.setenv("FERRYMAN_CONFIG", str(config))
    for var in ("FERRYMAN_URL", "FERRYMAN_TOKEN", "FERRYMAN_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    assert connection(_args()) == (LOCAL, None)  # no file: the local server
    save_profile("prod", "https://prod.example", "fm_prod", make_default=False)
    save_profile("lab", "http://lab:8080", "fm_lab", make_default=False)
    assert connection(_args()) == ("https://prod.example", "fm_prod")  # the first saved is the default
    assert connection(_args(profile="lab")) == ("http://lab:8080", "fm_lab")
    monkeypatch.setenv("FERRYMAN_URL", "http://env:1")
    monkeypatch.setenv("FERRYMAN_TOKEN", "fm_env")
    assert connection(_args()) == ("http://env:1", "fm_env")  # the environment beats the default profile
    assert connection(_args(profile="lab")) == ("http://lab:8080", "fm_lab")  # a chosen profile beats it
    monkeypatch.setenv("FERRYMAN_PROFILE", "lab")
    assert connection(_args()) == ("http://lab:8080", "fm_lab")
    assert connection(_args(profile="prod")) == ("https://prod.example", "fm_prod")  # the flag beats the variable
    assert connection(_args(token="fm_flag")) == ("http://lab:8080", "fm_flag")
    # A profile's token goes to its own URL only.
    assert connection(_args(url="http://evil:1")) == ("http://evil:1", None)
    assert connection(_args(url="http://zzz:1")) == ("http://zzz:1", None)  # sorts after the profile's URL
    assert connection(_args(url="http://lab:8080/")) == ("http://lab:8080/", "fm_lab")
    monkeypatch.delenv("FERRYMAN_PROFILE")
    assert connection(_args(url="http://other:1")) == ("http://other:1", "fm_env")  # the environment's token goes along
    monkeypatch.delenv("FERRYMAN_URL")
    assert connection(_args()) == (LOCAL, "fm_env")
    monkeypatch.delenv("FERRYMAN_TOKEN")
    assert connection(_args(url="http://elsewhere:1")) == ("http://elsewhere:1", None)
    save_profile("lab", "http://lab:9090", None, make_default=True)
    assert connection(_args()) == ("http://lab:9090", None)
    assert "fm_" not in config.read_text()


def test_inline_tokens_need_a_private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    config = tmp_path / "config.toml"
    config.write_text('default = "p"\n[profiles.p]\nurl = "http://h:1"\ntoken = "fm_inline"\n')
    monkeypatch.setenv("FERRYMAN_CONFIG", str(config))
    for var in ("FERRYMAN_URL", "FERRYMAN_TOKEN", "FERRYMAN_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    config.chmod(0o600)
    assert connection(_args()) == ("http://h:1", "fm_inline")
    config.chmod(0o640)
    assert main(["channels", "list"]) == 1
    assert "chmod 600" in capsys.readouterr().err
    config.write_text("not toml [")
    assert main(["channels", "list"]) == 1
    assert str(config) in capsys.readouterr().err


def test_every_command_has_an_example_in_its_help(capsys):
    paths = [path for path, _ in commands(parser())]
    assert len(paths) > 70 and set(paths) == set(EXAMPLES)
    for path in paths:
        assert main([*path.split(), "--help"]) == 0
        out = capsys.readouterr().out
        assert "\nexample:\n  " in out and EXAMPLES[path].splitlines()[0] in out, path


def test_a_tag_to_remove_is_not_taken_for_an_option(monkeypatch: pytest.MonkeyPatch):
    seen = {}

    async def fake(args: argparse.Namespace) -> int:
        seen["tag"] = args.tag
        return 0

    p = parser()
    monkeypatch.setattr("ferryman.cli.parser", lambda: p)
    update = next(c for path, c in commands(p) if path == "devices update")
    update.set_defaults(func=fake)
    assert main(["devices", "update", "dev_" + "0" * 26, "--tag", "-old", "--tag", "+new", "--tag", "x"]) == 0
    assert seen["tag"] == [("-", "old"), ("+", "new"), ("+", "x")]


# Completion, in the shells themselves ----------------------------------------------------------


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} (Debian package {name})")
    assert path is not None
    return path


CASES = [
    (["ferryman", "rel"], {"releases"}),
    (["ferryman", "releases", ""], {"create", "list", "show", "update", "stats", "hold", "resume"}),
    (["ferryman", "releases", "update", "stable/v2", "--ph"], {"--phase"}),
    (["ferryman", "api-keys", "create", "--role", ""], {"admin", "publisher", "signer", "releaser", "viewer"}),
    (["ferryman", "devices", "list", "--admission", "p"], {"pending"}),
    # An option's value that happens to be a command's name is not taken for one.
    (["ferryman", "upload", "--artifact", "releases", "--t"], {"--target", "--token"}),
]


def _bash_complete(script_path: Path, words: list[str]) -> set[str]:
    quoted = " ".join(f"'{w}'" for w in words)
    code = (f"source {script_path}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _ferryman; "
            'printf "%s\\n" "${COMPREPLY[@]}"')  # fmt: skip
    r = subprocess.run([_shell("bash"), "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not r.stderr, r.stderr
    return set(r.stdout.split())


def _zsh_complete(script_path: Path, words: list[str]) -> set[str]:
    quoted = " ".join(f"'{w}'" for w in words)
    # compadd and _files are zsh's completion builtins: stand-ins print what they are given.
    code = (f"compadd() {{ shift; print -l -- $@ }}; _files() {{ print FILES }}; source {script_path}; "
            f"words=({quoted}); CURRENT={len(words)}; _ferryman")  # fmt: skip
    r = subprocess.run([_shell("zsh"), "-f", "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not r.stderr, r.stderr
    return set(r.stdout.split())


def _fish_complete(script_path: Path, words: list[str]) -> set[str]:
    line = " ".join(words)
    r = subprocess.run([_shell("fish"), "--no-config", "-c", f"source {script_path}; complete -C '{line}'"],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 0 and not r.stderr, r.stderr
    return {x.split("\t")[0] for x in r.stdout.splitlines()}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_in_each_shell(shell: str, tmp_path: Path):
    path = tmp_path / f"ferryman.{shell}"
    path.write_text(script(parser(), shell))
    complete = {"bash": _bash_complete, "zsh": _zsh_complete, "fish": _fish_complete}[shell]
    for words, expected in CASES:
        got = complete(path, words)
        prefix = words[-1]
        want = {w for w in expected if w.startswith(prefix)} if shell != "zsh" else expected
        # zsh filters by the prefix itself (compadd is given every candidate).
        assert want <= got, (shell, words, got)
        if shell != "zsh":
            assert all(g.startswith(prefix) for g in got), (shell, words, got)


def test_completion_command_prints_the_script(capsys):
    assert main(["completion", "fish"]) == 0
    assert "complete -c ferryman" in capsys.readouterr().out
    assert main(["completion", "tcsh"]) == 2


def test_a_name_must_match_exactly_one():
    from ferryman.cli.refs import Ambiguous, Ref, _one, ref
    from ferryman.errors import NotFound

    assert _one("channel", "stable", [("chn_1", "stable")]) == "chn_1"
    five = [(f"bun_{i}", "b") for i in range(5)]
    with pytest.raises(Ambiguous) as e:
        _one("bundle", "b", five)
    assert "bun_4" in str(e.value) and "…" not in str(e.value)
    with pytest.raises(Ambiguous) as e:
        _one("bundle", "b", [*five, ("bun_5", "b")])
    assert "(bun_4), …; give an ID" in str(e.value) and "bun_5" not in str(e.value)
    with pytest.raises(NotFound, match="no channel named 'stable'"):
        _one("channel", "stable", [])
    with pytest.raises(Ambiguous, match=r"2 bundles are named 'b': b \(bun_1\), b \(bun_2\); give an ID"):
        _one("bundle", "b", [("bun_1", "b"), ("bun_2", "b")])
    many = [(f"rel_{i}", f"ch{i}/v1") for i in range(7)]
    with pytest.raises(Ambiguous, match=r"7 releases .*ch4/v1 \(rel_4\), …; give an ID") as e:
        _one("release", "v1", many)
    assert "rel_5" not in str(e.value)
    with pytest.raises(Ambiguous, match="2 API keys are named"):
        _one("api_key", "ci", [("apk_1", "ci"), ("apk_2", "ci")])
    assert ref("channel")("stable") == Ref("channel", "stable")
    with pytest.raises(argparse.ArgumentTypeError, match="empty channel"):
        ref("channel")(" ")


def test_ids_pass_and_ids_of_another_kind_are_named():
    import asyncio

    from ferryman.cli.refs import Ref, resolve
    from ferryman.errors import FerrymanError

    channel = "chn_" + "0" * 26
    # An ID of the right kind needs no lookup (no client is given).
    assert asyncio.run(resolve(None, Ref("channel", channel))) == channel  # type: ignore[arg-type]
    for kind, text, message in (
        ("channel", "rel_" + "0" * 26, "is a release ID, not a channel ID"),
        ("api_key", "ovr_" + "0" * 26, "is a bundle override ID, not an API key ID"),
        ("override", "apk_" + "0" * 26, "is an API key ID, not a bundle override ID"),
        ("webhook", "hook", "'hook' is not a webhook ID (whk_…)"),
        ("event", "x", "'x' is not an event ID (evt_…)"),
    ):
        with pytest.raises(FerrymanError, match=re.escape(message)):
            asyncio.run(resolve(None, Ref(kind, text)))  # type: ignore[arg-type]


def test_profiles_are_written_private_and_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "a" / "b" / "config.toml"
    monkeypatch.setenv("FERRYMAN_CONFIG", str(config))
    for var in ("FERRYMAN_URL", "FERRYMAN_TOKEN", "FERRYMAN_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    _, token_file = save_profile("p", "http://h:1", "fm_a_rather_long_token", make_default=False)
    assert oct(config.parent.stat().st_mode & 0o777) == "0o700"
    assert token_file is not None and oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    token_file.chmod(0o644)
    (config.parent / "config.toml.tmp").write_text("junk left by a crash " * 20)
    save_profile("p", "http://h:2", "fm_short", make_default=False)
    assert token_file.read_text() == "fm_short\n" and oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert connection(_args()) == ("http://h:2", "fm_short")
    for mode in (0o644, 0o640, 0o604, 0o601, 0o610):
        token_file.chmod(mode)
        with pytest.raises(FerrymanError, match=f"mode {mode:o}\\): chmod 600"):
            connection(_args())
    token_file.chmod(0o400)
    assert connection(_args()) == ("http://h:2", "fm_short")
    token_file.unlink()
    with pytest.raises(FerrymanError, match=r"token file .*p\.token does not exist"):
        connection(_args())
    with pytest.raises(FerrymanError, match=r"no profile 'x' in .* \(profiles: p\)"):
        connection(_args(profile="x"))
    config.write_text('default = "x"\n')
    config.chmod(0o600)
    with pytest.raises(FerrymanError, match=r"no profile 'x' in .* \(profiles: none\)"):
        connection(_args())


def test_resource_words():
    from ferryman.cli.refs import Ref
    from ferryman.cli.resources import RESOURCES, changed, metadata, nullable, optional_ref
    from ferryman.releases.words import phase_words

    assert phase_words(None) == "every device"
    assert phase_words({"mode": "percent", "value": 0.25}) == "25% of devices"
    assert phase_words({"mode": "count", "value": 40.0}) == "the first 40 devices"
    assert phase_words({"mode": "tags", "tags": ["a", "b"]}) == "devices tagged a,b"
    assert nullable("") is None and nullable("x") == "x"
    assert metadata('{"team": "os"}') == {"team": "os"}
    for bad in ("[1]", "nope", '"text"'):
        with pytest.raises(argparse.ArgumentTypeError):
            metadata(bad)
    assert optional_ref("cohort")("") is None and optional_ref("cohort")("field") == Ref("cohort", "field")

    def event(before, after):
        return m.Event(id="evt_1", at="t", actor="a", action="update", resource_type="r", resource_id="x",
                       before=before, after=after)  # fmt: skip

    stamp = "".join(["updated", "_at"])  # made at run time: not the same object as the literal
    same = "".join(["o", "s"])  # equal to "os", not the same object
    before = {"a": 1, "b": 2, stamp: 1, "zone": 1, "team": same}
    after = {"a": 1, "b": 3, "c": 4, stamp: 2, "zone": 2, "team": "os"}
    assert changed(event(before, after)) == "b,zone,c"
    assert changed(event(None, {"a": 1})) == "" and changed(event({"a": 1}, None)) == ""
    names = {r.group: (r.one, r.key) for r in RESOURCES if r.show}
    assert names["binaries"] == ("binary", "binary_id") and names["api-keys"] == ("api key", "key_id")
    assert names["bundle-overrides"] == ("bundle override", "override_id") and names["channels"] == ("channel", "channel_id")


def test_completion_tree():
    from ferryman.cli.completion import tree

    words, values = tree(parser())
    assert "--lines" in words["events tail"] and "-n" not in words["events tail"]  # long flags only
    assert "--json" not in words["profiles add"]  # hidden options are not offered
    assert "--help" in words["events tail"] and "id" not in words["channels show"]  # nor positionals
    assert values["upload --part-size"] is None and values["api-keys create --role"] == list(m.ROLES)
    assert "upload --create" not in values and "releases update --required" not in values  # flags take no value
    assert words[""][:2] == ["api-keys", "upload"] and "update" in words["releases"]

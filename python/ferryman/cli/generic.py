"""``list``, ``show``, ``update`` and ``delete`` of every resource, built from the table in
``cli/resources.py``: the parsers and the commands, through ``Client``'s typed calls only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ferryman.cli.config import client
from ferryman.cli.output import fields_text, out, out_list
from ferryman.cli.refs import ref
from ferryman.cli.resources import RESOURCES, Option, Resource, by_group
from ferryman.client import Client
from ferryman.paths import at

__all__ = ["DETAILS", "add_field_options", "add_parsers", "changes_of", "collect", "dest", "detail"]

T = TypeVar("T")

# Renderers of one resource for people, where every field in a list is not enough (the channel
# graph, a binary's parts and signatures): group -> async (client, resource) -> text. Filled in
# by cli/steering.py.
DETAILS: dict[str, Callable[[Client, Any], Awaitable[str]]] = {}


def dest(o: Option) -> str:
    # Prefixed: an option's field may share a name with a common option (a webhook's url).
    return "f_" + o.field


def metavar(o: Option) -> str | None:
    return None if o.choices else o.metavar or o.flag.lstrip("-").upper()


def _columns(r: Resource) -> tuple[list[str], Callable[[Any], list[Any]]]:
    headers = [h for h, _ in r.columns]

    def row(item: Any) -> list[Any]:
        return [get(item) if callable(get) else getattr(item, get) for _, get in r.columns]

    return headers, row


async def collect(c: Client, path: str, shape: type[T], filters: dict[str, str], limit: int | None) -> tuple[list[T], bool]:
    """Up to ``limit`` items (None: every one), following cursors; and whether more remain."""
    items: list[T] = []
    cursor = None
    while True:
        want = 500 if limit is None else min(500, limit - len(items))
        page = await c.page(path, shape, want, cursor, **filters)
        items += page.items
        cursor = page.next_cursor
        if not cursor or (limit is not None and len(items) >= limit):
            return items, cursor is not None


def _path(r: Resource, args: argparse.Namespace, path: str) -> str:
    return at(path, **{r.parent[0]: args.parent}) if r.parent else path


async def cmd_list(args: argparse.Namespace) -> int:
    r = by_group(args.resource)
    assert r.collection is not None
    filters = {o.field: str(getattr(args, dest(o))) for o in r.filters if getattr(args, dest(o)) is not None}
    shape: type[Any] = r.model
    async with client(args) as c:
        items, more = await collect(c, _path(r, args, r.collection), shape, filters, None if args.all else args.limit)
    headers, row = _columns(r)
    out_list(args, items, headers, row, more, r.group.replace("-", " "))
    return 0


async def detail(c: Client, group: str, item: Any) -> str:
    render = DETAILS.get(group)
    return await render(c, item) if render else fields_text(item)


async def cmd_show(args: argparse.Namespace) -> int:
    r = by_group(args.resource)
    async with client(args) as c:
        item: Any = await c.read(at(r.item, **{r.key: args.id}), r.model)
        text = "" if args.json or args.jsonl or args.quiet else await detail(c, r.group, item)
    out(args, item, text)
    return 0


def changes_of(args: argparse.Namespace, options: tuple[Option, ...]) -> dict[str, Any]:
    """The fields given on the command line (an option not given is absent from ``args``)."""
    return {o.field: getattr(args, dest(o)) for o in options if hasattr(args, dest(o))}


def nothing_to_change(options: tuple[Option, ...]) -> int:
    flags = ", ".join(o.pair[0] + "/" + o.pair[1] if o.pair else o.flag for o in options)
    print(f"ferryman: error: nothing to change: give at least one of {flags}", file=sys.stderr)
    return 2


async def cmd_update(args: argparse.Namespace) -> int:
    r = by_group(args.resource)
    assert r.patch is not None
    changes = changes_of(args, r.fields)
    if not changes:
        return nothing_to_change(r.fields)
    async with client(args) as c:
        item: Any = await c.change(at(r.item, **{r.key: args.id}), r.patch(**changes), r.model)
        text = "" if args.json or args.jsonl or args.quiet else await detail(c, r.group, item)
    out(args, item, text)
    return 0


async def cmd_delete(args: argparse.Namespace) -> int:
    r = by_group(args.resource)
    async with client(args) as c:
        await c.remove(at(r.item, **{r.key: args.id}))
    out(args, {"id": args.id, "deleted": True}, f"{args.id} deleted")
    return 0


def add_field_options(p: argparse.ArgumentParser, options: tuple[Option, ...]) -> None:
    """The options of an update; one not given stays absent from the parsed arguments."""
    for o in options:
        if o.pair:
            g = p.add_mutually_exclusive_group()
            g.add_argument(o.pair[0], dest=dest(o), action="store_const", const=True, default=argparse.SUPPRESS, help=o.help)
            g.add_argument(
                o.pair[1],
                dest=dest(o),
                action="store_const",
                const=False,
                default=argparse.SUPPRESS,
                help=f"the opposite of {o.pair[0]}",
            )
        else:
            p.add_argument(o.flag, dest=dest(o), type=o.type, choices=o.choices, metavar=metavar(o),
                           action="append" if o.append else "store", default=argparse.SUPPRESS, help=o.help)  # fmt: skip


def add_parsers(group: Callable[[str, str], Any], cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """The generic actions of every resource of the table."""
    for r in RESOURCES:
        g = group(r.group, r.help)
        what, key = r.one, r.kind.upper()
        if r.collection:
            p = cmd(g, "list", f"list {r.group.replace('-', ' ')} (one page unless --all)", cmd_list)
            if r.parent:
                _, kind, flag = r.parent
                if flag.startswith("--"):
                    p.add_argument(flag, dest="parent", type=ref(kind), required=True, metavar=flag[2:].upper())
                else:
                    p.add_argument("parent", type=ref(kind), metavar=flag)
            for o in r.filters:
                p.add_argument(o.flag, dest=dest(o), type=o.type, choices=o.choices, metavar=metavar(o), help=o.help)
            p.add_argument("--limit", type=_positive, default=50, metavar="N", help="at most N (default 50)")
            p.add_argument("--all", action="store_true", help="every one (follows the list to its end)")
            p.set_defaults(resource=r.group)
        if r.show:
            p = cmd(g, "show", f"one {what}, every field", cmd_show)
            p.add_argument("id", type=ref(r.kind), metavar=key)
            p.set_defaults(resource=r.group)
        if r.patch and r.fields:
            p = cmd(g, "update", f"change a {what}", cmd_update)
            p.add_argument("id", type=ref(r.kind), metavar=key)
            add_field_options(p, r.fields)
            p.set_defaults(resource=r.group)
        if r.delete:
            p = cmd(g, "delete", f"delete a {what}", cmd_delete)
            p.add_argument("id", type=ref(r.kind), metavar=key)
            p.set_defaults(resource=r.group)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"not a whole number above 0: {text!r}")
    return n

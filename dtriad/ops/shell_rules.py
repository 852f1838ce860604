"""The DT CLI shell's pure half: what a typed line means and how a reply prints.

No I/O here (``dtriad.ops.shell`` talks to the DTServer and the terminal). The
rules are redis-cli 6.2's own, ported from ``redis-cli.c`` so that people
who know redis-cli read the same thing:

* output: :func:`format_tty` (``cliFormatReplyTTY``: ``"bar"``, ``(nil)``,
  ``(integer) 5``, ``1) "a"``, ``(empty array)``, ``(error) ...``) when
  standard output is a terminal, :func:`format_raw` (``cliFormatReplyRaw``)
  when it is not or with ``--raw``; :func:`format_json` for scripts;
* hints: :func:`hint` (``hintsCallback``) shows the arguments still to type;
* help: ``help``, ``help COMMAND`` and ``help @group`` from redis-cli 6.2's
  own help table (``redis_help.json``, read out of its binary by
  ``tools/redis_help.py``), plus dtriad's admin commands;
* a command dtriad does not serve, or a wrong number of arguments, is
  answered here with Redis's words and the command's usage line
  (:func:`parse_line`), without a round trip.

Where the commands come from: the Redis commands from the command table's
:data:`~dtriad.core.commands.REDIS` (those the HTTP API can carry), sent to
the DTServer's ``command`` method; the admin commands (``ring``, ``keydist``
...) and their one-line summaries from the HTTP methods the command table
(:data:`~dtriad.core.commands.METHODS`) marks :attr:`~dtriad.core.commands.Group.ADMIN`,
typed in lower case. How an admin reply prints (:data:`ADMIN_FORMAT`, keyed
by the table's method names) is the shell's own.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from dtriad.core.commands import (
    METHODS,
    REDIS,
    ApiMethod,
    Group,
    Kind,
    RedisCommand,
    arity_error,
    reply_is_status,
    text,
)
from dtriad.frontends.resp import split_args


class Status(str):
    """A status reply (``+OK``): printed bare, where a bulk string is quoted."""


class Error(str):
    """An error reply, as Redis words it (``WRONGTYPE Operation ...``)."""


Reply = Status | Error | str | int | list | None


# ---------------------------------------------------------------- the commands
@dataclass(frozen=True)
class HelpEntry:
    name: str
    params: str
    summary: str
    group: str
    since: str = ""
    note: str = ""        # what dtriad does differently, if anything


# The front end's own commands that mean something over HTTP.
HTTP_LOCAL = {"ping", "echo", "dbsize"}
ADMIN_GROUP = "dtriad"
# The command table's admin methods, by the shell's name for them (lower case:
# ``keydist`` runs ``keyDist``).
ADMIN_COMMANDS: dict[str, ApiMethod] = {
    m.name.lower(): m for m in METHODS.values() if m.group is Group.ADMIN}
SHELL = {"help": "[command|@group]", "quit": "", "exit": "", "clear": ""}
NOTES = {
    "dbsize": "dtriad: counts every key of the cluster once (a SCAN of every backend)",
    "ping": "dtriad: answered by the DTServer, not a backend",
    "mget": "dtriad: keys on different nodes are read from each, in order",
    "mset": "dtriad: keys on different nodes are written per node (not atomic across nodes)",
    "del": "dtriad: keys on different nodes are deleted per node; the counts are summed",
}


@cache
def redis_help() -> dict[str, HelpEntry]:
    """redis-cli 6.2's help table, by upper-case name."""
    data = json.loads(files("dtriad.ops").joinpath("redis_help.json").read_text("utf-8"))
    return {row["name"]: HelpEntry(row["name"], row["params"], row["summary"], row["group"],
                                   row["since"], NOTES.get(row["name"].lower(), ""))
            for row in data["commands"]}


def served(spec: RedisCommand) -> bool:
    """Whether the shell can send ``spec`` to a DTServer over HTTP."""
    if spec.kind is Kind.SESSION:  # needs a connection's state: RESP only
        return False
    return spec.kind is not Kind.LOCAL or spec.name in HTTP_LOCAL


# Served commands redis-cli 6.2's help table leaves out: (arguments, summary).
_NOT_IN_REDIS_CLI_HELP = {
    "substr": ("key start end", "Get a substring of the string stored at a key (GETRANGE)"),
    "bitfield_ro": ("key GET type offset [GET type offset ...]",
                    "Read-only BITFIELD: get integer fields of a string"),
    "sort_ro": ("key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] "
                "[ASC|DESC] [ALPHA]", "Read-only SORT (Redis 7.0's; served as SORT)"),
    "memory": ("USAGE key [SAMPLES count] | HELP | STATS | DOCTOR",
               "Memory use of a key, or of a backend"),
    "georadius_ro": ("key longitude latitude radius m|km|ft|mi [WITHCOORD] [WITHDIST] "
                     "[WITHHASH] [COUNT count [ANY]] [ASC|DESC]",
                     "Read-only GEORADIUS"),
    "georadiusbymember_ro": ("key member radius m|km|ft|mi [WITHCOORD] [WITHDIST] "
                             "[WITHHASH] [COUNT count [ANY]] [ASC|DESC]",
                             "Read-only GEORADIUSBYMEMBER"),
    "xsetid": ("key last-id", "Set the last ID of a stream"),
    "script": ("LOAD script | EXISTS sha1 [sha1 ...] | FLUSH [ASYNC|SYNC]",
               "Manage the cluster's Lua script cache"),
}


@cache
def help_entries() -> dict[str, HelpEntry]:
    """Every command the shell serves, by lower-case name."""
    table = redis_help()
    out = {}
    for spec in REDIS.values():
        if served(spec):
            out[spec.name] = table.get(spec.name.upper()) or HelpEntry(
                spec.name.upper(), *_NOT_IN_REDIS_CLI_HELP.get(spec.name, ("", "")), spec.group)
    for name, method in ADMIN_COMMANDS.items():
        summary = method.summary[:1].upper() + method.summary[1:]  # as Redis's help reads
        out[name] = HelpEntry(name.upper(), "", summary, ADMIN_GROUP)
    return out


def command_names() -> list[str]:
    return sorted([*help_entries(), *SHELL])


def groups() -> list[str]:
    return sorted({e.group for e in help_entries().values()})


def usage(name: str) -> str:
    entry = help_entries().get(name.lower())
    return f"usage: {entry.name} {entry.params}".rstrip() if entry else ""


# ------------------------------------------------------------- what a line is
class Action(enum.Enum):
    REDIS = "redis"      # a Redis command, sent to the DTServer's ``command``
    ADMIN = "admin"      # an admin method of the DTServer
    HELP = "help"
    QUIT = "quit"
    CLEAR = "clear"


@dataclass(frozen=True)
class ParsedLine:
    """One command line: what to do, its arguments, and the Redis command
    (:attr:`Action.REDIS`) or the HTTP method (:attr:`Action.ADMIN`) it runs."""

    action: Action
    argv: list[str]
    spec: RedisCommand | None = None
    method: ApiMethod | None = None

    @property
    def name(self) -> str:
        return self.argv[0].lower()


class Refused(Exception):
    """Answered locally: ``line`` is the error as Redis words it; ``usage``
    the command's synopsis, when the command exists."""

    def __init__(self, line: str, usage: str = ""):
        super().__init__(line)
        self.line = line
        self.usage = usage


def parse_line(argv: list[str]) -> ParsedLine:
    """What to do with one command line (already split into arguments)."""
    name = argv[0].lower()
    if name in ("help", "?"):
        return ParsedLine(Action.HELP, argv)
    if name in ("quit", "exit"):
        return ParsedLine(Action.QUIT, argv)
    if name == "clear":
        return ParsedLine(Action.CLEAR, argv)
    if name in ADMIN_COMMANDS:
        if len(argv) != 1:
            raise Refused(f"ERR wrong number of arguments for '{name}' command", usage(name))
        return ParsedLine(Action.ADMIN, argv, method=ADMIN_COMMANDS[name])
    spec = REDIS.get(name.upper())
    if spec is None or not served(spec):
        raise Refused(unknown_command(argv))
    problem = arity_error(spec, len(argv))
    if problem:
        raise Refused(problem, usage(name))
    return ParsedLine(Action.REDIS, argv, spec)


def unknown_command(argv: list[str]) -> str:
    """Redis's own words for a command it does not know; for a Redis command
    dtriad does not serve, why and where to look instead."""
    name = argv[0]
    if name.upper() in redis_help():
        return (f"ERR '{name.lower()}' is a Redis command dtriad does not serve; "
                f"type 'help' for the commands it serves")
    args = ""
    for arg in argv[1:]:  # as Redis 6.2's processCommand words it
        if len(args) >= 128:
            break
        args += f"`{arg[:128 - len(args)]}`, "
    line = f"ERR unknown command `{name}`, with args beginning with: {args}"
    return line.replace("\r", " ").replace("\n", " ")


def typed(value: Any, line: ParsedLine) -> Reply:
    """A reply decoded from JSON, with its status replies marked (``OK``)."""
    if isinstance(value, str) and not isinstance(value, Error) and reply_is_status(
            line.spec, line.argv):  # a line of Action.REDIS always has its spec
        return Status(value)
    return value


# --------------------------------------------------------------------- output
def repr_bulk(data: bytes) -> str:
    """A bulk string the way redis-cli quotes it (``sdscatrepr``)."""
    out = ['"']
    for byte in data:
        char = chr(byte)
        if char in '\\"':
            out.append("\\" + char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    out.append('"')
    return "".join(out)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a", "\b": "\\b"}


def format_tty(reply: Reply, prefix: str = "") -> str:
    """redis-cli's output on a terminal (``cliFormatReplyTTY``)."""
    if isinstance(reply, Error):
        return f"(error) {reply}\n"
    if isinstance(reply, Status):
        return f"{reply}\n"
    if isinstance(reply, str):
        return repr_bulk(reply.encode("utf-8")) + "\n"
    if isinstance(reply, bool):
        return "(true)\n" if reply else "(false)\n"
    if isinstance(reply, int):
        return f"(integer) {reply}\n"
    if reply is None:
        return "(nil)\n"
    if not reply:
        return "(empty array)\n"
    width = len(str(len(reply)))
    inner = prefix + " " * (width + 2)
    return "".join(f"{prefix if i else ''}{i + 1:>{width}}) " + format_tty(item, inner)
                   for i, item in enumerate(reply))


def format_raw(reply: Reply) -> str:
    """redis-cli's output when piped or with ``--raw`` (``cliFormatReplyRaw``),
    without the newline it adds after each reply."""
    if reply is None:
        return ""
    if isinstance(reply, Error):
        return f"{reply}\n"
    if isinstance(reply, str):
        return reply
    if isinstance(reply, bool):
        return "(true)" if reply else "(false)"
    if isinstance(reply, int):
        return str(reply)
    return "\n".join(format_raw(item) for item in reply)


def format_json(reply: Reply) -> str:
    """One JSON document per reply; an error is ``{"error": ..., "code": ...}``."""
    if isinstance(reply, Error):
        reply = {"error": str(reply), "code": reply.split(" ", 1)[0]}
    return json.dumps(reply, ensure_ascii=False)


# ---------------------------------------------------------------------- hints
def hint(line: str) -> str | None:
    """The arguments still to type after ``line`` (redis-cli's ``hintsCallback``)."""
    argv = split_args(line)
    if not argv:
        return None
    entry = help_entries().get(text(argv[0]).lower())
    if entry is None:
        return None
    rest = entry.params
    remove = len(argv) - 1
    while remove > 0 and rest:
        if rest[0] == "[":
            break
        if rest[0] == " ":
            remove -= 1
        rest = rest[1:]
    if not line[-1:].isspace():
        rest = " " + rest
    return rest


# ----------------------------------------------------------------------- help
def help_text(args: list[str], version: str) -> str:
    """``help``, ``help COMMAND`` or ``help @group``, laid out as redis-cli does."""
    if not args:
        return (f"dtriad cli {version}: Redis commands over the DTServer's HTTP RPC\n"
                "To get help about commands type:\n"
                '      "help @<group>" to get a list of commands in <group>\n'
                '      "help <command>" for help on <command>\n'
                '      "help <tab>" to get a list of possible help topics\n'
                '      "quit" to exit\n\n'
                f"Groups: {' '.join('@' + g for g in groups())}\n"
                f"Admin commands (@{ADMIN_GROUP}): {', '.join(ADMIN_COMMANDS)}\n")
    topic = " ".join(args).lower()
    entries = help_entries()
    if topic.startswith("@"):
        chosen = [e for e in entries.values() if e.group == topic[1:]]
        if not chosen:
            return f"no such group {topic!r}; groups are {' '.join('@' + g for g in groups())}\n"
        return "".join(_entry(e, group=False) for e in chosen) + "\n"
    if topic in entries:
        return _entry(entries[topic], group=True) + "\n"
    redis_entry = redis_help().get(topic.upper())
    if redis_entry is not None:
        return (_entry(redis_entry, group=True)
                + "  dtriad: not served by dtriad; type 'help' for what is\n\n")
    return f"no help for {topic!r}; type 'help' for the topics\n"


def _entry(entry: HelpEntry, group: bool) -> str:
    lines = [f"\n  {entry.name} {entry.params}".rstrip(), f"  summary: {entry.summary}"]
    if entry.since:
        lines.append(f"  since: {entry.since}")
    if group:
        lines.append(f"  group: {entry.group}")
    if entry.note:
        lines.append(f"  {entry.note}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------- admin replies
def ring_table(info: dict) -> str:
    """``ring``: the epoch, then one row per node: state, tokens, share, arcs."""
    head = (f"epoch {info['epoch']} · replicas {info['replicas']} · vnodes {info['vnodes']} "
            f"· {info['copies']} copies per key · write quorum {info['write_quorum']} "
            f"· read quorum {info['read_quorum']}")
    if info.get("pending_epoch") is not None:
        head += f"\nmigrating to epoch {info['pending_epoch']}"
    rows = [("node", "state", "redis", "http", "token(s)", "master", "backup", "arcs m/b")]
    for n in info["nodes"]:
        tokens = n.get("tokens") or []
        shown = tokens[0][:10] + "…" if tokens else "-"
        if len(tokens) > 1:
            shown += f" (+{len(tokens) - 1})"
        arcs = n.get("arcs") or {}
        rows.append((n["name"], n["state"], n["redis"], n["http"], shown,
                     f"{n['share']['master']:.1%}", f"{n['share']['backup']:.1%}",
                     f"{arcs.get('master', 0)}/{arcs.get('backup', 0)}"))
    return head + "\n" + _table(rows, right=(5, 6, 7))


def keydist_chart(dist: dict, width: int = 40) -> str:
    """``keyDist`` as a table with a bar per node: █ master copies, ░ backups."""
    rows = [("node", "master", "backup", "misplaced", "total", "")]
    biggest = max((c.get("total", 0) for c in dist.values()), default=0) or 1
    for name, counts in dist.items():
        if "error" in counts:
            rows.append((name, "-", "-", "-", "-", f"down: {counts['error']}"))
            continue
        master = round(counts["master"] * width / biggest)
        backup = round(counts["backup"] * width / biggest)
        rows.append((name, str(counts["master"]), str(counts["backup"]),
                     str(counts["misplaced"]), str(counts["total"]),
                     "█" * master + "░" * backup))
    return _table(rows, right=(1, 2, 3, 4)) + "\n█ master  ░ backup"


def health_table(info: dict) -> str:
    rows = [("node", "backend", "")]
    for name, b in info["backends"].items():
        rows.append((name, "up" if b["up"] else "down",
                     f"{b['latency_ms']} ms" if b["up"] else b.get("error", "")))
    return f"status {info['status']} · epoch {info['epoch']}\n" + _table(rows)


def stats_text(info: dict) -> str:
    lines = [f"uptime {info['uptime_s']} s · {info['total']} requests"]
    for what in ("requests", "errors"):
        counts = info.get(what) or {}
        if counts:
            lines.append(f"{what}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    repairs = info.get("repairs")
    if repairs:
        lines.append("repair queue: " + ", ".join(f"{k} {v}" for k, v in repairs.items()))
    return "\n".join(lines)


def check_text(report: dict) -> str:
    return "\n".join(report["lines"])


def _table(rows: list[tuple], right: tuple[int, ...] = ()) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


# How each admin method's reply prints, by its name in the command table.
ADMIN_FORMAT = {"ring": ring_table, "keyDist": keydist_chart, "check": check_text,
                "health": health_table, "stats": stats_text}

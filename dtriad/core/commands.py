"""The command table: every Redis command dtriad serves, and every method of its HTTP API.

One table for every front end, and the one place an HTTP method is declared.

* :data:`REDIS` describes each supported Redis command the way Redis's own
  ``COMMAND`` does (arity, flags, key positions) plus how dtriad routes it.
  Arity follows Redis 6.2: a positive number is the exact argument count
  including the command name, a negative one the minimum.
* :data:`METHODS` declares each HTTP method once (:class:`ApiMethod`): its
  name (the paper's ``getStrlen``, ``lPush`` ...), the Redis command it runs,
  its arguments (which are integers, which repeat as arrays), whether it
  reads or writes (so whether it takes ``read_quorum`` or ``write_quorum``),
  what it answers (:class:`Returns`), whether it needs the cluster secret, its
  usage line and a one-line summary; a method that is not one Redis command
  names its handler instead.

How the declaration flows:

* table -> spyne service: :mod:`dtriad.frontends.http` generates one spyne
  ``@rpc`` per entry of :data:`METHODS` (URL path = name, HttpRpc parameters
  = :attr:`ApiMethod.params`, return type from :attr:`ApiMethod.returns`);
* table -> DTCore: :data:`API` (the plain Redis methods) is what
  ``DTCore.call`` runs by name (``.redis``, ``.args``, ``.ints``, ``.usage``);
* table -> shell help: :mod:`dtriad.ops.shell_rules` offers the
  :attr:`Group.ADMIN` methods as its admin commands, with their summaries;
* :func:`method_names` lists every method, for "unknown method" errors.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any


class Kind(enum.Enum):
    READ = "read"        # answered by one copy (or a quorum of copies)
    WRITE = "write"      # replicated to every copy, in the master's order
    CLUSTER = "cluster"  # the whole keyspace or the server: asked of every member (SCAN...)
    LOCAL = "local"      # answered by the front end itself (PING, AUTH, INFO...)
    SESSION = "session"  # needs a connection's state: transactions, blocking, pub/sub (RESP)
    SCRIPT = "script"    # EVAL, EVALSHA, SCRIPT: Lua run on the master of its keys


class Routing(enum.Enum):
    SINGLE = "single"    # one key (at COMMAND's first key position)
    EACH = "each"        # every argument is a key; per-node groups, replies summed
    MGET = "mget"        # every argument is a key; per-node groups, replies in order
    PAIRS = "pairs"      # key value key value ...; per-node groups
    MULTI = "multi"      # several keys (keys_of); one step when they share copies
    NONE = "none"


# Redis 6.2's own COMMAND reply (name -> arity, flags, first key, last key,
# step, ACL categories), read out of redis-server 6.2 by COMMAND: the source
# of every served command's arity, key positions and COMMAND INFO row.
REDIS62: dict[str, list] = json.loads(
    files("dtriad.core").joinpath("redis62_commands.json").read_text("utf-8"))
# SORT_RO is Redis 7.0's read-only SORT (no STORE); served as SORT by 6.2 backends.
REDIS62.setdefault("sort_ro", [-2, ["readonly", "movablekeys"], 1, 1, 1,
                               ["@read", "@set", "@sortedset", "@list", "@slow", "@dangerous"]])


@dataclass(frozen=True)
class RedisCommand:
    name: str            # lower case, as Redis reports it
    arity: int
    kind: Kind
    route: Routing = Routing.SINGLE
    status: bool = False  # a string reply is a status (+OK), not a bulk string
    group: str = "generic"

    @property
    def row(self) -> list:
        """Redis 6.2's COMMAND row for this command (arity, flags, keys, categories)."""
        return REDIS62.get(self.name) or [self.arity, self.flags, 0, 0, 0, []]

    @property
    def flags(self) -> list[str]:
        if self.name in REDIS62:
            return REDIS62[self.name][1]
        return {Kind.READ: ["readonly"], Kind.WRITE: ["write"],
                Kind.LOCAL: ["fast"], Kind.CLUSTER: ["readonly"]}[self.kind]

    @property
    def key_spec(self) -> tuple[int, int, int]:
        """(first key, last key, step), as in COMMAND's reply."""
        first, last, step = self.row[2:5]
        return first, last, step

    @property
    def random(self) -> bool:
        """Its effect is not fixed by its arguments (SPOP, XADD *...): the
        master's resulting state is copied to the backups, not replayed."""
        return "random" in self.flags

    def arity_ok(self, argc: int) -> bool:
        return argc == self.arity if self.arity > 0 else argc >= -self.arity


_R, _W, _C, _L = Kind.READ, Kind.WRITE, Kind.CLUSTER, Kind.LOCAL
_SINGLE, _EACH, _MGET, _PAIRS, _MULTI, _NONE = (Routing.SINGLE, Routing.EACH, Routing.MGET,
                                                 Routing.PAIRS, Routing.MULTI, Routing.NONE)

# Every data command of Redis 6.2 dtriad serves, by group: (name, routing).
# Read or write, arity and key positions come from REDIS62. Transactions,
# scripts, blocking commands and pub/sub are served elsewhere (or not yet).
_DATA = {
    "string": [("get", _SINGLE), ("set", _SINGLE), ("mget", _MGET), ("mset", _PAIRS),
               ("msetnx", _MULTI), ("incr", _SINGLE), ("incrby", _SINGLE), ("decr", _SINGLE),
               ("decrby", _SINGLE), ("incrbyfloat", _SINGLE), ("append", _SINGLE),
               ("strlen", _SINGLE), ("getrange", _SINGLE), ("substr", _SINGLE),
               ("setrange", _SINGLE), ("getdel", _SINGLE), ("getex", _SINGLE),
               ("getset", _SINGLE), ("setnx", _SINGLE), ("setex", _SINGLE),
               ("psetex", _SINGLE), ("stralgo", _MULTI), ("setbit", _SINGLE),
               ("getbit", _SINGLE), ("bitcount", _SINGLE), ("bitpos", _SINGLE),
               ("bitfield", _SINGLE), ("bitfield_ro", _SINGLE), ("bitop", _MULTI)],
    "generic": [("del", _EACH), ("unlink", _EACH), ("exists", _EACH), ("touch", _EACH),
                ("expire", _SINGLE), ("pexpire", _SINGLE), ("expireat", _SINGLE),
                ("pexpireat", _SINGLE), ("ttl", _SINGLE), ("pttl", _SINGLE),
                ("persist", _SINGLE), ("type", _SINGLE), ("rename", _MULTI),
                ("renamenx", _MULTI), ("copy", _MULTI), ("dump", _SINGLE),
                ("restore", _SINGLE), ("object", _SINGLE), ("sort", _MULTI),
                ("sort_ro", _MULTI), ("memory", _SINGLE)],
    "list": [("lpush", _SINGLE), ("rpush", _SINGLE), ("lpushx", _SINGLE), ("rpushx", _SINGLE),
             ("lpop", _SINGLE), ("rpop", _SINGLE), ("llen", _SINGLE), ("lindex", _SINGLE),
             ("lrange", _SINGLE), ("lset", _SINGLE), ("lrem", _SINGLE), ("ltrim", _SINGLE),
             ("lpos", _SINGLE), ("linsert", _SINGLE), ("lmove", _MULTI),
             ("rpoplpush", _MULTI)],
    "hash": [("hset", _SINGLE), ("hsetnx", _SINGLE), ("hmset", _SINGLE), ("hget", _SINGLE),
             ("hmget", _SINGLE), ("hdel", _SINGLE), ("hgetall", _SINGLE), ("hincrby", _SINGLE),
             ("hincrbyfloat", _SINGLE), ("hlen", _SINGLE), ("hexists", _SINGLE),
             ("hkeys", _SINGLE), ("hvals", _SINGLE), ("hstrlen", _SINGLE),
             ("hrandfield", _SINGLE), ("hscan", _SINGLE)],
    "set": [("sadd", _SINGLE), ("srem", _SINGLE), ("smembers", _SINGLE),
            ("sismember", _SINGLE), ("smismember", _SINGLE), ("scard", _SINGLE),
            ("spop", _SINGLE), ("srandmember", _SINGLE), ("sscan", _SINGLE),
            ("smove", _MULTI), ("sinter", _MULTI), ("sinterstore", _MULTI),
            ("sunion", _MULTI), ("sunionstore", _MULTI), ("sdiff", _MULTI),
            ("sdiffstore", _MULTI)],
    "sorted_set": [("zadd", _SINGLE), ("zrem", _SINGLE), ("zscore", _SINGLE),
                   ("zmscore", _SINGLE), ("zincrby", _SINGLE), ("zcard", _SINGLE),
                   ("zcount", _SINGLE), ("zlexcount", _SINGLE), ("zrank", _SINGLE),
                   ("zrevrank", _SINGLE), ("zrange", _SINGLE), ("zrangebyscore", _SINGLE),
                   ("zrevrangebyscore", _SINGLE), ("zrangebylex", _SINGLE),
                   ("zrevrangebylex", _SINGLE), ("zrevrange", _SINGLE),
                   ("zremrangebyrank", _SINGLE), ("zremrangebyscore", _SINGLE),
                   ("zremrangebylex", _SINGLE), ("zpopmin", _SINGLE), ("zpopmax", _SINGLE),
                   ("zrandmember", _SINGLE), ("zscan", _SINGLE), ("zrangestore", _MULTI),
                   ("zunion", _MULTI), ("zinter", _MULTI), ("zdiff", _MULTI),
                   ("zunionstore", _MULTI), ("zinterstore", _MULTI), ("zdiffstore", _MULTI)],
    "hyperloglog": [("pfadd", _SINGLE), ("pfcount", _MULTI), ("pfmerge", _MULTI)],
    "geo": [("geoadd", _SINGLE), ("geopos", _SINGLE), ("geodist", _SINGLE),
            ("geohash", _SINGLE), ("georadius", _MULTI), ("georadius_ro", _SINGLE),
            ("georadiusbymember", _MULTI), ("georadiusbymember_ro", _SINGLE),
            ("geosearch", _SINGLE), ("geosearchstore", _MULTI)],
    "stream": [("xadd", _SINGLE), ("xlen", _SINGLE), ("xrange", _SINGLE),
               ("xrevrange", _SINGLE), ("xdel", _SINGLE), ("xtrim", _SINGLE),
               ("xsetid", _SINGLE), ("xread", _MULTI), ("xgroup", _SINGLE),
               ("xreadgroup", _MULTI), ("xack", _SINGLE), ("xpending", _SINGLE),
               ("xclaim", _SINGLE), ("xautoclaim", _SINGLE), ("xinfo", _SINGLE)],
}
# The whole keyspace and the server, asked of the ring's members (groups as
# redis-cli's help names them).
_CLUSTER = {
    "generic": ["scan", "keys", "randomkey", "move"],
    "server": ["flushall", "flushdb", "swapdb"],
    "server_info": ["time", "lastsave", "lolwut"],
}
# Answered by the front end itself.
_LOCAL = {
    "connection": [("ping", -1), ("echo", 2), ("auth", -2), ("select", 2), ("quit", 1),
                   ("client", -2), ("hello", -1), ("reset", 1)],
    "server": [("command", -1), ("info", -1), ("config", -2), ("dbsize", 1)],
}
# Served by a RESP connection, whose state they need (frontends/respd.py and
# the modules it names): transactions, blocking commands and pub/sub.
_SESSION = {
    "transactions": ["multi", "exec", "discard", "watch", "unwatch"],
    "list": ["blpop", "brpop", "brpoplpush", "blmove"],
    "sorted_set": ["bzpopmin", "bzpopmax"],
    "pubsub": ["subscribe", "unsubscribe", "psubscribe", "punsubscribe", "publish", "pubsub"],
}
_SCRIPTING = ["eval", "evalsha", "script"]
# Commands whose string reply is a status (+OK, +string) rather than a bulk string.
_STATUS = {"multi", "discard", "watch", "unwatch",
           "set", "mset", "setex", "psetex", "lset", "ltrim", "hmset", "type", "rename",
           "restore", "pfmerge", "xgroup", "xsetid", "flushall", "flushdb"}


def _spec(name: str, kind: Kind | None, route: Routing, group: str,
          arity: int | None = None) -> RedisCommand:
    row = REDIS62.get(name)
    arity = row[0] if arity is None else arity
    if kind is None:
        kind = Kind.WRITE if "write" in row[1] else Kind.READ
    return RedisCommand(name, arity, kind, route, name in _STATUS, group)


REDIS: dict[str, RedisCommand] = {c.name.upper(): c for c in [
    *(_spec(name, None, route, group) for group, rows in _DATA.items() for name, route in rows),
    *(_spec(name, _C, _NONE, group.removesuffix("_info")) for group, names in _CLUSTER.items()
      for name in names),
    *(_spec(name, _L, _NONE, group, arity) for group, rows in _LOCAL.items()
      for name, arity in rows),
    *(_spec(name, Kind.SESSION, _NONE, group) for group, names in _SESSION.items()
      for name in names),
    *(_spec(name, Kind.SCRIPT, _NONE, "scripting") for name in _SCRIPTING),
]}


def streams_at(name: str, argv: Sequence[Any]) -> int | None:
    """Where XREAD's or XREADGROUP's ``STREAMS`` is, found as Redis reads the
    options (COUNT and BLOCK take a value, XREADGROUP's GROUP two), so a
    group, consumer or count spelled ``streams`` is not it; None if absent."""
    i = 1
    while i < len(argv):
        word = _upper(argv[i])
        if word == "STREAMS":
            return i
        i += 2 if word in ("COUNT", "BLOCK") else 3 if word == "GROUP" and name == "xreadgroup" \
            else 1
    return None


def keys_of(command: RedisCommand, argv: Sequence[Any]) -> list[Any]:
    """The keys ``argv`` names, as Redis's ``COMMAND GETKEYS`` finds them
    (the key positions of COMMAND, and the movable keys of ZUNIONSTORE,
    XREAD, SORT ... STORE, GEORADIUS ... STORE, STRALGO, OBJECT, MEMORY)."""
    name, argc = command.name, len(argv)
    if command.kind in (Kind.LOCAL, Kind.CLUSTER):
        return []
    if name in ("eval", "evalsha"):
        count = _count(argv[2]) if argc > 2 else None
        return list(argv[3:3 + count]) if count is not None else []
    if name in ("zunionstore", "zinterstore", "zdiffstore", "zunion", "zinter", "zdiff"):
        at = 2 if name.endswith("store") else 1
        count = _count(argv[at])
        keys = list(argv[at + 1:at + 1 + count]) if count is not None else []
        return ([argv[1]] if at == 2 else []) + keys
    if name in ("xread", "xreadgroup"):
        at = streams_at(name, argv)
        if at is None:
            return []
        rest = argv[at + 1:]
        return list(rest[:len(rest) // 2])
    if name in ("sort", "sort_ro", "georadius", "georadiusbymember"):
        keys = [argv[1]]
        for i in range(2, argc - 1):
            if _upper(argv[i]) in ("STORE", "STOREDIST") and name != "sort_ro":
                keys.append(argv[i + 1])
        return keys
    if name == "stralgo":
        for i in range(2, argc):
            if _upper(argv[i]) == "KEYS":
                return list(argv[i + 1:i + 3])
        return []
    if name in ("object", "xinfo", "xgroup"):
        return [argv[2]] if argc > 2 and _upper(argv[1]) != "HELP" else []
    if name == "memory":
        return [argv[2]] if argc > 2 and _upper(argv[1]) == "USAGE" else []
    first, last, step = command.key_spec
    if first == 0:
        return []
    last = argc + last if last < 0 else last
    return list(argv[first:last + 1:step])


def _count(value: Any) -> int | None:
    try:
        count = int(value)
    except (TypeError, ValueError):
        return None
    return count if count > 0 else None


def arity_error(command: RedisCommand, argc: int) -> str | None:
    """Redis's error for ``argc`` arguments (the name included), or None if right."""
    if not command.arity_ok(argc):
        return f"ERR wrong number of arguments for '{command.name}' command"
    if command.route is Routing.PAIRS and argc % 2 == 0:  # Redis's own words for MSET
        return f"ERR wrong number of arguments for {command.name.upper()}"
    if command.name == "msetnx" and argc % 2 == 0:  # MSETNX shares MSET's words
        return "ERR wrong number of arguments for MSET"
    return None


def reply_is_status(command: RedisCommand, argv: list[Any]) -> bool:
    """Whether a string reply to ``argv`` is a status (``+OK``) rather than a bulk string."""
    if command.name == "set":  # SET ... GET answers the old value
        return not any(_upper(a) == "GET" for a in argv[3:])
    if command.name == "ping":  # PING answers +PONG, PING msg the message
        return len(argv) == 1
    if len(argv) > 1 and _upper(argv[1]) == "HELP":  # OBJECT HELP ...: status lines
        return True
    return command.status


def reply_is_array(command: RedisCommand, argv: list[Any]) -> bool:
    """Whether a nil reply to ``argv`` is a nil array (``*-1``): LPOP/RPOP with
    a count, XREAD and XREADGROUP with nothing new."""
    return (command.name in ("lpop", "rpop") and len(argv) > 2) or command.name in (
        "xread", "xreadgroup", "xrange", "xrevrange", "blpop", "brpop", "bzpopmin",
        "bzpopmax")


def _has(argv: list[Any], word: str, start: int = 2) -> bool:
    return any(_upper(a) == word for a in argv[start:])


def reply_shape(command: RedisCommand, argv: list[Any], resp3: bool) -> str | None:
    """How to encode a reply whose RESP2 form the backends give flat
    (``resp.encode_shaped``): RESP3 maps, sets, doubles and pairs, and the
    nil arrays of GEOPOS."""
    name = command.name
    if name == "geopos":
        return "geopos"
    if name == "xpending" and len(argv) == 3:  # its summary: no consumers is a nil array
        return None if resp3 else "pending"
    if not resp3:
        return None
    if name in ("georadius", "georadius_ro", "georadiusbymember", "georadiusbymember_ro",
                "geosearch") and _has(argv, "WITHCOORD"):
        return "geocoords"
    if name == "hgetall" or (name == "xinfo" and len(argv) > 1 and _upper(argv[1]) == "STREAM"
                             and not _has(argv, "FULL")):
        return "map"
    if name == "xinfo" and len(argv) > 1 and _upper(argv[1]) in ("GROUPS", "CONSUMERS"):
        return "maps"
    if name in ("smembers", "sinter", "sunion", "sdiff") or (name == "spop" and len(argv) > 2):
        return "set"
    if name in ("zscore", "zincrby") or (name == "zadd" and _has(argv, "INCR")):
        return "double"
    if name == "zmscore":
        return "doubles"
    if name in ("xread", "xreadgroup"):
        return "streams"
    if name == "hrandfield" and _has(argv, "WITHVALUES", 3):
        return "pairs"
    if name in ("zpopmin", "zpopmax"):
        return "scores" if len(argv) > 2 else "flatscores"
    if (name in ("zrange", "zrangebyscore", "zrevrange", "zrevrangebyscore", "zunion",
                 "zinter", "zdiff", "zrandmember") and _has(argv, "WITHSCORES")):
        return "scores"
    return None


def text(value: Any) -> Any:
    """``value`` with bytes decoded as UTF-8 (bad bytes replaced); anything
    else (str, int, None ...) unchanged."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _upper(value: Any) -> str:
    return str(text(value)).upper()


def lookup(name: Any) -> RedisCommand | None:
    return REDIS.get(_upper(name))


class Returns(enum.Enum):
    """What an HTTP method answers (the front end maps each to its own type)."""

    TEXT = "text"          # a string, or null (bytes decoded as UTF-8)
    INTEGER = "integer"
    TEXTS = "texts"        # an array of strings and nulls
    DICT = "dict"          # a JSON document: an object (``command``: any reply)


class Group(enum.Enum):
    """Who an HTTP method is for."""

    DATA = "data"          # one Redis command with named arguments (DTCore.call)
    MULTI = "multi"        # several keys, or any command of the table: a handler
    ADMIN = "admin"        # the cluster's state, for operators (the shell's admin commands)
    INTERNAL = "internal"  # between dtriad's own processes


READ_QUORUM, WRITE_QUORUM = "read_quorum", "write_quorum"


@dataclass(frozen=True)
class ApiMethod:
    """One HTTP method, declared once: ``/name?arg=...`` runs ``redis`` (or
    the front end's ``handler``) and answers ``returns``.

    ``levels`` are the consistency-level parameters it takes after its
    arguments; left out, they follow the Redis command: ``read_quorum`` for a
    read, ``write_quorum`` for a write. ``usage`` defaults to the name and the
    arguments. ``secret``: the cluster secret must come as ``Authorization:
    Bearer <secret>``.
    """

    name: str
    redis: str | None
    args: tuple[str, ...]
    returns: Returns
    summary: str
    ints: tuple[str, ...] = ()
    arrays: tuple[str, ...] = ()
    levels: tuple[str, ...] | None = None
    group: Group = Group.DATA
    secret: bool = False
    handler: str | None = None
    usage: str = ""

    def __post_init__(self):
        if self.levels is None:
            object.__setattr__(self, "levels", {
                Kind.READ: (READ_QUORUM,), Kind.WRITE: (WRITE_QUORUM,)}.get(self.kind, ()))
        if not self.usage:
            object.__setattr__(self, "usage", " ".join((self.name, *self.args)))
        if not {*self.ints, *self.arrays} <= set(self.args):
            raise ValueError(f"{self.name}: ints and arrays must be among its arguments")
        if (self.handler is None) != (self.group is Group.DATA):
            raise ValueError(f"{self.name}: a data method runs its Redis command, any "
                             f"other names its handler")

    @property
    def kind(self) -> Kind | None:
        """The Redis command's kind (read or write), if it runs one."""
        return REDIS[self.redis].kind if self.redis else None

    @property
    def params(self) -> tuple[str, ...]:
        """Its HTTP parameters, in order: the arguments, then the levels."""
        return self.args + self.levels


_T, _I, _A, _D = Returns.TEXT, Returns.INTEGER, Returns.TEXTS, Returns.DICT
_MULTI, _ADMIN = Group.MULTI, Group.ADMIN

METHODS: dict[str, ApiMethod] = {m.name: m for m in [
    # The paper's eight methods, then dtriad's additions: one Redis command each.
    ApiMethod("get", "GET", ("key",), _T, "value of a string key, or null"),
    ApiMethod("set", "SET", ("key", "value"), _T, "store a string value"),
    ApiMethod("getStrlen", "STRLEN", ("key",), _I, "length of a string value"),
    ApiMethod("append", "APPEND", ("key", "value"), _I, "append to a string; new length"),
    ApiMethod("lPush", "LPUSH", ("key", "value"), _I, "push onto a list's head; new length"),
    ApiMethod("lPop", "LPOP", ("key",), _T, "pop a list's head, or null"),
    ApiMethod("lIndex", "LINDEX", ("key", "index"), _T, "list element at index, or null",
              ints=("index",)),
    ApiMethod("lLen", "LLEN", ("key",), _I, "length of a list"),
    ApiMethod("delete", "DEL", ("key",), _I, "delete a key; 1 if it existed"),
    ApiMethod("exists", "EXISTS", ("key",), _I, "1 if the key exists, else 0"),
    ApiMethod("expire", "EXPIRE", ("key", "seconds"), _I, "set a time to live; 1 if set",
              ints=("seconds",)),
    ApiMethod("ttl", "TTL", ("key",), _I, "seconds to live; -1 none, -2 no key"),
    ApiMethod("incr", "INCR", ("key",), _I, "add 1 to an integer value; new value"),
    # Several keys, or any command: handlers of the front end.
    ApiMethod("mget", "MGET", ("key",), _A, "values of several keys (repeat key=)",
              arrays=("key",), group=_MULTI, handler="mget", usage="mget key [key ...]"),
    ApiMethod("mset", "MSET", ("key", "value"), _T,
              "store several keys (repeat key= and value= in pairs)",
              arrays=("key", "value"), group=_MULTI, handler="mset",
              usage="mset key value [key value ...]"),
    ApiMethod("command", None, ("arg",), _D,
              "any command of the table, as its Redis arguments (repeat arg=)",
              arrays=("arg",), levels=(READ_QUORUM, WRITE_QUORUM), group=_MULTI,
              handler="command", usage="command arg [arg ...]"),
    # The admin methods: what the shell offers as its admin commands.
    ApiMethod("ring", None, (), _D, "the ring: epoch, and each node's tokens, share of the "
              "ring and arcs as master and backup", group=_ADMIN, secret=True, handler="ring"),
    ApiMethod("keyDist", None, (), _D, "keys each node holds as master and as backup, as a "
              "bar chart", group=_ADMIN, secret=True, handler="key_dist"),
    ApiMethod("check", None, (), _D, "verify both invariants over every backend (as "
              "'dtriad check')", group=_ADMIN, secret=True, handler="check"),
    ApiMethod("health", None, (), _D, "whether each backend answers, and how fast",
              group=_ADMIN, handler="health"),
    ApiMethod("stats", None, (), _D, "requests and errors served by this DTServer",
              group=_ADMIN, secret=True, handler="stats"),
    # Internal: the secret is an argument (checked by DTCore.install), not a header.
    ApiMethod("ringUpdate", None, ("secret", "state"), _D,
              "install a ring pushed by the DTSentinel (needs the cluster secret)",
              group=Group.INTERNAL, handler="ring_update"),
]}


def _summaries(group: Group) -> dict[str, str]:
    return {m.name: m.summary for m in METHODS.values() if m.group is group}


# Views of METHODS.
API: dict[str, ApiMethod] = {n: m for n, m in METHODS.items() if m.group is Group.DATA}
MULTI_KEY = _summaries(Group.MULTI)    # name -> summary
ADMIN = _summaries(Group.ADMIN)
INTERNAL = _summaries(Group.INTERNAL)


def method_names() -> list[str]:
    return sorted(METHODS, key=str.lower)

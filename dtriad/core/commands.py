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
from dataclasses import dataclass
from typing import Any


class Kind(enum.Enum):
    READ = "read"        # answered by one copy (or a quorum of copies)
    WRITE = "write"      # replicated to every copy, in the master's order
    LOCAL = "local"      # answered by the front end itself (PING, AUTH, INFO...)


class Routing(enum.Enum):
    SINGLE = "single"    # one key, argv[1]
    EACH = "each"        # every argument is a key; per-node groups, replies summed
    MGET = "mget"        # every argument is a key; per-node groups, replies in order
    PAIRS = "pairs"      # key value key value ...; per-node groups
    NONE = "none"


@dataclass(frozen=True)
class RedisCommand:
    name: str            # lower case, as Redis reports it
    arity: int
    kind: Kind
    route: Routing = Routing.SINGLE
    status: bool = False  # a string reply is a status (+OK), not a bulk string
    group: str = "generic"

    @property
    def flags(self) -> list[str]:
        return {Kind.READ: ["readonly"], Kind.WRITE: ["write"],
                Kind.LOCAL: ["fast"]}[self.kind]

    @property
    def key_spec(self) -> tuple[int, int, int]:
        """(first key, last key, step), as in COMMAND's reply."""
        return {Routing.SINGLE: (1, 1, 1), Routing.EACH: (1, -1, 1), Routing.MGET: (1, -1, 1),
                Routing.PAIRS: (1, -1, 2), Routing.NONE: (0, 0, 0)}[self.route]

    def arity_ok(self, argc: int) -> bool:
        return argc == self.arity if self.arity > 0 else argc >= -self.arity


_R, _W, _L = Kind.READ, Kind.WRITE, Kind.LOCAL


def _table(group: str, *rows: tuple) -> list[RedisCommand]:
    return [RedisCommand(name, arity, kind, *rest, group=group)
            for name, arity, kind, *rest in rows]


REDIS: dict[str, RedisCommand] = {c.name.upper(): c for c in [
    *_table("string",
            ("get", 2, _R), ("set", -3, _W, Routing.SINGLE, True), ("mget", -2, _R, Routing.MGET),
            ("mset", -3, _W, Routing.PAIRS, True), ("incr", 2, _W), ("incrby", 3, _W),
            ("decr", 2, _W), ("decrby", 3, _W), ("incrbyfloat", 3, _W), ("append", 3, _W),
            ("strlen", 2, _R), ("getrange", 4, _R), ("setrange", 4, _W), ("getdel", 2, _W),
            ("getset", 3, _W), ("setnx", 3, _W), ("setex", 4, _W, Routing.SINGLE, True),
            ("psetex", 4, _W, Routing.SINGLE, True)),
    *_table("generic",
            ("del", -2, _W, Routing.EACH), ("unlink", -2, _W, Routing.EACH),
            ("exists", -2, _R, Routing.EACH), ("expire", 3, _W), ("pexpire", 3, _W),
            ("expireat", 3, _W), ("pexpireat", 3, _W), ("ttl", 2, _R), ("pttl", 2, _R),
            ("persist", 2, _W), ("type", 2, _R, Routing.SINGLE, True)),
    *_table("list",
            ("lpush", -3, _W), ("rpush", -3, _W), ("lpushx", -3, _W), ("rpushx", -3, _W),
            ("lpop", -2, _W), ("rpop", -2, _W), ("llen", 2, _R), ("lindex", 3, _R),
            ("lrange", 4, _R), ("lset", 4, _W, Routing.SINGLE, True), ("lrem", 4, _W),
            ("ltrim", 4, _W, Routing.SINGLE, True)),
    *_table("hash",
            ("hset", -4, _W), ("hsetnx", 4, _W), ("hmset", -4, _W, Routing.SINGLE, True),
            ("hget", 3, _R), ("hmget", -3, _R), ("hdel", -3, _W), ("hgetall", 2, _R),
            ("hincrby", 4, _W), ("hlen", 2, _R), ("hexists", 3, _R), ("hkeys", 2, _R),
            ("hvals", 2, _R), ("hstrlen", 3, _R)),
    *_table("set",
            ("sadd", -3, _W), ("srem", -3, _W), ("smembers", 2, _R), ("sismember", 3, _R),
            ("scard", 2, _R)),
    *_table("sorted_set",
            ("zadd", -4, _W), ("zrem", -3, _W), ("zscore", 3, _R), ("zincrby", 4, _W),
            ("zcard", 2, _R), ("zrange", -4, _R), ("zrangebyscore", -4, _R),
            ("zrevrange", -4, _R), ("zrank", 3, _R), ("zcount", 4, _R)),
    *_table("connection",
            ("ping", -1, _L, Routing.NONE), ("echo", 2, _L, Routing.NONE),
            ("auth", -2, _L, Routing.NONE), ("select", 2, _L, Routing.NONE),
            ("quit", 1, _L, Routing.NONE), ("client", -2, _L, Routing.NONE),
            ("hello", -1, _L, Routing.NONE)),
    *_table("server",
            ("command", -1, _L, Routing.NONE), ("info", -1, _L, Routing.NONE),
            ("config", -2, _L, Routing.NONE),
            ("dbsize", 1, _L, Routing.NONE)),
]}


def arity_error(command: RedisCommand, argc: int) -> str | None:
    """Redis's error for ``argc`` arguments (the name included), or None if right."""
    if not command.arity_ok(argc):
        return f"ERR wrong number of arguments for '{command.name}' command"
    if command.route is Routing.PAIRS and argc % 2 == 0:  # Redis's own words for MSET
        return f"ERR wrong number of arguments for {command.name.upper()}"
    return None


def reply_is_status(command: RedisCommand, argv: list[Any]) -> bool:
    """Whether a string reply to ``argv`` is a status (``+OK``) rather than a bulk string."""
    if command.name == "set":  # SET ... GET answers the old value
        return not any(_upper(a) == "GET" for a in argv[3:])
    if command.name == "ping":  # PING answers +PONG, PING msg the message
        return len(argv) == 1
    return command.status


def reply_is_array(command: RedisCommand, argv: list[Any]) -> bool:
    """Whether a nil reply to ``argv`` is a nil array (``*-1``): LPOP/RPOP with a count."""
    return command.name in ("lpop", "rpop") and len(argv) > 2


def resp3_shape(command: RedisCommand, argv: list[Any]) -> str | None:
    """The RESP3 type of a reply whose RESP2 form is flat (see ``resp.encode3``)."""
    name = command.name
    if name == "hgetall":
        return "map"
    if name == "smembers":
        return "set"
    if name in ("zscore", "zincrby") or (name == "zadd" and any(
            _upper(a) == "INCR" for a in argv[2:])):
        return "double"
    if name in ("zrange", "zrangebyscore", "zrevrange") and any(
            _upper(a) == "WITHSCORES" for a in argv[4:]):
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

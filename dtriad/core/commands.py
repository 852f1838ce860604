"""The command table: every Redis command dtriad serves, and the HTTP API's names for them.

One table for every front end. :data:`REDIS` describes each supported Redis
command the way Redis's own ``COMMAND`` does (arity, flags, key positions) plus
how dtriad routes it; :data:`API` maps the paper's HTTP method names
(``getStrlen``, ``lPush`` ...) onto it. Arity follows Redis 6.2: a positive
number is the exact argument count including the command name, a negative one
the minimum.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Kind(enum.Enum):
    READ = "read"        # answered by one copy (or a quorum of copies)
    WRITE = "write"      # replicated to every copy, in the master's order
    LOCAL = "local"      # answered by the front end itself (PING, AUTH, INFO...)


class Route(enum.Enum):
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
    route: Route = Route.SINGLE
    status: bool = False  # a string reply is a status (+OK), not a bulk string
    group: str = "generic"

    @property
    def flags(self) -> list[str]:
        return {Kind.READ: ["readonly"], Kind.WRITE: ["write"],
                Kind.LOCAL: ["fast"]}[self.kind]

    @property
    def key_spec(self) -> tuple[int, int, int]:
        """(first key, last key, step), as in COMMAND's reply."""
        return {Route.SINGLE: (1, 1, 1), Route.EACH: (1, -1, 1), Route.MGET: (1, -1, 1),
                Route.PAIRS: (1, -1, 2), Route.NONE: (0, 0, 0)}[self.route]

    def arity_ok(self, argc: int) -> bool:
        return argc == self.arity if self.arity > 0 else argc >= -self.arity


_R, _W, _L = Kind.READ, Kind.WRITE, Kind.LOCAL


def _table(group: str, *rows: tuple) -> list[RedisCommand]:
    return [RedisCommand(name, arity, kind, *rest, group=group)
            for name, arity, kind, *rest in rows]


REDIS: dict[str, RedisCommand] = {c.name.upper(): c for c in [
    *_table("string",
            ("get", 2, _R), ("set", -3, _W, Route.SINGLE, True), ("mget", -2, _R, Route.MGET),
            ("mset", -3, _W, Route.PAIRS, True), ("incr", 2, _W), ("incrby", 3, _W),
            ("decr", 2, _W), ("decrby", 3, _W), ("incrbyfloat", 3, _W), ("append", 3, _W),
            ("strlen", 2, _R), ("getrange", 4, _R), ("setrange", 4, _W), ("getdel", 2, _W),
            ("getset", 3, _W), ("setnx", 3, _W), ("setex", 4, _W, Route.SINGLE, True),
            ("psetex", 4, _W, Route.SINGLE, True)),
    *_table("generic",
            ("del", -2, _W, Route.EACH), ("unlink", -2, _W, Route.EACH),
            ("exists", -2, _R, Route.EACH), ("expire", 3, _W), ("pexpire", 3, _W),
            ("expireat", 3, _W), ("pexpireat", 3, _W), ("ttl", 2, _R), ("pttl", 2, _R),
            ("persist", 2, _W), ("type", 2, _R, Route.SINGLE, True)),
    *_table("list",
            ("lpush", -3, _W), ("rpush", -3, _W), ("lpushx", -3, _W), ("rpushx", -3, _W),
            ("lpop", -2, _W), ("rpop", -2, _W), ("llen", 2, _R), ("lindex", 3, _R),
            ("lrange", 4, _R), ("lset", 4, _W, Route.SINGLE, True), ("lrem", 4, _W),
            ("ltrim", 4, _W, Route.SINGLE, True)),
    *_table("hash",
            ("hset", -4, _W), ("hsetnx", 4, _W), ("hmset", -4, _W, Route.SINGLE, True),
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
            ("ping", -1, _L, Route.NONE), ("echo", 2, _L, Route.NONE),
            ("auth", -2, _L, Route.NONE), ("select", 2, _L, Route.NONE),
            ("quit", 1, _L, Route.NONE), ("client", -2, _L, Route.NONE),
            ("hello", -1, _L, Route.NONE)),
    *_table("server",
            ("command", -1, _L, Route.NONE), ("info", -1, _L, Route.NONE),
            ("config", -2, _L, Route.NONE),
            ("dbsize", 1, _L, Route.NONE)),
]}


def arity_error(command: RedisCommand, argc: int) -> str | None:
    """Redis's error for ``argc`` arguments (the name included), or None if right."""
    if not command.arity_ok(argc):
        return f"ERR wrong number of arguments for '{command.name}' command"
    if command.route is Route.PAIRS and argc % 2 == 0:  # Redis's own words for MSET
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


def _upper(value: Any) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).upper()


def lookup(name: Any) -> RedisCommand | None:
    return REDIS.get(_upper(name))


@dataclass(frozen=True)
class ApiMethod:
    """One of the paper's HTTP methods: its name, Redis command and arguments."""

    name: str
    redis: str
    args: tuple[str, ...]
    summary: str
    ints: tuple[str, ...] = ()

    @property
    def kind(self) -> Kind:
        return REDIS[self.redis].kind

    @property
    def usage(self) -> str:
        return " ".join((self.name,) + self.args)


API: dict[str, ApiMethod] = {m.name: m for m in [
    ApiMethod("get", "GET", ("key",), "value of a string key, or null"),
    ApiMethod("set", "SET", ("key", "value"), "store a string value"),
    ApiMethod("getStrlen", "STRLEN", ("key",), "length of a string value"),
    ApiMethod("append", "APPEND", ("key", "value"), "append to a string; new length"),
    ApiMethod("lPush", "LPUSH", ("key", "value"), "push onto a list's head; new length"),
    ApiMethod("lPop", "LPOP", ("key",), "pop a list's head, or null"),
    ApiMethod("lIndex", "LINDEX", ("key", "index"), "list element at index, or null",
              ints=("index",)),
    ApiMethod("lLen", "LLEN", ("key",), "length of a list"),
    ApiMethod("delete", "DEL", ("key",), "delete a key; 1 if it existed"),
    ApiMethod("exists", "EXISTS", ("key",), "1 if the key exists, else 0"),
    ApiMethod("expire", "EXPIRE", ("key", "seconds"), "set a time to live; 1 if set",
              ints=("seconds",)),
    ApiMethod("ttl", "TTL", ("key",), "seconds to live; -1 none, -2 no key"),
    ApiMethod("incr", "INCR", ("key",), "add 1 to an integer value; new value"),
]}
MULTI_KEY = {
    "mget": "values of several keys (repeat key=)",
    "mset": "store several keys (repeat key= and value= in pairs)",
    "command": "any command of the table, as its Redis arguments (repeat arg=)",
}
ADMIN = {
    "ring": "the ring: epoch, replicas, nodes and their shares",
    "keyDist": "keys per node, as master and as backup",
    "check": "both invariants over every backend, as 'dtriad check' reports them",
    "health": "reachability of every backend",
    "stats": "requests and errors served by this DTServer",
}
INTERNAL = {
    "ringUpdate": "install a ring pushed by the DTSentinel (needs the cluster secret)",
}


def method_names() -> list[str]:
    return sorted([*API, *MULTI_KEY, *ADMIN, *INTERNAL], key=str.lower)

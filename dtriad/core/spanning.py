"""Multi-key commands whose keys live on different nodes (where Redis Cluster
says CROSSSLOT, dtriad works).

When every key of a command shares one set of copies (one route: always
the case for keys with the same ``{tag}``), the request core runs it as one
replicated step, atomic like Redis. Otherwise this module runs it, in one
of three ways:

* **computed in a scratch database** (SINTER, ZUNIONSTORE, PFMERGE, BITOP,
  COPY, SORT ... STORE, GEOSEARCHSTORE ...): each key's state is read from
  its copies (``STATE``: version, DUMP, TTL), restored into an empty
  database of one backend where the command runs unchanged
  (``SCRATCH``, one atomic script that leaves that database empty again),
  and every key whose state the command changed is written back through
  the replicated write path, on the condition that it is still at the
  version read (``WRITE_MASTER_IF``): a write another client made in
  between is never overwritten; the whole command is computed again
  instead (up to ``ATTEMPTS`` times);
* **as the commands it is made of** (SMOVE, LMOVE, RPOPLPUSH, RENAME,
  RENAMENX, MSETNX, XREAD, XREADGROUP): remove from the source, then add
  to the destination, each a replicated write of its own;
* PFCOUNT of several keys runs in the scratch database (Redis merges them
  into a temporary HyperLogLog too); PFCOUNT of one key is a replicated
  write, since it caches the cardinality in the key, on every copy alike.

None of these is atomic across nodes: a client reading the keys while one
runs can see the source changed and the destination not yet (the README's
command table says, command by command, what can be observed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dtriad.backends.outcome import Steps
from dtriad.config import WriteQuorum
from dtriad.core.commands import RedisCommand, streams_at
from dtriad.core.scripts import SCRATCH, STATE, UNPACK
from dtriad.exceptions import CommandError, RingChangingError, printable

if TYPE_CHECKING:
    from dtriad.core.requests import Requests

ATTEMPTS = 5  # computations of one command whose keys other clients keep changing
_MOVES = {"smove", "lmove", "rpoplpush", "rename", "renamenx", "msetnx", "xread",
          "xreadgroup"}


class Changed(Exception):
    """A compare-and-set write found its key at another version: another
    client wrote it since it was read; the caller reads it again."""


def _wrongtype() -> CommandError:
    return CommandError("WRONGTYPE Operation against a key holding the wrong kind of value",
                        "WRONGTYPE")


def _upper(value: Any) -> str:
    return printable(value).upper()


def sort_patterns(spec: RedisCommand, argv: Sequence[Any]) -> list[str]:
    """The key patterns of SORT's BY and GET options (the part before any
    ``->field``): each names one key per element, on any node."""
    if spec.name not in ("sort", "sort_ro"):
        return []
    patterns = []
    for i in range(2, len(argv) - 1):
        word, value = _upper(argv[i]), argv[i + 1]
        text = value.decode() if isinstance(value, bytes) else str(value)
        if word in ("BY", "GET") and "*" in text:
            patterns.append(text.split("->", 1)[0])
    return patterns


class Spanning:
    """Runs multi-key commands over keys of several routes, for :class:`Requests`."""

    def __init__(self, requests: Requests):
        self.requests = requests

    # ----------------------------------------------------------------- reading
    def state(self, key: Any) -> Steps:
        """``(version, value or b'', absolute expiry in ms or 0)`` of ``key``,
        from the first of its copies to answer."""
        view = yield from self.requests.follower.follow()
        reply, _ = yield from self.requests.first(view.route(key).read,
                                                  ("EVAL", STATE, 1, key), key)
        version, value, ttl = reply
        expiry = int(time.time() * 1000) + int(ttl) if int(ttl) > 0 else 0
        return version, value or b"", expiry

    def scratch(self, keys: Sequence[Any], states: dict, command: Sequence[Any],
                after: bool) -> Steps:
        """Run ``command`` over copies of ``keys`` (with ``states``) in the
        scratch database of one backend; its reply and, with ``after``, each
        key's resulting ``(value or b'', ms to live)``."""
        view = yield from self.requests.follower.follow()
        args = ["EVAL", SCRATCH, 0, len(keys), "1" if after else "0"]
        for key in keys:
            _, value, expiry = states[key]
            args += [key, value, expiry]
        nodes = view.route(keys[0]).read
        reply, _ = yield from self.requests.first(nodes, (*args, *command), keys[0])
        return reply[0], [(value or b"", int(ttl)) for value, ttl in reply[1:]]

    def read(self, spec: RedisCommand, keys: Sequence[Any], argv: Sequence[Any]) -> Steps:
        """A read over keys of several routes (SINTER, ZUNION, PFCOUNT ...)."""
        if spec.name == "xread":
            return (yield from self._streams(spec, keys, argv, None))
        keys = list(dict.fromkeys(keys))
        keys += yield from self._pattern_keys(spec, argv, keys)
        view = yield from self.requests.follower.follow()
        if spec.name != "pfcount" and len({view.route(k) for k in keys}) == 1:
            reply, _ = yield from self.requests.first(view.route(keys[0]).read, argv, keys[0])
            return reply  # one node holds them all: as Redis runs it
        states = {}
        for key in keys:
            states[key] = yield from self.state(key)
        reply, _ = yield from self.scratch(keys, states, argv, after=False)
        return reply

    # ----------------------------------------------------------------- writing
    def write(self, spec: RedisCommand, keys: Sequence[Any], argv: Sequence[Any],
              level: WriteQuorum) -> Steps:
        """A write over keys of several routes."""
        view = yield from self.requests.follower.follow()
        extra = yield from self._pattern_keys(spec, argv, keys)
        if len({view.route(k) for k in [*keys, *extra]}) == 1:  # one step, atomic
            return (yield from self.requests.write(list(dict.fromkeys(keys)), argv, level,
                                                   replay=not spec.random))
        if spec.name in _MOVES:
            return (yield from getattr(self, f"_{spec.name}")(spec, keys, argv, level))
        for _ in range(ATTEMPTS):
            try:
                return (yield from self._computed(spec, keys, extra, argv, level))
            except Changed:
                continue
        raise RingChangingError(f"{spec.name.upper()}: other clients kept changing "
                                f"{printable(keys[0])!r} while it was computed; retry")

    def _computed(self, spec: RedisCommand, keys: Sequence[Any], extra: Sequence[Any],
                  argv: Sequence[Any], level: WriteQuorum) -> Steps:
        keys = list(dict.fromkeys([*keys, *extra]))
        states = {}
        for key in keys:
            states[key] = yield from self.state(key)
        reply, after = yield from self.scratch(keys, states, argv, after=True)
        for key, (value, ttl) in zip(keys, after, strict=True):
            version, before, _ = states[key]
            if value == before and (ttl > 0) == (states[key][2] > 0):
                continue  # unchanged (a source, or a destination left as it was)
            if not value:
                command = ("DEL", key)
            elif ttl > 0:
                command = ("RESTORE", key, int(time.time() * 1000) + ttl, value, "REPLACE",
                           "ABSTTL")
            else:
                command = ("RESTORE", key, 0, value, "REPLACE")
            yield from self.requests.write([key], command, level, expect=version)
        return reply

    def _pattern_keys(self, spec: RedisCommand, argv: Sequence[Any],
                      keys: Sequence[Any]) -> Steps:
        """The keys SORT's BY and GET patterns name, one per element and pattern."""
        patterns = sort_patterns(spec, argv)
        if not patterns:
            return []
        state = yield from self.state(keys[0])
        elements, _ = yield from self.scratch([keys[0]], {keys[0]: state},
                                              ("SORT", keys[0], "BY", "nosort"), after=False)
        if not isinstance(elements, list):
            return []
        found = []
        for element in elements:
            text = element.decode("utf-8", "surrogateescape")
            for pattern in patterns:
                found.append(pattern.replace("*", text, 1))
        return [k for k in dict.fromkeys(found) if k not in keys]

    # --------------------------------------------------- commands made of others
    def _type(self, key: Any) -> Steps:
        view = yield from self.requests.follower.follow()
        reply, _ = yield from self.requests.first(view.route(key).read, ("TYPE", key), key)
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def _exists(self, key: Any) -> Steps:
        view = yield from self.requests.follower.follow()
        reply, _ = yield from self.requests.first(view.route(key).read, ("EXISTS", key), key)
        return bool(reply)

    def _smove(self, spec, keys, argv, level) -> Steps:
        source, destination, member = argv[1], argv[2], argv[3]
        if (yield from self._type(destination)) not in ("none", "set"):
            if not (yield from self._exists(source)):
                return 0
            raise _wrongtype()
        if not (yield from self.requests.write([source], ("SREM", source, member), level)):
            return 0
        yield from self.requests.write([destination], ("SADD", destination, member), level)
        return 1

    def _lmove(self, spec, keys, argv, level) -> Steps:
        source, destination, wherefrom, whereto = argv[1:5]
        ends = {"LEFT": "L", "RIGHT": "R"}
        if _upper(wherefrom) not in ends or _upper(whereto) not in ends:
            raise CommandError("ERR syntax error")
        return (yield from self._move_element(source, destination, ends[_upper(wherefrom)],
                                              ends[_upper(whereto)], level))

    def _rpoplpush(self, spec, keys, argv, level) -> Steps:
        return (yield from self._move_element(argv[1], argv[2], "R", "L", level))

    def _move_element(self, source, destination, pop: str, push: str,
                      level: WriteQuorum) -> Steps:
        if (yield from self._type(destination)) not in ("none", "list"):
            if (yield from self._type(source)) == "none":
                return None
            raise _wrongtype()
        value = yield from self.requests.write([source], (f"{pop}POP", source), level)
        if value is None:
            return None
        yield from self.requests.write([destination], (f"{push}PUSH", destination, value),
                                       level)
        return value

    def _rename(self, spec, keys, argv, level, only_new: bool = False) -> Steps:
        source, destination = argv[1], argv[2]
        for _ in range(ATTEMPTS):
            version, value, expiry = yield from self.state(source)
            if not value:
                raise CommandError("ERR no such key")
            if only_new and (yield from self._exists(destination)):
                return 0
            restore = (("RESTORE", destination, expiry, value, "REPLACE", "ABSTTL") if expiry
                       else ("RESTORE", destination, 0, value, "REPLACE"))
            yield from self.requests.write([destination], restore, level)
            try:
                yield from self.requests.write([source], ("DEL", source), level,
                                               expect=version)
            except Changed:
                continue  # written since it was copied: copy the newer value
            return 1 if only_new else b"OK"
        raise RingChangingError(f"RENAME: other clients kept changing {printable(source)!r}; "
                                f"retry")

    def _renamenx(self, spec, keys, argv, level) -> Steps:
        return (yield from self._rename(spec, keys, argv, level, only_new=True))

    def _msetnx(self, spec, keys, argv, level) -> Steps:
        if len(argv) < UNPACK:  # checked and written under the keys' locks: atomic
            return (yield from self.requests.transactions.atomic(argv, level))
        for key in keys:
            if (yield from self._exists(key)):
                return 0
        yield from self.requests.mset(argv[1::2], argv[2::2], level)
        return 1

    def _xread(self, spec, keys, argv, level) -> Steps:
        return (yield from self._streams(spec, keys, argv, level))

    def _xreadgroup(self, spec, keys, argv, level) -> Steps:
        return (yield from self._streams(spec, keys, argv, level))

    def _streams(self, spec: RedisCommand, keys: Sequence[Any], argv: Sequence[Any],
                 level: WriteQuorum | None) -> Steps:
        """XREAD / XREADGROUP over streams of several routes: one command per
        stream (COUNT applies per stream), replies in the order asked."""
        at = streams_at(spec.name, argv)
        options, ids = argv[:at + 1], argv[at + 1 + len(keys):]
        if len(ids) != len(keys):
            raise CommandError("ERR Unbalanced XREAD list of streams: for each stream key "
                               "an ID or '$' must be specified.")
        replies = []
        for key, last in zip(keys, ids, strict=True):
            command = (*options, key, last)
            if level is None:
                view = yield from self.requests.follower.follow()
                reply, _ = yield from self.requests.first(view.route(key).read, command, key)
            else:
                reply = yield from self.requests.write([key], command, level)
            replies += reply or []
        return replies or None

"""The RESP front end's fast path: a plain one-key read answered with callbacks.

Most of what a cache sends is GET, HGET, LRANGE...: one key, read from the
first live copy (``read_quorum = "one"``). The general path pays for
generality on each of them: a coroutine per request, the request core's step
generator, a future per backend reply, a task switch back. This path does
the same read with none of those: :meth:`FastReads.send` routes the key by
the ring in force, pipelines the command on the copy's open connection
(:meth:`~dtriad.backends.aclient._Link.send`), and the reply's arrival
encodes it and hands it to the session, in the session's order
(:class:`FastRead`). A session whose whole burst is fast reads (``-P 16``)
sends one write per backend and one reply write.

It answers exactly what the general path answers, or does not start: every
condition below sends the request the general way instead (``send`` answers
False), and a backend that fails under a fast read hands that one request to
the general path, which tries the next copy as it always does.

* the session is authenticated, in no transaction, not subscribed;
* the command is one of :data:`FAST`, with Redis's arity, no argument over
  ``max_value_bytes``, and ``read_quorum`` is "one";
* the ring in force needs no poll of the backends right now (the general
  path does that, once a second);
* the copy to ask is not suspected and its connection is open.

The order of a session's replies is kept by its queue of :class:`FastRead`
(``Session.slots``); the general path waits for that queue to empty before
it runs anything, so a write after a read in one pipeline starts after the
read was answered, as on a single Redis.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from dtriad.config import ReadQuorum
from dtriad.core.commands import REDIS, Kind, Routing, lookup
from dtriad.exceptions import CommandError
from dtriad.frontends.resp import error

if TYPE_CHECKING:
    from dtriad.frontends.respd import RespServer, Session

log = logging.getLogger(__name__)

# One-key reads whose reply the backend gives as Redis 6.2 does (no
# conversion in redis62.py, no early refusal), taking their key first.
FAST = frozenset((
    "get", "getrange", "substr", "strlen", "getbit",
    "hget", "hmget", "hgetall", "hkeys", "hvals", "hlen", "hexists", "hstrlen",
    "llen", "lindex", "lrange", "lpos",
    "scard", "sismember", "smismember", "smembers",
    "zcard", "zscore", "zmscore", "zrank", "zrevrank", "zcount", "zlexcount",
    "zrange", "zrevrange", "zrangebyscore", "zrevrangebyscore", "zrangebylex",
    "zrevrangebylex",
    "ttl", "pttl", "type", "xlen", "xrange", "xrevrange",
))
# Those whose reply, whatever the arguments, is a bulk string, a nil or an
# integer Redis encodes as such (no status, no nil array, no RESP3 type):
# encoded without asking the command table.
PLAIN = frozenset((
    "get", "getrange", "substr", "strlen", "getbit", "hget", "hlen", "hexists", "hstrlen",
    "llen", "lindex", "scard", "sismember", "zcard", "zrank", "zrevrank", "zcount",
    "zlexcount", "ttl", "pttl", "xlen",
))
assert PLAIN <= FAST
assert all(REDIS[name.upper()].kind is Kind.READ and REDIS[name.upper()].route is Routing.SINGLE
           for name in FAST)


_SPELLINGS = 1024  # command names as clients spell them (GET, get, Get...) kept by FastReads


class FastRead:
    """One fast read's place in its session's order; the backend link calls
    :meth:`set_result` or :meth:`set_exception` (it stands where a future
    would)."""

    __slots__ = ("fast", "session", "spec", "argv", "node", "started", "reply")

    def __init__(self, fast: FastReads, session: Session, spec, argv: list, node: str,
                 started: float):
        self.fast = fast
        self.session = session
        self.spec = spec
        self.argv = argv
        self.node = node
        self.started = started
        self.reply: bytes | None = None

    def done(self) -> bool:
        return self.reply is not None

    def set_result(self, value: Any) -> None:
        fast = self.fast
        try:  # called by the backend link: nothing may escape into it
            kind = type(value)
            if kind is bytes and self.spec.name in PLAIN and not self.session.resp3:
                self.reply = b"$%d\r\n%s\r\n" % (len(value), value)
            elif kind is int and self.spec.name in PLAIN:  # the same in RESP2 and 3
                self.reply = b":%d\r\n" % value
            else:
                self.reply = fast.server.encode(self.session, self.spec, self.argv, value)
            fast.core.record("resp", self.spec.name, self.spec.group,
                             time.perf_counter() - self.started)
        except Exception:  # noqa: BLE001 - a bug must not take the link down
            log.exception("internal error encoding a reply to %r", self.spec.name)
            self.reply = error("ERR internal error in the DTServer; see its log")
        self.session.fast_done()

    def set_exception(self, exc: BaseException) -> None:
        fast = self.fast
        if isinstance(exc, ResponseError):  # about the data (WRONGTYPE): the answer
            e = CommandError.from_redis(exc)
            fast.core.record("resp", self.spec.name, self.spec.group,
                             time.perf_counter() - self.started, e.code)
            self.reply = error(e.line)
            self.session.fast_done()
            return
        # The copy failed: the general path asks the next one, as it would have.
        fast.core.suspects.suspect(self.node)
        self.session.general(self)


class FastReads:
    """Decides, per request, whether the fast path may answer it, and sends it."""

    def __init__(self, server: RespServer):
        self.server = server
        self.core = server.core
        self.enabled = self.core.config.read_quorum == ReadQuorum.ONE
        self._clock = time.monotonic
        self._specs: dict[bytes, Any] = {}  # a FAST command's name as sent -> its spec

    def send(self, session: Session, argv: list) -> bool:
        """Send ``argv`` as a fast read of ``session`` (True), or leave it to
        the general path (False; nothing was done)."""
        if not (self.enabled and session.authed) or session.multi is not None \
                or session.pubsub is not None:
            return False
        name = argv[0]
        spec = self._specs.get(name) if type(name) is bytes else None
        if spec is None:
            spec = lookup(name)
            if spec is None or spec.name not in FAST:
                return False
            if type(name) is bytes and len(name) <= 16 and len(self._specs) < _SPELLINGS:
                self._specs[name] = spec  # only real spellings of FAST's (bounded)
        # FAST's commands are single-key reads: their one arity rule is Redis's
        if not spec.arity_ok(len(argv)):
            return False
        for arg in argv:
            if type(arg) is not bytes:  # TooLarge: the general path says why
                return False
        view = self.core.follower.current(self._clock())
        if view is None:
            return False
        suspects = self.core.suspects
        node = None
        for candidate in view.route(argv[1]).read:
            if not suspects.suspected(candidate):
                node = candidate
                break
        if node is None:
            return False
        link = self.server.client.open_link(node)
        if link is None:
            return False
        slot = FastRead(self, session, spec, argv, node, time.perf_counter())
        session.slots.append(slot)
        link.send(tuple(argv), slot)
        self.core.round_trip(node)
        return True

"""Pub/sub over RESP: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
PUBLISH and PUBSUB CHANNELS/NUMSUB/NUMPAT/HELP, with Redis 6.2's semantics
and replies, RESP2 (subscribed mode) and RESP3 (push messages), cluster-wide.

Design
------
*Subscriptions go everywhere, each message goes through one backend.*

* Each RESP process keeps one pub/sub connection (:class:`_Feed`) per ring
  member's backend and subscribes there, on every member, to each channel
  and pattern its own clients want (once, however many local clients want
  it). Backend channel names carry the prefix ``dtriad:`` (patterns too:
  the prefix has no glob character, so ``dtriad:`` + *pattern* matches
  exactly ``dtriad:`` + the channels *pattern* matches), so a client's
  ``PSUBSCRIBE *`` never sees the backends' own traffic (Sentinel's
  ``__sentinel__:hello``).
* PUBLISH runs one Lua script (:data:`PUBLISH_SCRIPT`, one round trip) on
  ONE backend: the first reachable one of the channel's preference list
  (the same SHA-1 placement as a key of that name; old owners first while a
  ring is pending). As every subscriber's process listens on every member,
  the message reaches each subscription exactly once, whatever backend took
  it.
* Why not subscribe only on the channel's master (the issue's suggestion)?
  Then a publisher and a subscriber must agree on the master: they do not
  while a ring change propagates (each DTServer learns it on its own time),
  and not between a master's death and the ring change that replaces it
  (``down_after_ms``) either, when the channel would be silent. Here a
  publisher just moves to the channel's next owner as soon as its master is
  refused, and nobody has to move subscriptions for it: a ring change only
  adds a connection to a joining member (subscribed as soon as the pending
  ring names it, before any publisher can prefer it, since old owners come
  first while the ring is pending) and drops the connection to a member that
  left. The price: each subscribed channel is a subscription on N backends
  instead of one (memory in each backend, N commands per first SUBSCRIBE
  sent in parallel); a message still costs one backend and one copy per
  subscribed DTServer, as before.
* Counts. Each RESP process writes, in database 1 of every member, its own
  number of local clients per channel and per pattern
  (``dtriad:pubsub:<id>:channels`` / ``:patterns`` hashes), registers in
  ``dtriad:pubsub:servers`` and keeps ``dtriad:pubsub:<id>:alive`` alive
  (``PX`` :data:`STAMP_TTL_MS`, renewed every :data:`STAMP_EVERY_S`). A
  count changes before the (P)(UN)SUBSCRIBE reply goes out. The PUBLISH
  script sums the live processes' counts of the channel and returns their
  patterns, which are matched here with Redis's own glob rules
  (:func:`glob_match`): the reply is the cluster-wide number of receiving
  clients, counted as Redis counts (one per channel subscription, one per
  matching (client, pattern) pair). A dead process's entries are ignored
  once its stamp expires, and deleted by the next script that sees them.
  PUBSUB CHANNELS/NUMSUB/NUMPAT read the same records on one backend.
* Delivery into a client: ``session.push`` (after every reply queued), so
  a message never overtakes a reply; messages that arrive while a SUBSCRIBE
  is waiting for the backends are held and sent right after its reply.
  What is queued for a client is bounded as Redis's
  ``client-output-buffer-limit pubsub 32mb 8mb 60``: over 32 MiB, or over
  8 MiB for 60 s, the connection is closed.

What is lost during a failure or a ring change
----------------------------------------------
Pub/sub stays fire-and-forget, as in Redis: nothing is stored or replayed.

* Messages a backend accepted but had not yet handed to the DTServers when it
  died are lost; so are PUBLISHes sent to it in that moment (the publisher
  gets an error, or, if the connection broke before the reply, the PUBLISH is
  sent to the channel's next owner: then a subscriber can get it twice only if
  the dead backend delivered it before dying).
* While a DTServer's connection to a backend is down (that backend died,
  or the connection is being re-established), messages published on that
  backend do not reach that DTServer's clients. Publishers stop using a dead
  backend at its first refused connection.
* A member that joins: until a DTServer has learnt the ring that names it
  (pushed by the DTSentinel, or polled within ``poll_interval``), it has no
  subscriptions there; a publisher only prefers the new member once the
  ring is committed, by when every DTServer is normally subscribed.
* Counts (PUBLISH's reply, PUBSUB) come from one backend's records: a
  backend that was unreachable when a count changed is rewritten whole when
  it answers again; a killed DTServer's clients are still counted until its
  stamp expires (:data:`STAMP_TTL_MS`).
* The clients of a DTServer that stops lose their connections, as Redis's.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError

from dtriad.backends.outcome import DOWN_ERRORS
from dtriad.config import parse_address
from dtriad.core.steps import arun
from dtriad.exceptions import BackendError, printable
from dtriad.frontends.resp import encode, error

if TYPE_CHECKING:
    from dtriad.frontends.respd import RespServer, Session

log = logging.getLogger(__name__)

PREFIX = b"dtriad:"  # backend channel = PREFIX + channel (no glob character in it)
STAMP_TTL_MS = 5000  # a process's counts are ignored this long after its last renewal
STAMP_EVERY_S = 1.0
TICK_S = 0.25  # how often feeds are (re)connected and the ring followed
HARD_LIMIT = 32 * 1024 * 1024  # client-output-buffer-limit pubsub 32mb 8mb 60
SOFT_LIMIT = 8 * 1024 * 1024
SOFT_SECONDS = 60.0
_CHUNK = 1000  # names per backend (UN)SUBSCRIBE

# Allowed to a RESP2 connection in subscribed mode (Redis 6.2's list).
ALLOWED = frozenset({"subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ping",
                     "quit", "reset"})

# All records live in database 1, keys ``dtriad:pubsub:*``. ARGV[1] = process id.
_LIVE = """
redis.call('SELECT', 1)
local live = {}
for _, id in ipairs(redis.call('SMEMBERS', 'dtriad:pubsub:servers')) do
  local base = 'dtriad:pubsub:' .. id
  if redis.call('EXISTS', base .. ':alive') == 1 then
    live[#live + 1] = base
  else
    redis.call('DEL', base .. ':channels', base .. ':patterns')
    redis.call('SREM', 'dtriad:pubsub:servers', id)
  end
end
"""

# ARGV: backend channel, message, channel -> {channel receivers, {pattern, count, ...}}
PUBLISH_SCRIPT = _LIVE + """
local receivers = 0
local patterns = {}
for _, base in ipairs(live) do
  local n = redis.call('HGET', base .. ':channels', ARGV[3])
  if n then receivers = receivers + tonumber(n) end
  local ps = redis.call('HGETALL', base .. ':patterns')
  for i = 1, #ps do patterns[#patterns + 1] = ps[i] end
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {receivers, patterns}
"""

# ARGV: 'numsub', channel... -> counts | 'channels' or 'patterns' -> names (repeats)
QUERY_SCRIPT = _LIVE + """
local out = {}
if ARGV[1] == 'numsub' then
  for i = 2, #ARGV do
    local n = 0
    for _, base in ipairs(live) do
      n = n + tonumber(redis.call('HGET', base .. ':channels', ARGV[i]) or '0')
    end
    out[#out + 1] = n
  end
  return out
end
for _, base in ipairs(live) do
  for _, name in ipairs(redis.call('HKEYS', base .. ':' .. ARGV[1])) do out[#out + 1] = name end
end
return out
"""

# ARGV: id, ttl ms, 'full' or 'update', channel pairs count, channel, n, ..., pattern, n, ...
# (n = 0 deletes). An update of a record that expired is refused (-> 0): the
# caller rewrites it whole. -> 1
WRITE_SCRIPT = """
redis.call('SELECT', 1)
local base = 'dtriad:pubsub:' .. ARGV[1]
if ARGV[3] == 'full' then
  redis.call('DEL', base .. ':channels', base .. ':patterns')
elseif redis.call('EXISTS', base .. ':alive') == 0 then
  return 0
end
local split = 5 + 2 * tonumber(ARGV[4])
for i = 5, #ARGV, 2 do
  local key = base .. (i < split and ':channels' or ':patterns')
  if ARGV[i + 1] == '0' then
    redis.call('HDEL', key, ARGV[i])
  else
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
redis.call('SADD', 'dtriad:pubsub:servers', ARGV[1])
redis.call('SET', base .. ':alive', '1', 'PX', ARGV[2])
return 1
"""

# ARGV: id, ttl ms -> 1, or 0 if the record expired (to be rewritten whole)
STAMP_SCRIPT = """
redis.call('SELECT', 1)
if redis.call('PEXPIRE', 'dtriad:pubsub:' .. ARGV[1] .. ':alive', ARGV[2]) == 0 then return 0 end
redis.call('SADD', 'dtriad:pubsub:servers', ARGV[1])
return 1
"""

PUBSUB_HELP = [
    b"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"CHANNELS [<pattern>]",
    b"    Return the currently active channels matching a <pattern> (default: '*').",
    b"NUMPAT",
    b"    Return number of subscriptions to patterns.",
    b"NUMSUB [<channel> ...]",
    b"    Return the number of subscribers for the specified channels, excluding",
    b"    pattern subscriptions(default: no channels).",
    b"HELP",
    b"    Prints this help.",
]


# ------------------------------------------------------------------ pure parts
def _compile(pattern: bytes) -> list:
    """Redis 6.2's ``stringmatchlen`` pattern as tokens: ``None`` for ``*``,
    else a predicate on one byte. How far a bracket reaches does not depend on
    the string matched, so the tokens are exact, quirks included (an unclosed
    ``[`` takes the rest of the pattern; ``[a-]`` ranges to ``]``; ranges
    compare bytes as C's signed char)."""
    tokens: list = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*'
            if not tokens or tokens[-1] is not None:
                tokens.append(None)
        elif c == 0x3F:  # '?'
            tokens.append(lambda b: True)
        elif c == 0x5B:  # '['
            i += 1
            negate = i < n and pattern[i] == 0x5E
            if negate:
                i += 1
            singles, ranges = set(), []
            while True:
                if i < n and pattern[i] == 0x5C and n - i >= 2:
                    i += 1
                    singles.add(pattern[i])
                elif i < n and pattern[i] == 0x5D:
                    break
                elif i >= n:
                    i -= 1
                    break
                elif n - i >= 3 and pattern[i + 1] == 0x2D:
                    lo, hi = _signed(pattern[i]), _signed(pattern[i + 2])
                    ranges.append((min(lo, hi), max(lo, hi)))
                    i += 2
                else:
                    singles.add(pattern[i])
                i += 1
            tokens.append(_class(frozenset(singles), tuple(ranges), negate))
        else:
            if c == 0x5C and n - i >= 2:  # '\' escapes the next byte
                i += 1
            tokens.append(pattern[i])
        i += 1
    return tokens


def _signed(b: int) -> int:
    return b - 256 if b > 127 else b


def _class(singles: frozenset, ranges: tuple, negate: bool) -> Callable[[int], bool]:
    def test(b: int) -> bool:
        s = _signed(b)
        return (b in singles or any(lo <= s <= hi for lo, hi in ranges)) != negate
    return test


def glob_match(pattern: bytes, string: bytes) -> bool:
    """Redis 6.2's glob match (``stringmatchlen``), in time O(len(pattern) x
    len(string)) whatever the pattern (no backtracking blow-up). As in Redis,
    an empty string matches only the empty pattern."""
    if not string:
        return not pattern
    tokens = _compile(pattern)
    p = i = 0
    star, mark = -1, 0
    while i < len(string):
        if p < len(tokens) and tokens[p] is None:
            star, mark = p, i
            p += 1
        elif p < len(tokens) and (tokens[p] == string[i] if type(tokens[p]) is int
                                  else tokens[p](string[i])):
            p += 1
            i += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            i = mark
        else:
            return False
    while p < len(tokens) and tokens[p] is None:
        p += 1
    return p == len(tokens)


def frame(kind: bytes, items: Iterable, resp3: bool) -> bytes:
    """A pub/sub reply or message: an array in RESP2, a push in RESP3
    (a nil channel is ``$-1`` or ``_``, as Redis's ``addReplyNull``)."""
    items = list(items)
    head = b">%d\r\n" if resp3 else b"*%d\r\n"
    return (head % (len(items) + 1) + encode(kind)
            + b"".join(encode(x, resp3=resp3) for x in items))


def ping_reply(args: list) -> bytes:
    """PING on a RESP2 connection in subscribed mode: ``["pong", arg or ""]``."""
    if len(args) > 1:
        return error("ERR wrong number of arguments for 'ping' command")
    return frame(b"pong", [args[0] if args else b""], False)


@dataclass
class Subscriptions:
    """One session's subscriptions (``session.pubsub``; None when it has none)."""

    channels: dict = field(default_factory=dict)  # name -> None, in subscription order
    patterns: dict = field(default_factory=dict)
    hold: list | None = None  # messages that came while a SUBSCRIBE waited for the backends
    soft_since: float | None = None  # over the soft output limit since then

    @property
    def count(self) -> int:
        return len(self.channels) + len(self.patterns)


class OutputLimit:
    """Redis's ``client-output-buffer-limit``: close a client whose queued
    output is over ``hard`` bytes, or over ``soft`` for ``seconds``."""

    def __init__(self, hard: int = HARD_LIMIT, soft: int = SOFT_LIMIT,
                 seconds: float = SOFT_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.hard, self.soft, self.seconds, self.clock = hard, soft, seconds, clock

    def over(self, state: Subscriptions, queued: int) -> bool:
        if queued > self.hard:
            return True
        if queued <= self.soft:
            state.soft_since = None
            return False
        now = self.clock()
        if state.soft_since is None:
            state.soft_since = now
        return now - state.soft_since >= self.seconds


# ------------------------------------------------------------ backend feeds
class _Feed(asyncio.Protocol):
    """One pub/sub connection to one backend: commands go out at once, in
    order; each (un)subscribe confirmation resolves the oldest expected one."""

    def __init__(self, node: str, owner: PubSub):
        self.node = node
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.expected: collections.deque = collections.deque()  # (key, future)
        self.waiting: dict = {}  # (is_pattern, name) -> its latest subscribe's future
        self.ready = False  # authenticated and subscribed to everything wanted
        self.dead = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, args: tuple, keys: list) -> list[asyncio.Future]:
        """Send one command expecting one confirmation per key; a key that
        is a (is_pattern, name) of a subscribe is remembered in ``waiting``."""
        loop = asyncio.get_running_loop()
        futures = []
        if self.dead:
            return futures
        self.transport.write(hiredis.pack_command(args))
        for key in keys:
            future = loop.create_future()
            self.expected.append((key, future))
            futures.append(future)
            if key is not None and args[0] in (b"SUBSCRIBE", b"PSUBSCRIBE"):
                self.waiting[key] = future
        return futures

    def names(self, verb: bytes, pattern: bool, names: list) -> list[asyncio.Future]:
        out = []
        for start in range(0, len(names), _CHUNK):
            chunk = names[start:start + _CHUNK]
            out += self.send((verb, *(PREFIX + n for n in chunk)),
                             [(pattern, n) for n in chunk])
        return out

    def data_received(self, data: bytes) -> None:
        if self.dead:
            return
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError:
                self.abort("protocol error")
                return
            if reply is False:
                return
            if isinstance(reply, list) and reply and reply[0] == b"message" and len(reply) == 3:
                self.owner._deliver(None, reply[1], reply[2])
            elif isinstance(reply, list) and reply and reply[0] == b"pmessage" and len(reply) == 4:
                self.owner._deliver(reply[1], reply[2], reply[3])
            elif self.expected:
                key, future = self.expected.popleft()
                if self.waiting.get(key) is future:
                    del self.waiting[key]
                if not future.done():
                    if isinstance(reply, hiredis.ReplyError):
                        future.set_exception(BackendError(f"{self.node}: {reply}", self.node))
                    else:
                        future.set_result(reply)

    def abort(self, why: str) -> None:
        if not self.dead:
            log.info("pub/sub connection to %s closed: %s", self.node, why)
        if self.transport is not None:
            self.transport.abort()
        self.connection_lost(None)

    def connection_lost(self, exc) -> None:
        if self.dead:
            return
        self.dead = True
        self.ready = False
        for _, future in self.expected:
            if not future.done():
                future.set_exception(RedisConnectionError(f"connection to {self.node} lost"))
                future.exception()  # retrieved: nobody may be waiting
        self.expected.clear()
        self.waiting.clear()
        self.owner._lost(self)


# ------------------------------------------------------------------ the server
class PubSub:
    """Pub/sub for one RESP process (see the module docstring)."""

    def __init__(self, server: RespServer, limit: OutputLimit | None = None):
        self.server = server
        self.id = uuid.uuid4().hex
        self.limit = limit or OutputLimit()
        self.channels: dict[bytes, set] = {}  # channel -> local sessions
        self.patterns: dict[bytes, set] = {}
        self.feeds: dict[str, _Feed] = {}  # member -> its connection (connected or not)
        self._connecting: dict[str, asyncio.Task] = {}
        self._dirty: tuple[set, set] = (set(), set())  # counts to write: channels, patterns
        self._stale: set[str] = set()  # members whose records must be rewritten whole
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._registered = False
        self._closed = False
        self._next_stamp = 0.0

    # -------------------------------------------------------- respd's hooks
    def refuses(self, session: Session, spec) -> bytes | None:
        """The error for a command a subscribed RESP2 connection may not send, or None."""
        if session.pubsub is None or session.resp3 or spec.name in ALLOWED:
            return None
        return error(f"ERR Can't execute '{spec.name}': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / "
                     f"PING / QUIT / RESET are allowed in this context")

    def ping(self, args: list) -> bytes:
        return ping_reply(args)

    async def command(self, session: Session, spec, argv: list) -> bytes:
        self.server.core.requests.checked(argv)
        self._start()
        name, args = spec.name, argv[1:]
        if name in ("subscribe", "psubscribe"):
            return await self._subscribe(session, args, name == "psubscribe")
        if name in ("unsubscribe", "punsubscribe"):
            return await self._unsubscribe(session, args, name == "punsubscribe")
        if name == "publish":
            return encode(await self.publish(args[0], args[1]))
        return await self._pubsub(session, args)

    def disconnected(self, session: Session) -> None:
        """The session closed or was RESET: drop its subscriptions."""
        state = session.pubsub
        if state is None:
            return
        session.pubsub = None
        self._forget(session, list(state.channels), False)
        self._forget(session, list(state.patterns), True)
        if not self._closed and (self._dirty[0] or self._dirty[1]):
            self._spawn(self._sync())

    def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        for task in self._connecting.values():
            task.cancel()
        for feed in list(self.feeds.values()):
            feed.abort("server stopping")
        self.feeds.clear()

    # ----------------------------------------------------------- commands
    async def _subscribe(self, session: Session, names: list, pattern: bool) -> bytes:
        state = session.pubsub
        if state is None:
            state = session.pubsub = Subscriptions()
        mine, table = (state.patterns, self.patterns) if pattern else (state.channels,
                                                                       self.channels)
        kind = b"psubscribe" if pattern else b"subscribe"
        replies, new = [], []
        for name in names:
            if name not in mine:
                mine[name] = None
                sessions = table.setdefault(name, set())
                sessions.add(session)
                if len(sessions) == 1:
                    new.append(name)
                self._dirty[pattern].add(name)
            replies.append(frame(kind, [name, state.count], session.resp3))
        state.hold = []
        try:
            for feed in list(self.feeds.values()):
                if feed.ready:  # one still connecting subscribes to everything once up
                    feed.names(b"PSUBSCRIBE" if pattern else b"SUBSCRIBE", pattern, new)
            await self._connect_members()
            waits = [(feed, f) for feed in list(self.feeds.values()) for n in names
                     if (f := feed.waiting.get((pattern, n))) is not None]
            await asyncio.gather(self._confirmed(waits), self._sync())
        finally:
            held, state.hold = state.hold, None
        return b"".join(replies) + b"".join(held or ())

    async def _confirmed(self, waits: list) -> None:
        """Wait for the backends' confirmations; a backend that does not
        confirm in time loses its connection (re-made and resubscribed)."""
        if not waits:
            return
        timeout = self.server.core.config.backend_timeout
        _, late = await asyncio.wait([f for _, f in waits], timeout=timeout)
        for feed, future in waits:
            if future in late:
                feed.abort("no confirmation in time")
            elif future.done() and not future.cancelled():
                future.exception()  # retrieved (a lost connection is re-made)

    async def _unsubscribe(self, session: Session, names: list, pattern: bool) -> bytes:
        state = session.pubsub
        kind = b"punsubscribe" if pattern else b"unsubscribe"
        mine = {} if state is None else state.patterns if pattern else state.channels
        if not names:
            names = list(mine)
            if not names:
                count = 0 if state is None else state.count
                return frame(kind, [None, count], session.resp3)
        replies, gone = [], []
        for name in names:
            if name in mine:
                del mine[name]
                gone.append(name)
            replies.append(frame(kind, [name, 0 if state is None else state.count],
                                 session.resp3))
        self._forget(session, gone, pattern)
        if state is not None and state.count == 0:
            session.pubsub = None
        await self._sync()
        return b"".join(replies)

    def _forget(self, session: Session, names: list, pattern: bool) -> None:
        """Remove ``session`` from the local table; names nobody here wants
        any more are unsubscribed on every backend (sent now, in order with
        any later subscribe, not awaited)."""
        table = self.patterns if pattern else self.channels
        unused = []
        for name in names:
            sessions = table.get(name)
            if sessions is None:
                continue
            sessions.discard(session)
            self._dirty[pattern].add(name)
            if not sessions:
                del table[name]
                unused.append(name)
        if unused:
            for feed in list(self.feeds.values()):
                if feed.ready:
                    for future in feed.names(b"PUNSUBSCRIBE" if pattern else b"UNSUBSCRIBE",
                                             pattern, unused):
                        future.add_done_callback(_retrieve)

    async def publish(self, channel: bytes, message: bytes) -> int:
        """One script on the channel's first reachable owner; a connection
        refused or broken moves on to the next owner."""
        server = self.server
        view = await arun(server.core.follower.follow(), server.client)
        suspects = server.client.suspects
        nodes = sorted(view.route(channel).read, key=suspects.suspected)
        failures = {}
        for node in nodes:
            try:
                receivers, patterns = await server.client.execute(
                    node, ("EVAL", PUBLISH_SCRIPT, 0, PREFIX + channel, message, channel))
            except RedisConnectionError as e:
                suspects.suspect(node)
                failures[node] = str(e)
                continue
            except DOWN_ERRORS as e:
                suspects.suspect(node)
                raise BackendError(f"PUBLISH to {printable(channel)!r} on {node}: {e}; it may "
                                   f"or may not have been delivered", node) from e
            return receivers + sum(int(patterns[i + 1]) for i in range(0, len(patterns), 2)
                                   if glob_match(patterns[i], channel))
        detail = "; ".join(f"{n}: {why}" for n, why in failures.items())
        raise BackendError(f"no backend of channel {printable(channel)!r} is reachable "
                           f"({detail})")

    async def _pubsub(self, session: Session, args: list) -> bytes:
        sub = args[0].upper()
        if sub == b"HELP" and len(args) == 1:
            return b"*%d\r\n" % len(PUBSUB_HELP) + b"".join(b"+%s\r\n" % line
                                                             for line in PUBSUB_HELP)
        if sub == b"CHANNELS" and len(args) <= 2:
            names = list(dict.fromkeys(await self._query(b"channels")))
            if len(args) == 2:
                names = [n for n in names if glob_match(args[1], n)]
            return encode(names)
        if sub == b"NUMSUB":
            counts = await self._query(b"numsub", *args[1:]) if len(args) > 1 else []
            return encode([x for pair in zip(args[1:], counts, strict=True) for x in pair])
        if sub == b"NUMPAT" and len(args) == 1:
            return encode(len(set(await self._query(b"patterns"))))
        return error(f"ERR Unknown subcommand or wrong number of arguments for "
                     f"'{printable(args[0])}'. Try PUBSUB HELP.")

    async def _query(self, *args) -> list:
        server = self.server
        view = await arun(server.core.follower.follow(), server.client)
        suspects = server.client.suspects
        failures = {}
        for node in sorted(view.state.members(), key=suspects.suspected):
            try:
                return await server.client.execute(node, ("EVAL", QUERY_SCRIPT, 0, *args))
            except DOWN_ERRORS as e:
                suspects.suspect(node)
                failures[node] = str(e)
        raise BackendError("no backend is reachable for PUBSUB (" + "; ".join(
            f"{n}: {why}" for n, why in failures.items()) + ")")

    # ------------------------------------------------------------ delivery
    def _deliver(self, pattern: bytes | None, channel: bytes, payload: bytes) -> None:
        if not channel.startswith(PREFIX):
            return
        channel = channel[len(PREFIX):]
        if pattern is None:
            sessions, kind, items = self.channels.get(channel), b"message", [channel, payload]
        else:
            if not pattern.startswith(PREFIX):
                return
            pattern = pattern[len(PREFIX):]
            sessions = self.patterns.get(pattern)
            kind, items = b"pmessage", [pattern, channel, payload]
        if not sessions:
            return
        frames = {}
        for session in list(sessions):
            resp3 = session.resp3
            data = frames.get(resp3)
            if data is None:
                data = frames[resp3] = frame(kind, items, resp3)
            self._push(session, data)

    def _push(self, session: Session, data: bytes) -> None:
        state = session.pubsub
        if state is None or session.closed:
            return
        transport = session.transport
        queued = len(data) + session._pending + (
            transport.get_write_buffer_size() if transport is not None else 0)
        if state.hold is not None:
            queued += sum(map(len, state.hold))
        if self.limit.over(state, queued):
            log.warning("client %d closed: %d bytes of pub/sub messages queued, over the "
                        "output buffer limit", session.id, queued)
            self.disconnected(session)
            if transport is not None:
                transport.abort()
            return
        if state.hold is not None:
            state.hold.append(data)
        else:
            session.push(data)

    # ------------------------------------------------------- maintenance
    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        task.add_done_callback(_retrieve)

    async def _run(self) -> None:
        """Follow the ring: a feed per member (re-made when lost, subscribed to
        everything wanted), records stamped and rewritten where stale."""
        while not self._closed:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must outlive one bad round
                log.exception("pub/sub maintenance round failed")
            await asyncio.sleep(TICK_S)

    async def run_once(self) -> None:
        server = self.server
        view = await arun(server.core.follower.follow(), server.client)
        members = set(view.state.members())
        for node in list(self.feeds):
            if node not in members:
                self.feeds.pop(node).abort("no longer a ring member")
        self._connect_to(members)
        self._stale &= members
        now = time.monotonic()
        if self._registered and now >= self._next_stamp:
            self._next_stamp = now + STAMP_EVERY_S
            for o in await server.client.fanout(sorted(members),
                                                 ("EVAL", STAMP_SCRIPT, 0, self.id,
                                                  STAMP_TTL_MS)):
                if not o.ok or o.value != 1:
                    self._stale.add(o.node)
        if self._stale:
            await self._sync()

    def _connect_to(self, members: Iterable[str]) -> list[asyncio.Task]:
        """Start connecting to each member without a feed; the connections
        under way to any of them."""
        loop = asyncio.get_running_loop()
        tasks = []
        for node in members:
            if node in self.feeds:
                continue
            task = self._connecting.get(node)
            if task is None:
                task = self._connecting[node] = loop.create_task(self._connect(node))
            tasks.append(task)
        return tasks

    async def _connect_members(self) -> None:
        """Connect now to every member not connected (a SUBSCRIBE answers only
        once each reachable member has it)."""
        server = self.server
        view = await arun(server.core.follower.follow(), server.client)
        tasks = self._connect_to(view.state.members())
        if tasks:
            await asyncio.wait(tasks)

    async def _connect(self, node: str) -> None:
        config = self.server.core.config
        loop = asyncio.get_running_loop()
        try:
            host, port = parse_address(node)
            _, feed = await asyncio.wait_for(
                loop.create_connection(lambda: _Feed(node, self), host, port),
                config.backend_timeout)
            try:
                if config.internal.password:
                    auth = tuple(filter(None, (config.internal.username,
                                               config.internal.password)))
                    (future,) = feed.send((b"AUTH", *auth), [None])
                    await asyncio.wait_for(future, config.backend_timeout)
            except BaseException:
                feed.abort("authentication failed")
                raise
            if feed.dead or self._closed:
                feed.abort("closed")
                return
            # at once, in one step: everything wanted from now on is sent here
            feed.ready = True
            self.feeds[node] = feed
            feed.names(b"SUBSCRIBE", False, list(self.channels))
            feed.names(b"PSUBSCRIBE", True, list(self.patterns))
            if self._registered:
                self._stale.add(node)  # it may have missed count changes meanwhile
        except (TimeoutError, OSError, BackendError, RedisConnectionError) as e:
            log.debug("pub/sub connection to %s failed: %s", node, e)
        finally:
            self._connecting.pop(node, None)

    def _lost(self, feed: _Feed) -> None:
        if self.feeds.get(feed.node) is feed:
            del self.feeds[feed.node]

    async def _sync(self) -> None:
        """Write this process's changed counts to every member (a member
        that missed a change gets its record rewritten whole)."""
        async with self._lock:
            server = self.server
            channels, patterns = self._dirty
            if not channels and not patterns and not self._stale:
                return
            self._dirty = (set(), set())
            self._registered = True
            view = await arun(server.core.follower.follow(), server.client)
            members = sorted(view.state.members())
            changed = [n for n in members if n not in self._stale]
            if changed and (channels or patterns):
                args = self._records(channels, patterns, "update")
                for o in await server.client.fanout(changed, args):
                    if not o.ok or o.value != 1:
                        self._stale.add(o.node)
            stale = [n for n in members if n in self._stale]
            if stale:
                args = self._records(self.channels, self.patterns, "full")
                for o in await server.client.fanout(stale, args):
                    if o.ok:
                        self._stale.discard(o.node)

    def _records(self, channels: Iterable, patterns: Iterable, mode: str) -> tuple:
        def pairs(names, table):
            return [x for n in names for x in (n, len(table.get(n, ())))]

        c, p = pairs(channels, self.channels), pairs(patterns, self.patterns)
        return ("EVAL", WRITE_SCRIPT, 0, self.id, STAMP_TTL_MS, mode, len(c) // 2, *c, *p)


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("pub/sub background step failed: %s", future.exception())

"""Blocking commands over RESP: BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BZPOPMIN,
BZPOPMAX, and XREAD / XREADGROUP with BLOCK, with Redis 6.2's arguments,
errors and replies, whichever nodes hold the keys.

A blocked client holds no backend connection and no worker: it is an asyncio
wait on its own :class:`_Waiter`. Each *attempt* is the non-blocking form of
the command sent through the request core like any command (``LPOP k``,
``LMOVE src dst ...``, ``ZPOPMIN k``, ``XREAD``/``XREADGROUP`` without
BLOCK); the first attempt that finds something is the reply. Attempts are
made when the command arrives, and then whenever a waiter is woken:

1. at once when a write through this RESP process names the key (the hook
   :meth:`Blocking.wrote`, called by ``RespServer.handle`` after a data
   write; BLMOVE/BRPOPLPUSH call it for their destination);
2. on a keyspace notification (``__keyspace@0__:<key>``) from the key's
   master backend, for writes made through any other DTServer, HTTP,
   scripts, transactions or a migration. The DTServer turns the
   notifications on itself (``CONFIG SET notify-keyspace-events``, the flags
   it needs added to the backend's own, ``K`` and ``glzt``) when it first
   watches a backend, and again on every reconnection, so it holds for
   backends started by ``dtriad up``, by the production units, or restarted
   by hand, at no cost until a client blocks;
3. every ``recheck`` seconds (:meth:`Blocking.run_once`): the subscriptions
   follow the ring (a key whose master changed is watched on its new
   master) and every waiter tries again, a safety net for a notification
   missed while a watch connection was down or moving.

Before a waiter first waits it is subscribed (the backend confirmed the
SUBSCRIBE) and tries once more: a write before that point is seen by that
attempt, a write after it sends a notification. So no wake-up is lost, and
one lost anyway costs at most ``recheck`` seconds.

**Exactly once.** An element leaves its list or sorted set only through a
pop that is an ordinary replicated write: the key's master serializes it
with every other write of the key, from whatever DTServer, so two
concurrent pops never both get the same element, and the removal reaches
the backups like any write. Nothing is popped for a waiter that cannot
take it: a waiter tries only while its connection is open, one attempt at a
time (so a client waiting on several keys gets one element, from the
first key in the order given that has one). If the connection closes while
a pop is in flight, the element is pushed back where it came from (LPUSH or
RPUSH, or ZADD NX of its score): it is not lost. An element BLMOVE /
BRPOPLPUSH moved stays in the destination (the move happened); entries
XREADGROUP delivered stay in the consumer's pending list (XCLAIM takes
them), as with Redis when a client dies before reading its reply.

**Order.** Waiters of one DTServer are served first come, first served per
key: a waiter pops from a key only if no older waiter that pops (every
command here but XREAD, which removes nothing) waits on that key; when it
leaves, the next one is woken. Across DTServers the masters decide.

XREAD's ``$`` is resolved to the stream's last entry (``XREVRANGE + - COUNT
1``; ``0-0`` for no stream) on the first attempt, so later attempts do not
miss entries added meanwhile: XADD needs an ID above the last one ever
generated, which is at least the last entry's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import hiredis

from dtriad.config import parse_address
from dtriad.core.commands import Kind, RedisCommand, keys_of, streams_at
from dtriad.core.steps import arun
from dtriad.exceptions import CommandError, printable
from dtriad.frontends.resp import encode, encode_shaped

if TYPE_CHECKING:
    from dtriad.frontends.respd import RespServer, Session

log = logging.getLogger(__name__)

RECHECK_S = 1.0  # every waiter tries again this often, whatever it heard
KEYSPACE = b"__keyspace@0__:"
NOTIFY_FLAGS = "Kglzt"  # keyspace events of generic, list, sorted set and stream commands
_ALL_TYPES = "g$lshzxet"  # what the flag A stands for
_FLOAT = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(rb"0|-?[1-9]\d*")
_POPS = {"blpop": "LPOP", "brpop": "RPOP", "bzpopmin": "ZPOPMIN", "bzpopmax": "ZPOPMAX"}
_PUSH_BACK = {"LPOP": "LPUSH", "RPOP": "RPUSH"}
_NONBLOCKING = {**_POPS, "brpoplpush": "RPOPLPUSH", "blmove": "LMOVE"}


def _upper(value: Any) -> str:
    return printable(value).upper()


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


# ------------------------------------------------------------ argument rules
def seconds_timeout(arg: Any) -> int:
    """A B* command's timeout in ms (0: forever), read as Redis 6.2 reads it:
    a float of seconds, truncated to whole ms (so -0.0001 is 0, forever)."""
    raw = _bytes(arg)
    if not _FLOAT.fullmatch(raw) or not math.isfinite(float(raw)):
        raise CommandError("ERR timeout is not a float or out of range")
    ms = int(float(raw) * 1000)
    if ms < 0:
        raise CommandError("ERR timeout is negative")
    return ms


def millis_timeout(arg: Any) -> int:
    """XREAD's BLOCK milliseconds (0: forever), a strict integer as Redis reads it."""
    raw = _bytes(arg)
    if not _INTEGER.fullmatch(raw) or not -2**63 <= int(raw) < 2**63:
        raise CommandError("ERR timeout is not an integer or out of range")
    if int(raw) < 0:
        raise CommandError("ERR timeout is negative")
    return int(raw)


def split_block(spec: RedisCommand, argv: list) -> tuple[list, Any]:
    """``argv`` of XREAD / XREADGROUP without its BLOCK options, and the last
    BLOCK's argument (None: no BLOCK). Options end at STREAMS; GROUP takes
    two arguments (a group called BLOCK is not the option)."""
    rest, block, i = list(argv[:1]), None, 1
    while i < len(argv):
        word = _upper(argv[i])
        if word == "STREAMS":
            rest += argv[i:]
            break
        if word == "BLOCK" and i + 1 < len(argv):
            block = argv[i + 1]
            i += 2
            continue
        width = 2 if word == "COUNT" else 3 if word == "GROUP" and spec.name == "xreadgroup" else 1
        rest += argv[i:i + width]
        i += width
    return rest, block


def nonblocking(spec: RedisCommand, argv: list) -> list:
    """``argv`` for a front end that cannot wait (HTTP): XREAD / XREADGROUP
    ... BLOCK as a read that answers at once (as Redis runs it inside MULTI
    or a script), its timeout still checked; BLPOP and the other blocking
    commands refused. Anything else unchanged."""
    if spec.name in _POPS or spec.name in ("brpoplpush", "blmove"):
        raise CommandError(f"ERR {spec.name.upper()} blocks, which only a RESP connection "
                           f"can: send it to a RESP port, or use its non-blocking form here "
                           f"({_NONBLOCKING[spec.name]})")
    if spec.name not in ("xread", "xreadgroup"):
        return argv
    rest, block = split_block(spec, argv)
    if block is None:
        return argv
    millis_timeout(block)
    return rest


@dataclass
class Plan:
    """What a blocking command tries, how long it waits, how it answers."""

    name: str
    keys: list          # distinct, in the order given
    timeout_ms: int     # 0: forever
    exclusive: bool     # it removes what it gets: first come, first served per key
    pop: str = ""       # LPOP, RPOP, ZPOPMIN, ZPOPMAX: one per key, in order
    move: tuple = ()    # RPOPLPUSH / LMOVE: the whole command
    stream: list = field(default_factory=list)  # XREAD(GROUP) without BLOCK
    ids: dict = field(default_factory=dict)     # stream key -> ID
    resolved: bool = False  # XREAD's $ replaced by the streams' last IDs

    def tries(self, allowed: list) -> list[tuple[Any, list]]:
        """``(key, argv)`` to run in order, over the keys this waiter may pop from."""
        if self.pop:
            return [(key, [self.pop, key]) for key in allowed]
        if self.move:
            return [(self.keys[0], list(self.move))] if allowed else []
        if not allowed:
            return []
        at = streams_at(self.name, self.stream)
        return [(allowed[0], [*self.stream[:at + 1], *allowed,
                              *(self.ids[k] for k in allowed)])]


def plan(spec: RedisCommand, argv: list) -> Plan:
    """Check ``argv`` as Redis 6.2 does before it blocks (errors raise
    :class:`CommandError`) and say what to try."""
    name = spec.name
    if name in _POPS:
        ms = seconds_timeout(argv[-1])
        return Plan(name, list(dict.fromkeys(argv[1:-1])), ms, True, pop=_POPS[name])
    if name == "brpoplpush":
        ms = seconds_timeout(argv[3])
        return Plan(name, [argv[1]], ms, True, move=("RPOPLPUSH", argv[1], argv[2]))
    if name == "blmove":
        if _upper(argv[3]) not in ("LEFT", "RIGHT") or _upper(argv[4]) not in ("LEFT", "RIGHT"):
            raise CommandError("ERR syntax error")
        ms = seconds_timeout(argv[5])
        return Plan(name, [argv[1]], ms, True, move=("LMOVE", *argv[1:5]))
    if name in ("xread", "xreadgroup"):
        rest, block = split_block(spec, argv)
        ms = millis_timeout(block) if block is not None else 0
        keys = keys_of(spec, rest)
        at = streams_at(name, rest)
        if at is not None and (len(rest) - at - 1) % 2:
            raise CommandError("ERR Unbalanced XREAD list of streams: for each stream key "
                               "an ID or '$' must be specified.")
        ids = dict(zip(keys, rest[at + 1 + len(keys):], strict=True)) if keys else {}
        return Plan(name, list(dict.fromkeys(keys)), ms, name == "xreadgroup",
                    stream=rest, ids=ids, resolved=name == "xreadgroup")
    raise CommandError(f"ERR '{name}' is not a blocking command")


def merged_flags(current: str) -> str | None:
    """``notify-keyspace-events`` with :data:`NOTIFY_FLAGS` added to the
    backend's ``current`` flags, or None if it already has them."""
    have = set(current.replace("A", _ALL_TYPES))
    missing = [c for c in NOTIFY_FLAGS if c not in have]
    return current + "".join(missing) if missing else None


# ------------------------------------------------------- keyspace watches
class Watcher:
    """One backend's keyspace notifications for the keys waited on: a
    connection of its own (AUTH, the notify flags, then SUBSCRIBE), calling
    ``on_key(key)`` for each event. A lost connection is made again by
    :meth:`start` (the periodic re-check covers the gap)."""

    def __init__(self, node: str, on_key: Callable[[bytes], None], password: str | None,
                 username: str | None, timeout: float):
        self.node = node
        self.on_key = on_key
        self.password = password
        self.username = username
        self.timeout = timeout
        self.keys: dict[bytes, asyncio.Future] = {}  # key -> its SUBSCRIBE confirmed
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._warned = False

    def subscribe(self, key: bytes) -> asyncio.Future:
        future = self.keys.get(key)
        if future is None:
            future = self.keys[key] = asyncio.get_running_loop().create_future()
            if self._writer is not None:
                self._writer.write(hiredis.pack_command(("SUBSCRIBE", KEYSPACE + key)))
            self.start()
        return future

    def unsubscribe(self, key: bytes) -> None:
        future = self.keys.pop(key, None)
        if future is not None and not future.done():
            future.set_result(False)
        if self._writer is not None:
            self._writer.write(hiredis.pack_command(("UNSUBSCRIBE", KEYSPACE + key)))

    def start(self) -> None:
        if self.keys and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for future in self.keys.values():
            if not future.done():
                future.set_result(False)

    async def _run(self) -> None:
        writer = None
        try:
            host, port = parse_address(self.node)
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                    self.timeout)
            parser = hiredis.Reader()

            async def reply() -> Any:
                while (value := parser.gets()) is False:
                    data = await reader.read(65536)
                    if not data:
                        raise ConnectionError(f"{self.node} closed the connection")
                    parser.feed(data)
                return value

            async def call(*args) -> Any:
                writer.write(hiredis.pack_command(args))
                return await asyncio.wait_for(reply(), self.timeout)

            if self.password:
                answer = await call("AUTH", *filter(None, (self.username, self.password)))
                if isinstance(answer, hiredis.ReplyError):
                    raise ConnectionError(f"AUTH refused by {self.node}: {answer}")
            await self._notifications(call)
            self._writer = writer
            if self.keys:
                writer.write(hiredis.pack_command(
                    ("SUBSCRIBE", *(KEYSPACE + k for k in self.keys))))
            while True:
                message = await reply()
                if not isinstance(message, list) or len(message) < 3:
                    continue
                kind, channel = message[0], message[1]
                key = channel[len(KEYSPACE):] if channel.startswith(KEYSPACE) else None
                if key is None:
                    continue
                if kind == b"message":
                    self.on_key(key)
                elif kind == b"subscribe":
                    future = self.keys.get(key)
                    if future is not None and not future.done():
                        future.set_result(True)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a hint lost: the periodic re-check covers it
            log.info("keyspace notifications of %s stopped: %s", self.node, e)
        finally:
            self._writer = None
            if writer is not None:
                writer.close()
            for key, future in list(self.keys.items()):  # confirmed again on reconnection
                if not future.done():
                    future.set_result(False)
                self.keys[key] = asyncio.get_running_loop().create_future()

    async def _notifications(self, call) -> None:
        answer = await call("CONFIG", "GET", "notify-keyspace-events")
        current = answer[1].decode() if isinstance(answer, list) and len(answer) == 2 else ""
        wanted = merged_flags(current)
        if wanted is None:
            return
        answer = await call("CONFIG", "SET", "notify-keyspace-events", wanted)
        if isinstance(answer, hiredis.ReplyError) and not self._warned:
            self._warned = True  # served anyway, woken by the periodic re-check only
            log.warning("cannot turn keyspace notifications on at %s (%s): blocked clients "
                        "there are woken by the re-check every %.1f s", self.node, answer,
                        RECHECK_S)


# ---------------------------------------------------------------- waiting
@dataclass(eq=False)
class _Waiter:
    session: Any
    plan: Plan
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Blocking:
    """The blocked clients of one RESP process (see the module docstring).

    ``watcher`` makes a :class:`Watcher` for a backend (tests inject one);
    ``recheck`` is the safety net's period."""

    def __init__(self, server: RespServer, watcher: Callable[..., Watcher] | None = None,
                 recheck: float = RECHECK_S):
        self.server = server
        self.recheck = recheck
        self._make_watcher = watcher or Watcher
        self._queues: dict[bytes, list[_Waiter]] = {}  # key -> its waiters, oldest first
        self._watchers: dict[str, Watcher] = {}        # backend -> its watch
        self._watched: dict[bytes, str] = {}            # key -> backend watched for it
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------ hooks
    def blocks(self, spec, argv: list) -> bool:
        """Whether ``argv`` may wait (XREAD ... BLOCK); the SESSION-kind
        blocking commands always come here."""
        return spec.name in ("xread", "xreadgroup") and split_block(spec, argv)[1] is not None

    def wrote(self, spec: RedisCommand, argv: list) -> None:
        """A write through this process finished: wake the waiters of its keys."""
        if self._queues and spec.kind is Kind.WRITE:
            for key in keys_of(spec, argv):
                self.notify(key)

    def notify(self, key: bytes) -> None:
        """``key`` may have something: wake its readers and its first popper."""
        for waiter in self._queues.get(key, ()):
            waiter.wake.set()
            if waiter.plan.exclusive:
                break
        # a popper behind the first one waits its turn; readers behind it were woken

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for watcher in self._watchers.values():
            watcher.close()
        self._watchers.clear()

    # ---------------------------------------------------------- command
    async def command(self, session: Session, spec, argv: list) -> bytes:
        self.server.core.requests.checked(argv)  # arity and sizes, in Redis's words
        the_plan = plan(spec, argv)
        if not the_plan.keys:  # no STREAMS: the core answers with Redis's error
            value = await self._run(the_plan.stream)
            return self.server.encode(session, spec, argv, value)
        waiter = _Waiter(session, the_plan)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + the_plan.timeout_ms / 1000 if the_plan.timeout_ms else None
        self._enter(waiter)
        try:
            first, watched = True, False
            while not session.gone.is_set():
                waiter.wake.clear()
                found = await self._attempt(waiter, first)
                if found is not None:
                    return self._reply(session, spec, argv, *found)
                if session.gone.is_set():
                    break
                if first:
                    first = False
                    await session.flush()
                if not watched:  # subscribed before the next attempt: no write unseen
                    watched = True
                    await self._watch(the_plan.keys)
                    continue
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return b"_\r\n" if session.resp3 else b"*-1\r\n"
                await self._sleep(waiter, remaining)
            return b""  # the client is gone: nobody reads a reply
        finally:
            self._leave(waiter)

    def _enter(self, waiter: _Waiter) -> None:
        for key in waiter.plan.keys:
            self._queues.setdefault(key, []).append(waiter)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._forever())

    def _leave(self, waiter: _Waiter) -> None:
        for key in waiter.plan.keys:
            queue = self._queues.get(key, [])
            if waiter in queue:
                queue.remove(waiter)
            if queue:
                self.notify(key)  # the next in line may take what this one left
            else:
                self._queues.pop(key, None)
                self._unwatch(key)

    def _allowed(self, waiter: _Waiter) -> list:
        """The keys ``waiter`` may try now, in the order given: for a popper,
        those where no older popper waits."""
        if not waiter.plan.exclusive:
            return list(waiter.plan.keys)
        return [key for key in waiter.plan.keys
                if next(w for w in self._queues[key] if w.plan.exclusive) is waiter]

    async def _run(self, argv: list) -> Any:
        return await arun(self.server.core.requests.command(argv), self.server.client)

    async def _attempt(self, waiter: _Waiter, first: bool) -> tuple | None:
        """``(key, value)`` of the first key that had something, or None."""
        the_plan, session = waiter.plan, waiter.session
        if not the_plan.resolved:
            await self._resolve(the_plan)
        for key, argv in the_plan.tries(self._allowed(waiter)):
            if session.gone.is_set():
                return None
            try:
                value = await self._run(argv)
            except CommandError as e:
                if first or not str(e).startswith("WRONGTYPE"):
                    raise
                continue  # as Redis 6.2: a key of another type keeps the client blocked
            if value is None or value == []:
                continue
            if the_plan.move:
                self.notify(the_plan.move[2])
            if session.gone.is_set():  # closed while the pop was in flight
                await self._put_back(the_plan, key, value)
                return None
            return key, value
        return None

    async def _resolve(self, the_plan: Plan) -> None:
        """XREAD's ``$``: the stream's last ID now, once."""
        for key, last in the_plan.ids.items():
            if last == b"$" or last == "$":
                newest = await self._run(["XREVRANGE", key, "+", "-", "COUNT", "1"])
                the_plan.ids[key] = newest[0][0] if newest else b"0-0"
        the_plan.resolved = True

    async def _put_back(self, the_plan: Plan, key: bytes, value: Any) -> None:
        push = _PUSH_BACK.get(the_plan.pop)
        try:
            if push:
                await self._run([push, key, value])
            elif the_plan.pop:  # ZPOPMIN/ZPOPMAX: [member, score]
                await self._run(["ZADD", key, "NX", value[1], value[0]])
            else:
                return
            self.notify(key)
        except Exception:  # noqa: BLE001 - logged: the element is out of its key
            log.exception("could not put back %r popped for a closed connection",
                          printable(key))

    def _reply(self, session: Session, spec, argv: list, key: bytes, value: Any) -> bytes:
        name = spec.name
        if name in ("blpop", "brpop"):
            return encode([key, value])
        if name in ("bzpopmin", "bzpopmax"):
            member, score = value[0], value[1]
            if not session.resp3:
                return encode([key, member, score])
            return b"*3\r\n" + encode(key) + encode(member) + encode_shaped(score, "double", True)
        if name in ("brpoplpush", "blmove"):
            return encode(value)
        return self.server.encode(session, spec, argv, value)

    async def _sleep(self, waiter: _Waiter, timeout: float | None) -> None:
        """Until woken, the connection closes, or ``timeout`` seconds."""
        woken = asyncio.ensure_future(waiter.wake.wait())
        gone = asyncio.ensure_future(waiter.session.gone.wait())
        try:
            await asyncio.wait((woken, gone), timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            gone.cancel()

    # -------------------------------------------------------- watching
    async def _watch(self, keys: list) -> None:
        """Watch ``keys`` on their masters; return once the backends confirm
        (or fail: the re-check covers it), at most one backend timeout."""
        try:
            view = await arun(self.server.core.follower.follow(), self.server.client)
        except Exception as e:  # noqa: BLE001 - the re-check covers it
            log.info("no ring to watch keys by: %s", e)
            return
        futures = [self._watch_on(key, view.route(key).direct[0]) for key in keys
                   if key in self._queues]
        if futures:
            await asyncio.wait(futures, timeout=self.server.core.config.backend_timeout)

    def _watch_on(self, key: bytes, node: str) -> asyncio.Future:
        old = self._watched.get(key)
        if old is not None and old != node:
            self._watchers[old].unsubscribe(key)
        self._watched[key] = node
        watcher = self._watchers.get(node)
        if watcher is None:
            config = self.server.core.config
            watcher = self._watchers[node] = self._make_watcher(
                node, self.notify, config.internal.password, config.internal.username,
                config.backend_timeout)
        return watcher.subscribe(key)

    def _unwatch(self, key: bytes) -> None:
        node = self._watched.pop(key, None)
        if node is not None:
            self._watchers[node].unsubscribe(key)

    async def run_once(self) -> None:
        """The safety net: watch each waited key on its master by the ring in
        force now (reconnecting lost watches), then wake every waiter."""
        if not self._queues:
            return
        try:
            view = await arun(self.server.core.follower.follow(), self.server.client)
            for key in list(self._queues):
                self._watch_on(key, view.route(key).direct[0])
            for watcher in self._watchers.values():
                watcher.start()
        except Exception as e:  # noqa: BLE001 - waiters still try again below
            log.info("blocking re-check could not follow the ring: %s", e)
        for key in list(self._queues):
            self.notify(key)

    async def _forever(self) -> None:
        while self._queues:
            await asyncio.sleep(self.recheck)
            try:
                await self.run_once()
            except Exception:  # noqa: BLE001 - the loop must go on
                log.exception("blocking re-check failed")

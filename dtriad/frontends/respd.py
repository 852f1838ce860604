"""The RESP front end: any Redis client talks to the ring through a DTServer.

An asyncio server, one :class:`Session` per connection. Requests are parsed
by :class:`dtriad.frontends.resp.RequestParser` and run one after another per
connection (replies in order; a pipelining client keeps many in flight, and
replies to one burst go back in one write). Data commands go through the
same request core as HTTP (:meth:`dtriad.core.requests.Requests.command`),
driven by the pipelined :class:`~dtriad.backends.aclient.AsyncClient`; the
front end itself answers
only connection and server commands (PING, AUTH, HELLO, SELECT 0, CLIENT,
COMMAND, INFO, DBSIZE, QUIT).
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import itertools
import logging
import os
import signal
import time

from dtriad import logs
from dtriad.backends.aclient import AsyncClient
from dtriad.config import ClusterConfig
from dtriad.core.commands import (
    REDIS,
    Kind,
    RedisCommand,
    arity_error,
    keys_of,
    lookup,
    reply_is_array,
    reply_is_status,
    reply_shape,
)
from dtriad.core.dtcore import DTCore
from dtriad.core.spanning import sort_patterns
from dtriad.core.steps import arun
from dtriad.exceptions import (
    CommandError,
    ConfigurationError,
    DtriadError,
    ValueTooLargeError,
    command_name,
    printable,
)
from dtriad.frontends.blocking import Blocking
from dtriad.frontends.fastpath import FastReads
from dtriad.frontends.pubsub import PubSub
from dtriad.frontends.resp import (
    OK,
    ProtocolError,
    RequestParser,
    TooLarge,
    encode,
    encode_shaped,
    error,
)
from dtriad.frontends.transactions import TransactionCommands
from dtriad.placement.ringstate import View

log = logging.getLogger(__name__)
REDIS_VERSION = "6.2.0"  # the command semantics served: Redis 6.2's
_HIGH_WATER = 64 * 1024 * 1024  # stop reading a client this far ahead of its replies
_BATCH_BYTES = 1024 * 1024  # write replies once they add up to this (or 64 of them)
_BURST = 64  # requests of a pipelined burst run together at most
# Fast reads of one session not answered yet, at most: past that (or while its
# socket does not drain) the general path takes over, which writes in bounded
# batches and waits for the drain, so a client that does not read holds at
# most this many replies more than before (16 MiB at the default 1 MiB values).
_FAST_IN_FLIGHT = 16
_UNAUTH_HIGH_WATER = 64 * 1024  # the same before AUTH: a non-reading client holds no more
_BEFORE_AUTH = {"auth", "hello", "quit"}
_TRANSACTION_COMMANDS = {"multi", "exec", "discard", "watch", "unwatch"}
# Run at once inside MULTI rather than queued (as Redis does).
_IN_MULTI = {"exec", "discard", "multi", "watch", "quit", "reset"}



def error_reply(exc: DtriadError) -> bytes:
    return error(exc.line)


class Session(asyncio.Protocol):
    """One client connection."""

    _ids = itertools.count(1)

    def __init__(self, server: RespServer):
        self.server = server
        self.id = next(self._ids)
        self.name = b""
        self.transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        config = server.core.config
        self.parser = RequestParser(max_bulk=config.max_value_bytes,
                                    max_request=config.max_request_bytes)
        self.authed = not server.password
        self.resp3 = False
        self.closed = False
        self.quitting = False
        self._waiter: asyncio.Future | None = None
        self._drained: asyncio.Future | None = None
        self._reading = True
        self._woken = False  # bytes or a close came while the loop was not waiting
        self.out: list[bytes] = []  # replies not written yet, in order
        self._pending = 0  # bytes in ``out``: replies go out in batches of at most ~1 MiB
        self.gone = asyncio.Event()  # the connection closed: a blocked command stops waiting
        self.multi: list[list] | None = None  # commands queued since MULTI
        self.multi_error = False  # a command was refused while queueing: EXEC aborts
        self.watched: dict = {}  # WATCHed key -> its version when watched
        self.pubsub = None  # frontends.pubsub state once the client subscribes
        # The fast path (frontends/fastpath.py): its reads not answered yet, in
        # order; their replies ready to write; a request it parsed but left to
        # _serve (or the ProtocolError it met); _serve waiting for ``slots``.
        self.slots: collections.deque = collections.deque()
        self._ready: list[bytes] = []
        self._write_soon = False
        self._handoff: list | ProtocolError | None = None
        self._slots_empty: asyncio.Future | None = None
        self._general: set[asyncio.Task] = set()

    @property
    def authed(self) -> bool:
        return self._authed

    @authed.setter
    def authed(self, value: bool) -> None:
        """Before AUTH the parser accepts only small requests (Redis 7's rule),
        and the connection must authenticate within ``auth_timeout_s`` (from
        when it opened, or from a RESET)."""
        self._authed = value
        self.parser.authenticated = value
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if not value and self.transport is not None:
            self._deadline = asyncio.get_running_loop().call_later(
                self.server.core.config.auth_timeout_s, self._auth_deadline)

    # ------------------------------------------------------------ transport
    def connection_made(self, transport) -> None:
        self.transport = transport
        config = self.server.core.config
        if len(self.server.sessions) >= config.maxclients:
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.close()
            self.closed = True
            return
        self.server.sessions.add(self)
        self.authed = self.authed  # starts the AUTH deadline if there is a password
        asyncio.get_running_loop().create_task(self._serve())

    def _auth_deadline(self) -> None:
        """A connection still without AUTH after ``auth_timeout_s`` is dropped
        (abort: a client that does not read must not keep it open)."""
        self._deadline = None
        if not self.authed and not self.closed:
            self.transport.write(b"-ERR authentication timeout: AUTH must come first\r\n")
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        if self._waiter is not None and not self._waiter.done() and self._drained is None:
            self._fast()  # _serve is idle: the fast path may answer, else it wakes _serve
        else:
            self._wake()
        if self.parser.buffered > (_HIGH_WATER if self.authed else _UNAUTH_HIGH_WATER):
            self.transport.pause_reading()
            self._reading = False
            self._wake()  # _serve alone resumes reading: it must look

    # ------------------------------------------------------------ fast path
    def _fast(self) -> None:
        """Send every request parsed as a fast read, until one the fast path
        does not take: that one (or a protocol error) is handed to _serve."""
        fast, parser = self.server.fast, self.parser
        while True:
            try:
                argv = parser.next()
            except ProtocolError as e:
                argv = e
            if argv is None:
                return
            if isinstance(argv, ProtocolError) or len(self.slots) >= _FAST_IN_FLIGHT \
                    or self._drained is not None or not fast.send(self, argv):
                self._handoff = argv
                self._wake()
                return

    def fast_done(self) -> None:
        """A fast read has its reply: write the replies now first in order,
        at once when none is left to wait for, else at the end of this loop
        step (the replies of a pipelined burst arrive together: one write)."""
        slots = self.slots
        while slots and slots[0].reply is not None:
            self._ready.append(slots.popleft().reply)
        if not slots:
            self._write_ready()
        elif self._ready and not self._write_soon:
            self._write_soon = True
            asyncio.get_running_loop().call_soon(self._write_ready)

    def _write_ready(self) -> None:
        self._write_soon = False
        if self._ready:
            if not self.closed:
                self.transport.write(b"".join(self._ready))
            self._ready.clear()
        if not self.slots and self._slots_empty is not None and not self._slots_empty.done():
            self._slots_empty.set_result(None)

    def general(self, slot) -> None:
        """A fast read whose backend failed: the general path answers it (it
        asks the next copy), in the same place in the session's order."""
        async def answer():
            slot.reply = await self.server.handle(self, slot.argv)
            self.fast_done()

        task = asyncio.get_running_loop().create_task(answer())
        self._general.add(task)
        task.add_done_callback(self._general.discard)

    def _burst(self, argv: list) -> list[list] | None:
        """``argv`` and the reads parsed after it that may run at the same
        time as it (a pipelined burst of reads), or None if it runs alone.

        Only plain reads of the ring run together (no front-end, transaction,
        script, blocking or pub/sub command, nothing while in MULTI or
        subscribed, no SORT by patterns): reads change nothing, so the order
        they run in is one a single Redis could have served them in. Writes
        run one after another, as on a single Redis, because another client
        may see their effects (a job's data then its queue entry). The first
        request that does not qualify is kept (``_handoff``) and runs after
        them."""
        if not self.server.concurrent_read(self, argv):
            return None
        burst = [argv]
        while len(burst) < _BURST and self._handoff is None:
            try:
                following = self.parser.next()
            except ProtocolError as e:
                following = e
            if following is None:
                break
            if isinstance(following, ProtocolError) or \
                    not self.server.concurrent_read(self, following):
                self._handoff = following
                break
            burst.append(following)
        return burst if len(burst) > 1 else None

    async def _after_fast_reads(self) -> None:
        """Until every fast read sent so far is answered and written."""
        while self.slots or self._ready:
            self._slots_empty = asyncio.get_running_loop().create_future()
            await self._slots_empty
            self._slots_empty = None

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self._deadline is not None:
            self._deadline.cancel()
        self.gone.set()
        self.server.disconnected(self)
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        else:  # busy (answering, or waiting for a drain): it looks again before it waits
            self._woken = True

    def push(self, data: bytes) -> None:
        """Queue bytes for the client after every reply queued so far (a
        pub/sub message); they go out when the session next writes."""
        self.out.append(data)
        self._pending += len(data)
        self._wake()

    async def flush(self) -> None:
        """Write every queued reply now and wait until the socket drains (a
        command about to block first sends the replies before it)."""
        if self.out and not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()
        self._pending = 0
        if self._drained is not None:
            await self._drained
            self._drained = None

    async def _serve(self) -> None:
        parser = self.parser
        while not self.closed:
            if self._handoff is not None:
                argv, self._handoff = self._handoff, None
            else:
                try:
                    argv = parser.next()
                except ProtocolError as e:
                    argv = e
            if argv is not None and (self.slots or self._ready):
                await self._after_fast_reads()  # their replies go first
            if isinstance(argv, ProtocolError):
                self.out.append(error(f"ERR {argv}"))
                self.quitting = True
                argv = None
            if argv is not None:
                burst = self._burst(argv)
                if burst is None:
                    replies = [await self.server.handle(self, argv)]
                else:  # together: one backend write per step for all of them
                    replies = await asyncio.gather(*(self.server.handle(self, a) for a in burst))
                self.out += replies
                self._pending += sum(map(len, replies))
                if len(self.out) < 64 and self._pending < _BATCH_BYTES and not self.quitting:
                    continue
            await self.flush()
            if self.quitting:
                self.transport.close()
                return
            if argv is None:
                if not self._reading:
                    self.transport.resume_reading()
                    self._reading = True
                if self._woken:  # a request came during the drain: parse it first
                    self._woken = False
                    continue
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
                self._waiter = None


class RespServer:
    """Answers one request at a time for a :class:`Session`."""

    def __init__(self, core: DTCore, client: AsyncClient, port: int = 0):
        self.core = core
        self.client = client
        self.password = core.config.password
        self.username = core.config.username
        self._file_stamp = self._stamp()
        self.port = port
        self.started = time.time()
        self.sessions: set[Session] = set()
        self.transactions = TransactionCommands(self)
        self.fast = FastReads(self)
        self.blocking = Blocking(self)
        self.pubsub = PubSub(self)

    def _stamp(self) -> tuple | None:
        path = self.core.config.path
        try:
            info = os.stat(path) if path is not None else None
        except OSError:
            return None
        return info and (info.st_mtime_ns, info.st_size, info.st_ino)

    def follow_password(self) -> None:
        """Take the client password (and user name) from the cluster file again
        if the file changed: rotating it restarts nothing, and no backend or
        Sentinel knows it. Sessions already authenticated stay so, as with
        Redis's requirepass. A file that does not load changes nothing."""
        stamp = self._stamp()
        if stamp is None or stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        try:
            config = ClusterConfig.load(self.core.config.path)
        except ConfigurationError as e:
            log.warning("the cluster file changed but does not load; the client password "
                        "stays as it was: %s", e)
            return
        if (config.password, config.username) != (self.password, self.username):
            if not config.password:
                log.warning("the cluster file now has no client password; keeping the "
                            "current one (a password is removed by a restart)")
                return
            self.password, self.username = config.password, config.username
            logs.add_secrets(config.password)
            log.info("the client password changed (read from %s)", config.path)

    def concurrent_read(self, session: Session, argv: list) -> bool:
        """Is ``argv`` a plain read of the ring that may run alongside others
        of its session's burst (see ``Session._burst``)?"""
        if session.multi is not None or session.pubsub is not None or not session.authed:
            return False
        spec = lookup(argv[0])
        if spec is None or spec.kind is not Kind.READ or spec.group == "pubsub" \
                or self.blocking.blocks(spec, argv) or arity_error(spec, len(argv)) \
                or any(type(a) is not bytes for a in argv):
            return False
        try:
            return bool(keys_of(spec, argv)) and not sort_patterns(spec, argv)
        except Exception:  # noqa: BLE001 - malformed: it runs alone and says why
            return False

    async def handle(self, session: Session, argv: list) -> bytes:
        started = time.perf_counter()
        spec = lookup(argv[0])
        if session.multi is not None and (spec is None or spec.name not in _IN_MULTI):
            return self.transactions.queue(session, spec, argv)
        if spec is None:
            self.core.record("resp", "unknown", "unknown", time.perf_counter() - started, "ERR")
            return error(f"ERR unknown or unsupported command '{command_name(argv[0])}'")
        if not session.authed and spec.name not in _BEFORE_AUTH:
            return error("NOAUTH Authentication required.")
        try:
            for arg in argv:
                if type(arg) is TooLarge:
                    raise ValueTooLargeError("value", arg.size, self.core.config.max_value_bytes)
            refused = self.pubsub.refuses(session, spec)
            if refused:
                return refused
            if spec.kind is Kind.LOCAL:
                self.core.requests.checked(argv)
                reply = await self.local(session, spec, argv)
            elif spec.name in _TRANSACTION_COMMANDS:
                reply = await self.transactions.command(session, spec, argv)
            elif spec.group == "pubsub":
                reply = await self.pubsub.command(session, spec, argv)
            elif spec.kind is Kind.SESSION or self.blocking.blocks(spec, argv):
                reply = await self.blocking.command(session, spec, argv)
            else:
                value = await arun(self.core.requests.command(argv), self.client)
                self.blocking.wrote(spec, argv)  # wakes clients blocked on its keys
                reply = self.encode(session, spec, argv, value)
        except DtriadError as e:
            self.core.record("resp", spec.name, spec.group, time.perf_counter() - started,
                             e.code)
            return error_reply(e)
        except Exception:  # noqa: BLE001 - a bug must not take the connection down
            log.exception("internal error serving %r", spec.name)
            self.core.record("resp", spec.name, spec.group, time.perf_counter() - started,
                             "INTERNAL")
            return error("ERR internal error in the DTServer; see its log")
        self.core.record("resp", spec.name, spec.group, time.perf_counter() - started)
        return reply

    def disconnected(self, session: Session) -> None:
        self.sessions.discard(session)
        self.pubsub.disconnected(session)

    def encode(self, session: Session, spec: RedisCommand, argv: list, value) -> bytes:
        """A command's raw reply as Redis encodes it for this client: status or
        bulk string, nil array, RESP3 map, set or double."""
        shape = reply_shape(spec, argv, session.resp3)
        if shape:
            return encode_shaped(value, shape, session.resp3)
        return encode(value, reply_is_status(spec, argv),
                      value is None and reply_is_array(spec, argv), session.resp3)

    # ------------------------------------------------------ local commands
    async def local(self, session: Session, spec: RedisCommand, argv: list) -> bytes:
        name, args = spec.name, argv[1:]
        if name == "ping":
            if len(args) > 1:
                return error("ERR wrong number of arguments for 'ping' command")
            if session.pubsub is not None and not session.resp3:  # RESP2 subscribed mode
                return self.pubsub.ping(args)
            return b"+PONG\r\n" if not args else encode(args[0])
        if name == "echo":
            return encode(args[0])
        if name == "quit":
            session.quitting = True
            return OK
        if name == "auth":
            return self._auth(session, args)
        if name == "hello":
            return self._hello(session, args)
        if name == "select":
            try:
                index = int(args[0])
            except ValueError:
                return error("ERR value is not an integer or out of range")
            if index != 0:
                return error("ERR SELECT is not allowed: dtriad serves database 0 only")
            return OK
        if name == "client":
            return self._client(session, args)
        if name == "command":
            return self._command(session, args)
        if name == "info":
            view = await arun(self.core.follower.follow(), self.client)  # not the last request's
            return encode(self._info(view, args).encode())
        if name == "config":
            if args[0].upper() == b"GET" and len(args) >= 2:
                return b"*0\r\n"  # nothing of the backends' configuration is exposed
            return error(f"ERR CONFIG {printable(args[0]).upper()} is not served: the cluster is "
                         f"configured through 'dtriad up' options and cluster.json")
        if name == "dbsize":
            return encode(await self._dbsize())
        if name == "reset":  # a fresh connection's state, not authenticated, as Redis's
            session.name, session.resp3, session.authed = b"", False, not self.password
            session.multi, session.multi_error, session.watched = None, False, {}
            self.pubsub.disconnected(session)
            return b"+RESET\r\n"
        raise CommandError(f"ERR unknown or unsupported command '{name}'")

    def _auth(self, session: Session, args: list) -> bytes:
        if not self.password:
            return error("ERR AUTH <password> called without any password configured for "
                         "the default user. Are you sure your configuration is correct?")
        if len(args) > 2:
            return error("ERR syntax error")
        user, password = (b"default", args[0]) if len(args) == 1 else args
        users = {b"default", (self.username or "default").encode()}
        if user not in users or not hmac.compare_digest(password, self.password.encode()):
            return error("WRONGPASS invalid username-password pair or user is disabled.")
        session.authed = True
        return OK

    def _hello(self, session: Session, args: list) -> bytes:
        if args:
            try:
                version = int(args[0])
            except ValueError:
                return error("ERR Protocol version is not an integer or out of range")
            if version not in (2, 3):
                return error("NOPROTO unsupported protocol version")
        rest = args[1:]
        i = 0
        while i < len(rest):
            option = rest[i].upper()
            if option == b"AUTH" and i + 2 < len(rest):
                reply = self._auth(session, rest[i + 1:i + 3])
                if reply != OK:
                    return reply
                i += 3
            elif option == b"SETNAME" and i + 1 < len(rest):
                session.name = rest[i + 1]
                i += 2
            else:
                return error(f"ERR Syntax error in HELLO option '{printable(rest[i])}'")
        if not session.authed:
            return error("NOAUTH HELLO must be called with the client already authenticated, "
                         "otherwise the HELLO AUTH <user> <pass> option can be used to "
                         "authenticate the client and select the RESP protocol version "
                         "at the same time")
        if args:
            session.resp3 = version == 3
        info = [b"server", b"redis", b"version", REDIS_VERSION.encode(),
                b"proto", 3 if session.resp3 else 2, b"id", session.id, b"mode", b"standalone",
                b"role", b"master", b"modules", []]
        return encode_shaped(info, "map", True) if session.resp3 else encode(info)

    def _client(self, session: Session, args: list) -> bytes:
        sub = args[0].upper()
        if sub == b"SETNAME" and len(args) == 2:
            if any(c <= 0x20 or c > 0x7E for c in args[1]):
                return error("ERR Client names cannot contain spaces, newlines or special "
                             "characters.")
            session.name = args[1]
            return OK
        if sub == b"GETNAME" and len(args) == 1:
            return encode(session.name or None, resp3=session.resp3)
        if sub == b"ID" and len(args) == 1:
            return encode(session.id)
        if sub == b"SETINFO" and len(args) == 3:
            return OK
        return error(f"ERR Unknown subcommand or wrong number of arguments for "
                     f"'{printable(args[0])}'. Try CLIENT HELP.")

    def _command(self, session: Session, args: list) -> bytes:
        kind = b"~" if session.resp3 else b"*"  # flags and categories are sets in RESP3

        def entry(spec: RedisCommand) -> bytes:
            """Redis 6.2's own COMMAND row for ``spec``."""
            arity, flags, first, last, step, categories = spec.row
            return (b"*7\r\n" + encode(spec.name.encode()) + encode(arity)
                    + kind + b"%d\r\n" % len(flags)
                    + b"".join(encode(f.encode(), status=True) for f in flags)
                    + encode(first) + encode(last) + encode(step)
                    + kind + b"%d\r\n" % len(categories)
                    + b"".join(encode(c.encode(), status=True) for c in categories))

        if not args:
            return b"*%d\r\n" % len(REDIS) + b"".join(entry(s) for s in REDIS.values())
        sub = args[0].upper()
        if sub == b"COUNT" and len(args) == 1:
            return encode(len(REDIS))
        if sub == b"INFO":
            found = [lookup(a) for a in args[1:]]
            return b"*%d\r\n" % len(found) + b"".join(
                entry(s) if s else encode(None, resp3=session.resp3) for s in found)
        if sub == b"DOCS":
            return b"*0\r\n"
        return error(f"ERR Unknown subcommand or wrong number of arguments for "
                     f"'{printable(args[0])}'. Try COMMAND HELP.")

    def _info(self, ring: View, args: list) -> str:
        sections = {
            "server": [("redis_version", REDIS_VERSION), ("dtriad_version", _version()),
                       ("redis_mode", "dtriad"), ("process_id", os.getpid()),
                       ("tcp_port", self.port),
                       ("uptime_in_seconds", int(time.time() - self.started))],
            "clients": [("connected_clients", len(self.sessions))],
            "replication": [("role", "master"), ("connected_slaves", 0)],
            "dtriad": [("ring_epoch", ring.state.epoch), ("ring_nodes", len(ring.ring.nodes)),
                       ("replicas", ring.state.replicas),
                       ("write_quorum", self.core.config.write_quorum),
                       ("read_quorum", self.core.config.read_quorum),
                       ("repairs_pending", self.core.repairs.snapshot()["pending"])],
        }
        wanted = {printable(a).lower() for a in args}
        if wanted & {"all", "everything", "default"}:
            wanted = set()
        lines = []
        for title, fields in sections.items():
            if wanted and title not in wanted:
                continue
            lines.append(f"# {title.capitalize()}")
            lines += [f"{k}:{v}" for k, v in fields]
            lines.append("")
        return "\r\n".join(lines)

    async def _dbsize(self) -> int:
        """Keys in the whole cluster: each counted once, on its master (a SCAN
        of every backend, run off the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.core.reports.dbsize)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dtriad")
    except PackageNotFoundError:
        return "unknown"


async def run_server(config: ClusterConfig, host: str, port: int, state_file: str | None = None,
                     ready: asyncio.Event | None = None,
                     stop: asyncio.Event | None = None) -> None:
    """Serve RESP on ``host:port`` until ``stop`` is set (or SIGTERM/SIGINT)."""
    loop = asyncio.get_running_loop()
    core = DTCore(config, state_file=state_file)
    core.start_repairs()
    client = AsyncClient(core.suspects, **config.internal.kwargs(),
                         timeout=config.backend_timeout)
    if config.metrics:
        core.observe(client)
    server = RespServer(core, client, port)
    listener = await loop.create_server(lambda: Session(server), host, port,
                                        reuse_address=True, backlog=1024,
                                        reuse_port=config.resp_workers > 1)
    server.port = listener.sockets[0].getsockname()[1]
    stop = stop or asyncio.Event()
    if ready is None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    else:
        ready.port = server.port  # type: ignore[attr-defined]
        ready.set()
    log.info("RESP front end on %s:%d", host, server.port)

    async def follow_password():
        while True:
            await asyncio.sleep(1.0)
            server.follow_password()

    follower = asyncio.create_task(follow_password())
    try:
        await stop.wait()
    finally:
        follower.cancel()
        listener.close()
        for session in list(server.sessions):
            session.transport.close()
        server.pubsub.close()
        server.blocking.close()
        client.close()
        core.close()


def event_loop_factory(choice: str):
    """The event loop to serve on: uvloop's (``choice`` "uvloop", or "auto"
    when it is installed: ``pip install 'dtriad[fast]'``), else asyncio's."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigurationError(
                    "event_loop = \"uvloop\" but uvloop is not installed: "
                    "pip install 'dtriad[fast]' (or set event_loop to \"auto\")") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def serve(cluster_file: str, host: str, port: int, state_file: str | None = None) -> None:
    config = ClusterConfig.load(cluster_file)
    node = next((n.name for n in config.nodes if n.resp and n.resp.endswith(f":{port}")), None)
    logs.setup("resp", node, config.log_format, logs.secrets_of(config),
               text_format="%(asctime)s %(name)s %(message)s")
    factory = event_loop_factory(config.event_loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        log.info("event loop: %s", "uvloop" if factory is not asyncio.new_event_loop
                 else "asyncio")
        runner.run(run_server(config, host, port, state_file))

"""AsyncClient: the asyncio twin of DTClient's I/O, for the RESP front end.

It performs the effects of :mod:`dtriad.backends.outcome` that the request
core's generators yield (the logic lives once, in :mod:`dtriad.core.requests`).
Each backend gets one connection on which every request of every client is
pipelined, replies matched in order
(as twemproxy does): one Redis round trip then carries many clients' commands,
and no per-request pool checkout is paid. Errors are redis-py's exception
types, so the core treats both clients' failures alike: a reply error is a
``ResponseError`` (``NoScriptError`` for NOSCRIPT), a refused connection a
``ConnectionError``, a backend that does not answer within ``timeout`` a
``TimeoutError`` (its connection is closed, failing everything in flight on
it, since later replies could no longer be matched).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dtriad.backends.outcome import (
    DOWN_ERRORS,
    Execute,
    Fanout,
    Outcome,
    SuspectedDown,
    Suspects,
    by_sha,
    check_incarnation,
    retry_as_eval,
    unknown_script,
)
from dtriad.config import parse_address


class _Link(asyncio.Protocol):
    """One pipelined connection to one backend."""

    def __init__(self, node: str, timeout: float):
        self.node = node
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.pending: collections.deque = collections.deque()  # (future, deadline)
        self.closed = False
        self._out: list[bytes] = []
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, args, sink=None) -> asyncio.Future:
        """Pipeline ``args``; its reply (or error) goes to the future returned,
        or to ``sink``, anything with a future's ``set_result``,
        ``set_exception`` and ``done`` (the RESP fast path's replies)."""
        future = sink if sink is not None else self._loop.create_future()
        if self.closed:
            future.set_exception(RedisConnectionError(f"connection to {self.node} closed"))
            return future
        if not self._out:
            self._loop.call_soon(self._flush)  # one write for every command of this tick
        self._out.append(hiredis.pack_command(args))
        self.pending.append((future, self._loop.time() + self.timeout))
        if self._timer is None:
            self._timer = self._loop.call_at(self.pending[0][1], self._check)
        return future

    def _flush(self) -> None:
        if self._out and not self.closed:
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pending
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as e:
                self._fail(RedisConnectionError(f"protocol error from {self.node}: {e}"))
                return
            if reply is False:
                return
            future, _ = pending.popleft()
            if future.done():
                continue
            if isinstance(reply, ResponseError):
                if str(reply).startswith("NOSCRIPT"):
                    reply = NoScriptError(str(reply))
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def _check(self) -> None:
        self._timer = None
        if not self.pending or self.closed:
            return
        deadline = self.pending[0][1]
        if self._loop.time() >= deadline:
            self._fail(RedisTimeoutError(f"Timeout reading from {self.node}"))
        else:
            self._timer = self._loop.call_at(deadline, self._check)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._fail(RedisConnectionError(f"connection to {self.node} lost"
                                        + (f": {exc}" if exc else "")))

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        while self.pending:
            future, _ = self.pending.popleft()
            if not future.done():
                future.set_exception(error)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class AsyncClient:
    """Pipelined connections to every backend; ``suspects`` is the request
    core's table, shared with the threaded client, so both skip the same
    failed backends and check the same incarnations."""

    def __init__(self, suspects: Suspects, password: str | None = None, timeout: float = 1.0,
                 username: str | None = None):
        self.suspects = suspects
        self.password = password
        self.username = username
        self.timeout = timeout
        self._links: dict[str, _Link] = {}
        self._connecting: dict[str, asyncio.Future] = {}
        self.on_call: Callable[[Execute | Fanout], None] | None = None  # metrics

    async def _link(self, node: str) -> _Link:
        link = self._links.get(node)
        if link is not None and not link.closed:
            return link
        waiting = self._connecting.get(node)
        if waiting is not None:
            return await asyncio.shield(waiting)
        loop = asyncio.get_running_loop()
        waiting = self._connecting[node] = loop.create_future()
        try:
            host, port = parse_address(node)
            try:
                _, link = await asyncio.wait_for(loop.create_connection(
                    lambda: _Link(node, self.timeout), host, port), self.timeout)
            except TimeoutError:
                raise RedisTimeoutError(f"Timeout connecting to {node}") from None
            except OSError as e:
                raise RedisConnectionError(f"Error connecting to {node}: {e}") from e
            if self.password:  # pipelined ahead of every command
                link.send(("AUTH", *filter(None, (self.username, self.password))))
            expected = self.suspects.incarnations(node)
            if expected is not None:  # a restarted backend is not served (see client.py)
                try:
                    check_incarnation(node, await link.send(("INFO", "server")), expected)
                except BaseException:
                    link._fail(RedisConnectionError(f"connection to {node} closed"))
                    raise
            self._links[node] = link
            waiting.set_result(link)
            return link
        except BaseException as e:
            waiting.set_exception(e)
            waiting.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._connecting[node]

    async def _send(self, node: str, args) -> asyncio.Future:
        link = self._links.get(node)
        if link is None or link.closed:
            link = await self._link(node)
        return link.send(args)

    def open_link(self, node: str) -> _Link | None:
        """``node``'s connection if it is open (no connecting, no waiting)."""
        link = self._links.get(node)
        return link if link is not None and not link.closed else None

    async def execute(self, node: str, args) -> Any:
        """One command on one backend (EVAL sent as EVALSHA, once more as EVAL
        if the backend does not know the script yet)."""
        short = by_sha(args)
        try:
            return await (await self._send(node, short))
        except ResponseError as e:
            if not retry_as_eval(short, args, e):
                raise
        return await (await self._send(node, args))

    async def fanout(self, nodes, args, use_sha: bool = True) -> list[Outcome]:
        """Like :meth:`DTClient.fanout`: every command is sent before any reply
        is awaited, so N copies cost about one round trip."""
        short = by_sha(args) if use_sha else args
        sent: list[tuple[str, Any]] = []
        outcomes: dict[str, Outcome] = {}
        for node in nodes:
            if self.suspects.suspected(node):
                outcomes[node] = Outcome(node, error=SuspectedDown())
                continue
            try:
                sent.append((node, await self._send(node, short)))
            except DOWN_ERRORS as e:
                outcomes[node] = Outcome(node, error=e)
                self.suspects.suspect(node)
        for node, future in sent:
            try:
                outcomes[node] = Outcome(node, value=await future)
            except ResponseError as e:
                outcomes[node] = Outcome(node, error=e)
            except DOWN_ERRORS as e:
                outcomes[node] = Outcome(node, error=e)
                self.suspects.suspect(node)
        unknown = unknown_script(outcomes) if short is not args else []
        if unknown:  # the script's first use on these servers: EVAL loads it
            outcomes.update((o.node, o) for o in await self.fanout(unknown, args, use_sha=False))
        return [outcomes[node] for node in nodes]

    async def perform(self, effect: Execute | Fanout) -> Any:
        """Carry out one step of :mod:`dtriad.core.steps` (the asyncio driver)."""
        if self.on_call is not None:
            self.on_call(effect)
        if isinstance(effect, Execute):
            return await self.execute(effect.node, effect.args)
        return await self.fanout(effect.nodes, effect.args)

    def close(self) -> None:
        for link in self._links.values():
            link._fail(RedisConnectionError("client closed"))
        self._links.clear()

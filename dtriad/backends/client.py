"""DTClient: the only code that talks to Redis backends.

One redis-py connection pool per backend, created once, and each thread's own
connection to each backend, made as the pool makes its connections but kept
by the thread (taking one from the pool and giving it back cost 5.6 µs a
command, a tenth of an HTTP request's Python time). A write is fanned out to
all its copies in parallel without threads: the command is sent on one
connection per backend, then the replies are read, so r+1 copies cost about
one round trip. Every socket has a timeout, so a dead or hung
backend costs at most ``timeout`` seconds, never a stalled server.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.retry import Retry

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

PoolFactory = Callable[[str], redis.ConnectionPool]


class CheckedConnection(redis.Connection):
    """A connection that, once connected, checks the backend's incarnation
    against the one the ring admitted (``expected()``; None: no check).

    A backend that restarted has necessarily dropped every connection, so
    checking each new connection is enough: the connections of the old
    incarnation are gone, and every new one is checked.
    """

    def __init__(self, *args: Any, expected: Callable[[], str | None] = lambda: None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._expected = expected

    def on_connect_check_health(self, check_health: bool = True) -> None:
        super().on_connect_check_health(check_health=check_health)
        expected = self._expected()
        if expected is not None:
            self.send_command("INFO", "server")
            check_incarnation(f"{self.host}:{self.port}", self.read_response(), expected)


class DTClient:
    """Connection pools to every backend, keyed by ``"host:port"``.

    A backend that fails is marked in ``suspects`` (a
    :class:`~dtriad.backends.outcome.Suspects`, shared with the asyncio client
    and the request core): a fanout skips it until its cooldown ends.
    """

    def __init__(self, nodes: Iterable[str] = (), *, password: str | None = None,
                 username: str | None = None,
                 timeout: float = 1.0, max_connections: int = 64,
                 pool_factory: PoolFactory | None = None, cooldown: float | None = None,
                 clock: Callable[[], float] = time.monotonic, db: int = 0,
                 suspects: Suspects | None = None):
        self.password = password
        self.username = username  # an ACL user; None: the default user
        self.db = db
        self.timeout = timeout
        self.suspects = suspects or Suspects(
            max(1.0, timeout) if cooldown is None else cooldown, clock)
        self.max_connections = max_connections
        self._pool_factory = pool_factory or self._default_pool
        self._pools: dict[str, redis.ConnectionPool] = {}
        self._lock = threading.Lock()
        self._held = threading.local()  # this thread's connections, by node
        self._opened: weakref.WeakSet = weakref.WeakSet()  # every thread's, for close()
        self._generation = 0  # close() drops every thread's connections
        self.on_call: Callable[[Execute | Fanout], None] | None = None  # metrics
        for node in nodes:
            self.pool(node)

    def _default_pool(self, node: str) -> redis.ConnectionPool:
        host, port = parse_address(node)
        return redis.BlockingConnectionPool(
            host=host, port=port, username=self.username, password=self.password, db=self.db,
            socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0), max_connections=self.max_connections,
            timeout=self.timeout, protocol=2,  # flat replies, as RESP2 clients expect them
            connection_class=CheckedConnection, expected=lambda: self.suspects.incarnations(node))

    def pool(self, node: str) -> redis.ConnectionPool:
        pool = self._pools.get(node)
        if pool is None:
            with self._lock:
                pool = self._pools.get(node)
                if pool is None:
                    pool = self._pools[node] = self._pool_factory(node)
        return pool

    def connection(self, node: str) -> redis.connection.AbstractConnection:
        """This thread's connection to ``node``: made as ``pool(node)`` makes
        its connections (timeouts, credentials, the incarnation check on
        connecting), never shared with another thread, connected on first
        use, and again after :meth:`~redis.Connection.disconnect` or when
        the server closed it while idle. It is not counted by the pool
        (``max_connections``: a thread has one per backend); it closes with
        its thread (garbage), in a forked child (never shared with the
        parent) and on :meth:`close`."""
        held = self._held.__dict__
        if held.get("key") != (os.getpid(), self._generation):
            held.clear()
            held["key"] = (os.getpid(), self._generation)
        conn = held.get(node)
        if conn is None:
            pool = self.pool(node)
            conn = pool.connection_class(**pool.connection_kwargs)
            with self._lock:
                self._opened.add(conn)
            held[node] = conn
        elif conn._sock is not None:
            # As the pool checks a connection it hands out (1 µs): the server
            # may have closed it while it sat idle (its timeout, CLIENT KILL,
            # a restart). Sending on it would fail a healthy backend.
            try:
                stale = conn.can_read()
            except DOWN_ERRORS:
                stale = True
            if stale:
                conn.disconnect()
        return conn

    def redis(self, node: str) -> redis.Redis:
        """A redis-py client on the backend's pool (for admin work, not the hot path)."""
        return redis.Redis(connection_pool=self.pool(node))

    def execute(self, node: str, *args: Any) -> Any:
        """Run one command on one backend; raw reply, redis-py errors unchanged."""
        return _single(self.connection(node), args)

    def perform(self, effect: Execute | Fanout) -> Any:
        """Carry out one step of :mod:`dtriad.core.steps` (the blocking driver)."""
        if self.on_call is not None:
            self.on_call(effect)
        if isinstance(effect, Execute):
            return _single(self.connection(effect.node), effect.args)
        return self.fanout(effect.nodes, *effect.args)

    def fanout(self, nodes: Sequence[str], *args: Any, use_sha: bool = True) -> list[Outcome]:
        """Run one command on every node in parallel; one outcome per node, in order."""
        sent_args = by_sha(args) if use_sha else args
        sent: list[tuple[str, Any]] = []
        outcomes: dict[str, Outcome] = {}
        try:
            for node in dict.fromkeys(nodes):  # one command per node, on its one connection
                if self.suspects.suspected(node):
                    outcomes[node] = Outcome(node, error=SuspectedDown())
                    continue
                conn = self.connection(node)
                try:
                    conn.send_command(*sent_args)
                    sent.append((node, conn))
                except DOWN_ERRORS as e:
                    outcomes[node] = Outcome(node, error=e)
                    self.suspects.suspect(node)
                    conn.disconnect()
            while sent:
                node, conn = sent[0]
                try:
                    outcomes[node] = Outcome(node, value=conn.read_response())
                except ResponseError as e:
                    outcomes[node] = Outcome(node, error=e)
                except DOWN_ERRORS as e:
                    conn.disconnect()
                    outcomes[node] = Outcome(node, error=e)
                    self.suspects.suspect(node)
                sent.pop(0)
        except BaseException:  # replies left unread must not answer a later command
            for _, unread in sent:
                unread.disconnect()
            raise
        unknown = unknown_script(outcomes) if sent_args is not args else []
        if unknown:  # the script's first use on these servers: EVAL loads it
            outcomes.update((o.node, o) for o in self.fanout(unknown, *args, use_sha=False))
        return [outcomes[node] for node in nodes]

    def close(self) -> None:
        with self._lock:
            self._generation += 1
            for conn in list(self._opened):
                conn.disconnect()
            self._opened.clear()
            for pool in self._pools.values():
                pool.disconnect()
            self._pools.clear()


def _single(conn: redis.connection.AbstractConnection, args: Sequence[Any]) -> Any:
    try:
        short = by_sha(args)
        conn.send_command(*short)
        try:
            return conn.read_response()
        except ResponseError as e:
            if not retry_as_eval(short, args, e):
                raise
        conn.send_command(*args)
        return conn.read_response()
    except ResponseError:
        raise  # its reply was read: the connection stays in step
    except BaseException:  # a failed backend, or a reply left unread: start afresh
        conn.disconnect()
        raise

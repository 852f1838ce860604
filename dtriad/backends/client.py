"""DTClient: the only code that talks to Redis backends.

One redis-py connection pool per backend, created once and reused. A write is
fanned out to all its copies in parallel without threads: the command is sent
on one pooled connection per backend, then the replies are read, so r+1 copies
cost about one round trip. Every socket has a timeout, so a dead or hung
backend costs at most ``timeout`` seconds, never a stalled server.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from dtriad.config import parse_address
from dtriad.core.steps import Execute, Fanout, run, sync_key

# Errors that mean "this backend is not answering", as opposed to Redis
# answering with an error about the data (ResponseError).
DOWN_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


def describe(exc: BaseException) -> str:
    """A short reason for a failed backend, for error messages."""
    if isinstance(exc, RedisTimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text:
        return "connection refused"
    return text.splitlines()[0][:200]


@dataclass(frozen=True)
class Outcome:
    """What one backend answered to one command."""

    node: str
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def rejected(self) -> bool:
        """Redis answered, with an error about the command or the data."""
        return isinstance(self.error, ResponseError)

    @property
    def down(self) -> bool:
        return self.error is not None and not self.rejected


PoolFactory = Callable[[str], redis.ConnectionPool]


class SuspectedDown(RedisConnectionError):
    """A backend that failed moments ago is skipped until its cooldown ends."""


class Restarted(RedisConnectionError):
    """A backend answered with another incarnation than the ring admitted: it
    restarted (or was replaced) and no longer holds what the ring says it
    holds, so it is treated as down until the DTSentinel brings it back."""

    def __init__(self, node: str, run_id: str, expected: str):
        super().__init__(f"{node} restarted (run_id {run_id[:8]}..., the ring admitted "
                         f"{expected[:8]}...): not served until the DTSentinel brings it back")
        self.node, self.run_id, self.expected = node, run_id, expected


def run_id_of(info: Any) -> str:
    """The ``run_id`` field of an ``INFO server`` reply (raw or parsed)."""
    if isinstance(info, dict):
        return str(info.get("run_id", ""))
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line[7:].strip()
    return ""


def check_incarnation(node: str, info: Any, expected: str | None) -> None:
    """Raise :class:`Restarted` unless ``INFO server``'s ``run_id`` is ``expected``."""
    if expected is None:
        return
    run_id = run_id_of(info)
    if run_id != expected:
        raise Restarted(node, run_id, expected)


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

    A backend that failed (refused, timed out) is *suspected* for ``cooldown``
    seconds: reads ask it last and writes skip it, so a hung backend costs one
    timeout per cooldown instead of one per request. The first request after
    the cooldown probes it again.
    """

    def __init__(self, nodes: Iterable[str] = (), *, password: str | None = None,
                 username: str | None = None,
                 timeout: float = 1.0, max_connections: int = 64,
                 pool_factory: PoolFactory | None = None, cooldown: float | None = None,
                 clock: Callable[[], float] = time.monotonic, db: int = 0):
        self.password = password
        self.username = username  # an ACL user; None: the default user
        self.db = db
        self.timeout = timeout
        self.cooldown = max(1.0, timeout) if cooldown is None else cooldown
        self._clock = clock
        self._suspects: dict[str, float] = {}
        self.max_connections = max_connections
        self._pool_factory = pool_factory or self._default_pool
        self._pools: dict[str, redis.ConnectionPool] = {}
        # node -> the run_id the ring admitted it with (set by the request core)
        self.incarnations: Callable[[str], str | None] = lambda node: None
        self._lock = threading.Lock()
        for node in nodes:
            self.pool(node)

    def _default_pool(self, node: str) -> redis.ConnectionPool:
        host, port = parse_address(node)
        return redis.BlockingConnectionPool(
            host=host, port=port, username=self.username, password=self.password, db=self.db,
            socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0), max_connections=self.max_connections,
            timeout=self.timeout, protocol=2,  # flat replies, as RESP2 clients expect them
            connection_class=CheckedConnection, expected=lambda: self.incarnations(node))

    def pool(self, node: str) -> redis.ConnectionPool:
        pool = self._pools.get(node)
        if pool is None:
            with self._lock:
                pool = self._pools.get(node)
                if pool is None:
                    pool = self._pools[node] = self._pool_factory(node)
        return pool

    def suspect(self, node: str) -> None:
        self._suspects[node] = self._clock() + self.cooldown

    def suspected(self, node: str) -> bool:
        until = self._suspects.get(node)
        if until is None:
            return False
        if self._clock() >= until:
            self._suspects.pop(node, None)
            return False
        return True

    def clear(self, node: str) -> None:
        """``node`` answered: no longer suspected."""
        self._suspects.pop(node, None)

    def redis(self, node: str) -> redis.Redis:
        """A redis-py client on the backend's pool (for admin work, not the hot path)."""
        return redis.Redis(connection_pool=self.pool(node))

    def execute(self, node: str, *args: Any) -> Any:
        """Run one command on one backend; raw reply, redis-py errors unchanged."""
        return _single(self.pool(node), args)

    def perform(self, effect: Execute | Fanout) -> Any:
        """Carry out one step of :mod:`dtriad.core.steps` (the blocking driver)."""
        if isinstance(effect, Execute):
            return _single(self.pool(effect.node), effect.args)
        return self.fanout(effect.nodes, *effect.args)

    def fanout(self, nodes: Sequence[str], *args: Any, by_sha: bool = True) -> list[Outcome]:
        """Run one command on every node in parallel; one outcome per node, in order."""
        sent_args = _by_sha(args) if by_sha else args
        sent: list[tuple[str, redis.ConnectionPool, Any]] = []
        outcomes: dict[str, Outcome] = {}
        for node in nodes:
            if self.suspected(node):
                outcomes[node] = Outcome(node, error=SuspectedDown(
                    "failed moments ago; skipped until its cooldown ends"))
                continue
            pool = self.pool(node)
            conn = None
            try:
                conn = pool.get_connection()
                conn.send_command(*sent_args)
                sent.append((node, pool, conn))
            except DOWN_ERRORS as e:
                outcomes[node] = Outcome(node, error=e)
                self.suspect(node)
                if conn is not None:
                    conn.disconnect()
                    pool.release(conn)
        for node, pool, conn in sent:
            try:
                outcomes[node] = Outcome(node, value=conn.read_response())
            except ResponseError as e:
                outcomes[node] = Outcome(node, error=e)
            except DOWN_ERRORS as e:
                conn.disconnect()
                outcomes[node] = Outcome(node, error=e)
                self.suspect(node)
            finally:
                pool.release(conn)
        unknown = [node for node in nodes if _noscript(outcomes[node].error)]
        if unknown:  # the script's first use on these servers: EVAL loads it
            outcomes.update((o.node, o) for o in self.fanout(unknown, *args, by_sha=False))
        return [outcomes[node] for node in nodes]

    def sync_key(self, source: str, target: str, key: Any, token: int) -> bool:
        """Give ``target`` ``source``'s state of ``key`` (:func:`dtriad.core.steps.sync_key`)."""
        return run(sync_key(source, target, key, token), self)

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.disconnect()
            self._pools.clear()


_SHAS: dict[str, str] = {}


def _by_sha(args: Sequence[Any]) -> Sequence[Any]:
    """``EVAL script ...`` -> ``EVALSHA sha1 ...``: the scripts are long (the
    write path's are about 1.5 KB) and sent with every command otherwise.
    A server that does not know the script yet answers NOSCRIPT, and the
    command is sent again as EVAL (which also loads it)."""
    if args and args[0] == "EVAL":
        sha = _SHAS.get(args[1])
        if sha is None:
            sha = _SHAS[args[1]] = hashlib.sha1(args[1].encode()).hexdigest()
        return ("EVALSHA", sha, *args[2:])
    return args


def _noscript(error: BaseException | None) -> bool:
    return isinstance(error, NoScriptError)


def _single(pool: redis.ConnectionPool, args: Sequence[Any]) -> Any:
    conn = pool.get_connection()
    try:
        short = _by_sha(args)
        conn.send_command(*short)
        try:
            return conn.read_response()
        except ResponseError as e:
            if short is args or not _noscript(e):
                raise
        conn.send_command(*args)
        return conn.read_response()
    except ResponseError:
        raise
    except DOWN_ERRORS:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)

"""The request core shared by every front end (HTTP today, RESP later).

It owns the command table, argument checks, routing over the ring and the
replication rules of DESIGN.md section 4:

* a write goes to every copy of the key in parallel and returns only when the
  required copies took it; otherwise :class:`QuorumError` says how many did;
* a command the master rejects (WRONGTYPE, not an integer) is applied nowhere:
  a copy that took it anyway had diverged and is overwritten from the master;
* a read asks the master first, then the backups in ring order.

Replies are raw Redis replies (bytes, int, list, None); front ends encode them.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from .client import DOWN_ERRORS, DTClient, Outcome, describe
from .config import ClusterConfig
from .exceptions import (
    ArgumentError,
    CommandError,
    DtriadError,
    QuorumError,
    UnknownMethodError,
    ValueTooLargeError,
)


class Kind(enum.Enum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class CommandSpec:
    """One single-key command: its API name, Redis command and arguments."""

    name: str
    redis: str
    kind: Kind
    args: tuple[str, ...]
    summary: str
    ints: tuple[str, ...] = ()

    @property
    def usage(self) -> str:
        return " ".join((self.name,) + self.args)


_R, _W = Kind.READ, Kind.WRITE
COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in [
    CommandSpec("get", "GET", _R, ("key",), "value of a string key, or null"),
    CommandSpec("set", "SET", _W, ("key", "value"), "store a string value"),
    CommandSpec("getStrlen", "STRLEN", _R, ("key",), "length of a string value"),
    CommandSpec("append", "APPEND", _W, ("key", "value"), "append to a string; new length"),
    CommandSpec("lPush", "LPUSH", _W, ("key", "value"), "push onto a list's head; new length"),
    CommandSpec("lPop", "LPOP", _W, ("key",), "pop a list's head, or null"),
    CommandSpec("lIndex", "LINDEX", _R, ("key", "index"), "list element at index, or null",
                ints=("index",)),
    CommandSpec("lLen", "LLEN", _R, ("key",), "length of a list"),
    CommandSpec("delete", "DEL", _W, ("key",), "delete a key; 1 if it existed"),
    CommandSpec("exists", "EXISTS", _R, ("key",), "1 if the key exists, else 0"),
    CommandSpec("expire", "EXPIRE", _W, ("key", "seconds"), "set a time to live; 1 if set",
                ints=("seconds",)),
    CommandSpec("ttl", "TTL", _R, ("key",), "seconds to live; -1 none, -2 no key"),
    CommandSpec("incr", "INCR", _W, ("key",), "add 1 to an integer value; new value"),
]}
MULTI_KEY = {
    "mget": "values of several keys (repeat key=)",
    "mset": "store several keys (repeat key= and value= in pairs)",
}
ADMIN = {
    "ring": "the ring: epoch, replicas, nodes and their shares",
    "keyDist": "keys per node, as master and as backup",
    "health": "reachability of every backend",
    "stats": "requests and errors served by this DTServer",
}


def method_names() -> list[str]:
    return sorted([*COMMANDS, *MULTI_KEY, *ADMIN], key=str.lower)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Stats:
    """Counters of requests and errors; cheap and thread-safe."""

    def __init__(self):
        self.started = time.time()
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def record(self, method: str, error: str | None = None) -> None:
        with self._lock:
            self.requests[method] += 1
            if error:
                self.errors[error] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {"uptime_s": round(time.time() - self.started, 3),
                    "requests": dict(self.requests), "errors": dict(self.errors),
                    "total": sum(self.requests.values())}


class DTCore:
    """Routes commands over the ring and enforces the replication rules."""

    def __init__(self, config: ClusterConfig, client: DTClient | None = None):
        self.config = config
        self.ring = config.ring()
        self.client = client or DTClient(self.ring.nodes, password=config.password,
                                         timeout=config.backend_timeout)
        self.stats = Stats()
        self._names = {n.redis: n.name for n in config.nodes}

    # ----------------------------------------------------------------- commands
    def call(self, method: str, **args: Any) -> Any:
        """Run a single-key command of the table, by its API name."""
        spec = COMMANDS.get(method)
        if spec is None:
            raise UnknownMethodError(
                f"unknown method {method!r}; methods are {', '.join(method_names())}")
        values = [self._argument(spec, name, args.get(name)) for name in spec.args]
        if spec.kind is Kind.READ:
            return self.read(values[0], spec.redis, *values)
        return self.write(values[0], spec.redis, *values)

    def _argument(self, spec: CommandSpec, name: str, value: Any) -> Any:
        if value is None:
            raise ArgumentError(f"missing argument {name!r}; usage: {spec.usage}")
        if name in spec.ints:
            try:
                return int(value)
            except (TypeError, ValueError):
                raise ArgumentError(
                    f"{name} must be an integer, got {_text(value)!r}; usage: {spec.usage}"
                ) from None
        self.check_size(name, value)
        return value

    def check_size(self, what: str, value: str | bytes) -> None:
        limit = self.config.max_value_bytes
        size = len(value.encode("utf-8")) if isinstance(value, str) else len(value)
        if size > limit:
            raise ValueTooLargeError(what, size, limit)

    def read(self, key: Any, *command: Any) -> Any:
        """Master first, then backups in ring order; the first answer wins."""
        value, _ = self.client.read(self.ring.preference_list(key), *command, key=_text(key))
        return value

    def write(self, key: Any, *command: Any) -> Any:
        """Apply ``command`` to every copy of ``key``; see the module docstring."""
        nodes = self.ring.preference_list(key)
        return self._settle([key], nodes, self.client.fanout(nodes, *command))

    def _settle(self, keys: Sequence[Any], nodes: Sequence[str],
                outcomes: list[Outcome]) -> Any:
        """Judge one replicated command (on ``keys``) from each copy's outcome."""
        key = _text(keys[0])
        authority = next((o for o in outcomes if not o.down), None)
        failures = {self._names.get(o.node, o.node): describe(o.error)
                    for o in outcomes if o.down}
        if authority is None:
            raise QuorumError(key, 0, self.config.required_copies(len(nodes)), len(nodes),
                              failures)
        if authority.rejected:
            for o in outcomes:
                if o.ok:  # this copy had diverged from the master: undo by copying
                    self._repair(keys, authority.node, o.node, failures)
            raise CommandError.from_redis(authority.error)
        copies = sum(1 for o in outcomes if o.ok)
        for o in outcomes:
            if o.rejected and self._repair(keys, authority.node, o.node, failures):
                copies += 1
        required = self.config.required_copies(len(nodes))
        if copies < required:
            raise QuorumError(key, copies, required, len(nodes), failures)
        return authority.value

    def _repair(self, keys: Sequence[Any], source: str, target: str,
                failures: dict[str, str]) -> bool:
        """Overwrite ``target``'s copies of ``keys`` with ``source``'s, server to server."""
        host, port = target.rsplit(":", 1)
        auth = ("AUTH", self.config.password) if self.config.password else ()
        try:
            for key in keys:
                reply = self.client.execute(source, "MIGRATE", host, port, key, 0,
                                            int(self.config.backend_timeout * 1000),
                                            "COPY", "REPLACE", *auth)
                if reply == b"NOKEY":
                    self.client.execute(target, "DEL", key)
            return True
        except (*DOWN_ERRORS, ResponseError) as e:
            failures[self._names.get(target, target)] = f"diverged and not repaired: {describe(e)}"
            return False

    def mget(self, keys: Sequence[Any]) -> list[Any]:
        """Values of ``keys`` in order; one MGET per group of keys sharing copies."""
        if not keys:
            raise ArgumentError("missing argument 'key'; usage: mget key [key ...]")
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(self.ring.preference_list(key), []).append(i)
        result: list[Any] = [None] * len(keys)
        for nodes, indexes in groups.items():
            group_keys = [keys[i] for i in indexes]
            values, _ = self.client.read(nodes, "MGET", *group_keys,
                                         key=_text(group_keys[0]))
            for i, value in zip(indexes, values, strict=True):
                result[i] = value
        return result

    def mset(self, keys: Sequence[Any], values: Sequence[Any]) -> Any:
        """Store pairs; each group of keys sharing copies is one replicated MSET."""
        if not keys:
            raise ArgumentError("missing argument 'key'; usage: mset key value [key value ...]")
        if len(keys) != len(values):
            raise ArgumentError(
                f"mset needs one value per key, got {len(keys)} keys and {len(values)} values")
        for key, value in zip(keys, values, strict=True):
            self.check_size("key", key)
            self.check_size("value", value)
        groups: dict[tuple[str, ...], list[Any]] = {}
        for key, value in zip(keys, values, strict=True):
            groups.setdefault(self.ring.preference_list(key), []).extend((key, value))
        for nodes, flat in groups.items():
            self._settle(flat[::2], nodes, self.client.fanout(nodes, "MSET", *flat))
        return b"OK"

    # -------------------------------------------------------------------- admin
    def ring_info(self) -> dict:
        share = self.ring.share()
        return {
            "epoch": self.config.epoch,
            "replicas": self.config.replicas,
            "vnodes": self.config.vnodes,
            "copies": self.ring.copies,
            "write_quorum": self.config.write_quorum,
            "nodes": [{
                "name": n.name, "redis": n.redis, "http": n.http, "state": "up",
                "tokens": [format(t, "040x") for t in self.ring.node_tokens(n.redis)],
                "share": {k: round(v, 6) for k, v in share[n.redis].items()},
            } for n in self.config.nodes],
            "migration": None,
        }

    def health(self) -> dict:
        backends = {}
        for node in self.config.nodes:
            start = time.perf_counter()
            try:
                self.client.execute(node.redis, "PING")
                backends[node.name] = {"redis": node.redis, "up": True,
                                       "latency_ms": round((time.perf_counter() - start) * 1e3, 3)}
            except DOWN_ERRORS as e:
                backends[node.name] = {"redis": node.redis, "up": False, "error": describe(e)}
        up = sum(b["up"] for b in backends.values())
        status = "ok" if up == len(backends) else ("down" if up == 0 else "degraded")
        return {"status": status, "backends": backends}

    def key_dist(self, scan_count: int = 1000) -> dict:
        """Keys held by each backend, by role (SCAN; an admin call, not for the hot path)."""
        result = {}
        for node in self.config.nodes:
            counts = Counter(master=0, backup=0, misplaced=0)
            try:
                for key in self.client.redis(node.redis).scan_iter(count=scan_count):
                    owners = self.ring.preference_list(key)
                    role = ("master" if owners[0] == node.redis else
                            "backup" if node.redis in owners else "misplaced")
                    counts[role] += 1
                result[node.name] = dict(counts, total=sum(counts.values()))
            except DOWN_ERRORS as e:
                result[node.name] = {"error": describe(e)}
        return result

    def close(self) -> None:
        self.client.close()


__all__ = ["COMMANDS", "CommandSpec", "DTCore", "DtriadError", "Kind", "method_names"]

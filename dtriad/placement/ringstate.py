"""The versioned ring every DTServer routes by, and how a key is routed by it.

Pure: no I/O. A :class:`RingState` is what the DTSentinel publishes: the
committed ring (epoch ``e``) and, during a migration, the pending ring (epoch
``e+1``). Its *token* orders states totally: ``2e`` when committed, ``2e+1``
while ``e+1`` is pending, so a DTServer or backend can refuse anything older
than what it has seen.

While a ring is pending, a write goes to the union of old and new owners
(:meth:`View.route`): nodes that hold the arc completely get the command;
nodes that are only gaining the arc get the authority's resulting state, so a
copy made by the migration and a concurrent write can never double-apply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dtriad.exceptions import ArgumentError
from dtriad.placement.ring import Ring

# Bounds of a ring state read from a backend or a push (what anyone holding a
# backend's password could write there).
MAX_MEMBERS = 1024
MAX_VNODES = 1024
MAX_EPOCH = 2 ** 53
MAX_STATE_BYTES = 4 * 1024 * 1024


class NodeLike(Protocol):
    """What placement needs of a configured node (:class:`dtriad.config.NodeSpec`)."""

    name: str
    redis: str
    http: str


class ClusterLike(Protocol):
    """What placement needs of a cluster's configuration
    (:class:`dtriad.config.ClusterConfig`); placement imports no configuration."""

    epoch: int
    replicas: int
    vnodes: int
    nodes: Sequence[NodeLike]


@dataclass(frozen=True)
class Member:
    """A node of a ring. ``run_id`` is its backend's incarnation (Redis's
    ``run_id``) when it was admitted: a backend answering with another one has
    restarted and no longer holds what the ring says it holds."""

    name: str
    redis: str
    http: str
    run_id: str | None = None

    @classmethod
    def of(cls, node: NodeLike, run_id: str | None = None) -> Member:
        return cls(node.name, node.redis, node.http, run_id)

    def to_dict(self) -> dict:
        out = {"name": self.name, "redis": self.redis, "http": self.http}
        if self.run_id is not None:
            out["run_id"] = self.run_id
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Member:
        """A member as stored: every field a string of the right form (the
        ring is read from backends anyone with their password could write)."""
        if not isinstance(data, dict):
            raise ArgumentError(f"malformed ring state: a member is {type(data).__name__}, "
                                f"not an object")
        for name in ("name", "redis", "http"):
            if not isinstance(data.get(name), str) or not data[name] or len(data[name]) > 256:
                raise ArgumentError(f"malformed ring state: a member's {name} must be a "
                                    f"non-empty string")
        host, _, port = data["redis"].rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ArgumentError(f"malformed ring state: {data['redis']!r} is not host:port")
        if not data["http"].startswith(("http://", "https://")):
            raise ArgumentError(f"malformed ring state: {data['http']!r} is not an http URL")
        run_id = data.get("run_id")
        if run_id is not None and (not isinstance(run_id, str) or len(run_id) > 64):
            raise ArgumentError("malformed ring state: a member's run_id must be a string")
        return cls(data["name"], data["redis"], data["http"], run_id)


@dataclass(frozen=True)
class RingState:
    epoch: int
    replicas: int
    vnodes: int
    nodes: tuple[Member, ...]
    pending: tuple[Member, ...] | None = None
    pending_epoch: int | None = None
    migration: dict | None = field(default=None, compare=False)

    def __post_init__(self):
        if (self.pending is None) != (self.pending_epoch is None):
            raise ArgumentError("malformed ring state: a pending ring needs its epoch")
        if self.pending_epoch is not None and self.pending_epoch <= self.epoch:
            raise ArgumentError("malformed ring state: the pending epoch must be newer")

    @property
    def token(self) -> int:
        """``2e`` for committed epoch ``e``; ``2p - 1`` while epoch ``p`` is pending.

        A pending ring that is abandoned (membership changed again mid-migration)
        is replaced by epoch ``p + 1``, whose token is higher still.
        """
        if self.pending_epoch is not None:
            return 2 * self.pending_epoch - 1
        return 2 * self.epoch

    def ring(self) -> Ring:
        return Ring([m.redis for m in self.nodes], self.replicas, self.vnodes)

    def pending_ring(self) -> Ring | None:
        if self.pending is None:
            return None
        return Ring([m.redis for m in self.pending], self.replicas, self.vnodes)

    def members(self) -> dict[str, Member]:
        """Every node of the committed and pending rings, by Redis address
        (a node in both is given as the pending ring has it)."""
        out = {m.redis: m for m in self.nodes}
        for m in self.pending or ():
            out[m.redis] = m
        return out

    @classmethod
    def initial(cls, config: ClusterLike) -> RingState:
        return cls(config.epoch, config.replicas, config.vnodes,
                   tuple(Member.of(n) for n in config.nodes))

    def to_dict(self) -> dict:
        def members(ms):
            return [m.to_dict() for m in ms]

        return {"epoch": self.epoch, "token": self.token, "replicas": self.replicas,
                "vnodes": self.vnodes, "nodes": members(self.nodes),
                "pending": None if self.pending is None else members(self.pending),
                "pending_epoch": self.pending_epoch, "migration": self.migration}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> RingState:
        """A ring state as stored or pushed, checked field by field: numbers
        are integers within bounds (a ring of 10^9 vnodes would take the
        process down building it), members well-formed and distinct."""
        if not isinstance(data, dict):
            raise ArgumentError(f"malformed ring state: {type(data).__name__}, not an object")

        def number(field: str, low: int, high: int, optional: bool = False) -> int | None:
            value = data.get(field)
            if value is None and optional:
                return None
            if type(value) is not int or not low <= value <= high:
                raise ArgumentError(f"malformed ring state: {field} must be an integer in "
                                    f"[{low}, {high}], got {value!r:.40}")
            return value

        def members(field: str) -> tuple[Member, ...]:
            items = data.get(field)
            if not isinstance(items, list) or not 0 < len(items) <= MAX_MEMBERS:
                raise ArgumentError(f"malformed ring state: {field} must be a list of 1 to "
                                    f"{MAX_MEMBERS} members")
            out = tuple(Member.from_dict(m) for m in items)
            for key in ("name", "redis"):
                seen = [getattr(m, key) for m in out]
                if len(set(seen)) != len(seen):
                    raise ArgumentError(f"malformed ring state: two members of {field} share "
                                        f"a {key}")
            return out

        migration = data.get("migration")
        if migration is not None and not isinstance(migration, dict):
            raise ArgumentError("malformed ring state: migration must be an object")
        state = cls(number("epoch", 0, MAX_EPOCH), number("replicas", 0, MAX_MEMBERS),
                    number("vnodes", 1, MAX_VNODES), members("nodes"),
                    None if data.get("pending") is None else members("pending"),
                    number("pending_epoch", 0, MAX_EPOCH, optional=True), migration)
        if "token" in data and data["token"] != state.token:
            raise ArgumentError(f"malformed ring state: token {data['token']!r:.40} does not "
                                f"match epoch {state.epoch}")
        return state

    @classmethod
    def from_json(cls, text: str | bytes) -> RingState:
        return cls.from_dict(load_json(text))


def load_json(text: str | bytes) -> Any:
    """A ring state's JSON, parsed within :data:`MAX_STATE_BYTES` (and
    Python's nesting limit); anything else is an :class:`ArgumentError`."""
    if len(text) > MAX_STATE_BYTES:
        raise ArgumentError(f"ring state of {len(text)} bytes; at most {MAX_STATE_BYTES}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ArgumentError(f"ring state is not valid JSON: {str(e)[:100]}") from e


# Keys whose routes a View keeps (about 150 bytes each, and the key), and
# the longest key kept: at most ~25 MB per view.
ROUTE_CACHE = 65536
ROUTE_KEY_BYTES = 256


@dataclass(frozen=True)
class Route:
    """Where one key's command goes.

    ``read``: backends to ask in order. ``direct``: backends that get the
    command itself, the authority (first live one) first. ``copy_to``: backends
    gaining the key in a migration, given the authority's state after the
    write. ``owners``: the copies a write's quorum is counted on.
    """

    read: tuple[str, ...]
    direct: tuple[str, ...]
    copy_to: tuple[str, ...]
    owners: tuple[str, ...]


class View:
    """A :class:`RingState` with its rings built once, for routing."""

    def __init__(self, state: RingState):
        self.state = state
        self.ring = state.ring()
        self.pending = state.pending_ring()
        members = state.members().values()
        self.names = {m.redis: m.name for m in members}
        self.run_ids = {m.redis: m.run_id for m in members if m.run_id is not None}
        self._routes: dict[tuple, Route] = {}
        self._by_key: dict[str | bytes, Route] = {}

    @property
    def token(self) -> int:
        return self.state.token

    def route(self, key: str | bytes) -> Route:
        """The key's route. The last :data:`ROUTE_CACHE` short keys' routes are
        kept (a view belongs to one ring state, so they never go stale):
        hashing and the ring search were a tenth of a read's CPU."""
        by_key = self._by_key
        keep = (type(key) is bytes or type(key) is str) and len(key) <= ROUTE_KEY_BYTES
        route = by_key.get(key) if keep else None
        if route is not None:
            return route
        old = self.ring.preference_list(key)
        if self.pending is None:
            route = self._committed(old)
        else:
            new = self.pending.preference_list(key)
            route = self._routes.get((old, new))
            if route is None:
                route = self._routes[(old, new)] = route_between(old, new)
        if keep:
            if len(by_key) >= ROUTE_CACHE:
                by_key.clear()  # cheaper than keeping an LRU order on every read
            by_key[key] = route
        return route

    def _committed(self, owners: tuple[str, ...]) -> Route:
        cached = self._routes.get((owners,))
        if cached is None:
            cached = self._routes[(owners,)] = Route(owners, owners, (), owners)
        return cached

    def owners(self, key: str | bytes) -> tuple[str, ...]:
        """The key's preference list once any pending migration completes."""
        return (self.pending or self.ring).preference_list(key)


def route_between(old: tuple[str, ...], new: tuple[str, ...]) -> Route:
    """Dual-write route of a key whose owners change from ``old`` to ``new``.

    Nodes in both lists hold the key completely and come first (in new order),
    then old-only nodes (they still serve reads until the new ring is
    committed); new-only nodes receive the authority's state.
    """
    both = tuple(n for n in new if n in old)
    old_only = tuple(n for n in old if n not in new)
    new_only = tuple(n for n in new if n not in old)
    return Route(read=old + new_only, direct=both + old_only, copy_to=new_only, owners=new)


__all__ = ["Member", "Route", "RingState", "View", "route_between"]

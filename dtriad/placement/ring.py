"""The Chord ring: pure math, no I/O.

Positions are 160-bit integers on a ring that wraps at 2**160. A node's tokens
are ``hash("host:port")`` (one token) or ``hash("host:port#i")`` for
``i in range(vnodes)``; a key's position is ``hash(key)``, or ``hash(tag)`` when
the key holds a non-empty ``{tag}`` (Redis Cluster's hash-tag rule).

A node masters every key whose position lies in ``(previous token, its token]``;
a key's preference list is the first ``replicas + 1`` distinct physical nodes met
clockwise from the key's position. The hash function is a parameter so tests can
use small rings; production uses SHA-1 as Chord does.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from dtriad.exceptions import ConfigurationError

RING_BITS = 160
RING_SIZE = 1 << RING_BITS

HashFn = Callable[[bytes], int]


def sha1_position(data: bytes) -> int:
    """SHA-1 of ``data`` as an integer in ``[0, 2**160)``."""
    return int.from_bytes(hashlib.sha1(data).digest(), "big")


def _as_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def hash_tag(key: str | bytes) -> bytes:
    """The part of ``key`` that is hashed: the first non-empty ``{...}``, else all."""
    raw = _as_bytes(key)
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            return raw[start + 1:end]
    return raw


def token_labels(node: str, vnodes: int) -> list[str]:
    """The strings hashed to place ``node``: ``node`` itself, or ``node#i``."""
    if vnodes == 1:
        return [node]
    return [f"{node}#{i}" for i in range(vnodes)]


@dataclass(frozen=True)
class Arc:
    """Positions in ``(start, end]``, clockwise. ``start == end`` is the whole ring."""

    start: int
    end: int
    owners: tuple[str, ...]

    def __contains__(self, position: int) -> bool:
        if self.start < self.end:
            return self.start < position <= self.end
        if self.start == self.end:
            return True
        return position > self.start or position <= self.end

    @property
    def size(self) -> int:
        """Number of ring positions in the arc."""
        return (self.end - self.start) % RING_SIZE or RING_SIZE


@dataclass(frozen=True)
class ArcChange:
    """An arc whose preference list differs between two rings."""

    start: int
    end: int
    old_owners: tuple[str, ...]
    new_owners: tuple[str, ...]

    @property
    def gained(self) -> tuple[str, ...]:
        """Nodes that must receive a copy of the arc."""
        return tuple(n for n in self.new_owners if n not in self.old_owners)

    @property
    def lost(self) -> tuple[str, ...]:
        """Nodes whose copy of the arc is no longer needed."""
        return tuple(n for n in self.old_owners if n not in self.new_owners)


class Ring:
    """An immutable consistent-hash ring over physical node ids (``"host:port"``)."""

    def __init__(self, nodes: Iterable[str], replicas: int, vnodes: int = 1,
                 hash_fn: HashFn = sha1_position):
        nodes = tuple(sorted(nodes))
        if len(set(nodes)) != len(nodes):
            raise ConfigurationError(f"duplicate node in ring: {list(nodes)}")
        if any(not isinstance(n, str) or not n for n in nodes):
            raise ConfigurationError("every ring node must be a non-empty string")
        if not isinstance(replicas, int) or replicas < 0:
            raise ConfigurationError(f"replicas must be an integer >= 0, got {replicas!r}")
        if not isinstance(vnodes, int) or vnodes < 1:
            raise ConfigurationError(f"vnodes must be an integer >= 1, got {vnodes!r}")
        self.nodes = nodes
        self.replicas = replicas
        self.vnodes = vnodes
        self.hash_fn = hash_fn
        # Ties (only possible with a toy hash) are broken by node id.
        self._tokens = sorted(
            (hash_fn(label.encode("utf-8")), node)
            for node in nodes for label in token_labels(node, vnodes)
        )
        self._positions = [pos for pos, _ in self._tokens]
        self._owners = [tuple(self._walk_from_index(i))[:self.copies]
                        for i in range(len(self._tokens))]

    def __repr__(self) -> str:
        return f"Ring(nodes={list(self.nodes)!r}, replicas={self.replicas}, vnodes={self.vnodes})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Ring) and self._tokens == other._tokens
                and self.replicas == other.replicas)

    def __hash__(self) -> int:
        return hash((tuple(self._tokens), self.replicas))

    @property
    def copies(self) -> int:
        """Copies of each key: ``replicas + 1``, capped at the number of nodes."""
        return min(self.replicas + 1, len(self.nodes))

    @property
    def tokens(self) -> list[tuple[int, str]]:
        return list(self._tokens)

    def node_tokens(self, node: str) -> list[int]:
        return [pos for pos, owner in self._tokens if owner == node]

    def position(self, key: str | bytes) -> int:
        return self.hash_fn(hash_tag(key))

    def _index_at(self, position: int) -> int:
        """Index of the first token at or clockwise after ``position``."""
        return bisect.bisect_left(self._positions, position) % len(self._positions)

    def _walk_from_index(self, start: int) -> Iterator[str]:
        seen: set[str] = set()
        count = len(self._tokens)
        for step in range(count):
            node = self._tokens[(start + step) % count][1]
            if node not in seen:
                seen.add(node)
                yield node

    def walk(self, position: int) -> Iterator[str]:
        """Distinct physical nodes met clockwise from ``position``, master first."""
        if not self._tokens:
            return iter(())
        return self._walk_from_index(self._index_at(position))

    def owners_at(self, position: int) -> tuple[str, ...]:
        """Preference list (master, then backups) for a ring position."""
        if not self._tokens:
            return ()
        return self._owners[self._index_at(position)]

    def preference_list(self, key: str | bytes) -> tuple[str, ...]:
        """Master and ``replicas`` backups of ``key``, in ring order."""
        return self.owners_at(self.position(key))

    def master(self, key: str | bytes) -> str:
        if not self._tokens:
            raise ConfigurationError("the ring has no nodes")
        return self.preference_list(key)[0]

    def arcs(self) -> list[Arc]:
        """Non-empty arcs between consecutive tokens, each with its preference list."""
        count = len(self._tokens)
        if count == 1:
            pos = self._positions[0]
            return [Arc(pos, pos, self._owners[0])]
        arcs = []
        for i in range(count):
            start, end = self._positions[i - 1], self._positions[i]
            if start != end:
                arcs.append(Arc(start, end, self._owners[i]))
        return arcs

    def share(self) -> dict[str, dict[str, float]]:
        """Fraction of the ring each node holds as master and as backup."""
        result = {n: {"master": 0.0, "backup": 0.0} for n in self.nodes}
        for arc in self.arcs():
            fraction = arc.size / RING_SIZE
            for rank, node in enumerate(arc.owners):
                result[node]["master" if rank == 0 else "backup"] += fraction
        return result

    def roles(self) -> dict[str, dict[str, int]]:
        """How many arcs each node holds as master and as backup."""
        result = {n: {"master": 0, "backup": 0} for n in self.nodes}
        for arc in self.arcs():
            for rank, node in enumerate(arc.owners):
                result[node]["master" if rank == 0 else "backup"] += 1
        return result

    def with_node(self, node: str) -> Ring:
        return Ring(self.nodes + (node,), self.replicas, self.vnodes, self.hash_fn)


def diff(old: Ring, new: Ring) -> list[ArcChange]:
    """Arcs whose preference list differs between ``old`` and ``new``.

    The ring is cut at every token of both rings; each piece lies inside one arc
    of each ring, so its owners on both sides are well defined. Adjacent pieces
    with the same change are merged (also across the wrap at 2**160).
    """
    bounds = sorted(set(old._positions) | set(new._positions))
    if not bounds:
        return []
    pieces = []
    for i, end in enumerate(bounds):
        start = bounds[i - 1]  # bounds[-1] for i == 0: the piece that wraps
        before, after = old.owners_at(end), new.owners_at(end)
        pieces.append(ArcChange(start, end, before, after) if before != after else None)
    changes: list[ArcChange] = []
    for piece in pieces:
        last = changes[-1] if changes else None
        if (piece is not None and last is not None and last.end == piece.start
                and (last.old_owners, last.new_owners) == (piece.old_owners, piece.new_owners)):
            changes[-1] = ArcChange(last.start, piece.end, last.old_owners, last.new_owners)
        elif piece is not None:
            changes.append(piece)
    if len(changes) > 1:
        first, last = changes[0], changes[-1]
        if (last.end == first.start
                and (last.old_owners, last.new_owners) == (first.old_owners, first.new_owners)):
            changes[0] = ArcChange(last.start, first.end, first.old_owners, first.new_owners)
            changes.pop()
    return changes


def transfers(changes: Iterable[ArcChange]) -> list[tuple[ArcChange, str]]:
    """(arc, destination) pairs: every node that must receive a copy of an arc."""
    return [(change, node) for change in changes for node in change.gained]

"""The migration planner: pure, no I/O (docs/architecture.md section 6).

``plan(old, new)`` says which copies must move when the ring changes from
``old`` to ``new``: for every arc whose preference list changed, each node that
gains the arc receives a copy from a *source*, an old owner of the arc that is
still in the new ring (so it is live and holds the arc completely). Old owners
that no longer hold the arc are cleaned up once the new ring is in force. An
arc none of whose old owners survives is *lost*: the plan reports it so the
operator (and a returning node) can recover it.

With one token per node, a join or a failure yields exactly r+1 transfers when
the ring has more than r+1 nodes: the paper's result, property-tested.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dtriad.placement.ring import ArcChange, Ring, diff


@dataclass(frozen=True)
class Transfer:
    """Copy the keys of arc ``(start, end]`` from ``source`` to ``destination``."""

    source: str
    destination: str
    start: int
    end: int


@dataclass(frozen=True)
class Cleanup:
    """Delete ``node``'s copies of arc ``(start, end]`` (it no longer holds the arc)."""

    node: str
    start: int
    end: int


@dataclass(frozen=True)
class Plan:
    old: Ring
    new: Ring
    transfers: tuple[Transfer, ...] = ()
    cleanups: tuple[Cleanup, ...] = ()
    lost: tuple[ArcChange, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not (self.transfers or self.cleanups)

    def by_source(self) -> dict[str, list[Transfer]]:
        groups: dict[str, list[Transfer]] = {}
        for t in self.transfers:
            groups.setdefault(t.source, []).append(t)
        return groups


def source_for(change: ArcChange, new: Ring) -> str | None:
    """The first old owner (in ring order) that is still in the new ring."""
    live = set(new.nodes)
    return next((n for n in change.old_owners if n in live), None)


def plan(old: Ring, new: Ring, previous: Iterable[Ring] = ()) -> Plan:
    """What to copy and what to clean up to move from ``old`` to ``new``.

    ``previous`` lists rings that were pending and abandoned since ``old`` was
    committed: nodes written to under them may hold copies that ``new`` does not
    want, so they are cleaned up too.
    """
    transfers: list[Transfer] = []
    lost: list[ArcChange] = []
    for change in diff(old, new):
        gained = change.gained
        if not gained:
            continue
        source = source_for(change, new)
        if source is None:
            lost.append(change)
            continue
        transfers.extend(Transfer(source, dest, change.start, change.end) for dest in gained)
    cleanups: list[Cleanup] = []
    seen: set[Cleanup] = set()
    live = set(new.nodes)
    for ring in (old, *previous):
        for change in diff(ring, new):
            for node in change.lost:
                item = Cleanup(node, change.start, change.end)
                if item not in seen:
                    seen.add(item)
                    cleanups.append(item)
    # A node that left the ring keeps its data until it returns (it is wiped
    # then); only nodes of the new ring are cleaned.
    cleanups = [c for c in cleanups if c.node in live]
    return Plan(old, new, tuple(transfers), tuple(cleanups), tuple(lost))


def strays(ring: Ring) -> list[Cleanup]:
    """Every copy a node of ``ring`` may hold outside its own arcs: for each
    arc, a cleanup on each node that does not own it. A DTSentinel that takes
    over a committed ring does not know which ring came before, so it cleans
    everything the ring does not want (a full scan, once)."""
    return [Cleanup(node, arc.start, arc.end) for arc in ring.arcs()
            for node in ring.nodes if node not in arc.owners]


__all__ = ["Cleanup", "Plan", "Transfer", "plan", "source_for", "strays"]

"""Leadership among DTSentinels: a lease held on a majority of the backends.

Several DTSentinels may run (one per Sentinel host, for availability); one
acts. Each backend of the cluster file stores who holds the lease on it
(``dtriad:leader`` in database 1, with an expiry); a DTSentinel leads while it
holds the lease on a majority of them, so two cannot lead at once (two
majorities of one set share a backend, and a backend grants the lease to one
holder at a time).

A lease is counted from the moment the request was *sent*, and trusted for
only ``margin`` of its length, so a leader stops acting before any backend
can grant the lease to another, even with clock rates that differ a little.
A leader paused past its lease (SIGSTOP, a long GC) does not know it lost
it: the scripts that change a member's data or ring check the holder on the
backend itself (``NOTLEADER``), so its late actions are refused there once
another DTSentinel holds the lease (``docs/membership.md``).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence

from dtriad.core.scripts import LEASE, RELEASE
from dtriad.exceptions import printable


def holder_id() -> str:
    """A DTSentinel's name in the lease: host, PID and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """``renew(nodes)`` each step; ``held()`` before acting. ``client`` is a
    :class:`~dtriad.backends.client.DTClient` (its ``fanout``)."""

    def __init__(self, client, holder: str, duration: float = 4.0, margin: float = 0.75,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.holder = holder
        self.duration = duration
        self.margin = margin
        self.clock = clock
        self.until = 0.0
        self.other: str | None = None  # who holds it, when we do not

    def held(self) -> bool:
        return self.clock() < self.until

    def renew(self, nodes: Sequence[str]) -> bool:
        """Ask every backend for the lease; True if a majority granted it."""
        nodes = list(nodes)
        if not nodes:
            return False
        sent = self.clock()
        outcomes = self.client.fanout(nodes, "EVAL", LEASE, 0, self.holder,
                                      int(self.duration * 1000))
        granted = sum(1 for o in outcomes if o.ok and o.value == 1)
        others = Counter(o.value for o in outcomes if o.ok and o.value != 1)
        self.other = printable(others.most_common(1)[0][0]) if others else None
        if granted >= len(nodes) // 2 + 1:
            self.until = sent + self.duration * self.margin
            return True
        self.until = 0.0
        if granted:  # a minority: give it back, or the leader's scripts are refused there
            self.client.fanout([o.node for o in outcomes if o.ok and o.value == 1],
                               "EVAL", RELEASE, 0, self.holder)
        return False

    def due(self) -> bool:
        """Is it time to renew (half the trusted lease has passed)?"""
        return self.clock() >= self.until - self.duration * self.margin / 2

    def release(self, nodes: Sequence[str]) -> None:
        """Give the lease up (a clean stop), so another takes over at once."""
        self.until = 0.0
        self.client.fanout(list(nodes), "EVAL", RELEASE, 0, self.holder)



__all__ = ["Lease", "holder_id"]

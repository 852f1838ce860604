"""Transactions (MULTI/EXEC/WATCH) whose keys may live on different masters.

The protocol and its safety argument are in ``docs/transactions.md``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dtriad.backends.outcome import Pause, Steps
from dtriad.exceptions import RingChangingError, printable

if TYPE_CHECKING:
    from dtriad.core.requests import Requests

LOCK_WAIT_S = 5.0     # a write waits this long at most for a transaction's lock
STALE_LOCK_S = 2.0    # a lock this old is resolved by whoever meets it


class Locked(Exception):
    """A transaction holds one of a write's keys on ``node``; ``owner`` is the
    lock's value, "txid coordinator started-ms"."""

    def __init__(self, node: str, owner: str, key: Any = None):
        super().__init__(owner)
        self.node, self.owner, self.key = node, owner, key

    @classmethod
    def from_error(cls, node: str, error: BaseException, key: Any = None) -> Locked:
        """From a backend's ``DTLOCKED <owner>`` error."""
        return cls(node, str(error).split(" ", 1)[1], key)

    @property
    def age_s(self) -> float:
        try:
            started = int(self.owner.split()[2])
        except (IndexError, ValueError):
            return float("inf")
        return time.time() - started / 1000


def is_locked(error: BaseException) -> bool:
    return str(error).startswith("DTLOCKED ")


class Transactions:
    def __init__(self, requests: Requests):
        self.requests = requests

    def wait(self, locked: Locked, since: float) -> Steps:
        """Wait for ``locked``'s transaction to finish: a short backoff, or
        its resolution when the lock is older than :data:`STALE_LOCK_S` (its
        DTServer may have died). After :data:`LOCK_WAIT_S` in all,
        :class:`RingChangingError` (TRYAGAIN)."""
        if time.monotonic() - since > LOCK_WAIT_S:
            raise RingChangingError(f"{printable(locked.key)!r} stayed locked by a transaction "
                                    f"for {LOCK_WAIT_S:.0f} s; retry")
        if locked.age_s > STALE_LOCK_S:
            yield from self.resolve(locked.node, locked.owner)
        else:
            yield Pause(0.002)

    def resolve(self, node: str, owner: str) -> Steps:
        """Finish or roll back the transaction ``owner`` names on ``node``."""
        yield Pause(0.01)  # filled in by the transaction protocol

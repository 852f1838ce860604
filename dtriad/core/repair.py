"""The repair queue: keys with a copy that missed a write.

A write that some copy did not take (down, timed out, or fenced while the
ring moved) still leaves the copies that took it ahead. The key is queued
here and reconciled in the background (every copy made equal to the newest
one, see :meth:`DTCore.reconcile`) until all copies agree, so a divergence
is never left in place.

The queue lives in memory; what makes repair survive a DTServer that dies
mid-write is the *intent* its master records with the write itself
(``dtriad:dirty``, see ``WRITE_MASTER``). Once every copy holds a write, its
intent is cleared (:meth:`Repairs.settle`, sent in batches with ``CLEAN``).
An intent older than a few seconds was left by a writer that stopped, or by
a write some copy missed: any DTServer's sweep (``SWEEP``) reconciles its
key and clears it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import RedisError

from dtriad.exceptions import DtriadError

log = logging.getLogger(__name__)


class Repairs:
    """A bounded, ordered set of keys to reconcile; thread-safe."""

    def __init__(self, limit: int = 100_000):
        self.limit = limit
        self.dropped = 0
        self.repaired = 0
        self._keys: dict[Any, None] = {}
        self._settled: dict[str, dict[Any, Any]] = {}  # master -> key -> version
        self._lock = threading.Lock()

    def add(self, keys: Iterable[Any]) -> None:
        with self._lock:
            for key in keys:
                self._keys.pop(key, None)
                self._keys[key] = None
            while len(self._keys) > self.limit:
                self._keys.pop(next(iter(self._keys)))
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("repair queue full (%d keys): the oldest are dropped; "
                                "run 'dtriad check --repair'", self.limit)

    def __len__(self) -> int:
        return len(self._keys)

    def settle(self, master: str, keys: Iterable[Any], version: Any) -> None:
        """Every copy holds ``version`` of ``keys``: clear their intents on
        ``master`` with the next batch."""
        with self._lock:
            pending = self._settled.setdefault(master, {})
            for key in keys:
                pending[key] = version
            if len(pending) > self.limit:  # the sweep clears what this forgets
                pending.pop(next(iter(pending)))

    def take_settled(self) -> dict[str, dict[Any, Any]]:
        with self._lock:
            taken, self._settled = self._settled, {}
        return taken

    def run_once(self, reconcile: Callable[[Any], bool], budget: int = 1000) -> int:
        """Try to reconcile up to ``budget`` queued keys; -> how many now agree.
        A key whose copies cannot all be reached yet stays queued."""
        with self._lock:
            batch = list(self._keys)[:budget]
        done = 0
        for key in batch:
            try:
                settled = reconcile(key)
            except (DtriadError, RedisError, OSError) as e:  # down, ring moving: later
                log.debug("repair of %r deferred: %s", key, e)
                settled = False
            if settled:
                with self._lock:
                    self._keys.pop(key, None)
                done += 1
        self.repaired += done
        return done

    def run_forever(self, reconcile: Callable[[Any], bool], interval: float,
                    stop: threading.Event, tick: Callable[[], None] = lambda: None) -> None:
        """Every ``interval``: ``tick()`` (clear settled intents, sweep), then
        the queued keys."""
        while not stop.wait(interval):
            try:
                tick()
            except (DtriadError, RedisError, OSError) as e:
                log.debug("repair intents deferred: %s", e)
            self.run_once(reconcile)

    def snapshot(self) -> dict:
        return {"pending": len(self), "repaired": self.repaired, "dropped": self.dropped}


__all__ = ["Repairs"]

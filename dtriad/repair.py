"""The repair queue: keys with a copy that missed a write.

A write that some copy did not take (down, timed out, or fenced while the
ring moved) still leaves the copies that took it ahead. The key is queued
here and reconciled in the background (every copy made equal to the newest
one, see :meth:`DTCore.reconcile`) until all copies agree, so a divergence
is never left in place. ``dtriad check --repair`` covers what a restart of
the DTServer loses from this in-memory queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import RedisError

from .exceptions import DtriadError

log = logging.getLogger(__name__)


class Repairs:
    """A bounded, ordered set of keys to reconcile; thread-safe."""

    def __init__(self, limit: int = 100_000):
        self.limit = limit
        self.dropped = 0
        self.repaired = 0
        self._keys: dict[Any, None] = {}
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
                    stop: threading.Event) -> None:
        while not stop.wait(interval):
            self.run_once(reconcile)

    def snapshot(self) -> dict:
        return {"pending": len(self), "repaired": self.repaired, "dropped": self.dropped}


__all__ = ["Repairs"]

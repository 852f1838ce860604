"""DTCore: a DTServer's request core, put together.

One per DTServer process, shared by its front ends. It owns the backend
clients' shared state and composes the core's parts, each in its module:

* :class:`~dtriad.core.follower.RingFollower` (``follower``): the ring in force;
* :class:`~dtriad.core.requests.Requests` (``requests``): the replication
  protocol, as generators of effects;
* :class:`~dtriad.core.reports.Reports` (``reports``): the admin reports;
* the repair queue and its background thread, request statistics, and
  admin authorization.

Front ends run request generators with :meth:`DTCore.run` (threads: HTTP
workers) or :func:`dtriad.core.steps.arun` with the RESP port's pipelined
client; there is no blocking twin of each generator.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from redis.exceptions import ResponseError

from dtriad.backends.client import DTClient
from dtriad.backends.outcome import DOWN_ERRORS, Steps, describe
from dtriad.config import ClusterConfig
from dtriad.core import steps
from dtriad.core.follower import RingFollower
from dtriad.core.metrics import Metrics
from dtriad.core.repair import Repairs
from dtriad.core.reports import Reports
from dtriad.core.requests import Requests
from dtriad.core.scripts import CLEAN, SWEEP
from dtriad.exceptions import AuthError, DtriadError
from dtriad.placement.ring import Ring
from dtriad.placement.ringstate import View

SWEEP_EVERY_S = 5.0  # how often the repair thread looks for old repair intents
INTENT_AGE_S = 10.0  # an intent this old was left by a writer that stopped
SWEEP_BATCH = 500  # intents reconciled per member and sweep
log = logging.getLogger(__name__)


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
    """A DTServer's request core: ring follower, requests, reports, repairs."""

    def __init__(self, config: ClusterConfig, client: DTClient | None = None,
                 state_file: str | os.PathLike | None = None, poll_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.client = client or DTClient([n.redis for n in config.nodes],
                                         **config.internal.kwargs(),
                                         timeout=config.backend_timeout)
        self.suspects = self.client.suspects
        self.stats = Stats()
        self.metrics = Metrics(enabled=config.metrics)
        self._names = {n.redis: n.name for n in config.nodes}
        if config.metrics:
            self.observe(self.client)
            self.suspects.on_suspect = lambda node: self.metrics.failed(self.node_name(node))
        self.repairs = Repairs()
        self.follower = RingFollower(config, self.suspects, self.client.pool, state_file,
                                     poll_interval, clock)
        self.requests = Requests(config, self.follower, self.suspects, self.repairs)
        self.reports = Reports(config, self.client, self.follower)
        self._clock = clock
        self._next_sweep = 0.0
        self._stop = threading.Event()
        self.run(self.follower.follow())

    def node_name(self, address: str) -> str:
        """A backend's node name for metrics and logs (never its address)."""
        name = self._names.get(address)
        if name is None:
            member = self.follower.view.state.members().get(address)
            if member is None:
                return "unknown"  # not cached: a ring naming it may come
            name = self._names[address] = member.name
        return name

    def observe(self, client) -> None:
        """Count ``client``'s backend round trips in the metrics."""
        client.on_call = lambda effect: self.metrics.calls(effect, self.node_name)

    def round_trip(self, node: str) -> None:
        """A command sent to ``node`` outside the request core's steps (the
        RESP fast path): counted as :meth:`observe` counts theirs."""
        if self.metrics.enabled:
            self.metrics.round_trips[self.node_name(node)] += 1

    def record(self, frontend: str, command: str, family: str, seconds: float,
               error: str | None = None) -> None:
        """One request answered: the stats (``/stats``) and the metrics."""
        self.stats.record(command, error)
        self.metrics.request(frontend, command, family, seconds, error)

    def refresh_gauges(self) -> None:
        """The metrics that are states, not counts (set when scraped, and by
        the repair thread, which also saves this process's counts for the
        DTServer's other processes)."""
        if self.metrics.enabled:
            self.metrics.gauges(self.follower.view.state.epoch, self.suspects.count(),
                                len(self.repairs))
            self.metrics.save()  # for the other processes' /metrics

    def run(self, work: Steps) -> Any:
        """Drive request steps with the blocking client (HTTP workers, repairs)."""
        return steps.run(work, self.client)

    @property
    def view(self) -> View:
        """The ring in force, after following it (a blocking poll when due)."""
        return self.run(self.follower.follow())

    @property
    def ring(self) -> Ring:
        """The committed ring (the one reads and keyDist go by)."""
        return self.view.ring

    def authorize(self, secret: str | None, what: str) -> None:
        """Admin and internal methods need the cluster secret (when it has one)."""
        if self.config.secret is None:
            return
        if not hmac.compare_digest(str(secret or "").encode(), self.config.secret.encode()):
            raise AuthError(f"{what} needs the cluster secret ('secret' in cluster.json or "
                            f"dtriad.toml), sent as 'Authorization: Bearer <secret>'")

    def authorize_data(self, token: str | None, what: str) -> None:
        """With ``http_auth = "token"``, data methods need the data_token (or the
        secret), compared in constant time."""
        if self.config.http_auth != "token":
            return
        given = str(token or "").encode()
        # Both compared, always: the time taken does not tell which one matched.
        matches = [hmac.compare_digest(given, c.encode())
                   for c in (self.config.data_token, self.config.secret) if c]
        if not any(matches):
            raise AuthError(f"{what} needs the cluster's data_token ('data_token' in "
                            f"cluster.json or dtriad.toml), sent as "
                            f"'Authorization: Bearer <data_token>'")

    def install(self, secret: str | None, state_json: str | None) -> dict:
        """A ring pushed by the DTSentinel: authenticated, never older than ours."""
        if not self.config.secret:
            raise AuthError("this DTServer has no cluster secret, so it takes no ring updates")
        self.authorize(secret, "ringUpdate")
        return self.run(self.follower.install(state_json))

    # ------------------------------------------------------------------ repairs
    def start_repairs(self, interval: float = 1.0) -> threading.Thread:
        """Reconcile queued keys in a background thread until :meth:`close`."""
        thread = threading.Thread(target=self.repairs.run_forever, name="dtriad-repairs",
                                  args=(self.reconcile, interval, self._stop, self.intents),
                                  daemon=True)
        thread.start()
        return thread

    def reconcile(self, key: Any) -> bool:
        """Make every copy of ``key`` equal the newest (the repair thread's unit of work)."""
        return self.run(self.requests.reconcile(key))

    def intents(self) -> None:
        """Clear the repair intents of writes every copy holds (in batches),
        and, every ``SWEEP_EVERY_S``, reconcile the keys of intents older
        than ``INTENT_AGE_S`` on every member: their writer stopped mid-write,
        or a copy missed the write (``dtriad/core/repair.py``). Also keeps this
        process's gauges current."""
        self.refresh_gauges()
        for master, pending in self.repairs.take_settled().items():
            items = [x for pair in pending.items() for x in pair]
            try:
                for i in range(0, len(items), 1000):
                    self.client.execute(master, "EVAL", CLEAN, 0, *items[i:i + 1000])
            except (*DOWN_ERRORS, ResponseError) as e:  # the sweep clears them later
                log.debug("clearing intents on %s deferred: %s", master, describe(e))
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_S
        for node in self.view.state.members():
            try:  # locks of cross-node transactions whose DTServer stopped
                self.run(self.requests.transactions.sweep(node))
            except (DtriadError, *DOWN_ERRORS, ResponseError) as e:
                log.debug("transaction locks on %s deferred: %s", node, describe(e))
            try:
                found = self.client.execute(node, "EVAL", SWEEP, 0, int(INTENT_AGE_S * 1e6),
                                            SWEEP_BATCH)
            except (*DOWN_ERRORS, ResponseError):
                continue
            done = []
            for key, version in zip(found[::2], found[1::2], strict=True):
                try:
                    if self.reconcile(key):
                        done += [key, version]
                except (DtriadError, *DOWN_ERRORS, ResponseError) as e:
                    log.debug("repair of %r deferred: %s", key, e)
            if done:
                try:
                    self.client.execute(node, "EVAL", CLEAN, 0, *done)
                except (*DOWN_ERRORS, ResponseError):
                    pass

    def close(self) -> None:
        self._stop.set()
        self.client.close()

"""Prometheus metrics of a DTServer (``/metrics``), with ``prometheus_client``.

A DTServer is several processes: its HTTP workers and its RESP front end. The
library's multiprocess mode adds them up: ``dtriad serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at an empty directory of its own before it starts
them, every process writes its values to its own file there, and ``/metrics``
(answered by any worker) reads them all. Without that variable (tests, a
DTCore in another program) the values live in the process.

Names follow Prometheus's conventions: counters end in ``_total``, durations
are ``_seconds``. Labels are bounded: the front end, the command (one of the
table's), the command's family (its group in the README's command table),
an error code, a node's name (never its address).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from dtriad.backends.outcome import Execute, Fanout

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# From 0.25 ms (a GET on loopback) to 2.5 s (a write that waited out a timeout).
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """One process's metrics. ``enabled=False`` makes every record a no-op
    (the ``metrics = false`` setting, and the benchmark's baseline)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        shared = multiprocess_dir()
        if shared:  # chosen per process, before any value exists
            values.ValueClass = values.MultiProcessValue()
        reg = self.registry
        self.requests = Counter("dtriad_requests_total", "Requests answered, by front end "
                                "and command.", ["frontend", "command"], registry=reg)
        self.errors = Counter("dtriad_request_errors_total", "Requests answered with an "
                              "error, by front end, command (and its family) and error "
                              "code.", ["frontend", "command", "family", "code"], registry=reg)
        self.latency = Histogram("dtriad_request_duration_seconds", "Time to answer a "
                                 "request, by front end and command family.",
                                 ["frontend", "family"], buckets=LATENCY_BUCKETS, registry=reg)
        self.round_trips = Counter("dtriad_backend_round_trips_total", "Commands sent to "
                                   "backends, by node.", ["node"], registry=reg)
        self.backend_errors = Counter("dtriad_backend_failures_total", "Backend calls that "
                                      "failed as down (timeout, refused, reset), by node.",
                                      ["node"], registry=reg)
        self.suspects = Gauge("dtriad_suspected_backends", "Backends this DTServer treats "
                              "as down right now (the largest count of its processes).",
                              registry=reg, multiprocess_mode="livemax")
        self.repair_queue = Gauge("dtriad_repair_queue", "Keys waiting to be repaired "
                                  "(all processes).", registry=reg, multiprocess_mode="livesum")
        self.epoch = Gauge("dtriad_ring_epoch", "The ring epoch this DTServer routes by.",
                           registry=reg, multiprocess_mode="livemax")

    def request(self, frontend: str, command: str, family: str, seconds: float,
                error: str | None = None) -> None:
        if not self.enabled:
            return
        self.requests.labels(frontend, command).inc()
        self.latency.labels(frontend, family).observe(seconds)
        if error:
            self.errors.labels(frontend, command, family, error).inc()

    def calls(self, effect: Execute | Fanout, name: Callable[[str], str]) -> None:
        """Count the backend commands of one step (a fan-out sends one per node)."""
        if isinstance(effect, Execute):
            self.round_trips.labels(name(effect.node)).inc()
        else:
            for node in effect.nodes:
                self.round_trips.labels(name(node)).inc()

    def failed(self, node_name: str) -> None:
        self.backend_errors.labels(node_name).inc()

    def gauges(self, epoch: int, suspects: int, repairs: int) -> None:
        if self.enabled:
            self.epoch.set(epoch)
            self.suspects.set(suspects)
            self.repair_queue.set(repairs)

    def _collected(self) -> CollectorRegistry:
        shared = multiprocess_dir()
        if shared:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=shared)
            return registry
        return self.registry

    def exposition(self) -> bytes:
        """The text format: every process's values when they share a directory."""
        return generate_latest(self._collected())

    def traffic(self) -> dict[str, dict[str, dict[str, float]]]:
        """Requests, total seconds and errors so far, by front end and family
        (every process's): the dashboard turns two of these into rates."""
        out: dict[str, dict[str, dict[str, float]]] = {}

        def entry(frontend: str, family: str) -> dict[str, float]:
            return out.setdefault(frontend, {}).setdefault(
                family, {"count": 0, "seconds": 0.0, "errors": 0})

        for metric in self._collected().collect():
            for sample in metric.samples:
                labels = sample.labels
                if sample.name == "dtriad_request_duration_seconds_count":
                    entry(labels["frontend"], labels["family"])["count"] += sample.value
                elif sample.name == "dtriad_request_duration_seconds_sum":
                    entry(labels["frontend"], labels["family"])["seconds"] += sample.value
                elif sample.name == "dtriad_request_errors_total":
                    entry(labels["frontend"], labels["family"])["errors"] += sample.value
        return out


def prepare_directory(path: str | os.PathLike) -> str:
    """Empty ``path`` (values of processes that ran before) and export it as
    the multiprocess directory for this process and its children."""
    path = os.path.abspath(path)
    os.makedirs(path, mode=0o700, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))
    os.environ[MULTIPROC_ENV] = path
    return path

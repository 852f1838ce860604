"""Prometheus metrics of a DTServer (``/metrics``), exposed with ``prometheus_client``.

The request path only adds to plain dictionaries (a few hundred nanoseconds):
the library's own metric objects cost about 30 µs per request on the
development machine in its multiprocess mode, a third of what a GET costs.
The library still does everything else: a custom collector turns the
counts into its metric families and ``generate_latest`` writes the standard
exposition format.

A DTServer is several processes (its HTTP workers and its RESP front end).
``dtriad serve`` gives them one empty directory (``DTRIAD_METRICS_DIR``);
each process writes its counts there as ``PID.json`` about once a second
(from its repair thread) and ``/metrics``, answered by any worker, adds
every file up. A count is at most a second or so old when scraped. Files of
processes that exited still count for the counters (what they served
happened); their gauges are left out.

Names follow Prometheus's conventions: counters end in ``_total``, durations
are ``_seconds``. Labels are bounded: the front end, the command (one of the
table's), the command's family (its group in the README's command table),
an error code, a node's name (never its address).
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from dtriad.backends.outcome import Execute, Fanout

DIR_ENV = "DTRIAD_METRICS_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# From 0.25 ms (a GET on loopback) to 2.5 s (a write that waited out a timeout).
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5)


def shared_dir() -> Path | None:
    value = os.environ.get(DIR_ENV)
    return Path(value) if value else None


def prepare_directory(path: str | os.PathLike) -> Path:
    """Empty ``path`` (counts of processes that ran before) and export it to
    this process and its children."""
    path = Path(path).resolve()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in path.glob("*.json"):
        old.unlink()
    os.environ[DIR_ENV] = str(path)
    return path


class Metrics:
    """One process's counts. ``enabled=False`` makes every record a no-op
    (``metrics = false``, and the benchmark's baseline)."""

    def __init__(self, enabled: bool = True, directory: Path | None = None):
        self.enabled = enabled
        self.directory = directory if directory is not None else shared_dir()
        self.requests: Counter = Counter()       # (frontend, command)
        self.errors: Counter = Counter()         # (frontend, command, family, code)
        self.buckets: dict[tuple, list[int]] = {}  # (frontend, family): per bucket, +Inf last
        self.seconds: Counter = Counter()        # (frontend, family): total latency
        self.round_trips: Counter = Counter()    # node name
        self.failures: Counter = Counter()       # node name
        self.epoch = 0
        self.suspects = 0
        self.repair_queue = 0
        self._lock = threading.Lock()  # one writer of this process's file at a time

    # ------------------------------------------------------------ hot path
    def request(self, frontend: str, command: str, family: str, seconds: float,
                error: str | None = None) -> None:
        if not self.enabled:
            return
        self.requests[frontend, command] += 1
        key = (frontend, family)
        counts = self.buckets.get(key)
        if counts is None:
            counts = self.buckets[key] = [0] * (len(LATENCY_BUCKETS) + 1)
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.seconds[key] += seconds
        if error:
            self.errors[frontend, command, family, error] += 1

    def calls(self, effect: Execute | Fanout, name: Callable[[str], str]) -> None:
        """Count the backend commands of one step (a fan-out sends one per node)."""
        if isinstance(effect, Execute):
            self.round_trips[name(effect.node)] += 1
        else:
            for node in effect.nodes:
                self.round_trips[name(node)] += 1

    def failed(self, node_name: str) -> None:
        self.failures[node_name] += 1

    def gauges(self, epoch: int, suspects: int, repairs: int) -> None:
        self.epoch, self.suspects, self.repair_queue = epoch, suspects, repairs

    # ---------------------------------------------------------- snapshots
    def snapshot(self) -> dict:
        """This process's counts as JSON-able data. Each dict is copied in
        one C call first, so a request counted meanwhile cannot break it."""
        def pairs(counter: Counter) -> list:
            return [[list(key) if isinstance(key, tuple) else key, value]
                    for key, value in dict(counter).items()]
        buckets = dict(self.buckets)
        return {
            "pid": os.getpid(),
            "requests": pairs(self.requests), "errors": pairs(self.errors),
            "buckets": [[list(key), list(counts)] for key, counts in buckets.items()],
            "seconds": pairs(self.seconds),
            "round_trips": pairs(self.round_trips), "failures": pairs(self.failures),
            "epoch": self.epoch, "suspects": self.suspects, "repair_queue": self.repair_queue,
        }

    def save(self) -> None:
        """Write this process's counts for the others' ``/metrics`` (atomically)."""
        if not (self.enabled and self.directory):
            return
        with self._lock:
            path = self.directory / f"{os.getpid()}.json"
            scratch = path.with_suffix(".tmp")
            scratch.write_text(json.dumps(self.snapshot()))
            os.replace(scratch, path)

    def snapshots(self) -> list[dict]:
        """Every process's counts: this one's now, the others' as last saved."""
        own = self.snapshot()
        if not self.directory:
            return [own]
        out = [own]
        for path in sorted(self.directory.glob("*.json")):
            if path.stem == str(own["pid"]):
                continue
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # being replaced right now, or gone: next scrape
        return out

    # ------------------------------------------------------------ exposure
    def exposition(self) -> bytes:
        """The text format, every process of this DTServer added up."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self.snapshots()))
        return generate_latest(registry)

    def traffic(self) -> dict[str, dict[str, dict[str, float]]]:
        """Requests, total seconds and errors so far, by front end and family
        (every process's): the dashboard turns two of these into rates."""
        out: dict[str, dict[str, dict[str, float]]] = {}

        def entry(frontend: str, family: str) -> dict[str, float]:
            return out.setdefault(frontend, {}).setdefault(
                family, {"count": 0, "seconds": 0.0, "errors": 0})

        for snap in self.snapshots():
            for (frontend, family), counts in snap["buckets"]:
                entry(frontend, family)["count"] += sum(counts)
            for (frontend, family), seconds in snap["seconds"]:
                entry(frontend, family)["seconds"] += seconds
            for (frontend, _, family, _), errors in snap["errors"]:
                entry(frontend, family)["errors"] += errors
        return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Collector(Collector):
    """Snapshots added up into prometheus_client's metric families."""

    def __init__(self, snapshots: list[dict]):
        self.snapshots = snapshots

    def collect(self):
        def total(field: str) -> Counter:
            out: Counter = Counter()
            for snap in self.snapshots:
                for key, value in snap[field]:
                    out[tuple(key) if isinstance(key, list) else key] += value
            return out

        requests = CounterMetricFamily("dtriad_requests", "Requests answered, by front end "
                                       "and command.", labels=["frontend", "command"])
        for key, value in sorted(total("requests").items()):
            requests.add_metric(list(key), value)
        yield requests
        errors = CounterMetricFamily("dtriad_request_errors", "Requests answered with an "
                                     "error, by front end, command (and its family) and error "
                                     "code.", labels=["frontend", "command", "family", "code"])
        for key, value in sorted(total("errors").items()):
            errors.add_metric(list(key), value)
        yield errors
        latency = HistogramMetricFamily("dtriad_request_duration_seconds", "Time to answer a "
                                        "request, by front end and command family.",
                                        labels=["frontend", "family"])
        buckets: dict[tuple, list[int]] = {}
        for snap in self.snapshots:
            for key, counts in snap["buckets"]:
                mine = buckets.setdefault(tuple(key), [0] * len(counts))
                for i, count in enumerate(counts):
                    mine[i] += count
        seconds = total("seconds")
        for key, counts in sorted(buckets.items()):
            cumulative, running = [], 0
            for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                running += count
                cumulative.append((bound, running))
            latency.add_metric(list(key), cumulative, seconds[key])
        yield latency
        for name, field, text in (
                ("dtriad_backend_round_trips", "round_trips", "Commands sent to backends, "
                 "by node."),
                ("dtriad_backend_failures", "failures", "Backend calls that failed as down "
                 "(timeout, refused, reset), by node.")):
            family = CounterMetricFamily(name, text, labels=["node"])
            for node, value in sorted(total(field).items()):
                family.add_metric([node], value)
            yield family
        live = [s for s in self.snapshots if _alive(s["pid"])]
        for name, text, value in (
                ("dtriad_ring_epoch", "The ring epoch this DTServer routes by.",
                 max((s["epoch"] for s in live), default=0)),
                ("dtriad_suspected_backends", "Backends this DTServer treats as down right "
                 "now (the largest count of its processes).",
                 max((s["suspects"] for s in live), default=0)),
                ("dtriad_repair_queue", "Keys waiting to be repaired (all processes).",
                 sum(s["repair_queue"] for s in live))):
            yield GaugeMetricFamily(name, text, value=value)

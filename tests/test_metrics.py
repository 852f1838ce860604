"""The metrics' names and values, in-process; the Grafana dashboard uses only real ones."""

import json
import os
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from dtriad.backends.outcome import Execute, Fanout
from dtriad.core.metrics import Metrics
from dtriad.membership.metrics import SentinelMetrics

GRAFANA = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dtriad.json"


def samples(text: bytes) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def test_requests_latency_errors_and_round_trips_are_counted():
    metrics = Metrics()
    metrics.request("resp", "get", "string", 0.0004)
    metrics.request("resp", "incr", "string", 0.0002, error="ERR")
    metrics.request("http", "ring", "admin", 0.01)
    metrics.calls(Execute("10.0.0.1:6379", ("GET", "k")), {"10.0.0.1:6379": "n1"}.get)
    metrics.calls(Fanout(("10.0.0.1:6379", "10.0.0.2:6379"), ("SET", "k", "v")),
                  {"10.0.0.1:6379": "n1", "10.0.0.2:6379": "n2"}.get)
    metrics.failed("n2")
    metrics.gauges(epoch=7, suspects=1, repairs=3)
    got = samples(metrics.exposition())
    assert got["dtriad_requests_total", (("command", "get"), ("frontend", "resp"))] == 1
    assert got["dtriad_request_errors_total", (("code", "ERR"), ("command", "incr"),
                                               ("family", "string"), ("frontend", "resp"))] == 1
    assert got["dtriad_request_duration_seconds_count",
               (("family", "string"), ("frontend", "resp"))] == 2
    assert got["dtriad_request_duration_seconds_bucket",
               (("family", "string"), ("frontend", "resp"), ("le", "0.0005"))] == 2
    assert got["dtriad_backend_round_trips_total", (("node", "n1"),)] == 2
    assert got["dtriad_backend_failures_total", (("node", "n2"),)] == 1
    assert got["dtriad_ring_epoch", ()] == 7
    traffic = metrics.traffic()
    assert traffic["resp"]["string"]["count"] == 2 and traffic["resp"]["string"]["errors"] == 1
    assert traffic["http"]["admin"]["seconds"] == 0.01


def test_disabled_metrics_record_nothing():
    metrics = Metrics(enabled=False)
    metrics.request("resp", "get", "string", 0.001)
    metrics.gauges(epoch=3, suspects=0, repairs=0)
    assert not any(name.startswith("dtriad_requests_total")
                   for name, _ in samples(metrics.exposition()))


def test_the_processes_of_a_dtserver_add_up(tmp_path):
    """Each process saves its counts; /metrics adds every file up. A process
    that exited still counts for the counters, not for the gauges."""
    one, other = Metrics(directory=tmp_path), Metrics(directory=tmp_path)
    other.request("http", "set", "string", 0.002)
    other.gauges(epoch=9, suspects=2, repairs=5)
    gone = other.snapshot()
    gone["pid"] = 2 ** 22 + 12345  # above pid_max: no such process
    (tmp_path / f"{gone['pid']}.json").write_text(json.dumps(gone))
    one.request("http", "set", "string", 0.0003)
    one.gauges(epoch=4, suspects=0, repairs=1)
    got = samples(one.exposition())
    assert got["dtriad_requests_total", (("command", "set"), ("frontend", "http"))] == 2
    assert got["dtriad_request_duration_seconds_count",
               (("family", "string"), ("frontend", "http"))] == 2
    assert got["dtriad_ring_epoch", ()] == 4 and got["dtriad_repair_queue", ()] == 1
    one.save()
    assert json.loads((tmp_path / f"{os.getpid()}.json").read_text())["requests"] == \
        [[["http", "set"], 1]]


def test_the_grafana_dashboard_uses_only_metrics_that_exist():
    metrics = Metrics()
    metrics.request("resp", "get", "string", 0.001, error="ERR")
    metrics.calls(Execute("a:1", ("GET", "k")), lambda node: "n1")
    metrics.failed("n1")
    names = {name for name, _ in samples(metrics.exposition())}
    sentinel = SentinelMetrics(probe=lambda: {"n1": 5, "n2": None})
    for metric in sentinel.registry.collect():
        names |= {metric.name, f"{metric.name}_total"}
    exprs = [t["expr"] for t in _targets(json.loads(GRAFANA.read_text()))]
    used = {m for expr in exprs for m in re.findall(r"\bdtriad_[a-z_]+", expr)}
    assert used and used <= names, used - names


def _targets(node):
    if isinstance(node, dict):
        if "expr" in node:
            yield node
        for value in node.values():
            yield from _targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _targets(value)

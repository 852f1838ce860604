"""Metrics, structured logs and the dashboard's data, on a real cluster.

``/metrics`` is parsed with prometheus_client's own parser: its counters move
as requests come through HTTP and RESP (added up over the DTServer's
processes), and the DTSentinel's migration counters move during a join. The
logs of a cluster run with ``log_format = "json"`` parse line by line, and no
log, page or data reply carries a credential.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from dtriad.config import ClusterConfig, parse_address
from dtriad.ops import cluster as local
from dtriad.ops.procs import wait_until


def scrape(url: str, token: str) -> dict[tuple[str, tuple], float]:
    reply = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert reply.status_code == 200, reply.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def credentials(config: ClusterConfig) -> list[str]:
    return [config.password, config.secret, config.viewer_token]


@pytest.mark.timeout(300)
def test_metrics_move_with_requests_and_migrations_and_logs_are_json(cluster):
    config = cluster(nodes=3, replicas=1, workers=2, log_format="json")
    node = config.nodes[0]
    metrics = f"{node.http}/metrics"
    assert requests.get(metrics, timeout=10).status_code == 401
    assert requests.get(metrics, headers={"Authorization": "Bearer wrong"},
                        timeout=10).status_code == 401
    before = scrape(metrics, config.viewer_token)

    for i in range(40):  # over keep-alive: both HTTP workers may answer
        assert requests.get(f"{node.http}/set", params={"key": f"k{i}", "value": "v"},
                            timeout=10).ok
    host, port = parse_address(node.resp)
    client = redis.Redis(host=host, port=port, password=config.password)
    for i in range(25):
        client.get(f"k{i}")
    with pytest.raises(redis.ResponseError):
        client.execute_command("INCR", "k0")  # "v" is not an integer
    client.close()

    def moved(samples, frontend, command) -> float:
        return value(samples, "dtriad_requests_total", frontend=frontend, command=command) \
            - value(before, "dtriad_requests_total", frontend=frontend, command=command)

    # The other processes' counts arrive within about a second (their repair thread).
    wait_until(lambda: moved(scrape(metrics, config.viewer_token), "http", "set") == 40 and
               moved(scrape(metrics, config.viewer_token), "resp", "get") == 25,
               15, "every process's counts in /metrics")
    after = scrape(metrics, config.secret)  # the secret opens it too
    assert moved(after, "http", "set") == 40 and moved(after, "resp", "get") == 25
    assert value(after, "dtriad_request_errors_total", frontend="resp", command="incr",
                 family="string", code="ERR") >= 1
    assert value(after, "dtriad_request_duration_seconds_count", frontend="resp",
                 family="string") >= 26
    trips = sum(v for (name, _), v in after.items()
                if name == "dtriad_backend_round_trips_total")
    assert trips >= 40 * 2 + 25  # each SET reaches both copies
    assert not any(config.nodes[1].redis in str(labels) for _, labels in after)

    # The DTSentinel's metrics move during a join.
    home = local.dtsentinel_home(config.directory)
    sentinel = f"http://{(home / 'metrics.address').read_text().strip()}/metrics"
    assert requests.get(sentinel, timeout=10).status_code == 401
    start = scrape(sentinel, config.viewer_token)
    assert value(start, "dtriad_dtsentinel_leading") == 1
    assert value(start, "dtriad_ring_members") == 3
    assert value(start, "dtriad_node_keys", node="n1") > 0
    new = local.add_node(config.directory, log=lambda *_: None)
    wait_until(lambda: value(scrape(sentinel, config.viewer_token), "dtriad_ring_members") == 4,
               120, f"{new.name} to join")
    end = scrape(sentinel, config.viewer_token)
    assert value(end, "dtriad_migrations_total") == value(start, "dtriad_migrations_total") + 1
    assert value(end, "dtriad_migration_keys_moved_total") > \
        value(start, "dtriad_migration_keys_moved_total")
    assert value(end, "dtriad_ring_epoch") == value(start, "dtriad_ring_epoch") + 1

    # Every dtriad log is JSON, line by line, with where it comes from; no credential.
    logs = [p for p in Path(config.directory).rglob("*.log")
            if p.name in ("server.log", "dtsentinel.log")]
    assert len(logs) == 5  # four DTServers (with their RESP front ends), one DTSentinel
    components = set()
    for path in logs:
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            assert {"time", "level", "component", "node", "epoch", "message"} <= set(entry)
            components.add(entry["component"])
    assert {"dtserver", "resp", "dtsentinel"} <= components
    for path in Path(config.directory).rglob("*.log"):  # Redis's and Sentinel's too
        text = path.read_text(errors="replace")
        for secret in credentials(config):
            assert secret not in text, f"a credential in {path}"


def test_a_logged_credential_is_redacted():
    import io
    import logging

    from dtriad import logs

    stream = io.StringIO()
    logs.setup("test", "n1", "json", ["hunter2-secret-value"], stream=stream)
    try:
        logging.getLogger("x").warning("connecting with %s", "hunter2-secret-value",
                                       extra={"request": "r-1"})
        entry = json.loads(stream.getvalue())
        assert entry["message"] == "connecting with [redacted]"
        assert entry["request"] == "r-1" and entry["node"] == "n1"
        logs.setup("test", "n1", "text", ["hunter2-secret-value"], stream=stream)
        logging.getLogger("x").error("boom: hunter2-secret-value")
        assert "hunter2" not in stream.getvalue()
    finally:
        logs.setup("pytest", None, "text")


@pytest.mark.timeout(180)
def test_dashboard_needs_a_credential_and_carries_none(cluster):
    config = cluster(nodes=3, replicas=1)
    http = config.nodes[1].http
    session = requests.Session()
    login = session.get(f"{http}/dashboard", timeout=10)
    assert login.status_code == 200 and 'name="token"' in login.text
    assert session.get(f"{http}/dashboard/data", timeout=10).status_code == 401
    wrong = session.post(f"{http}/dashboard/login", data={"token": "guess"}, timeout=10,
                         allow_redirects=False)
    assert wrong.status_code == 401 and "neither" in wrong.text
    assert "dtriad_view" not in session.cookies
    huge = session.post(f"{http}/dashboard/login", data={"token": "x" * 10_000}, timeout=10)
    assert huge.status_code == 413

    ok = session.post(f"{http}/dashboard/login", data={"token": config.viewer_token},
                      timeout=10, allow_redirects=False)
    assert ok.status_code == 303
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    pages = [session.get(f"{http}{path}", timeout=10)
             for path in ("/dashboard", "/dashboard/static/dashboard.js",
                          "/dashboard/static/dashboard.css", "/dashboard/data")]
    assert all(p.status_code == 200 for p in pages)
    assert "default-src 'none'" in pages[0].headers["Content-Security-Policy"]
    data = pages[3].json()
    assert data["node"] == "n2" and [n["name"] for n in data["nodes"]] == ["n1", "n2", "n3"]
    assert {n["state"] for n in data["nodes"]} == {"up"}
    everything = "".join(p.text for p in pages) + cookie
    for secret in credentials(config):
        assert secret not in everything
    for node in config.nodes:  # nor the backends' addresses
        assert node.redis not in everything

    # Another DTServer of the cluster takes the same session (no shared state).
    other = config.nodes[2].http
    cookies = {"dtriad_view": session.cookies["dtriad_view"]}
    assert requests.get(f"{other}/dashboard/data", cookies=cookies, timeout=10).ok
    forged = {"dtriad_view": "99999999999." + "0" * 64}
    assert requests.get(f"{other}/dashboard/data", cookies=forged,
                        timeout=10).status_code == 401

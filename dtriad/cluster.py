"""A local cluster on loopback: N Redis backends and N DTServers (DESIGN.md 7).

Every process runs in its own session and is stopped by its PID, which is
recorded in ``DIR/cluster.json`` (mode 0600: it holds the password).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from .config import DEFAULT_MAX_VALUE_BYTES, ClusterConfig, NodeSpec
from .exceptions import ConfigurationError
from .procs import free_port, pid_alive, pid_matches, start_redis, stop_pid, wait_until

DEFAULT_DIR = "dtriad-cluster"
CLUSTER_FILE = "cluster.json"


@dataclass(frozen=True)
class UpOptions:
    nodes: int = 3
    replicas: int = 2
    vnodes: int = 1
    persist: bool = True
    workers: int = 2
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    write_quorum: str = "all"
    server: str = "granian"

    def __post_init__(self):
        if self.nodes < 1:
            raise ConfigurationError(f"--nodes must be at least 1, got {self.nodes}")
        if self.replicas < 0:
            raise ConfigurationError(f"--replicas must be >= 0, got {self.replicas}")
        if self.workers < 1:
            raise ConfigurationError(f"--workers must be at least 1, got {self.workers}")


def cluster_file(directory: str | os.PathLike) -> Path:
    return Path(directory).resolve() / CLUSTER_FILE


def _running(config: ClusterConfig) -> list[str]:
    alive = []
    for node in config.nodes:
        pids = node.extra.get("pids", {})
        for role, pid in pids.items():
            if pid and pid_alive(pid):
                alive.append(f"{node.name}/{role} (pid {pid})")
    return alive


def up(directory: str | os.PathLike, options: UpOptions, log=print) -> ClusterConfig:
    """Start a cluster in ``directory`` and return once every DTServer serves.

    If ``directory`` already holds a stopped cluster, that cluster is started
    again with its own addresses, password and data.
    """
    directory = Path(directory).resolve()
    path = cluster_file(directory)
    if path.exists():
        config = ClusterConfig.load(path)
        alive = _running(config)
        if alive:
            raise ConfigurationError(
                f"a cluster is already running in {directory} ({', '.join(alive)}); "
                f"stop it with 'dtriad down --dir {directory}'")
        log(f"restarting the cluster in {directory} with its data "
            f"({len(config.nodes)} nodes, replicas={config.replicas}); "
            f"use another --dir for a new one")
    else:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        used: set[int] = set()

        def port() -> int:
            p = free_port(avoid=used)
            used.add(p)
            return p

        nodes = tuple(NodeSpec(f"n{i}", f"127.0.0.1:{port()}", f"http://127.0.0.1:{port()}",
                               extra={"pids": {}, "persist": options.persist})
                      for i in range(1, options.nodes + 1))
        config = ClusterConfig(nodes=nodes, replicas=options.replicas, vnodes=options.vnodes,
                               password=secrets.token_urlsafe(24),
                               secret=secrets.token_urlsafe(24),
                               write_quorum=options.write_quorum,
                               max_value_bytes=options.max_value_bytes,
                               extra={"sentinels": [], "dtsentinel_pid": None,
                                      "workers": options.workers, "server": options.server})
    try:
        for node in config.nodes:
            proc = start_redis(node.redis_port, directory / node.name, config.password,
                               persist=node.extra.get("persist", True))
            node.extra.setdefault("pids", {})["redis"] = proc.pid
        config.save(path)
        servers = []
        for node in config.nodes:
            servers.append((node, _start_server(directory, path, node, config)))
        for node, proc in servers:
            wait_until(lambda n=node: requests.get(f"{n.http}/health", timeout=2).ok, 30,
                       f"the DTServer of {node.name} at {node.http}", proc=proc,
                       log=directory / node.name / "server.log")
            node.extra["pids"]["server"] = proc.pid
        config.save(path)
    except BaseException:
        _stop_all(config, path)
        raise
    return config


def _start_server(directory: Path, path: Path, node: NodeSpec,
                  config: ClusterConfig) -> subprocess.Popen:
    log_path = directory / node.name / "server.log"
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "dtriad", "serve", "--cluster", str(path),
             "--node", node.name, "--workers", str(config.extra.get("workers", 2)),
             "--server", config.extra.get("server", "granian")],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True)


def _stop_server(pid: int, path: Path) -> None:
    """SIGTERM the DTServer, then SIGKILL what is left of its process group (workers)."""
    if not pid_matches(pid, str(path)):
        return
    stop_pid(pid, needle=str(path), timeout=5)
    try:  # workers of a server that died first are still in its process group
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_all(config: ClusterConfig, path: Path) -> list[str]:
    stopped = []
    for node in config.nodes:
        pids = node.extra.get("pids", {})
        if pids.get("server"):
            _stop_server(pids["server"], path)
            stopped.append(f"{node.name} server (pid {pids['server']})")
            pids["server"] = None
    for node in config.nodes:
        pids = node.extra.get("pids", {})
        if pids.get("redis"):
            stop_pid(pids["redis"], needle=str(node.redis_port))
            stopped.append(f"{node.name} redis (pid {pids['redis']})")
            pids["redis"] = None
    if path.exists():
        config.save(path)
    return stopped


def down(directory: str | os.PathLike) -> list[str]:
    """Stop every process of the cluster; its files (and data) stay in ``directory``."""
    path = cluster_file(directory)
    return _stop_all(ClusterConfig.load(path), path)


def status(directory: str | os.PathLike) -> tuple[ClusterConfig, list[dict]]:
    """One row per node: is its backend answering, is its DTServer serving."""
    path = cluster_file(directory)
    config = ClusterConfig.load(path)
    rows = []
    health = None
    for node in config.nodes:
        try:
            health = requests.get(f"{node.http}/health", timeout=3).json()
            server = "up"
        except (requests.RequestException, ValueError) as e:
            server = f"down ({type(e).__name__})"
        rows.append({"name": node.name, "redis": node.redis, "http": node.http,
                     "server": server, "pids": node.extra.get("pids", {})})
    for row in rows:
        backend = (health or {}).get("backends", {}).get(row["name"])
        if backend is None:
            pid = row["pids"].get("redis")
            row["backend"] = "up?" if pid and pid_alive(pid) else "down"
        else:
            row["backend"] = "up" if backend["up"] else f"down ({backend['error']})"
    return config, rows


def kill_node(directory: str | os.PathLike, name: str) -> int:
    """SIGKILL a node's Redis backend (a crash, as in the paper's failure tests)."""
    config = ClusterConfig.load(cluster_file(directory))
    node = config.node(name)
    pid = node.extra.get("pids", {}).get("redis")
    if not pid or not pid_alive(pid) or not pid_matches(pid, str(node.redis_port)):
        raise ConfigurationError(f"the backend of {name} is not running")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 5, f"backend of {name} to exit")
    stop_pid(pid)  # reaps it if it is our child: no zombie left behind
    return pid

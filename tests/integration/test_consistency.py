"""Convergence on a real cluster: concurrent writers through three DTServers,
a backup paused mid-load, quorum reads, versions through a migration.

The module's cluster has a long Sentinel down-after, so a paused backend is a
slow backup here, not a failure that changes the ring (test_membership covers
that)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import requests

from dtriad.core.scripts import VERSION_DB
from dtriad.membership.check import check
from dtriad.ops import cluster as local
from dtriad.ops.procs import wait_until

from ..conftest import backend
from .test_membership import converge, reload

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

HOT_KEYS = [f"hot{i}" for i in range(6)]


@pytest.fixture(scope="module")
def cluster3(tmp_path_factory):
    directory = tmp_path_factory.mktemp("consistency")
    config = local.up(directory, local.UpOptions(nodes=3, replicas=2, persist=False, workers=2,
                                                 down_after_ms=60_000),
                      log=lambda *_: None)
    yield config
    local.down(directory)


def mixed_load(config, threads: int, ops: int, seed: int, jitter: bool = True) -> Counter:
    """``threads`` clients, each through a random DTServer per request, on a few
    hot keys: set/append/lPush/lPop/incr/delete/expire. -> error codes seen.

    With ``jitter``, DTServer worker processes and backends are paused for a
    few milliseconds at random meanwhile, as a loaded host would: a worker
    paused between sending a write to one copy and to the next lets other
    writers reach the copies in another order. Without a single serializing
    master, this is what makes copies take the same writes in different
    orders."""
    codes: Counter = Counter()
    lock = threading.Lock()
    done = threading.Event()

    def jitterer() -> None:
        rng = random.Random(seed)
        running = local.Pids.load(config.directory)
        pids = [running.node(n.name).redis for n in config.nodes] + [
            int(child) for n in config.nodes for child in Path(
                f"/proc/{running.node(n.name).server}/task/{running.node(n.name).server}/children"
            ).read_text().split()]
        while not done.is_set():
            pid = rng.choice(pids)
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(rng.uniform(0.001, 0.01))
            finally:
                os.kill(pid, signal.SIGCONT)
            time.sleep(rng.uniform(0.001, 0.005))

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        session = requests.Session()
        for i in range(ops):
            key = rng.choice(HOT_KEYS)
            op, args = rng.choice([
                ("set", {"value": f"s{n}-{i}"}), ("append", {"value": f"a{n}-{i},"}),
                ("lPush", {"value": f"p{n}-{i}"}), ("lPop", {}), ("incr", {}),
                ("delete", {}), ("expire", {"seconds": str(rng.choice([100, 200]))}),
            ])
            http = rng.choice(config.nodes).http
            reply = session.get(f"{http}/{op}", params={"key": key, **args}, timeout=30)
            code = "ok" if reply.ok else reply.json()["code"]
            with lock:
                codes[code] += 1

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    pauser = threading.Thread(target=jitterer)
    for w in workers:
        w.start()
    if jitter:
        pauser.start()
    for w in workers:
        w.join()
    done.set()
    if jitter:
        pauser.join()
    return codes


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_writers_through_three_dtservers_leave_identical_copies(cluster3, round_):
    codes = mixed_load(cluster3, threads=16, ops=60, seed=round_)
    # Mixed types on shared keys: Redis rejects some commands, nothing else fails.
    assert set(codes) <= {"ok", "WRONGTYPE", "ERR"}, codes
    assert codes["ok"] > 16 * 60 // 2
    report = check(cluster3)
    assert report.keys > 0
    assert (report.differing, report.missing, report.misplaced, report.problems) == (
        [], [], [], []), report.lines({})


def test_the_checker_catches_what_a_naive_fan_out_leaves(cluster3):
    """Without the master's ordering, two writers reaching the copies in
    different orders leave them different for good; the checker must see it
    (and --repair settles it). The interleaving is forced, so this is exact."""
    key = "naive"
    owners = cluster3.ring().preference_list(key)
    conns = [backend(cluster3, n) for n in owners]
    for c in conns:
        c.delete(key)
    # Writer A reaches the master first; writer B reaches the backups first.
    conns[0].rpush(key, "A")
    conns[0].rpush(key, "B")
    for c in conns[1:]:
        c.rpush(key, "B")
        c.rpush(key, "A")
    report = check(cluster3)
    assert [k for k, _ in report.differing] == [key.encode()]
    repaired = check(cluster3, repair=True)
    assert repaired.repaired == 2
    assert check(cluster3).clean
    assert {tuple(c.lrange(key, 0, -1)) for c in conns} == {(b"A", b"B")}


def test_a_backup_paused_mid_load_is_repaired_and_no_acknowledged_write_is_lost(cluster3):
    """SIGSTOP one backend under load with write_quorum=quorum: writes whose
    master it is fail clearly, the others are acknowledged by 2 of 3 copies.
    After SIGCONT the DTServers' repair queues reconcile every copy."""
    ring = cluster3.ring()
    keys = [f"pf{i}" for i in range(12)]
    victim = cluster3.node_by_redis()[ring.master(keys[0])]
    while all(ring.master(k) == victim.redis for k in keys):  # arcs are uneven
        keys.append(f"pf{len(keys)}")
    acked: dict[str, list[str]] = {k: [] for k in keys}
    failed: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            key = keys[(n + i) % len(keys)]
            token = f"{n}.{i},"
            http = cluster3.nodes[i % 3].http
            reply = session.get(f"{http}/append", timeout=30, params={
                "key": key, "value": token, "write_quorum": "quorum"})
            with lock:
                if reply.ok:
                    acked[key].append(token)
                else:
                    failed[reply.json()["code"]] += 1
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    os.kill(local.Pids.load(cluster3.directory).node(victim.name).redis, signal.SIGSTOP)
    try:
        time.sleep(3)
    finally:
        os.kill(local.Pids.load(cluster3.directory).node(victim.name).redis, signal.SIGCONT)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert set(failed) <= {"QUORUM"}, failed
    assert failed["QUORUM"] > 0  # keys mastered by the paused node
    assert sum(len(acked[k]) for k in keys if ring.master(k) != victim.redis) > 0

    def repaired() -> bool:
        stats = [requests.get(f"{n.http}/stats", headers=cluster3.admin_headers(),
                              timeout=5).json()["repairs"]
                 for n in cluster3.nodes for _ in range(4)]  # reach both workers
        return all(s["pending"] == 0 for s in stats)

    wait_until(repaired, 30, "repair queues to drain")
    converge(cluster3)  # by the DTServers' own repairs: nothing here runs --repair
    for key in keys:
        value = backend(cluster3, cluster3.ring().master(key)).get(key) or b""
        written = Counter(value.decode().split(",")[:-1])
        assert all(written[t[:-1]] == 1 for t in acked[key]), key  # each exactly once
        assert all(count == 1 for count in written.values()), key


def test_a_quorum_read_returns_the_newest_copy(cluster3):
    http = cluster3.nodes[0].http
    key = "qr"
    requests.get(f"{http}/set", params={"key": key, "value": "old"}).raise_for_status()
    master = backend(cluster3, cluster3.ring().master(key))
    meta = redis.Redis(connection_pool=redis.ConnectionPool(
        **{**master.connection_pool.connection_kwargs, "db": VERSION_DB}))
    old_state, old_version = master.dump(key), meta.get(key)
    requests.get(f"{http}/set", params={"key": key, "value": "new"}).raise_for_status()
    # The master goes back to the older state (as if restored from an old file).
    master.restore(key, 0, old_state, replace=True)
    meta.set(key, old_version)
    assert requests.get(f"{http}/get", params={"key": key}).json() == "old"
    assert requests.get(f"{http}/get", params={"key": key, "read_quorum": "quorum"}
                        ).json() == "new"
    assert master.get(key) == b"new"  # repaired by the read
    bad = requests.get(f"{http}/get", params={"key": key, "read_quorum": "all"})
    assert bad.status_code == 400 and "read_quorum must be one of one, quorum" in bad.text
    ring = requests.get(f"{http}/ring", headers=cluster3.admin_headers()).json()
    assert (ring["write_quorum"], ring["read_quorum"]) == ("all", "one")


def test_versions_stay_hidden_and_travel_with_keys_through_a_migration(cluster3):
    http = cluster3.nodes[0].http
    session = requests.Session()
    keys = [f"mv{i}" for i in range(300)]
    for key in keys:
        assert session.get(f"{http}/set", params={"key": key, "value": key}).ok
    before = cluster3.ring()
    newcomer = local.add_node(cluster3.directory, log=lambda *_: None)
    after = converge(cluster3)
    config = reload(cluster3)
    assert after.state.epoch == 1
    gained = [k for k in keys if newcomer.redis in after.state.ring().preference_list(k)
              and newcomer.redis not in before.preference_list(k)]
    assert gained
    new_meta = redis.Redis(host=newcomer.redis_host, port=newcomer.redis_port,
                           **config.internal.kwargs(), db=VERSION_DB)
    for key in gained[:20]:
        node = config.node_by_redis()[before.preference_list(key)[0]]
        meta = redis.Redis(host=node.redis_host, port=node.redis_port,
                           **config.internal.kwargs(), db=VERSION_DB)
        assert new_meta.get(key) == meta.get(key) is not None
    distinct = {k for n in config.nodes for k in backend(config, n).keys("*")}
    assert sum(backend(config, n).dbsize() for n in config.nodes) == 3 * len(distinct)

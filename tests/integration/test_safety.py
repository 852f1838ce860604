"""No acknowledged write lost: each hypothesis of the safety issue, reproduced
against real redis-server, Sentinel and DTServer processes, then shown fixed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from dtriad.backends.outcome import Execute
from dtriad.config import parse_address
from dtriad.core.dtcore import DTCore
from dtriad.core.scripts import WRITE_BACKUP, WRITE_MASTER
from dtriad.membership.check import check, http_ring
from dtriad.ops import cluster as local
from dtriad.ops.procs import pid_alive, stop_pid, wait_until

from ..conftest import backend
from .test_membership import (
    converge,
    dtsentinel_log,
    populate,
    reload,
    report_ring,
    ring_members,
    throttle_migrations,
    wait_members,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def resp(config, index: int = 0) -> redis.Redis:
    host, port = parse_address(config.nodes[index].resp)
    return redis.Redis(host=host, port=port, password=config.password, socket_timeout=10,
                       protocol=2)


def write_keys_and_counters(client: redis.Redis, count: int) -> None:
    for i in range(count):
        assert client.set(f"k{i}", f"v{i}") is True
    for _ in range(10):
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            pipe.incr(f"c{i}")
        assert all(isinstance(r, int) for r in pipe.execute())


def assert_keys_and_counters(client: redis.Redis, count: int, increments: int = 10) -> None:
    values = client.mget([f"k{i}" for i in range(count)])
    missing = [i for i, v in enumerate(values) if v != f"v{i}".encode()]
    assert not missing, f"{len(missing)} of {count} acknowledged keys lost, e.g. k{missing[0]}"
    counters = client.mget([f"c{i}" for i in range(count)])
    wrong = [i for i, v in enumerate(counters) if v != str(increments).encode()]
    assert not wrong, (f"{len(wrong)} of {count} counters are not {increments}, e.g. "
                       f"c{wrong[0]}={counters[wrong[0]]!r}")


@pytest.mark.parametrize("persist", [False, True], ids=["no-aof", "aof"])
def test_a_backend_restarted_before_sentinel_notices_is_not_served_as_it_was(cluster, persist):
    """The issue's measurement: a backend SIGKILLed and started again at once
    (0.9 s, far below down-after) came back empty, stayed master, and 229 of
    300 keys read as null. With the AOF on it would come back holding an older
    state than its backups."""
    config = cluster(nodes=3, replicas=1, persist=persist, down_after_ms=10_000)
    client = resp(config)
    write_keys_and_counters(client, 300)
    increments = 10
    victim = config.nodes[1]
    if persist:  # its AOF holds the writes so far, and from here on nothing more
        backend(config, victim).execute_command("CONFIG", "SET", "appendonly", "no")
        pipe = client.pipeline(transaction=False)
        for i in range(300):
            pipe.incr(f"c{i}")
        assert pipe.execute() == [11] * 300
        increments = 11
    local.kill_node(config.directory, victim.name)
    local.start_node(config.directory, victim.name)
    # what a client sees at once: every key readable, none as it was before
    assert_keys_and_counters(client, 300, increments)
    # it leaves the ring and joins again, wiped, as its new incarnation
    wait_until(lambda: local.admitted(config), 90, "the restarted backend to be admitted")
    converge(config)
    for i in range(300):
        assert client.incr(f"c{i}") == increments + 1
    assert_keys_and_counters(client, 300, increments + 1)


def meta(config, node) -> redis.Redis:
    """Database 1 of a node's backend: the fence and the ring."""
    return redis.Redis(host=node.redis_host, port=node.redis_port, **config.internal.kwargs(),
                       db=1, socket_timeout=2)


def dtserver_tokens(config) -> dict[str, int]:
    return {n.name: http_ring(n, config.admin_headers())["token"] for n in config.nodes}


def test_no_dtserver_routes_by_a_ring_some_member_is_not_fenced_at(cluster):
    """Hypothesis 1 (two masters at commit): the DTSentinel pushed a ring to
    the DTServers before fencing the backends with it. With one member
    SIGSTOPped (Sentinel has not called it down), the push went through while
    that member still took writes by the old ring: DTServers routed one arc
    through two masters. Now the ring is published only once every member is
    fenced, so the DTServers keep the old ring until the member answers."""
    config = cluster(nodes=3, replicas=1, down_after_ms=60_000)
    before = dtserver_tokens(config)
    stopped = config.nodes[1]
    os.kill(local.Pids.load(config.directory).node(stopped.name).redis, signal.SIGSTOP)
    try:
        local.add_node(config.directory, log=lambda *_: None)
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:  # the DTSentinel tries (and fails) to fence n2
            assert dtserver_tokens(config) == before
            time.sleep(0.2)
    finally:
        os.kill(local.Pids.load(config.directory).node(stopped.name).redis, signal.SIGCONT)
    wait_members(config, {"n1", "n2", "n3", "n4"})
    fresh = reload(config)
    tokens = {n.name: int(meta(fresh, n).get("dtriad:fence") or 0) for n in fresh.nodes}
    assert len(set(tokens.values())) == 1, tokens
    converge(config)


def test_check_repair_during_a_migration_deletes_nothing_the_new_ring_needs(cluster):
    """Hypothesis 4: ``check --repair`` judged copies by the committed ring, so
    during a join it deleted the keys already copied to the joining node (to
    the committed ring they are misplaced). Now it refuses while a ring is
    pending, and its deletions are fenced at the ring it judged by."""
    config = cluster(nodes=3, replicas=1, down_after_ms=60_000)
    directory = config.directory
    throttle_migrations(config, 300)
    before = populate(config, 6000)
    state = Path(directory) / "dtsentinel" / "state.json"
    local.add_node(directory, log=lambda *_: None)
    wait_until(lambda: json.loads(state.read_text())["ring"]["migration"].get(
        "keys_moved", 0) > 0, 60, "the join to copy its first keys", interval=0.05)
    report = check(reload(config), repair=True)
    assert report.repaired == 0
    assert any("not repaired: a migration is running" in p for p in report.problems)
    wait_members(config, {"n1", "n2", "n3", "n4"})
    converge(config)  # clean by itself: no copy the join made was deleted
    client = resp(config)
    keys = list(before)
    assert client.mget(keys) == [before[k].encode() for k in keys]


def leader_log_lines(directory, index: int) -> list[str]:
    log = local.dtsentinel_home(Path(directory), index) / "dtsentinel.log"
    return [line for line in log.read_text().splitlines()
            if "leading:" in line or "standby:" in line]


def test_two_dtsentinels_one_acts_and_the_other_takes_over(cluster):
    """Exactly one DTSentinel acts; killing it hands over within the lease
    (4 s) and the standby then repairs a failure with nothing lost."""
    config = cluster(nodes=4, replicas=1, dtsentinels=2)
    directory = config.directory
    wait_until(lambda: leader_log_lines(directory, 2), 20, "the second DTSentinel to stand by")
    assert "standby:" in leader_log_lines(directory, 2)[-1]
    assert "leading:" in leader_log_lines(directory, 1)[-1]
    client = resp(config)
    write_keys_and_counters(client, 200)
    first = local.Pids.load(config.directory).dtsentinel
    os.kill(first, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: "leading:" in (leader_log_lines(directory, 2) or [""])[-1], 30,
               "the standby to take over", interval=0.05)
    print(f"handover after {time.monotonic() - killed:.2f} s")
    local.kill_node(directory, "n3")
    wait_members(config, {"n1", "n2", "n4"})
    converge(config)
    assert_keys_and_counters(client, 200)


def test_a_stale_dtsentinel_adopts_the_newer_ring_instead_of_acting(cluster):
    """Hypothesis 2: a DTSentinel started with an old state file trusted its
    own ring: it wiped live members it took for joiners. Now it stands by
    while another leads, and once it leads it adopts the ring the backends
    hold, which is newer than its own."""
    config = cluster(nodes=3, replicas=1)
    directory = Path(config.directory)
    old_state = (directory / "dtsentinel" / "state.json").read_text()
    local.add_node(directory, log=lambda *_: None)
    wait_members(config, {"n1", "n2", "n3", "n4"})
    client = resp(config)
    write_keys_and_counters(client, 200)
    converge(config)
    # the first DTSentinel stops for good; a second one starts from its old state
    first = local.Pids.load(config.directory).dtsentinel
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not pid_alive(first), 5, "the DTSentinel to die")
    stop_pid(first)
    home = local.dtsentinel_home(directory, 2)
    home.mkdir()
    (home / "state.json").write_text(old_state)
    fresh = reload(config)
    local._start_dtsentinel(directory, local.cluster_file(directory), fresh, 2)
    fresh.save(local.cluster_file(directory))
    wait_until(lambda: "adopting it" in (home / "dtsentinel.log").read_text(), 30,
               "the stale DTSentinel to adopt the cluster's ring")
    assert "wiping" not in (home / "dtsentinel.log").read_text()
    converge(config)
    assert_keys_and_counters(client, 200)
    local.kill_node(directory, "n2")  # and it acts on the newer ring from then on
    wait_members(config, {"n1", "n3", "n4"})
    converge(config)
    assert_keys_and_counters(client, 200)


def test_an_arc_whose_holders_sentinel_calls_down_but_answer_is_not_declared_lost(cluster):
    """Hypothesis 3: with one Sentinel, one observer's +sdown evicted a node.
    When it called every owner of an arc down (here: Sentinel alone is given
    a wrong password for two of three nodes, r=1, so it cannot reach them
    while everyone else can), the arc was committed as lost and served empty.
    Now holders that answer the DTSentinel's own probe stay in the ring."""
    config = cluster(nodes=3, replicas=1, down_after_ms=500)
    client = resp(config)
    write_keys_and_counters(client, 200)
    sentinel = redis.Redis(*parse_address(config.sentinels[0]), socket_timeout=2,
                           password=config.sentinel_secret)
    cut = [n.name for n in config.nodes[:2]]
    dtsentinel = local.Pids.load(config.directory).dtsentinel
    os.kill(dtsentinel, signal.SIGSTOP)  # so that it sees both downs in one step
    for name in cut:
        sentinel.execute_command("SENTINEL", "SET", name, "auth-pass", "wrong")
        direct = backend(config, config.node(name))
        for c in direct.client_list():  # Sentinel reconnects, with the wrong password
            if c["name"].startswith("sentinel-"):
                direct.client_kill_filter(_id=c["id"])
    try:
        wait_until(lambda: all(sentinel.sentinel_master(n)["is_sdown"] for n in cut), 30,
                   "Sentinel to call both nodes down")
        os.kill(dtsentinel, signal.SIGCONT)
        # the DTSentinel steps every half second: every key stays readable
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert_keys_and_counters(client, 200)
            time.sleep(0.2)
        assert "keeping n1, n2 in the ring" in dtsentinel_log(config)
    finally:
        os.kill(dtsentinel, signal.SIGCONT)
        for name in cut:
            sentinel.execute_command("SENTINEL", "SET", name, "auth-pass",
                                     config.sentinel_login.password)
    converge(config)
    assert_keys_and_counters(client, 200)


def test_a_dtserver_that_dies_between_master_and_backups_leaves_a_repair_behind(cluster):
    """Hypothesis 5: the repair intent lived in the DTServer's memory. A
    DTServer that stopped after the master applied a write and before the
    backups did left copies that differ with nothing to repair them. Here a
    request core in this process is stopped at exactly that step (its steps
    are abandoned after the master's reply, as a SIGKILL would); the master
    recorded the intent with the write, and the cluster's DTServers find it
    and repair the backups."""
    config = cluster(nodes=3, replicas=2, down_after_ms=60_000)
    client = resp(config)
    assert client.set("k", "before") is True
    core = DTCore(reload(config))
    try:
        work = core.requests.command(["APPEND", "k", "+after"])
        effect = work.send(None)
        while not (isinstance(effect, Execute) and WRITE_MASTER in effect.args):
            effect = work.send(core.client.perform(effect))
        core.client.perform(effect)  # the master applies it; then the writer "dies"
        work.close()
        master = effect.node
    finally:
        core.close()
    copies = {n.name: backend(config, n).get("k") for n in config.nodes}
    assert sorted(copies.values()) == [b"before", b"before", b"before+after"], copies
    assert copies[reload(config).node_by_redis()[master].name] == b"before+after"
    converge(config)  # within the sweep's period, by any DTServer
    assert {backend(config, n).get("k") for n in config.nodes} == {b"before+after"}


def test_after_a_masters_failure_each_key_comes_from_its_newest_copy(cluster):
    """Hypothesis 6: with ``write_quorum`` below ``all``, a write is
    acknowledged while one backup misses it. If the master then fails before
    a repair, the migration copied the arc from the first surviving backup,
    the one that missed it, and its older version won. The copies are set up
    exactly so (the write applied on the master and the second backup with
    the replication scripts themselves; the DTServer that made it is gone,
    with its repair queue); then the master is killed."""
    config = cluster(nodes=4, replicas=2, write_quorum="quorum")
    client = resp(config)
    ring = report_ring(config)
    keys = [k for k in (f"q{i}" for i in range(500))]
    for key in keys:
        assert client.set(key, "old") is True
    victim = ring.preference_list(keys[0])[0]
    moved = [k for k in keys if ring.preference_list(k)[0] == victim]
    fresh = reload(config)
    by_redis = fresh.node_by_redis()
    token = int(meta(fresh, by_redis[victim]).get("dtriad:fence"))
    for key in moved:  # acknowledged by the master and the second backup only
        master, _, second = ring.preference_list(key)
        reply = backend(fresh, by_redis[master]).eval(WRITE_MASTER, 1, key, token,
                                                      "SET", key, "new")
        assert backend(fresh, by_redis[second]).eval(
            WRITE_BACKUP, 1, key, token, reply[1], *reply[2:], "SET", key, "new")[0] == b"applied"
    local.kill_node(config.directory, by_redis[victim].name)
    wait_until(lambda: by_redis[victim].name not in ring_members(config) and
               ring_members(config), 60, "the ring to drop the dead master", interval=0.1)
    assert client.mget(moved) == [b"new"] * len(moved)
    converge(config)
    assert client.mget(moved) == [b"new"] * len(moved)

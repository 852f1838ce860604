"""A real local cluster (`dtriad up`): 5 nodes, r=2, real redis-server processes."""

import json
import os
import signal
import stat

import pytest
import requests

from dtriad.ops import cluster as local
from dtriad.ops.procs import pid_alive

from ..conftest import backend

pytestmark = pytest.mark.integration


def test_cluster_file_is_private_and_complete(cluster5):
    path = local.cluster_file(cluster5.directory)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())  # configuration only: PIDs are in pids.json
    assert not [k for table in [data, *data["nodes"]] for k in table if "pid" in k]
    pids = local.Pids.load(cluster5.directory)
    assert stat.S_IMODE((cluster5.directory / local.PIDS_FILE).stat().st_mode) == 0o600
    for node in cluster5.nodes:
        assert node.resp and node.persist is False
        assert all(pid and pid_alive(pid) for _, pid in pids.node(node.name).items())
    assert len(pids.sentinels) == 1 and pid_alive(pids.sentinels[0])
    # Sentinel rewrote its file when the backends were registered; it holds
    # requirepass, and used to be left 0644 by the rewrite.
    conf = cluster5.directory / "sentinel1" / "sentinel.conf"
    assert "sentinel monitor" in conf.read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert pids.dtsentinel and pid_alive(pids.dtsentinel)
    assert cluster5.password and cluster5.secret
    # Backends refuse clients without the internal credentials.
    node = cluster5.nodes[0]
    import redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=node.redis_host, port=node.redis_port).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=node.redis_host, port=node.redis_port,
                    password=cluster5.password).ping()


def test_500_keys_land_on_exactly_their_three_backends(cluster5):
    ring = cluster5.ring()
    session = requests.Session()
    for i in range(500):
        node = cluster5.nodes[i % len(cluster5.nodes)]  # through every DTServer
        if i % 2:
            reply = session.get(f"{node.http}/set", params={"key": f"k{i}", "value": f"v{i}"})
        else:
            reply = session.post(f"{node.http}/set", data={"key": f"k{i}", "value": f"v{i}"})
        assert reply.status_code == 200, reply.text
    direct = {n.redis: backend(cluster5, n) for n in cluster5.nodes}
    for i in range(500):
        holders = {addr for addr, r in direct.items() if r.get(f"k{i}") == f"v{i}".encode()}
        assert holders == set(ring.preference_list(f"k{i}"))
        assert len(holders) == 3
    dist = session.get(f"{cluster5.nodes[0].http}/keyDist",
                       headers=cluster5.admin_headers()).json()
    assert sum(d["misplaced"] for d in dist.values()) == 0
    assert sum(d["master"] for d in dist.values()) >= 500


def test_wrong_type_is_applied_nowhere_on_real_backends(cluster5):
    http = cluster5.nodes[1].http
    assert requests.get(f"{http}/set", params={"key": "wt", "value": "s"}).json() == "OK"
    reply = requests.get(f"{http}/lPush", params={"key": "wt", "value": "x"})
    assert reply.status_code == 400 and reply.json()["code"] == "WRONGTYPE"
    for addr in cluster5.ring().preference_list("wt"):
        assert backend(cluster5, addr).type("wt") == b"string"


def test_a_rejected_write_is_applied_nowhere_and_a_diverged_copy_is_repaired(cluster5):
    """What the master rejects reaches no backup; a backup that answers a
    write differently from the master (here: tampered with behind dtriad's
    back) is given the master's state."""
    http = cluster5.nodes[0].http
    master, b1, b2 = cluster5.ring().preference_list("dv")
    requests.get(f"{http}/set", params={"key": "dv", "value": "master-string"})
    backend(cluster5, b2).delete("dv")
    backend(cluster5, b2).rpush("dv", "stale-list")
    reply = requests.get(f"{http}/lPush", params={"key": "dv", "value": "x"})
    assert reply.status_code == 400 and reply.json()["code"] == "WRONGTYPE"
    assert backend(cluster5, b2).lrange("dv", 0, -1) == [b"stale-list"]  # not applied
    assert requests.get(f"{http}/append", params={"key": "dv", "value": "!"}).json() == 14
    for addr in (master, b1, b2):
        assert backend(cluster5, addr).get("dv") == b"master-string!"


def test_every_bad_input_gets_a_clear_error_over_real_http(cluster5):
    http = cluster5.nodes[2].http
    cases = [
        (requests.get(f"{http}/get"), 400, "BADARG"),
        (requests.get(f"{http}/lIndex", params={"key": "l", "index": "one"}), 400, "BADARG"),
        (requests.get(f"{http}/frobnicate"), 404, "UNKNOWN_METHOD"),
        (requests.post(f"{http}/set", data={"key": "big", "value": "x" * (1 << 20 | 1)}),
         413, "TOO_LARGE"),
    ]
    for reply, status, code in cases:
        assert (reply.status_code, reply.json()["code"]) == (status, code), reply.text
    assert requests.get(f"{http}/exists", params={"key": "big"}).json() == 0


def test_a_hung_backend_costs_a_timeout_not_the_server(cluster5):
    """SIGSTOP the master of a key: reads still answer, from a backup; writes
    get a clear error."""
    http = cluster5.nodes[3].http
    requests.get(f"{http}/set", params={"key": "hung", "value": "v"}).raise_for_status()
    master = cluster5.node_by_redis()[cluster5.ring().master("hung")]
    pid = local.Pids.load(cluster5.directory).node(master.name).redis
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(3):  # the first read times out on the master, then skips it
            reply = requests.get(f"{http}/get", params={"key": "hung"}, timeout=30)
            assert reply.json() == "v"
        write = requests.get(f"{http}/set", params={"key": "hung", "value": "w"}, timeout=30)
        assert write.status_code == 503 and write.json()["code"] == "QUORUM"
        # The master serializes a key's writes: without it, no copy takes one.
        assert "held by 0 of 3 copies" in write.json()["error"]
        assert "the key's master" in write.json()["error"]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert requests.get(f"{http}/health").json()["status"] == "ok"


def test_status_lists_every_node(cluster5):
    config, rows = local.status(cluster5.directory)
    assert [r["name"] for r in rows] == ["n1", "n2", "n3", "n4", "n5"]
    assert all(r["backend"] == "up" and r["server"] == "up" for r in rows)


# Runs last in this module: it kills a backend of the shared cluster.
def test_zz_every_key_is_readable_after_its_master_is_killed(cluster5):
    ring = cluster5.ring()
    http = cluster5.nodes[0].http
    keys = {f"r{i}": f"value {i}" for i in range(200)}
    session = requests.Session()
    for key, value in keys.items():
        assert session.get(f"{http}/set", params={"key": key, "value": value}).ok
    victim = ring.master("r0")
    name = cluster5.node_by_redis()[victim].name
    pid = local.kill_node(cluster5.directory, name)
    assert not pid_alive(pid)
    mastered = [k for k in keys if ring.master(k) == victim]
    assert mastered, "the victim masters some keys"
    for node in cluster5.nodes:  # through every DTServer
        for key, value in keys.items():
            assert session.get(f"{node.http}/get", params={"key": key}).json() == value
    config, rows = local.status(cluster5.directory)
    assert [r["backend"].startswith("down") for r in rows] == \
        [n.name == name for n in cluster5.nodes]
    # health names the dead backend, whether or not the ring has dropped it yet
    # (its status is "degraded" only until then: it counts the ring's members)
    health = session.get(f"{http}/health").json()
    assert health["backends"][name]["up"] is False

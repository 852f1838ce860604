"""The durability model on real processes (``benchmarks/durability.py`` measures it).

When backends fail at once, the keys lost are exactly those whose every copy
the ring placed on the failed backends, which is what
``dtriad.placement.durability`` counts; with the repair between failures,
nothing is lost until one node is left.
"""

from __future__ import annotations

import os
import signal

import pytest
import redis
from click.testing import CliRunner

from dtriad.config import ClusterConfig, parse_address
from dtriad.exceptions import ConfigurationError
from dtriad.membership.check import check
from dtriad.ops import cluster as local
from dtriad.ops.main import main
from dtriad.ops.procs import pid_alive, stop_pid, wait_until
from dtriad.placement.durability import copy_sets
from dtriad.placement.ringstate import RingState

KEYS = [f"dur:{i}".encode() for i in range(400)]


def resp(config: ClusterConfig) -> redis.Redis:
    host, port = parse_address(config.nodes[0].resp)
    return redis.Redis(host=host, port=port, password=config.password, socket_timeout=30)


def held(config: ClusterConfig, nodes) -> set[bytes]:
    """The data keys the backends of ``nodes`` hold, read from them directly."""
    keys: set[bytes] = set()
    for node in nodes:
        host, port = parse_address(node.redis)
        client = redis.Redis(host=host, port=port, **config.internal.kwargs(), socket_timeout=10)
        try:
            keys |= set(client.scan_iter(count=1000))
        finally:
            client.close()
    return keys


def ring_of(config: ClusterConfig):
    return RingState.from_dict(local.sentinel_progress(config.directory)["ring"]).ring()


def write_all(client: redis.Redis, keys) -> None:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.set(key, key)
    pipe.execute()


def whole(config: ClusterConfig) -> None:
    wait_until(lambda: local.admitted(config), 120, "every backend to be admitted", interval=0.1)
    wait_until(lambda: check(config).clean, 120, "a clean check", interval=0.2)


def kill_at_once(config: ClusterConfig, nodes) -> None:
    pids = local.Pids.load(config.directory)
    victims = [pids.node(node.name).redis for node in nodes]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    for pid in victims:
        wait_until(lambda pid=pid: not pid_alive(pid), 10, f"pid {pid} to exit")
        stop_pid(pid)


@pytest.mark.timeout(240)
def test_failures_at_once_lose_exactly_the_keys_the_ring_predicts(cluster):
    config = cluster(nodes=4, replicas=1, down_after_ms=10_000, lost_after_ms=1000)
    client = resp(config)
    write_all(client, KEYS)
    whole(config)
    ring = ring_of(config)
    by_address = {node.redis: node for node in config.nodes}
    order = [node for _, node in ring.tokens]
    # Two neighbours on the ring hold every copy of one arc; two opposite
    # nodes hold no copy set together (r = 1: copy sets are neighbours).
    for pair, loses in (((order[0], order[1]), True), ((order[0], order[2]), False)):
        assert (frozenset(pair) in copy_sets(ring)) is loses
        failed = [by_address[address] for address in pair]
        kill_at_once(config, failed)
        survivors = [n for n in config.nodes if n.redis not in pair]
        lost = set(KEYS) - held(config, survivors)
        predicted = {k for k in KEYS if set(ring.preference_list(k)) <= set(pair)}
        assert lost == predicted
        assert bool(lost) is loses
        for node in failed:
            local.start_node(config.directory, node.name)
        whole(config)  # the restarted backends are readmitted and refilled
        assert held(config, config.nodes) == set(KEYS) - lost
        write_all(client, sorted(lost))
        whole(config)
        assert client.mget(KEYS) == KEYS
    client.close()


@pytest.mark.timeout(300)
def test_with_repair_between_failures_nothing_is_lost_until_one_node_is_left(cluster):
    """The paper's claim, with its condition: the DTSentinel leads on a
    majority of the cluster file's backends, so the dead are forgotten
    (``dtriad node forget``) one at a time as they fail."""
    config = cluster(nodes=4, replicas=1, down_after_ms=1000)
    client = resp(config)
    write_all(client, KEYS)
    whole(config)
    alive = list(config.nodes)
    with pytest.raises(ConfigurationError, match="still answers"):
        local.forget_node(config.directory, alive[3].name)
    for victim in (alive[3], alive[1], alive[0]):  # forgetting n1 stops its DTServer too
        local.kill_node(config.directory, victim.name)
        forgot = CliRunner().invoke(main, ["node", "forget", victim.name,
                                           "--dir", str(config.directory)])
        assert forgot.exit_code == 0 and f"forgot {victim.name}" in forgot.output, forgot.output
        alive.remove(victim)

        def repaired(victim=victim) -> bool:
            ring = local.sentinel_progress(config.directory)["ring"]
            members = {m["redis"] for m in ring["nodes"]}
            return not ring.get("pending") and victim.redis not in members \
                and check(ClusterConfig.load(local.cluster_file(config.directory))).clean

        wait_until(repaired, 120, f"the repair after {victim.name} failed", interval=0.2)
        assert held(config, alive) == set(KEYS)
    assert [n.name for n in ClusterConfig.load(local.cluster_file(config.directory)).nodes] \
        == [alive[0].name]
    with pytest.raises(ConfigurationError, match="only node"):
        local.forget_node(config.directory, alive[0].name)
    with pytest.raises(ConfigurationError, match="no node named"):
        local.forget_node(config.directory, "n9")
    client.close()
    host, port = parse_address(alive[0].resp)  # the last node's DTServer serves everything
    client = redis.Redis(host=host, port=port, password=config.password, socket_timeout=30)
    assert client.mget(KEYS) == KEYS
    client.close()

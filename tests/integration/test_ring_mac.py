"""Authenticated rings on real clusters (docs/membership.md, "Authenticated
rings"): a ring forged in one backend's database 1 is rejected by every
DTServer, the DTSentinel and ``dtriad check``, which contact none of the
addresses it names; an unsigned ring from before rings were signed is signed
again and the cluster keeps working."""

from __future__ import annotations

import json
import socket
import time

import pytest
import redis
import requests

from dtriad.backends.client import DTClient
from dtriad.core.follower import RingCheck, read_rings
from dtriad.core.steps import run
from dtriad.membership.check import check
from dtriad.membership.dtsentinel import Step
from dtriad.placement.ringmac import Unsigned, ring_key, verify_json
from dtriad.placement.ringstate import Member, RingState

from .test_dtsentinel_steps import step, world  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def stored(config) -> tuple:
    client = DTClient(**config.internal.kwargs(), timeout=2.0)
    try:
        return run(read_rings([n.redis for n in config.nodes], RingCheck(config)), client)
    finally:
        client.close()


def meta(config, node) -> redis.Redis:
    host, port = node.redis.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), **config.internal.kwargs(), db=1,
                       socket_timeout=5)


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


def contacted(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
        return True
    except BlockingIOError:
        return False


def serve_correctly(config, prefix: str, count: int = 30) -> None:
    """Writes and reads through every DTServer; every key on exactly the
    backends the real (verified) ring names."""
    values = {}
    for i in range(count):
        node = config.nodes[i % len(config.nodes)]
        key, value = f"{prefix}{i}", f"v{i}"
        reply = requests.get(f"{node.http}/set", params={"key": key, "value": value}, timeout=5)
        assert reply.json() == "OK", reply.text
        values[key] = value
    for node in config.nodes:
        for key, value in values.items():
            reply = requests.get(f"{node.http}/get", params={"key": key}, timeout=5)
            assert reply.json() == value, (node.name, key, reply.text)
    ring = stored(config).state.ring()
    for key, value in values.items():
        holders = set()
        for node in config.nodes:
            host, port = node.redis.rsplit(":", 1)
            with redis.Redis(host=host, port=int(port), **config.internal.kwargs()) as r:
                if r.get(key) == value.encode():
                    holders.add(node.redis)
        assert holders == set(ring.preference_list(key)), key


def test_a_forged_ring_on_one_backend_is_rejected_and_contacted_by_nobody(cluster):
    config = cluster(nodes=3, replicas=2, down_after_ms=60_000)
    real = stored(config).state
    assert real is not None
    serve_correctly(config, "before")
    redis_port, http_port = listener(), listener()
    evil = f"127.0.0.1:{redis_port.getsockname()[1]}"
    evil_http = f"http://127.0.0.1:{http_port.getsockname()[1]}"
    try:
        forged = RingState(real.epoch + 50, 2, 1, (
            Member("n1", evil, evil_http), *real.nodes[1:]))
        # one unsigned, one MACed under a guessed secret, on two backends
        meta(config, config.nodes[0]).set("dtriad:ring", forged.to_json())
        guessed = forged.to_dict() | {"mac": "ab" * 32}
        meta(config, config.nodes[1]).set("dtriad:ring", json.dumps(guessed))
        time.sleep(2.5)  # DTServers poll every second; the DTSentinel every step
        serve_correctly(config, "after")
        for node in config.nodes:
            ring = requests.get(f"{node.http}/ring", headers=config.admin_headers(),
                                timeout=5).json()
            assert ring["token"] == real.token, node.name
        report = check(config)
        assert report.state == real
        assert report.keys == 60 and not (report.missing or report.misplaced
                                          or report.differing)
        assert sum("holds a ring that is not adopted" in p for p in report.problems) == 2
        assert not contacted(redis_port) and not contacted(http_port)
        # every DTServer logged each forged ring as rejected, once, not a flood
        for node in config.nodes:
            log = (config.directory / node.name / "server.log").read_text()
            for backend in config.nodes[:2]:
                lines = [line for line in log.splitlines()
                         if f"rejected the ring state stored on {backend.redis}" in line]
                assert 1 <= len(lines) <= config.workers + 1, (node.name, lines)
        dts_log = (config.directory / "dtsentinel" / "dtsentinel.log").read_text()
        assert "rejected the ring state stored on" in dts_log
        assert "adopting" not in dts_log
        assert stored(config).state == real  # the DTSentinel moved nothing
    finally:
        redis_port.close()
        http_port.close()


def test_an_unsigned_stored_ring_is_signed_again_and_the_cluster_keeps_working(cluster):
    config = cluster(nodes=3, replicas=2, down_after_ms=60_000)
    real = stored(config).state
    serve_correctly(config, "signed")
    for node in config.nodes:  # as a cluster from before rings were signed holds it
        meta(config, node).set("dtriad:ring", real.to_json())
    with pytest.raises(Unsigned):
        verify_json(meta(config, config.nodes[0]).get("dtriad:ring"), ring_key(config.secret))
    deadline = time.monotonic() + 20
    while True:
        texts = [meta(config, n).get("dtriad:ring") for n in config.nodes]
        try:
            assert all(verify_json(t, ring_key(config.secret)) == real for t in texts)
            break
        except Unsigned:
            assert time.monotonic() < deadline, "the DTSentinel did not sign the ring again"
            time.sleep(0.2)
    serve_correctly(config, "resigned")
    assert check(config).clean


# --------------------------------------------- the DTSentinel, step by step
def test_a_dtsentinel_without_its_state_takes_over_an_unsigned_ring_never_below_the_fences(
        world):  # noqa: F811 - the fixture
    w = world(3)
    a = w.dtsentinel("a")
    assert step(a) == Step.BOOTSTRAPPED
    _, real = w.stored(w.nodes[0])
    moved = RingState(real.epoch + 3, real.replicas, real.vnodes, real.nodes)
    a.executor.fence(w.nodes, moved.token)  # the cluster moved on before the upgrade
    for node in w.nodes:
        w.db(node, 1).set("dtriad:ring", moved.to_json())
    a.lease.release(w.nodes)
    b = w.dtsentinel("b")  # no state file: it must not bootstrap at the file's ring
    assert step(b) == Step.TOOK_OVER
    assert b.progress.ring == moved
    step(b)  # announced again: signed now
    for node in w.nodes:
        fence, _ = w.stored(node)
        assert fence == moved.token
        assert verify_json(w.db(node, 1).get("dtriad:ring"), b"s3cret") == moved

    # A stored ring it cannot verify that names another address, with the
    # fences above the file's ring: it waits, publishing nothing.
    b.lease.release(w.nodes)
    stranger = RingState(moved.epoch + 5, real.replicas, real.vnodes,
                         (Member("n1", "10.6.6.6:6379", "http://10.6.6.6:80"),))
    for node in w.nodes:
        w.db(node, 1).set("dtriad:ring", stranger.to_json())
    c = w.dtsentinel("c")
    assert step(c) == Step.UNVERIFIED and step(c) == Step.UNVERIFIED
    assert c.progress is None
    for node in w.nodes:
        fence, _ = w.stored(node)
        assert fence == moved.token
        assert w.db(node, 1).get("dtriad:ring") == stranger.to_json()
    # the same with no ring stored at all but the fences up
    for node in w.nodes:
        w.db(node, 1).delete("dtriad:ring")
    assert step(c) == Step.UNVERIFIED

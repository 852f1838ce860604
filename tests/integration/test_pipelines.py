"""Pipelined bursts and the fast read path against real processes.

A session's one-key reads go the fast way (frontends/fastpath.py) and a
burst's requests on distinct keys run together (respd.Session._burst). These
tests check that neither changes an answer or its order: a random pipeline
over a few shared keys gets what one plain redis-server gives (each reply as
hiredis reads it), in RESP2 and RESP3; and a fast read whose backend stops answering is
answered from another copy."""

from __future__ import annotations

import os
import random
import signal
import socket
import time

import hiredis
import pytest
import redis

from dtriad.config import parse_address
from dtriad.ops import cluster as local
from tests.conftest import backend

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module", params=[
    pytest.param(("auto", 1), id="uvloop"), pytest.param(("asyncio", 2), id="asyncio-2-workers")])
def cluster(request, tmp_path_factory):
    """A quiet 3-node r=2 cluster: its RESP front end on uvloop (installed
    with the test extra), or on asyncio's loop in two processes per node."""
    loop, workers = request.param
    directory = tmp_path_factory.mktemp("pipelines")
    config = local.up(directory, local.UpOptions(
        nodes=3, replicas=2, persist=False, workers=1, down_after_ms=60_000,
        event_loop=loop, resp_workers=workers), log=lambda *_: None)
    yield config
    local.down(directory)


def test_the_front_end_runs_the_loop_and_processes_it_is_configured_with(cluster):
    chosen = "uvloop" if cluster.event_loop == "auto" else "asyncio"
    for node in cluster.nodes:
        log = (cluster.directory / node.name / "server.log").read_text()
        assert log.count(f"event loop: {chosen}") == cluster.resp_workers, log[-2000:]
        assert log.count("RESP front end on") == cluster.resp_workers
    # every process answers: connections spread over them by the kernel
    port = resp_port(cluster)
    seen = set()
    for _ in range(40):
        with redis.Redis(port=port, password=cluster.password) as client:
            seen.add(client.info("server")["process_id"])
    assert len(seen) == cluster.resp_workers


def resp_port(config, index: int = 0) -> int:
    return parse_address(config.nodes[index].resp)[1]


def pipeline(port: int, password: str, commands: list[tuple], resp3: bool) -> list:
    """Send every command in one write; every raw reply, in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        hello = ("HELLO", "3", "AUTH", "default", password) if resp3 else ("AUTH", password)
        sock.sendall(b"".join(hiredis.pack_command(c) for c in [hello, ("FLUSHALL",),
                                                                   *commands]))
        reader = hiredis.Reader(notEnoughData=Ellipsis)
        replies, raw = [], b""
        while len(replies) < len(commands) + 2:
            chunk = sock.recv(1 << 16)
            assert chunk, f"closed after {len(replies)} replies"
            reader.feed(chunk)
            raw += chunk
            while (reply := reader.gets()) is not Ellipsis:
                replies.append(reply)
        return replies[2:]


def random_commands(rng: random.Random, count: int) -> list[tuple]:
    """Reads and writes of five shared keys of each type, the reads of them
    mostly fast-path ones, some answering errors (wrong type, arity)."""
    keys = [f"pipe:{i}" for i in range(5)]
    out = []
    for _ in range(count):
        k, v = rng.choice(keys), str(rng.randrange(100))
        out.append(rng.choice([
            ("GET", k), ("SET", k, v), ("INCR", k), ("APPEND", k, v), ("STRLEN", k),
            ("DEL", k), ("TYPE", k), ("TTL", k), ("EXPIRE", k, "100"),
            ("HSET", k + "h", v, v), ("HGET", k + "h", v), ("HGETALL", k + "h"),
            ("LPUSH", k + "l", v), ("LRANGE", k + "l", "0", "-1"), ("LLEN", k + "l"),
            ("SADD", k + "s", v), ("SISMEMBER", k + "s", v), ("SCARD", k + "s"),
            ("ZADD", k + "z", v, v), ("ZSCORE", k + "z", v), ("ZRANGE", k + "z", "0", "-1"),
            ("HGET", k), ("LRANGE", k, "0", "1"),  # WRONGTYPE when k holds a string
            ("GET",), ("MGET", k, k + "h"), ("EXISTS", k, k + "l"),
        ]))
    return out


@pytest.mark.parametrize("resp3", [False, True])
def test_random_pipelines_answer_as_one_redis_does(cluster, plain, resp3):
    rng = random.Random(20 + resp3)
    for _ in range(5):
        commands = random_commands(rng, 300)
        theirs = pipeline(plain, cluster.password, commands, resp3)
        ours = pipeline(resp_port(cluster, rng.randrange(3)), cluster.password, commands,
                        resp3)
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert repr(a) == repr(b), (i, commands[i], a, b)  # errors compare by repr


def test_a_fast_read_whose_backend_stops_is_answered_by_another_copy(cluster):
    client = redis.Redis(port=resp_port(cluster), password=cluster.password, socket_timeout=30)
    client.set("stalled", "value")
    assert client.get("stalled") == b"value"  # the link to its master is open now
    master = cluster.ring().master("stalled")
    pid = backend(cluster, master).info("server")["process_id"]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        # sent fast on the open link; after backend_timeout the next copy answers
        assert client.get("stalled") == b"value"
        assert time.monotonic() - started >= cluster.backend_timeout * 0.9
        assert [client.get("stalled") for _ in range(5)] == [b"value"] * 5
    finally:
        os.kill(pid, signal.SIGCONT)

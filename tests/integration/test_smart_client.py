"""``dtriad.Redis``, the smart client, against a real cluster: it answers as
redis-py through a DTServer does, its writes are placed and replicated as a
DTServer's are, it follows a ring change by itself, and it falls back to a
DTServer for what the backends cannot answer from here."""

from __future__ import annotations

import dataclasses

import pytest
import redis

import dtriad
from dtriad.config import parse_address
from dtriad.membership.check import check
from dtriad.ops import cluster as local
from dtriad.ops.procs import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    directory = tmp_path_factory.mktemp("smart")
    config = local.up(directory, local.UpOptions(nodes=3, replicas=1, persist=False, workers=1,
                                                 down_after_ms=60_000), log=lambda *_: None)
    yield config
    local.down(directory)


def through_dtserver(config, **options) -> redis.Redis:
    host, port = parse_address(config.nodes[1].resp)
    return redis.Redis(host=host, port=port, password=config.password, protocol=2, **options)


def calls(r: redis.Redis, p: str) -> list:
    """The same redis-py calls, whoever answers them; their results."""
    return [
        r.set(f"{p}s", "v"), r.get(f"{p}s"), r.set(f"{p}s", "w", nx=True), r.getset(f"{p}s", 1),
        r.incr(f"{p}s", 5), r.incrbyfloat(f"{p}s", 0.5), r.append(f"{p}s", "x"),
        r.strlen(f"{p}s"), r.exists(f"{p}s", f"{p}none"), r.get(f"{p}none"),
        r.mset({f"{p}a": 1, f"{p}b": 2}), r.mget(f"{p}a", f"{p}b", f"{p}none"),
        r.hset(f"{p}h", mapping={"f": 1, "g": "two"}), r.hgetall(f"{p}h"), r.hget(f"{p}h", "g"),
        r.hincrby(f"{p}h", "f", 2), r.hkeys(f"{p}h"),
        r.rpush(f"{p}l", 1, 2, 3), r.lrange(f"{p}l", 0, -1), r.lpop(f"{p}l"),
        r.sadd(f"{p}set", "a", "b"), sorted(r.smembers(f"{p}set")), r.sismember(f"{p}set", "a"),
        r.zadd(f"{p}z", {"a": 1.5, "b": 2}), r.zrange(f"{p}z", 0, -1, withscores=True),
        r.zscore(f"{p}z", "a"), r.zincrby(f"{p}z", 1, "a"),
        r.expire(f"{p}s", 100), 0 < r.ttl(f"{p}s") <= 100, r.type(f"{p}h"),
        r.delete(f"{p}a", f"{p}b"), r.exists(f"{p}a"),
        r.ping(), r.echo("hi"), r.mget([]),
    ]


@pytest.mark.parametrize("decode", [False, True])
def test_it_answers_as_redis_py_through_a_dtserver_does(cluster, decode):
    smart = dtriad.Redis(cluster=cluster.path, decode_responses=decode)
    plain = through_dtserver(cluster, decode_responses=decode)
    try:
        assert calls(smart, f"smart{decode}:") == calls(plain, f"plain{decode}:")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            smart.lpush(f"smart{decode}:s", 1)
        with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
            smart.execute_command("GET")
        # what each wrote, the other reads
        smart.set("shared", "from smart")
        assert plain.get("shared") in (b"from smart", "from smart")
    finally:
        smart.close()
        plain.close()


def test_data_commands_skip_the_dtserver(cluster):
    """With a client password the DTServer refuses, only what goes through it
    fails: the data commands went to the backends."""
    smart = dtriad.Redis(cluster=cluster.path, password="not-the-client-password")
    try:
        assert smart.set("direct", "yes") and smart.get("direct") == b"yes"
        assert smart.hset("direct:h", "f", 1) == 1 and smart.hgetall("direct:h") == {b"f": b"1"}
        with pytest.raises(redis.AuthenticationError):
            smart.ping()
    finally:
        smart.close()


def test_a_blocking_read_waits_on_a_dtserver_and_suspects_no_backend(cluster):
    smart = dtriad.Redis(cluster=cluster.path)
    try:
        smart.xadd("stream", {"f": "v"})
        assert smart.xread({"stream": "$"}, block=1500) == []  # waited, then nothing new
        assert smart.core.suspects.count() == 0
        assert smart.xlen("stream") == 1
    finally:
        smart.close()


def test_its_writes_are_placed_and_replicated_as_a_dtservers(cluster):
    smart = dtriad.Redis(cluster=cluster.path)
    try:
        for i in range(200):
            smart.set(f"placed:{i}", i)
        report = check(cluster)
        assert report.clean, report.lines({n.redis: n.name for n in cluster.nodes})
        assert smart.dbsize() == through_dtserver(cluster).dbsize()
    finally:
        smart.close()


def test_a_read_no_backend_answers_from_here_is_answered_by_a_dtserver(cluster):
    """Backends refusing this client (a wrong internal password stands for a
    backend unreachable from the application's host): reads still work
    through the DTServer; a write fails with a clear error, never twice."""
    through_dtserver(cluster).set("fallback", "yes")
    wrong = dataclasses.replace(cluster, backend_password="w" * 24)
    smart = dtriad.Redis(cluster=wrong)
    try:
        assert smart.get("fallback") == b"yes"
        assert smart.hgetall("nothing") == {}
        with pytest.raises(redis.ConnectionError):
            smart.incr("fallback:counter")
        assert through_dtserver(cluster).get("fallback:counter") is None
    finally:
        smart.close()


@pytest.mark.timeout(300)
def test_it_follows_a_ring_change_by_itself(cluster):
    smart = dtriad.Redis(cluster=cluster.path)
    try:
        keys = {f"moving:{i}": str(i) for i in range(300)}
        smart.mset(keys)
        epoch = smart.core.follower.view.state.epoch
        local.add_node(cluster.directory, log=lambda *_: None)
        grown = local.ClusterConfig.load(cluster.path)
        wait_until(lambda: local.admitted(grown), 120, "the new node to join", interval=0.5)
        for key, value in keys.items():  # every key, written or read, through the new ring
            assert smart.get(key) == value.encode()
            smart.set(key, value + "!")
        assert smart.core.follower.view.state.epoch > epoch
        assert len(smart.core.follower.view.ring.nodes) == 4
        plain = through_dtserver(grown)
        assert plain.mget(list(keys)) == [(v + "!").encode() for v in keys.values()]
    finally:
        smart.close()

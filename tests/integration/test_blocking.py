"""Blocking commands on the RESP port (frontends/blocking.py) against a real
local cluster, compared with a plain redis-server where replies matter.

Waiters run in threads with redis-py; "blocked by now" is a short pause
before the write that should wake them (behaviour is checked, never how
fast it happened; every wait has a generous bound so nothing hangs)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import hiredis
import pytest
import redis
import requests

from dtriad.config import parse_address
from tests.conftest import quiet_cluster
from tests.integration.test_resp import Raw

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SETTLE = 0.5  # seconds to let a waiter block before the write that wakes it
BOUND = 30    # seconds any single wait may take before the test fails instead of hanging


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from quiet_cluster(tmp_path_factory, "blocking", 1024 * 1024)


def port(config, i: int) -> int:
    return parse_address(config.nodes[i].resp)[1]


def client(config, i: int, **kw) -> redis.Redis:
    return redis.Redis(port=port(config, i), password=config.password,
                       socket_timeout=BOUND, **kw)


def http_push(config, key: str, value: str) -> None:
    reply = requests.get(f"{config.nodes[2].http}/lPush", params={"key": key, "value": value},
                         timeout=BOUND)
    assert reply.ok, reply.text


def spread(config, prefix: str, count: int) -> list[str]:
    """``count`` keys named after ``prefix`` whose masters all differ."""
    ring, keys, masters = config.ring(), [], set()
    for n in range(100_000):
        name = f"{prefix}{n}"
        if ring.master(name) not in masters:
            keys.append(name)
            masters.add(ring.master(name))
            if len(keys) == count:
                return keys
    raise AssertionError(f"no {count} keys with distinct masters")


def in_thread(call):
    """Run ``call`` in a thread now; ``.result(BOUND)`` gives its reply."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(call)
    pool.shutdown(wait=False)
    return future


def raw(port_: int, password: str, resp3: bool = False) -> Raw:
    conn = Raw(port_)
    conn.sock.settimeout(BOUND)
    if resp3:
        assert conn.command("HELLO", "3", "AUTH", "default", password).startswith(b"%")
    else:
        assert conn.command("AUTH", password) == b"+OK\r\n"
    return conn


# ------------------------------------------------------------------ wake-ups
def test_woken_by_a_push_through_another_dtserver(cluster):
    a, b = client(cluster, 0), client(cluster, 1)
    a.delete("w:other")
    waiting = in_thread(lambda: a.blpop(["w:other"], BOUND))
    time.sleep(SETTLE)
    b.rpush("w:other", "x")
    assert waiting.result(BOUND) == (b"w:other", b"x")
    assert b.llen("w:other") == 0


def test_woken_by_a_push_through_http(cluster):
    a = client(cluster, 0)
    a.delete("w:http")
    waiting = in_thread(lambda: a.brpop(["w:http"], BOUND))
    time.sleep(SETTLE)
    http_push(cluster, "w:http", "over-http")
    assert waiting.result(BOUND) == (b"w:http", b"over-http")


def test_woken_by_a_push_through_the_same_dtserver(cluster):
    a, b = client(cluster, 1), client(cluster, 1)
    a.delete("w:same")
    waiting = in_thread(lambda: a.blpop(["w:same"], BOUND))
    time.sleep(SETTLE)
    b.lpush("w:same", "here")
    assert waiting.result(BOUND) == (b"w:same", b"here")


def test_each_element_is_delivered_exactly_once(cluster):
    """Two consumers on two DTServers, pushes through a third: every element
    reaches exactly one consumer."""
    key, count = "w:once", 60
    client(cluster, 0).delete(key)
    got: list[list[bytes]] = [[], []]
    stop = threading.Event()

    def consume(i: int) -> None:
        conn = client(cluster, i)
        while not stop.is_set():
            reply = conn.blpop([key], 0.5)
            if reply is not None:
                got[i].append(reply[1])

    threads = [threading.Thread(target=consume, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    pusher = client(cluster, 2)
    for n in range(count):
        pusher.rpush(key, f"e{n}")
    deadline = time.monotonic() + BOUND
    while len(got[0]) + len(got[1]) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(BOUND)
    delivered = got[0] + got[1]
    assert sorted(delivered) == sorted(f"e{n}".encode() for n in range(count))
    assert len(set(delivered)) == count
    assert pusher.llen(key) == 0


def test_first_come_first_served_on_one_dtserver(cluster):
    key = "w:fifo"
    client(cluster, 0).delete(key)
    waiters = []
    for _ in range(3):
        conn = client(cluster, 0)
        waiters.append(in_thread(lambda conn=conn: conn.blpop([key], BOUND)))
        time.sleep(SETTLE)
    client(cluster, 1).rpush(key, "first", "second", "third")
    assert [w.result(BOUND)[1] for w in waiters] == [b"first", b"second", b"third"]


def test_a_closed_connection_pops_nothing(cluster):
    key = "w:gone"
    other = client(cluster, 1)
    other.delete(key)
    quitter = raw(port(cluster, 0), cluster.password)
    quitter.sock.sendall(hiredis.pack_command(("BLPOP", key, "0")))
    time.sleep(SETTLE)
    quitter.close()
    time.sleep(SETTLE)
    other.rpush(key, "kept")
    # A live waiter on the same DTServer gets it: the closed one took nothing.
    assert client(cluster, 0).blpop([key], BOUND) == (key.encode(), b"kept")
    assert other.llen(key) == 0


def test_keys_on_different_nodes_tried_in_order(cluster):
    keys = spread(cluster, "w:order", 3)
    a = client(cluster, 0)
    a.delete(*keys)
    a.rpush(keys[2], "third")
    a.rpush(keys[1], "second")
    assert a.blpop(keys, 1) == (keys[1].encode(), b"second")
    assert a.blpop(keys, 1) == (keys[2].encode(), b"third")
    waiting = in_thread(lambda: a.blpop(keys, BOUND))
    time.sleep(SETTLE)
    client(cluster, 2).rpush(keys[2], "late")
    assert waiting.result(BOUND) == (keys[2].encode(), b"late")


def test_blmove_across_nodes(cluster):
    source, destination = spread(cluster, "w:move", 2)
    a = client(cluster, 0)
    a.delete(source, destination)
    waiting = in_thread(lambda: a.blmove(source, destination, BOUND, "RIGHT", "LEFT"))
    time.sleep(SETTLE)
    client(cluster, 1).rpush(source, "m1", "m2")
    assert waiting.result(BOUND) == b"m2"
    assert a.lrange(source, 0, -1) == [b"m1"]
    assert a.lrange(destination, 0, -1) == [b"m2"]
    # A waiter on the destination is woken by the move itself.
    c = client(cluster, 2)
    c.delete("w:after")
    assert c.brpoplpush(destination, "w:after", 1) == b"m2"
    assert a.brpoplpush(source, destination, 1) == b"m1"
    assert a.lrange(destination, 0, -1) == [b"m1"]


def test_bzpopmin_and_bzpopmax(cluster):
    a, b = client(cluster, 0), client(cluster, 1)
    a.delete("w:z1", "w:z2")
    waiting = in_thread(lambda: a.bzpopmin(["w:z1", "w:z2"], BOUND))
    time.sleep(SETTLE)
    b.zadd("w:z2", {"low": 1.5, "high": 7})
    assert waiting.result(BOUND) == (b"w:z2", b"low", 1.5)
    assert a.bzpopmax(["w:z1", "w:z2"], 1) == (b"w:z2", b"high", 7.0)
    assert a.bzpopmin(["w:z1", "w:z2"], 0.2) is None


def test_xread_block_with_dollar(cluster):
    a, b = client(cluster, 0), client(cluster, 1)
    a.delete("w:s")
    a.xadd("w:s", {"f": "old"})
    waiting = in_thread(lambda: a.xread({"w:s": "$"}, block=BOUND * 1000))
    time.sleep(SETTLE)
    new_id = b.xadd("w:s", {"f": "new"})
    assert waiting.result(BOUND) == [[b"w:s", [(new_id, {b"f": b"new"})]]]
    assert a.xread({"w:s": "$"}, block=200) == []  # nothing after it: timed out


def test_xread_block_on_a_stream_that_does_not_exist_yet(cluster):
    a = client(cluster, 2)
    a.delete("w:s-new")
    waiting = in_thread(lambda: a.xread({"w:s-new": "$"}, block=0))
    time.sleep(SETTLE)
    new_id = client(cluster, 0).xadd("w:s-new", {"f": "1"})
    assert waiting.result(BOUND) == [[b"w:s-new", [(new_id, {b"f": b"1"})]]]


def test_xreadgroup_block_delivers_to_one_consumer(cluster):
    a, b, c = client(cluster, 0), client(cluster, 1), client(cluster, 2)
    a.delete("w:g")
    a.xgroup_create("w:g", "grp", id="$", mkstream=True)
    first = in_thread(lambda: a.xreadgroup("grp", "alice", {"w:g": ">"}, count=1,
                                           block=BOUND * 1000))
    second = in_thread(lambda: b.xreadgroup("grp", "bob", {"w:g": ">"}, count=1,
                                            block=BOUND * 1000))
    time.sleep(SETTLE)
    one = c.xadd("w:g", {"n": "1"})
    two = c.xadd("w:g", {"n": "2"})
    replies = [first.result(BOUND), second.result(BOUND)]
    ids = sorted(r[0][1][0][0] for r in replies)
    assert ids == sorted([one, two])
    assert c.xpending("w:g", "grp")["pending"] == 2


# ------------------------------------------------ replies and errors vs Redis
CASES = [
    ("BLPOP", "c:empty", "0.05"),
    ("BRPOP", "c:empty", "c:also", "0.05"),
    ("BRPOPLPUSH", "c:empty", "c:dst", "0.05"),
    ("BLMOVE", "c:empty", "c:dst", "LEFT", "RIGHT", "0.05"),
    ("BZPOPMIN", "c:empty", "0.05"),
    ("BZPOPMAX", "c:empty", "0.05"),
    ("XREAD", "BLOCK", "50", "STREAMS", "c:stream", "$"),
    ("XREAD", "COUNT", "1", "BLOCK", "50", "STREAMS", "c:stream", "c:nostream", "$", "$"),
    ("XREADGROUP", "GROUP", "g", "me", "BLOCK", "50", "STREAMS", "c:stream", ">"),
    ("XREADGROUP", "GROUP", "g", "me", "BLOCK", "50", "STREAMS", "c:stream", ">"),
    ("BLPOP", "c:list", "0"),
    ("BLPOP", "c:empty", "c:list", "0"),
    ("BRPOP", "c:list", "1.5"),
    ("BLPOP", "c:list", "-0.0001"),  # truncated to 0 ms: not negative
    ("BLPOP", "c:list", "1e1"),
    ("BLPOP", "c:empty", "x"),
    ("BLPOP", "c:empty", "1x"),
    ("BLPOP", "c:empty", " 1"),
    ("BLPOP", "c:empty", "-1"),
    ("BLPOP", "c:empty", "-0.5"),
    ("BLPOP", "c:empty"),
    ("BLPOP", "c:string", "0"),
    ("BLPOP", "c:empty", "c:string", "0"),
    ("BLMOVE", "c:list", "c:dst", "UP", "LEFT", "0"),
    ("BLMOVE", "c:list", "c:dst", "LEFT", "RIGHT", "x"),
    ("BLMOVE", "c:list", "c:dst", "LEFT", "RIGHT", "0"),
    ("BRPOPLPUSH", "c:list", "c:string", "0"),
    ("BRPOPLPUSH", "c:list", "c:dst", "0"),
    ("BZPOPMIN", "c:zset", "0"),
    ("BZPOPMAX", "c:zset", "0"),
    ("BZPOPMIN", "c:string", "0"),
    ("BZPOPMIN", "c:zset", "-2"),
    ("XREAD", "BLOCK", "x", "STREAMS", "c:stream", "$"),
    ("XREAD", "BLOCK", "-5", "STREAMS", "c:stream", "$"),
    ("XREAD", "BLOCK", "1.5", "STREAMS", "c:stream", "$"),
    ("XREAD", "BLOCK", "100", "STREAMS", "c:stream", "0"),
    ("XREAD", "BLOCK", "100", "STREAMS", "c:string", "$"),
    ("XREAD", "BLOCK", "100", "STREAMS", "c:stream"),
    ("XREAD", "BLOCK", "100", "STREAMS", "c:stream", "c:other", "0"),
    ("XREADGROUP", "GROUP", "nogroup", "me", "BLOCK", "50", "STREAMS", "c:stream", ">"),
    ("XREADGROUP", "GROUP", "g", "me", "BLOCK", "0", "STREAMS", "c:stream", "0"),
]


def _fixture_data(conn: Raw) -> None:
    for args in [("DEL", "c:empty", "c:also", "c:dst", "c:list", "c:string", "c:zset",
                  "c:stream", "c:nostream", "c:other"),
                 ("RPUSH", "c:list", *"abcdefghij"), ("SET", "c:string", "s"),
                 ("ZADD", "c:zset", "1", "one", "2.5", "two", "3", "three"),
                 ("XADD", "c:stream", "1-1", "f", "v"),
                 ("XGROUP", "CREATE", "c:stream", "g", "0")]:
        conn.command(*args)


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_replies_and_errors_match_plain_redis(cluster, plain, resp3):
    ours, theirs = (raw(port(cluster, 0), cluster.password, resp3),
                    raw(plain, cluster.password, resp3))
    try:
        _fixture_data(ours)
        _fixture_data(theirs)
        for args in CASES:
            expected = theirs.command(*args)
            assert ours.command(*args) == expected, args
    finally:
        ours.close()
        theirs.close()


def test_replies_queued_before_a_block_are_sent_first(cluster):
    """A pipeline of PING then BLPOP: PONG arrives while BLPOP waits."""
    conn = raw(port(cluster, 0), cluster.password)
    try:
        client(cluster, 0).delete("w:pipe")
        conn.sock.sendall(hiredis.pack_command(("PING",))
                          + hiredis.pack_command(("BLPOP", "w:pipe", "0")))
        reader = hiredis.Reader()
        reader.feed(conn.sock.recv(65536))
        assert reader.gets() == b"PONG"
        client(cluster, 1).rpush("w:pipe", "v")
        while (reply := reader.gets()) is False:
            reader.feed(conn.sock.recv(65536))
        assert reply == [b"w:pipe", b"v"]
    finally:
        conn.close()


def test_http_never_blocks(cluster):
    http = cluster.nodes[0].http
    client(cluster, 0).delete("w:hs")
    reply = requests.get(f"{http}/command", timeout=BOUND, params=[
        ("arg", "XREAD"), ("arg", "BLOCK"), ("arg", "0"), ("arg", "STREAMS"),
        ("arg", "w:hs"), ("arg", "$")])
    assert reply.ok and reply.json() is None  # answered at once, as inside MULTI
    reply = requests.get(f"{http}/command", timeout=BOUND, params=[
        ("arg", "XREAD"), ("arg", "BLOCK"), ("arg", "-1"), ("arg", "STREAMS"),
        ("arg", "w:hs"), ("arg", "$")])
    assert reply.json()["error"] == "ERR timeout is negative"
    reply = requests.get(f"{http}/command", timeout=BOUND,
                         params=[("arg", "BLPOP"), ("arg", "w:hs"), ("arg", "0")])
    assert "RESP" in reply.json()["error"]

"""Pub/sub over RESP on a real local cluster: Redis 6.2's replies byte for
byte (compared with a plain redis-server), delivery across DTServers exactly
once, cluster-wide counts, RESP3 pushes, slow subscribers, a backend crash."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import hiredis
import pytest
import redis
import redis.asyncio

from dtriad.config import parse_address
from dtriad.ops import cluster as local
from dtriad.ops.procs import wait_until
from tests.conftest import quiet_cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MAX_VALUE = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from quiet_cluster(tmp_path_factory, "pubsub", MAX_VALUE)


def resp_ports(config) -> list[int]:
    return [parse_address(n.resp)[1] for n in config.nodes]


def client(config, port: int, **options) -> redis.Redis:
    return redis.Redis(port=port, password=config.password, socket_timeout=10, **options)


def fresh(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


class Raw:
    """A socket that sends raw requests and reads back a given number of replies."""

    def __init__(self, port: int, password: str | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = hiredis.Reader()
        if password:
            assert self.command("AUTH", password) == b"+OK\r\n"

    def command(self, *args, replies: int = 1) -> bytes:
        self.sock.sendall(hiredis.pack_command(args))
        return self.read(replies)

    def read(self, replies: int = 1) -> bytes:
        raw = b""
        got = 0
        while got < replies:
            reply = self.reader.gets()
            if reply is not False:
                got += 1
                continue
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed after {raw!r}"
            raw += chunk
            self.reader.feed(chunk)
        assert self.reader.gets() is False, f"more than {replies} replies in {raw!r}"
        return raw

    def close(self) -> None:
        self.sock.close()


def frames(raw: bytes) -> list[bytes]:
    """``raw`` cut into its replies."""
    reader, out, start = hiredis.Reader(), [], 0
    for i in range(len(raw)):
        reader.feed(raw[i:i + 1])
        if reader.gets() is not False:
            out.append(raw[start:i + 1])
            start = i + 1
    return out


def script(p: str, resp3: bool = False) -> list[tuple]:
    """(command, number of replies) covering replies and errors of subscribed
    mode. In RESP3, a PUBLISH to one's own channel is answered with the
    message pushed and the count, in either order (they come from different
    connections to the backend)."""
    a, b = f"{p}a", f"{p}b"
    return [
        (("UNSUBSCRIBE",), 1), (("PUNSUBSCRIBE",), 1), (("UNSUBSCRIBE", a), 1),
        (("SUBSCRIBE", a, a, b), 3), (("GET", "x"), 1), (("PING",), 1), (("PING", "hi"), 1),
        (("PING", "a", "b"), 1), (("PUBLISH", a, "m"), 2 if resp3 else 1),
        (("PUBSUB", "NUMSUB"), 1),
        (("PSUBSCRIBE", f"{p}*", "q?[a-z]"), 2), (("UNSUBSCRIBE", b, "zz"), 2),
        (("PUNSUBSCRIBE", "zz"), 1), (("UNSUBSCRIBE",), 1), (("GET", "x"), 1),
        (("PUNSUBSCRIBE",), 2), (("PUNSUBSCRIBE",), 1), (("GET", "x"), 1),
        (("SUBSCRIBE", a), 1), (("RESET",), 1), (("GET", "x"), 1),
        (("SUBSCRIBE",), 1), (("PSUBSCRIBE",), 1), (("PUBLISH", a), 1), (("PUBSUB",), 1),
        (("PUBSUB", "HELP"), 1), (("PUBSUB", "help"), 1), (("PUBSUB", "FOO"), 1),
        (("PUBSUB", "CHANNELS", "a", "b"), 1), (("PUBSUB", "NUMPAT", "x"), 1),
        (("PUBSUB", "NUMSUB", f"{p}none", f"{p}zz"), 1),
        (("PUBSUB", "CHANNELS", f"{p}*"), 1), (("PUBLISH", f"{p}none", "m"), 1),
    ]


def run_script(port: int, password: str, p: str, resp3: bool = False) -> list[bytes]:
    raw = Raw(port, password)
    try:
        if resp3:
            raw.command("HELLO", "3")
        out = []
        for command, replies in script(p, resp3):
            if command == ("RESET",) and password:
                out.append(raw.command(*command))
                raw.command("AUTH", password)
                if resp3:
                    raw.command("HELLO", "3")
                continue
            out.append(raw.command(*command, replies=replies))
        return out
    finally:
        raw.close()


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_replies_are_redis_62_byte_for_byte(cluster, plain, resp3):
    """Every reply of the script, RESP2 and RESP3, is the plain server's (nobody
    else subscribes to these names, so counts agree too)."""
    p = fresh("byte") + ":"
    expected = run_script(plain, cluster.password, p, resp3)
    for port in resp_ports(cluster):
        got = run_script(port, cluster.password, p, resp3)
        for (command, _), want, have in zip(script(p, resp3), expected, got, strict=True):
            assert sorted(frames(have)) == sorted(frames(want)), command


def test_subscribed_mode_refuses_other_commands(cluster):
    raw = Raw(resp_ports(cluster)[0], cluster.password)
    try:
        raw.command("SUBSCRIBE", fresh("c"))
        assert raw.command("HELLO", "3").startswith(b"-ERR Can't execute 'hello'")
        assert raw.command("SET", "k", "v") == (
            b"-ERR Can't execute 'set': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT / "
            b"RESET are allowed in this context\r\n")
        assert raw.command("PING") == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        assert raw.command("QUIT") == b"+OK\r\n"
    finally:
        raw.close()


def confirmed(pubsub, count: int, kinds=("subscribe", "psubscribe")) -> None:
    """Read ``count`` (p)subscribe confirmations: redis-py's ``subscribe``
    returns before the server has answered, and a PUBLISH from another
    connection must come after."""
    seen = 0
    while seen < count:
        message = pubsub.get_message(timeout=10)
        assert message is not None, f"{seen} of {count} confirmations"
        seen += message["type"] in kinds


def collect(pubsub, until: bytes, timeout: float = 20) -> list[dict]:
    """Messages (not confirmations) until one whose data is ``until``."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1)
        if message is None or message["type"] not in ("message", "pmessage"):
            continue
        out.append(message)
        if message["data"] == until:
            return out
    raise AssertionError(f"{until!r} never arrived; got {out}")


def test_every_subscriber_on_every_dtserver_gets_each_message_once(cluster):
    ports = resp_ports(cluster)
    channel = fresh("news")
    subscribers = []
    for port in ports:
        ps = client(cluster, port).pubsub()
        ps.subscribe(channel)
        ps.psubscribe(channel[:4] + "*")
        confirmed(ps, 2)
        subscribers.append(ps)
    try:
        for port in ports:  # through every DTServer in turn
            publisher = client(cluster, port)
            assert publisher.publish(channel, f"m{port}") == 2 * len(ports)
            assert publisher.publish(channel, "end") == 2 * len(ports)
            for ps in subscribers:
                got = collect(ps, b"end")
                got += collect(ps, b"end")  # the pattern's copy of "end" (either order)
                kinds = sorted((m["type"], m["data"]) for m in got)
                assert kinds == sorted([("message", f"m{port}".encode()),
                                        ("pmessage", f"m{port}".encode()),
                                        ("message", b"end"), ("pmessage", b"end")])
                assert ps.get_message(timeout=0.2) is None  # nothing twice
    finally:
        for ps in subscribers:
            ps.close()


def test_counts_are_cluster_wide(cluster):
    ports = resp_ports(cluster)
    c1, c2, pat = fresh("cnt"), fresh("cnt"), fresh("cntp") + "*"
    clients = [client(cluster, port).pubsub() for port in ports for _ in range(2)]
    try:
        for i, ps in enumerate(clients):
            ps.subscribe(c1)
            if i % 2:
                ps.subscribe(c2)
            ps.psubscribe(pat)
            ps.psubscribe(pat)  # once only
            confirmed(ps, 4 if i % 2 else 3)
        for port in ports:
            r = client(cluster, port)
            numsub = r.pubsub_numsub(c1, c2, "nobody")
            assert numsub == [(c1.encode(), 6), (c2.encode(), 3), (b"nobody", 0)]
            assert {c1.encode(), c2.encode()} <= set(r.pubsub_channels())
            assert r.pubsub_channels(c1) == [c1.encode()]
            assert r.pubsub_numpat() >= 1
            assert r.publish(c1, "x") == 6
            assert r.publish(c2, "x") == 3
            assert r.publish(pat[:-1] + "zz", "x") == 6
        before = client(cluster, ports[0]).pubsub_numpat()
        for ps in clients[:3]:
            ps.unsubscribe(c1)
            ps.punsubscribe()
        for ps in clients[:3]:
            confirmed(ps, 2, ("unsubscribe", "punsubscribe"))
        r = client(cluster, ports[2])
        assert r.publish(c1, "x") == 3
        assert r.publish(pat[:-1] + "zz", "x") == 3
        assert r.pubsub_numsub(c1) == [(c1.encode(), 3)]
        clients[5].close()  # a disconnect drops its subscriptions
        wait_until(lambda: r.pubsub_numsub(c1) == [(c1.encode(), 2)], 20, "the close to count")
        assert r.publish(c1, "x") == 2
        assert r.publish(pat[:-1] + "zz", "x") == 2
        for ps in clients[3:5]:
            ps.punsubscribe(pat)
        for ps in clients[3:5]:
            confirmed(ps, 1, ("punsubscribe",))
        assert client(cluster, ports[1]).pubsub_numpat() == before - 1
    finally:
        for ps in clients:
            ps.close()


def test_patterns_and_binary_names_count_as_redis_does(cluster, plain):
    """The same subscriptions on the cluster and on a plain server: every
    PUBLISH answers the same number (hostile bytes and glob syntax)."""
    p = fresh("g").encode()
    patterns = [p + b"*", p + b"h?llo", p + b"h[ae]llo", p + b"h[^e]llo", p + b"h[a-b]llo",
                p + b"\\*", p + b"[", p + b"x[a-]y]", p + b"\x00\xff*", p + b"*\r\n*"]
    channels = [p + b"hello", p + b"hallo", p + b"hbllo", p + b"*", p + b"x]y", p + b"xby]",
                p + b"\x00\xff\x00", p + b"a\r\nb", p, p + b"[", b"unrelated"]
    dt_ports = resp_ports(cluster)
    subs = [redis.Redis(port=port, password=cluster.password).pubsub() for port in
            (plain, dt_ports[0], dt_ports[1], plain)]
    try:
        subs[0].psubscribe(*patterns)
        subs[0].subscribe(*channels[:3])
        subs[1].psubscribe(*patterns[:5])
        subs[1].subscribe(*channels[:3])
        subs[2].psubscribe(*patterns[5:])
        for ps, count in zip(subs[:3], (13, 8, 5), strict=True):
            confirmed(ps, count)
        plain_pub = redis.Redis(port=plain, password=cluster.password)
        dt_pub = client(cluster, dt_ports[2])
        for channel in channels:  # the same subscriptions on both sides
            assert dt_pub.publish(channel, b"m") == plain_pub.publish(channel, b"m"), channel
        assert set(dt_pub.pubsub_channels(p + b"*")) == set(plain_pub.pubsub_channels(p + b"*"))
        subs[3].psubscribe(*patterns[5:])  # what Redis delivers to subs[2]'s patterns
        confirmed(subs[3], 5)
        for channel in channels:
            plain_pub.publish(channel, b"m")

        def pmessages(ps):
            got = [m for m in iter(lambda: ps.get_message(timeout=1), None)
                   if m["type"] == "pmessage"]
            return sorted((m["pattern"], m["channel"]) for m in got)

        expected = pmessages(subs[3])
        assert expected  # some of them match something
        assert pmessages(subs[2]) == expected
    finally:
        for s in subs:
            s.close()


def test_resp3_pushes_and_other_commands_stay_allowed(cluster):
    ports = resp_ports(cluster)
    channel = fresh("r3")
    raw = Raw(ports[0], cluster.password)
    try:
        raw.command("HELLO", "3")
        assert raw.command("SUBSCRIBE", channel) == (
            b">3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(channel), channel.encode()))
        assert raw.command("SET", channel, "v") == b"+OK\r\n"
        assert raw.command("GET", channel) == b"$1\r\nv\r\n"
        assert raw.command("PING") == b"+PONG\r\n"
        assert client(cluster, ports[1]).publish(channel, "hi") == 1
        assert raw.read() == b">3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$2\r\nhi\r\n" % (
            len(channel), channel.encode())
    finally:
        raw.close()
    r3 = client(cluster, ports[2], protocol=3)
    ps = r3.pubsub()
    try:
        ps.subscribe(channel)
        ps.psubscribe(channel + "*")
        confirmed(ps, 2)
        assert client(cluster, ports[1]).publish(channel, "x") == 2
        got = collect(ps, b"x") + collect(ps, b"x")
        assert sorted(m["type"] for m in got) == ["message", "pmessage"]
    finally:
        ps.close()


def test_asyncio_clients(cluster):
    ports = resp_ports(cluster)
    channel = fresh("aio")

    async def main():
        subs = [redis.asyncio.Redis(port=port, password=cluster.password) for port in ports]
        pubsubs = [s.pubsub() for s in subs]
        for ps in pubsubs:
            await ps.subscribe(channel)
            assert (await ps.get_message(timeout=10))["type"] == "subscribe"
        pub = redis.asyncio.Redis(port=ports[0], password=cluster.password)
        assert await pub.publish(channel, "hello") == len(ports)
        for ps in pubsubs:
            message = None
            while message is None:
                message = await ps.get_message(timeout=5)
            assert message["data"] == b"hello"
            await ps.aclose()
        for s in subs + [pub]:
            await s.aclose()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_subscriber_that_never_reads_is_disconnected(cluster):
    """Over the 32 MiB output limit the connection closes; others are served."""
    ports = resp_ports(cluster)
    channel = fresh("slow")
    raw = Raw(ports[0], cluster.password)
    good = client(cluster, ports[0]).pubsub()
    try:
        raw.command("SUBSCRIBE", channel)
        good.subscribe(channel + "-ok")
        confirmed(good, 1)
        publisher = client(cluster, ports[1])
        payload = b"x" * (1024 * 1024)
        sent = 0
        while publisher.pubsub_numsub(channel) != [(channel.encode(), 0)]:
            publisher.publish(channel, payload)
            sent += 1
            assert sent < 200, "the slow subscriber was never disconnected"
        assert sent > 32  # not before the hard limit
        raw.sock.settimeout(30)
        with pytest.raises(ConnectionError):
            while True:  # what was queued, then the close
                if not raw.sock.recv(1 << 20):
                    raise ConnectionError("closed")
        assert publisher.publish(channel + "-ok", "fine") == 1
        assert collect(good, b"fine")[0]["data"] == b"fine"
    finally:
        raw.close()
        good.close()


def test_messages_keep_arriving_after_a_backend_dies(tmp_path):
    directory = tmp_path / "failing"
    config = local.up(directory, local.UpOptions(nodes=4, replicas=2, persist=False, workers=1,
                                                 down_after_ms=1000), log=lambda *_: None)
    try:
        ports = resp_ports(config)
        channels = [f"fail-{i}" for i in range(12)]  # mastered all over the ring
        subs = []
        for port in ports[:3]:
            ps = client(config, port).pubsub()
            ps.subscribe(*channels)
            ps.psubscribe("fail-*")
            confirmed(ps, len(channels) + 1)
            subs.append(ps)
        publisher = client(config, ports[3])

        def round_trip(tag: str) -> None:
            for channel in channels:
                assert publisher.publish(channel, tag) == 6
            for ps in subs:
                got = []
                while len(got) < 2 * len(channels):
                    got += collect(ps, tag.encode())
                assert sorted((m["type"], m["channel"]) for m in got) == sorted(
                    (t, c.encode()) for c in channels for t in ("message", "pmessage"))
                assert ps.get_message(timeout=0.2) is None

        round_trip("before")
        local.kill_node(directory, "n4")  # the publisher's own node's backend
        round_trip("right-after")  # the channels it mastered move to their next owner
        wait_until(lambda: len(_members(config)) == 3, 60, "n4 to leave the ring")
        round_trip("after-the-ring-change")
    finally:
        local.down(directory)


def _members(config) -> list:
    from dtriad.backends.client import DTClient
    from dtriad.core.follower import RingCheck, newest_ring
    from dtriad.core.steps import run

    c = DTClient(**config.internal.kwargs())
    try:
        state, _ = run(newest_ring([n.redis for n in config.nodes], RingCheck(config)), c)
    finally:
        c.close()
    return [] if state is None or state.pending else list(state.nodes)

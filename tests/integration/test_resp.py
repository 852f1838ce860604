"""The RESP front end against a real local cluster and a plain redis-server.

The differential tests send the same scripted commands, as raw bytes, to a
DTServer's RESP port and to one plain redis-server, and compare the raw reply
bytes, in RESP2 and in RESP3 (``HELLO 3``). The rest use the RESP port the way
applications do: redis-py (pool, pipelines, ``decode_responses``), the
``redis-cli`` binary, many connections at once, a backend down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time

import hiredis
import pytest
import redis

from dtriad.config import parse_address
from dtriad.core.commands import REDIS
from dtriad.membership.check import check
from dtriad.ops import cluster as local
from dtriad.ops.procs import wait_until
from tests.conftest import backend, quiet_cluster, reference_redis_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
MAX_VALUE = 64 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from quiet_cluster(tmp_path_factory, "resp", MAX_VALUE)


def resp_port(config, index: int = 0) -> int:
    return parse_address(config.nodes[index].resp)[1]


class Raw:
    """A socket that sends raw requests and returns each reply's raw bytes."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def call(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        reader, raw = hiredis.Reader(), b""
        while True:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed after {raw!r}"
            raw += chunk
            reader.feed(chunk)
            if reader.gets() is not False:
                assert reader.gets() is False, f"more than one reply in {raw!r}"
                return raw

    def command(self, *args) -> bytes:
        return self.call(hiredis.pack_command(args))

    def close(self) -> None:
        self.sock.close()


def script(p: str) -> list[tuple]:
    """Commands covering every supported data command, with error cases.
    Set members are integers (an intset's order is the same on every server)."""
    k, n, lst, h, s, z = (f"{p}:{x}" for x in ("str", "num", "list", "hash", "set", "zset"))
    a, b, c = (f"{p}:{x}" for x in "abc")
    return [
        ("PING",), ("PING", "hi"), ("ECHO", "x y"), ("SELECT", "0"),
        ("SET", k, "v"), ("GET", k), ("SET", k, "v2", "XX", "GET"), ("SET", n, "10", "NX"),
        ("SET", n, "11", "NX"), ("SET", k, "v", "EX", "100"), ("TTL", k), ("PERSIST", k),
        ("TTL", k), ("PTTL", k), ("PTTL", f"{p}:none"), ("SET", k, "v", "PX", "5", "EX", "1"),
        ("SET", k, "v", "KEEPTTL"), ("INCR", k), ("INCRBY", n, "5"), ("DECR", n),
        ("DECRBY", n, "3"), ("INCRBY", n, "x"), ("INCRBYFLOAT", f"{p}:f", "1.5"),
        ("INCRBYFLOAT", f"{p}:f", "0.1"), ("APPEND", k, "xyz"), ("STRLEN", k),
        ("GETRANGE", k, "0", "2"), ("SETRANGE", k, "1", "ZZ"), ("GET", k), ("GETDEL", k),
        ("GET", k), ("GETDEL", k), ("MSET", a, "1", b, "2", c, "3"), ("MGET", a, b, c, k),
        ("GETSET", a, "5"), ("SETNX", a, "1"), ("SETNX", f"{p}:new", "1"),
        ("SETEX", f"{p}:ex", "100", "v"), ("TTL", f"{p}:ex"), ("PSETEX", f"{p}:ex", "0", "v"),
        ("INCRBY", f"{p}:big", "9223372036854775800"), ("INCRBY", f"{p}:big", "7"),
        ("INCRBY", f"{p}:big", "1"), ("DECRBY", f"{p}:neg", "9223372036854775807"),
        ("GET",), ("SET", k), ("MSET", a), ("MSET", a, "1", b), ("GETRANGE", k, "x", "1"),
        ("EXISTS", a, b, a, k), ("DEL", a, b, k, a), ("UNLINK", c, c), ("EXISTS", a, b, c),
        ("SET", k, "v"), ("EXPIRE", k, "100"), ("TTL", k), ("PEXPIRE", k, "200000"),
        ("EXPIRE", f"{p}:none", "5"), ("EXPIREAT", k, "9999999999"), ("PEXPIREAT", k, "x"),
        ("TYPE", k), ("TYPE", f"{p}:none"),
        ("RPUSH", lst, "a", "b", "c"), ("LPUSH", lst, "z"), ("LRANGE", lst, "0", "-1"),
        ("LINDEX", lst, "1"), ("LINDEX", lst, "99"), ("LLEN", lst), ("LSET", lst, "0", "Z"),
        ("LSET", lst, "99", "x"), ("LREM", lst, "1", "a"), ("LTRIM", lst, "0", "1"),
        ("LRANGE", lst, "0", "-1"), ("LPOP", lst), ("RPOP", lst), ("LPOP", lst),
        ("LPOP", f"{p}:none", "2"), ("RPUSH", lst, "1", "2", "3", "4"), ("LPOP", lst, "2"),
        ("RPOP", lst, "5"), ("LPUSHX", f"{p}:none", "a"), ("RPUSHX", lst, "x"), ("TYPE", lst),
        ("GET", lst), ("LPUSH", k, "x"), ("LRANGE", lst, "a", "b"),
        ("HSET", h, "a", "1", "b", "2"), ("HGET", h, "a"), ("HMGET", h, "a", "x", "b"),
        ("HGETALL", h), ("HDEL", h, "a", "x"), ("HINCRBY", h, "b", "5"),
        ("HINCRBY", h, "b", "x"), ("HLEN", h), ("HEXISTS", h, "b"), ("HEXISTS", h, "a"),
        ("HKEYS", h), ("HVALS", h), ("HSETNX", h, "b", "3"), ("HSET", h, "a", "1", "b"),
        ("HMSET", h, "c", "3"),
        ("HSTRLEN", h, "c"), ("HSET", h, "a"), ("HGETALL", f"{p}:none"), ("HGET", k, "a"),
        ("SADD", s, "1", "2", "3"), ("SREM", s, "2", "9"), ("SMEMBERS", s),
        ("SISMEMBER", s, "1"), ("SISMEMBER", s, "2"), ("SCARD", s), ("SMEMBERS", f"{p}:none"),
        ("SADD", k, "x"),
        ("ZADD", z, "1", "a", "2", "b", "2.5", "c"), ("ZSCORE", z, "c"),
        ("ZINCRBY", z, "1.5", "a"), ("ZCARD", z), ("ZRANGE", z, "0", "-1"),
        ("ZRANGE", z, "0", "-1", "WITHSCORES"), ("ZRANGEBYSCORE", z, "1", "2", "WITHSCORES"),
        ("ZRANGEBYSCORE", z, "(1", "+inf"), ("ZREVRANGE", z, "0", "1"),
        ("ZREVRANGE", z, "0", "1", "WITHSCORES"), ("ZRANK", z, "b"), ("ZRANK", z, "x"),
        ("ZCOUNT", z, "0", "10"), ("ZREM", z, "a", "x"), ("ZADD", z, "NX", "INCR", "1", "b"),
        ("ZADD", z, "INCR", "1", "b"), ("ZADD", z, "XX", "NX", "1", "a"),
        ("ZADD", z, "x", "a"), ("ZSCORE", z, "nobody"), ("ZADD", z, "1"),
    ]


@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_match_a_plain_redis_byte_for_byte(cluster, plain, protocol):
    dt, ref = Raw(resp_port(cluster)), Raw(plain)
    try:
        for conn in (dt, ref):
            hello = ("HELLO", "3", "AUTH", "default", cluster.password) if protocol == 3 else (
                "AUTH", cluster.password)
            conn.command(*hello)
        mismatches = []
        for command in script(f"diff{protocol}"):
            ours, theirs = dt.command(*command), ref.command(*command)
            if ours != theirs:
                mismatches.append(f"{command}: dtriad {ours!r} != redis {theirs!r}")
        assert not mismatches, "\n".join(mismatches)
    finally:
        dt.close()
        ref.close()
    assert check(cluster).clean  # every write reached every copy, identically


def test_inline_commands_and_pipelines_match_too(cluster, plain):
    burst = (b"AUTH " + cluster.password.encode() + b"\r\n"
             b'set diff:greeting "hello world"\r\nGET diff:greeting\r\n'
             + b"".join(hiredis.pack_command(("INCR", "diff:counter")) for _ in range(500))
             + b"GET diff:counter\r\n")
    replies = []
    for port in (resp_port(cluster, 1), plain):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(burst + b"QUIT\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        replies.append(data)
    assert replies[0] == replies[1]
    assert replies[0].endswith(b"$3\r\n500\r\n+OK\r\n")


def test_dtriad_errors_for_what_it_does_not_serve(cluster):
    conn = Raw(resp_port(cluster))
    try:
        assert conn.command("GET", "k").startswith(b"-NOAUTH")
        assert conn.command("AUTH", "wrong").startswith(b"-WRONGPASS")
        assert conn.command("AUTH", cluster.password) == b"+OK\r\n"
        assert conn.command("DEBUG", "SLEEP", "0") == (
            b"-ERR unknown or unsupported command 'DEBUG'\r\n")
        assert conn.command("SWAPDB", "0", "1").startswith(b"-ERR dtriad serves a single database")
        assert conn.command("SELECT", "1").startswith(b"-ERR SELECT is not allowed")
        for index in ("1", "2", " 3"):  # database 1 holds the ring's fence, 2 the versions
            assert conn.command("COPY", "k", "dtriad:fence", "DB", index, "REPLACE") == (
                b"-ERR COPY ... DB is not allowed: dtriad serves database 0 only\r\n")
        too_big = conn.command("SET", "k", "x" * (MAX_VALUE + 1))
        assert too_big.startswith(b"-TOO_LARGE value is 65537 bytes; this cluster accepts "
                                  b"at most 65536 bytes")
        assert conn.command("SETRANGE", "k", str(MAX_VALUE), "x").startswith(b"-TOO_LARGE")
        assert conn.command("PING") == b"+PONG\r\n"  # the connection survived both
        assert conn.command("DBSIZE").startswith(b":")
        info = conn.command("INFO", "dtriad")
        assert b"ring_epoch:" in info and b"replicas:2" in info
        count = conn.command("COMMAND", "COUNT")
        assert int(count[1:]) == len(REDIS)
        assert b"mset" in conn.command("COMMAND", "INFO", "mset")
    finally:
        conn.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_as_an_application_uses_it(cluster, protocol):
    host, port = parse_address(cluster.nodes[2].resp)
    pool = redis.ConnectionPool(host=host, port=port, password=cluster.password,
                                decode_responses=True, protocol=protocol,
                                max_connections=16)
    r = redis.Redis(connection_pool=pool)
    prefix = f"app{protocol}"
    errors = []

    def worker(n: int) -> None:
        try:
            pipe = r.pipeline(transaction=False)
            for i in range(50):
                pipe.set(f"{prefix}:{n}:{i}", i)
                pipe.rpush(f"{prefix}:list:{n}", i)
            pipe.hset(f"{prefix}:h:{n}", mapping={"a": n, "b": "x"})
            pipe.execute()
            assert r.mget([f"{prefix}:{n}:{i}" for i in range(50)]) == [
                str(i) for i in range(50)]
            assert r.lrange(f"{prefix}:list:{n}", 0, -1) == [str(i) for i in range(50)]
            assert r.hgetall(f"{prefix}:h:{n}") == {"a": str(n), "b": "x"}
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert r.zadd(f"{prefix}:z", {"a": 1, "b": 2.5}) == 2
    assert r.zrange(f"{prefix}:z", 0, -1, withscores=True) in (
        [("a", 1.0), ("b", 2.5)], [["a", 1.0], ["b", 2.5]])
    assert r.set(f"{prefix}:k", "v", nx=True) and not r.set(f"{prefix}:k", "w", nx=True)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.incr(f"{prefix}:list:0")
    assert r.pipeline().set(f"{prefix}:x", 1).incr(f"{prefix}:x").execute() == [True, 2]
    pool.disconnect()
    assert check(cluster).clean


def redis_cli() -> str:
    return reference_redis_cli()


CLI_COMMANDS = [
    ["set", "cli:k", "hello world"], ["get", "cli:k"], ["get", "cli:none"],
    ["incr", "cli:n"], ["rpush", "cli:l", "a", "b"], ["lrange", "cli:l", "0", "-1"],
    ["lrange", "cli:none", "0", "-1"], ["incr", "cli:l"], ["hset", "cli:h", "f", "1"],
    ["hgetall", "cli:h"], ["type", "cli:l"], ["del", "cli:k", "cli:n"], ["ping"],
]


def test_redis_cli_one_shot_output_matches(cluster, plain):
    outputs = []
    for port in (resp_port(cluster, 1), plain):
        out = []
        for command in CLI_COMMANDS:
            for extra in ([], ["--raw"]):
                done = subprocess.run([redis_cli(), "-p", str(port), "-a", cluster.password,
                                       "--no-auth-warning", *extra, *command],
                                      capture_output=True, timeout=30)
                out.append((command, extra, done.returncode, done.stdout, done.stderr))
        outputs.append(out)
    for ours, theirs in zip(*outputs, strict=True):
        assert ours == theirs


def test_writes_through_resp_stop_at_a_master_that_does_not_answer(cluster):
    """Same rules as HTTP: a write whose master is down is refused with a
    clear error, reads are served by a backup, and the copies converge."""
    host, port = parse_address(cluster.nodes[0].resp)
    r = redis.Redis(host=host, port=port, password=cluster.password, socket_timeout=10,
                    protocol=2)
    victim = cluster.nodes[2]
    keys = []
    ring = cluster.ring()
    i = 0
    while len(keys) < 3:
        key = f"paused:{i}"
        if ring.preference_list(key)[0] == victim.redis:
            keys.append(key)
        i += 1
    for key in keys:
        r.set(key, "before")
    pid = local.Pids.load(cluster.directory).node(victim.name).redis
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(redis.ResponseError) as info:
            r.set(keys[0], "during")
        assert str(info.value).startswith("QUORUM write to key 'paused:")
        assert "held by 0 of 3 copies" in str(info.value)
        assert r.get(keys[1]) == b"before"  # answered by a backup
    finally:
        os.kill(pid, signal.SIGCONT)
    # The paused master may still apply the refused write when it wakes (the
    # error says so); the DTServer's repair queue then brings every copy to
    # the master's newest version, with nobody running 'dtriad check --repair'.
    wait_until(lambda: check(cluster).clean, 20, "the repair queue to converge the copies")
    values = {backend(cluster, node).get(keys[0]) for node in cluster.nodes}
    assert len(values) == 1 and values <= {b"before", b"during"}


def test_hundreds_of_connections_at_once(cluster):
    """200 clients connected together, each pipelining its own commands."""
    port = resp_port(cluster, 2)
    auth = hiredis.pack_command(("AUTH", cluster.password))

    async def client(n: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(auth + hiredis.pack_command(("SET", f"conn:{n}", n))
                     + hiredis.pack_command(("GET", f"conn:{n}")) + b"QUIT\r\n")
        data = await reader.read()  # until the server closes after QUIT
        writer.close()
        return data

    async def run_all() -> list[bytes]:
        return await asyncio.gather(*(client(n) for n in range(200)))

    replies = asyncio.run(run_all())
    for n, data in enumerate(replies):
        assert data == b"+OK\r\n+OK\r\n$%d\r\n%d\r\n+OK\r\n" % (len(str(n)), n)



@pytest.fixture
def big_values(tmp_path_factory):
    yield from quiet_cluster(tmp_path_factory, "late", 1 << 20)


def test_a_client_that_reads_late_gets_every_reply(big_values):
    """Ten replies of 1 MB fill the socket while the client sends without
    reading; a request sent then, while the session waits for the socket to
    drain, is answered too once the client reads (it used to wait forever)."""
    config = big_values
    value = b"v" * (1 << 20)
    setup = Raw(resp_port(config))
    setup.command("AUTH", config.password)
    assert setup.command("SET", "late:big", value) == b"+OK\r\n"
    setup.close()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills up quickly
    sock.connect(("127.0.0.1", resp_port(config)))
    sock.settimeout(20)
    get = hiredis.pack_command(("GET", "late:big"))
    sock.sendall(hiredis.pack_command(("AUTH", config.password)) + get * 10)
    time.sleep(1.5)  # the session answers all ten, then waits for the socket to drain
    sock.sendall(hiredis.pack_command(("ECHO", "last")))
    reader, replies = hiredis.Reader(), []
    while len(replies) < 12:
        chunk = sock.recv(1 << 20)
        assert chunk, f"closed after {len(replies)} replies"
        reader.feed(chunk)
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    sock.close()
    assert replies[0] == b"OK" and replies[1:11] == [value] * 10 and replies[11] == b"last"


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _resp_pid(config, node) -> int:
    """The PID of a node's RESP process (read from /proc, never signalled)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if b"resp" in argv and node.name.encode() in argv \
                    and str(config.directory).encode() in b" ".join(argv):
                return int(entry)
    raise AssertionError(f"no RESP process for {node.name}")


def test_a_flood_before_auth_is_refused_and_memory_stays_bounded(cluster):
    """Without AUTH only Redis 7's small requests are read: a huge argument
    count or a huge argument closes the connection with Redis's error before
    anything big is buffered, so 100 such connections sending 1 MiB chunks
    leave the RESP process's memory about where it was."""
    node = cluster.nodes[0]
    pid = _resp_pid(cluster, node)
    before = _rss_kib(pid)
    chunk = b"x" * (1 << 20)
    answers = []
    for n in range(100):
        sock = socket.create_connection(("127.0.0.1", resp_port(cluster)), timeout=10)
        head = b"*100000\r\n" if n % 2 else b"*2\r\n$4\r\nAUTH\r\n$104857600\r\n"
        try:
            sock.sendall(head)
            for _ in range(4):
                sock.sendall(chunk)
        except OSError:
            pass  # closed by the server while we were still sending: expected
        data = b""
        try:
            while b"\r\n" not in data and (more := sock.recv(4096)):
                data += more
        except OSError:
            pass
        answers.append(data.split(b"\r\n")[0])
        sock.close()
    assert set(answers) <= {b"-ERR Protocol error: unauthenticated multibulk length",
                            b"-ERR Protocol error: unauthenticated bulk length", b""}
    assert answers.count(b"") < 10  # the error arrives before the reset, nearly always
    grown = _rss_kib(pid) - before
    assert grown < 32 * 1024, f"the RESP process grew by {grown} KiB"
    ok = Raw(resp_port(cluster))  # and a real client is served as before
    assert ok.command("AUTH", cluster.password) == b"+OK\r\n"
    assert ok.command("PING") == b"+PONG\r\n"
    ok.close()


def test_commands_with_tens_of_thousands_of_arguments_work_as_in_redis(cluster, plain):
    """Lua's unpack stops near 8,000 values, so these used to fail with 'too
    many results to unpack' (and an MSET spanning nodes is a script per node).
    Each reply and the resulting data match a plain Redis."""
    mine = redis.Redis(port=resp_port(cluster), password=cluster.password, socket_timeout=60)
    theirs = redis.Redis(port=plain, password=cluster.password, socket_timeout=60)
    n = 20_000
    pairs = {f"big:{i}": i for i in range(n)}
    calls = [
        ("MSET", lambda r: r.mset(pairs)),
        ("MGET", lambda r: r.mget(list(pairs))),
        ("EXISTS", lambda r: r.exists(*pairs)),
        ("MSETNX taken", lambda r: r.msetnx(pairs)),
        ("MSETNX new", lambda r: r.msetnx({f"fresh:{i}": i for i in range(n)})),
        ("SADD", lambda r: r.sadd("big:set", *range(n))),
        ("SADD again", lambda r: r.sadd("big:set", *range(n // 2, n + n // 2))),
        ("SMISMEMBER", lambda r: r.smismember("big:set", list(range(0, 2 * n, 3)))),
        ("RPUSH", lambda r: r.rpush("big:list", *range(n))),
        ("LPUSH", lambda r: r.lpush("big:list", *range(n))),
        ("LRANGE", lambda r: r.lrange("big:list", 0, -1)),
        ("HSET", lambda r: r.hset("big:hash", mapping={f"f{i}": i for i in range(n)})),
        ("HMGET", lambda r: r.hmget("big:hash", [f"f{i}" for i in range(0, n + 10, 2)])),
        ("ZADD (one call)", lambda r: r.zadd("big:zset", {f"m{i}": i for i in range(3000)})),
        ("ZADD bad score", lambda r: r.execute_command(
            "ZADD", "big:zset2", *[x for i in range(2000) for x in (i, f"m{i}")], "x", "m")),
        ("ZCARD", lambda r: r.zcard("big:zset2")),
        ("ZMSCORE", lambda r: r.zmscore("big:zset", [f"m{i}" for i in range(n)])),
        ("SADD tagged", lambda r: r.sadd("{bs}:set", *range(100))),
        ("SUNION 5001 keys", lambda r: len(r.sunion("{bs}:set",
                                                    *[f"{{bs}}:none{i}" for i in range(5000)]))),
        ("PFADD", lambda r: r.pfadd("big:hll", *range(n))),
        ("SADD wrong type", lambda r: r.sadd("big:list", *range(n))),
        ("DEL", lambda r: r.delete(*pairs, "big:set", "big:hash")),
        ("DEL fresh", lambda r: r.delete(*[f"fresh:{i}" for i in range(n)])),
    ]
    for name, call in calls:
        results = []
        for client in (mine, theirs):
            try:
                results.append(call(client))
            except redis.ResponseError as e:
                results.append(("error", str(e).split()[0]))
        assert results[0] == results[1], name
    # ZADD is not split (a bad score in a later slice would leave earlier ones
    # applied): beyond one call it is refused whole, with the reason.
    with pytest.raises(redis.ResponseError, match="at most 7000 arguments of it at once"):
        mine.zadd("big:zset", {f"x{i}": i for i in range(n)})
    assert mine.zcard("big:zset") == 3000
    mine.delete("big:list", "big:zset", "big:zset2", "big:hll", "{bs}:set")
    mine.close()
    theirs.close()

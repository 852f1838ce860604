"""EVAL, EVALSHA and SCRIPT through a real cluster's RESP ports, with redis-py
as applications use it, and a plain Redis 6.2 as the reference for replies
and errors. Every copy of every key a script wrote must be identical
afterwards (read from each backend directly)."""

from __future__ import annotations

import socket
import threading

import hiredis
import pytest
import redis
from redis.lock import Lock

from dtriad.config import parse_address
from dtriad.core.scripts import META_DB, VERSION_DB
from dtriad.membership.check import check
from tests.conftest import backend, quiet_cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from quiet_cluster(tmp_path_factory, "scripts", 1024 * 1024)


def client(config, index: int = 0) -> redis.Redis:
    host, port = parse_address(config.nodes[index].resp)
    return redis.Redis(host=host, port=port, password=config.password, socket_timeout=20)


@pytest.fixture
def r(cluster):
    return client(cluster, 0)


@pytest.fixture
def r2(cluster):
    return client(cluster, 1)


@pytest.fixture
def ref(cluster, plain):
    conn = redis.Redis(port=plain, password=cluster.password, socket_timeout=20)
    conn.flushall()
    return conn


class Raw:
    """Raw RESP bytes of each reply, so a status and a bulk string differ."""

    def __init__(self, port: int, password: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        assert self.command("AUTH", password) == b"+OK\r\n"

    def command(self, *args) -> bytes:
        self.sock.sendall(hiredis.pack_command(args))
        reader, raw = hiredis.Reader(), b""
        while True:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed after {raw!r}"
            raw += chunk
            reader.feed(chunk)
            if reader.gets() is not False:
                return raw


def copies(config, key: str) -> list[tuple]:
    """Each copy's (type, value, version) of ``key``, in ring order."""
    out = []
    for node in config.ring().preference_list(key):
        conn = backend(config, node)
        kind = conn.type(key)
        value = {b"string": conn.get, b"list": lambda k, c=conn: c.lrange(k, 0, -1),
                 b"set": lambda k, c=conn: sorted(c.smembers(k)), b"hash": conn.hgetall,
                 b"zset": lambda k, c=conn: c.zrange(k, 0, -1, withscores=True),
                 b"none": lambda k: None}[kind](key)
        version = redis.Redis(host=conn.connection_pool.connection_kwargs["host"],
                              port=conn.connection_pool.connection_kwargs["port"],
                              **config.internal.kwargs(), db=VERSION_DB).get(key)
        out.append((kind, value, version))
    return out


def identical(config, *keys: str) -> None:
    for key in keys:
        states = copies(config, key)
        assert len(states) == 3
        assert all(s == states[0] for s in states), (key, states)
        assert states[0][2] is not None, f"{key}: no version"


def other_master_keys(config) -> tuple[str, str]:
    ring = config.ring()
    first = "x:0"
    for i in range(1, 1000):
        if ring.master(f"x:{i}") != ring.master(first):
            return first, f"x:{i}"
    raise AssertionError("no two masters")


# ------------------------------------------------------------------ replies

REPLIES = [
    ("return 1", 0),
    ("return 3.99", 0),
    ("return -2.5", 0),
    ("return 'bulk'", 0),
    ("return {ok='fine'}", 0),
    ("return redis.status_reply('PONG')", 0),
    ("return {1, 2, nil, 3}", 0),
    ("return {1, {ok='x'}, {err='ERR nested'}, 'b', false, true}", 0),
    ("return false", 0),
    ("return true", 0),
    ("return nil", 0),
    ("return {}", 0),
    ("return {double=1.5}", 0),
    ("return redis.call('SET', KEYS[1], ARGV[1])", 1, "{r}k", "v"),
    ("return redis.call('GET', KEYS[1])", 1, "{r}k"),
    ("return redis.call('TYPE', KEYS[1])", 1, "{r}k"),
    ("return redis.call('INCRBYFLOAT', KEYS[1], '1.5')", 1, "{r}f"),
    ("return {KEYS[1], ARGV[1], ARGV[2], #KEYS, #ARGV}", 1, "{r}k", "a", "b"),
    ("return redis.pcall('LPUSH', KEYS[1], 'x')", 1, "{r}k"),
    ("return {redis.pcall('LPUSH', KEYS[1], 'x')}", 1, "{r}k"),
    ("return redis.call('PING')", 0),
    ("return cjson.encode({a=1})", 0),
    ("return redis.sha1hex('')", 0),
    ("return {err='My Error'}", 0),
    ("return redis.error_reply('WRONGTYPE custom')", 0),
    ("local t = redis.call('HGETALL', KEYS[1]); return #t", 1, "{r}h"),
]


@pytest.mark.parametrize("call", REPLIES, ids=[c[0][:40] for c in REPLIES])
def test_replies_are_redis_s_byte_for_byte(cluster, plain, ref, call):
    mine, theirs = Raw(parse_address(cluster.nodes[0].resp)[1], cluster.password), \
        Raw(plain, cluster.password)
    mine.command("DEL", "{r}k", "{r}f")
    theirs.command("DEL", "{r}k", "{r}f")
    assert mine.command("EVAL", *call) == theirs.command("EVAL", *call)


ERRORS = [
    ("return redis.call('LPUSH', KEYS[1], 'x')\n", 1, "{e}str"),  # WRONGTYPE, line 1
    ("local a = 1\nlocal b = redis.call('LPUSH', KEYS[1], 'x')\nreturn b", 1, "{e}str"),
    ("local x = = 1", 0),
    ("return 'x'\nfoo(", 0),
    ("if true then", 0),
    ("return nil + 1", 0),
    ("local t = {}\nlocal y = t.x.y\nreturn y", 0),
    ("error('boom')", 0),
    ("return x", 0),
    ("x = 1", 0),
    ("local r = redis.call('NOPE')\nreturn r", 0),
    ("local r = redis.call()\nreturn r", 0),
    ("local r = redis.call('SET', KEYS[1], {})\nreturn r", 1, "{e}k"),
    ("local r = redis.call('GET', KEYS[1], 'extra')\nreturn r", 1, "{e}k"),
    ("local r = redis.call('EVAL', 'return 1', 0)\nreturn r", 0),
    ("local r = redis.call('BLPOP', KEYS[1], 0)\nreturn r", 1, "{e}k"),
    ("return 1", -1),
    ("return 1", 2, "a"),
    ("return 1", "x"),
]


@pytest.mark.parametrize("call", ERRORS, ids=[c[0][:40] for c in ERRORS])
def test_compile_and_runtime_errors_read_as_redis_s(cluster, r, ref, call):
    for conn in (r, ref):
        conn.set("{e}str", "text")
    with pytest.raises(redis.ResponseError) as mine:
        r.eval(*call)
    with pytest.raises(redis.ResponseError) as theirs:
        ref.eval(*call)
    assert str(mine.value) == str(theirs.value)


# ------------------------------------------------------------------ routing


def test_hash_tagged_multi_key_script_runs_once_and_every_copy_is_identical(cluster, r):
    keys = ["{acct}:a", "{acct}:b", "{acct}:log"]
    r.set(keys[0], 100)
    r.set(keys[1], 5)
    move = """
    local n = tonumber(ARGV[1])
    redis.call('DECRBY', KEYS[1], n)
    redis.call('INCRBY', KEYS[2], n)
    redis.call('RPUSH', KEYS[3], 'moved ' .. n)
    return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}
    """
    for _ in range(5):
        reply = r.eval(move, 3, *keys, 7)
    assert reply == [b"65", b"40"]
    assert r.lrange(keys[2], 0, -1) == [b"moved 7"] * 5
    identical(cluster, *keys)


def test_random_commands_leave_identical_copies(cluster, r):
    key = "{rand}:set"
    r.sadd(key, *range(200))
    out = r.eval("""
    local popped = redis.call('SPOP', KEYS[1], 5)
    redis.call('SADD', KEYS[2], redis.call('SRANDMEMBER', KEYS[1]))
    local t = redis.call('TIME')
    redis.call('SET', KEYS[3], t[1] .. '.' .. t[2])
    return popped
    """, 3, key, "{rand}:pick", "{rand}:time")
    assert len(out) == 5
    identical(cluster, key, "{rand}:pick", "{rand}:time")
    assert r.scard(key) == 195


def test_a_script_failing_midway_keeps_its_earlier_writes_on_every_copy(cluster, r, ref):
    src = "redis.call('SET', KEYS[1], 'done')\nredis.call('LPUSH', KEYS[2], 'x')\nreturn 1"
    for conn in (r, ref):
        conn.set("{mid}:b", "a string")
    errors = []
    for conn in (r, ref):
        with pytest.raises(redis.ResponseError) as e:
            conn.eval(src, 2, "{mid}:a", "{mid}:b")
        errors.append(str(e.value))
        assert conn.get("{mid}:a") == b"done"
    assert errors[0] == errors[1]
    identical(cluster, "{mid}:a", "{mid}:b")


def test_a_script_whose_keys_span_masters_runs_under_the_transaction_protocol(cluster, r,
                                                                             ref):
    """Keys on different masters: locked, the script run once over copies of
    them, its writes applied on each master and every copy. Replies, errors
    and results are plain Redis's."""
    k1, k2 = other_master_keys(cluster)
    src = """
    local n = redis.call('INCRBY', KEYS[1], ARGV[1])
    redis.call('RPUSH', KEYS[2], n)
    redis.call('PEXPIRE', KEYS[2], 100000)
    return {n, redis.call('LRANGE', KEYS[2], 0, -1), redis.status_reply('FINE')}
    """
    for conn in (r, ref):
        conn.delete(k1, k2)
        assert conn.eval(src, 2, k1, k2, 5) == [5, [b"5"], b"FINE"]
        assert conn.eval(src, 2, k1, k2, 2) == [7, [b"5", b"7"], b"FINE"]
        assert conn.get(k1) == b"7" and conn.lrange(k2, 0, -1) == [b"5", b"7"]
        assert 0 < conn.pttl(k2) <= 100000
    failing = "redis.call('SET', KEYS[1], 'x')\nredis.call('LPUSH', KEYS[2], 'y')"
    errors = []
    for conn in (r, ref):  # its first write stays, as in Redis
        with pytest.raises(redis.ResponseError) as e:
            conn.eval(failing, 2, k2, k1)
        errors.append(str(e.value).split(": ", 1)[1])
        assert conn.get(k2) == b"x" and conn.get(k1) == b"7"
    assert errors[0] == errors[1]
    sha = r.script_load("return redis.call('GET', KEYS[1]) .. redis.call('GET', KEYS[2])")
    assert client(cluster, 1).evalsha(sha, 2, k1, k2) == b"7x"
    identical(cluster, k1, k2)
    assert check(cluster).clean


def test_cross_node_scripts_are_isolated(cluster):
    """Scripts moving units between keys on different masters, from three
    DTServers at once: the total never changes and every move counts."""
    keys = other_master_keys(cluster)
    move = """
    local have = tonumber(redis.call('GET', KEYS[1]) or '0')
    redis.call('SET', KEYS[1], have - 1)
    redis.call('INCR', KEYS[2])
    return redis.call('INCR', KEYS[3])
    """
    client(cluster).mset({keys[0]: 100, keys[1]: 100, "{moves}": 0})

    def worker(i: int) -> None:
        c = client(cluster, i % 3)
        script = c.register_script(move)
        for n in range(20):
            src, dst = (keys[0], keys[1]) if (i + n) % 2 else (keys[1], keys[0])
            script(keys=[src, dst, "{moves}"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c = client(cluster)
    assert int(c.get(keys[0])) + int(c.get(keys[1])) == 200
    assert int(c.get("{moves}")) == 60
    identical(cluster, *keys, "{moves}")


def test_undeclared_keys_other_databases_and_unserved_commands_are_refused(cluster, r):
    r.set("{u}:declared", "v")
    cases = {
        "return redis.call('GET', '{u}:other')": "did not declare",
        "return redis.call('SELECT', 1)": "database 0 only",
        "return redis.pcall('SELECT', 2)": "database 0 only",
        "return redis.call('CONFIG', 'GET', 'requirepass')": "not allowed from scripts",
        "return redis.call('FLUSHALL')": "not served in scripts",
        "return redis.call('KEYS', '*')": "not served in scripts",
        "return redis.call('COPY', KEYS[1], KEYS[1] .. 'x', 'DB', 1)": "database 0 only",
        "return redis.call('SORT', KEYS[1], 'BY', 'w_*')": "BY/GET patterns",
        "return redis.call('PUBLISH', 'ch', 'm')": "PUBLISH",
        "return redis.call('DEBUG', 'SLEEP', 0)": "not allowed from scripts",
        "return redis.call('INFO')": "not served in scripts",
        "return redis.call('DEL', KEYS[1], 'other')": "did not declare",
        "return redis.call('ZUNIONSTORE', KEYS[1], 2, KEYS[1], 'o')": "did not declare",
        "return redis.call('XREAD', 'STREAMS', KEYS[1], 'o', 0, 0)": "did not declare",
        "return _G.redis.call('FLUSHALL')": "nil value",
        "return getfenv(0).redis.call('FLUSHALL')": "nil value",
        "return loadstring('return 1')()": "nil value",
        "return rawget(string, 'upper')": "refused",
        "return setmetatable(KEYS, {})": "refused",
    }
    for src, words in cases.items():
        with pytest.raises(redis.ResponseError) as e:
            r.eval(src, 1, "{u}:declared")
        assert words in str(e.value), (src, str(e.value))
    # numkeys 0 may touch no key
    with pytest.raises(redis.ResponseError, match="did not declare"):
        r.eval("return redis.call('SET', 'anything', 1)", 0)
    assert r.exists("anything") == 0


def test_dtriad_s_own_data_is_out_of_reach(cluster, r):
    master = backend(cluster, cluster.ring().master("dtriad:fence"))
    host = master.connection_pool.connection_kwargs["host"]
    port = master.connection_pool.connection_kwargs["port"]
    meta = redis.Redis(host=host, port=port, **cluster.internal.kwargs(), db=META_DB)
    fence = meta.get("dtriad:fence")
    assert fence is not None
    # declared, the name means the user's own key in database 0
    assert r.eval("return redis.call('GET', KEYS[1])", 1, "dtriad:fence") is None
    r.eval("return redis.call('SET', KEYS[1], 'mine')", 1, "dtriad:fence")
    assert meta.get("dtriad:fence") == fence
    assert r.get("dtriad:fence") == b"mine"
    r.delete("dtriad:fence")


def test_scripts_with_no_keys_run_anywhere(cluster, r):
    assert r.eval("return ARGV[1] .. ARGV[2]", 0, "a", "b") == b"ab"
    assert isinstance(r.eval("return redis.call('TIME')[1]", 0), bytes)


# ------------------------------------------------------------------ the cache


def test_register_script_through_one_dtserver_then_another(cluster, r, r2):
    src = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
    r.script_flush()
    one = r.register_script(src)
    assert one(keys=["{reg}:n"], args=[2]) == 2
    two = r2.register_script(src)
    assert two(keys=["{reg}:n"], args=[3]) == 5  # EVALSHA through the other DTServer
    assert r2.script_exists(one.sha) == [True]
    r2.script_flush()
    assert r.script_exists(one.sha, "0" * 40) == [False, False]
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha(one.sha, 1, "{reg}:n", 1)
    assert one(keys=["{reg}:n"], args=[1]) == 6  # NOSCRIPT, SCRIPT LOAD, EVALSHA
    assert r2.evalsha(one.sha, 1, "{reg}:n", 1) == 7
    identical(cluster, "{reg}:n")


def test_evalsha_works_after_eval_through_any_dtserver(cluster, r, r2):
    src = "return 'cached ' .. ARGV[1]"
    r.script_flush()
    assert r.eval(src, 0, "x") == b"cached x"
    sha = r2.script_load(src)
    assert r2.evalsha(sha, 0, "y") == b"cached y"
    assert client(cluster, 2).evalsha(sha.upper(), 0, "z") == b"cached z"


def test_script_load_of_a_bad_script_and_script_errors(cluster, r, ref):
    for conn in (r, ref):
        with pytest.raises(redis.ResponseError) as e:
            conn.script_load("return = 1")
        assert "Error compiling script" in str(e.value)
    with pytest.raises(redis.ResponseError, match="Unknown subcommand"):
        r.execute_command("SCRIPT", "NOPE")
    assert r.script_flush("ASYNC") is True


def test_redis_py_locks_work_through_two_dtservers(cluster, r, r2):
    lock = Lock(r, "{lock}:res", timeout=30)
    assert lock.acquire(blocking=False)
    assert not Lock(r2, "{lock}:res", timeout=30).acquire(blocking=False)
    assert lock.extend(10)
    assert lock.locked() and lock.owned()
    lock.release()
    other = Lock(r2, "{lock}:res", timeout=30)
    assert other.acquire(blocking=False)
    other.release()
    identical(cluster, "{lock}:res")


def test_a_script_waits_for_a_cross_node_transaction_s_lock(cluster, r):
    """A key a transaction locks (dtriad:locks in database 1 of its master)
    holds the script back until the lock goes; then it runs once."""
    import threading
    import time

    key = "{locked}:n"
    r.set(key, 1)
    master = backend(cluster, cluster.ring().master(key))
    kwargs = master.connection_pool.connection_kwargs
    meta = redis.Redis(host=kwargs["host"], port=kwargs["port"], **cluster.internal.kwargs(),
                       db=META_DB)
    meta.hset("dtriad:locks", key, f"tx-test coordinator {int(time.time() * 1000)}")
    ran = threading.Event()

    def run() -> None:
        assert client(cluster, 1).eval("return redis.call('INCR', KEYS[1])", 1, key) == 2
        ran.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert not ran.wait(0.3)  # held back by the lock
    meta.hdel("dtriad:locks", key)
    thread.join(30)
    assert ran.is_set()
    assert r.get(key) == b"2"
    identical(cluster, key)

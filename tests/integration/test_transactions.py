"""MULTI/EXEC/WATCH against a real local cluster and a plain redis-server.

Replies are compared byte for byte with Redis 6.2 for transactions on one
master and across masters; concurrent transactions are checked for
isolation and atomicity; a DTServer that stops at each step of a cross-node
transaction (driven step by step here) and a RESP process SIGKILLed under
load leave either all of a transaction or none of it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import hiredis
import pytest
import redis
import requests

from dtriad.backends.outcome import Pause
from dtriad.config import parse_address
from dtriad.core.commands import arity_error, lookup
from dtriad.core.dtcore import DTCore
from dtriad.core.scripts import LOCKS_KEY, META_DB
from dtriad.core.transactions import STALE_LOCK_S
from dtriad.membership.check import check
from dtriad.ops.procs import wait_until
from tests.conftest import quiet_cluster
from tests.integration.test_resp import Raw, script

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from quiet_cluster(tmp_path_factory, "transactions", 1 << 20)


def port(config, index: int = 0) -> int:
    return parse_address(config.nodes[index].resp)[1]


def client(config, index: int = 0, **options) -> redis.Redis:
    return redis.Redis(port=port(config, index), password=config.password, **options)


def locks(config) -> dict:
    """Every transaction lock left on any backend."""
    found = {}
    for node in config.nodes:
        meta = redis.Redis(host=node.redis_host, port=node.redis_port, db=META_DB,
                           **config.internal.kwargs())
        found.update(meta.hgetall(LOCKS_KEY))
        meta.close()
    return found


def masters_of(config, keys) -> set[str]:
    core = DTCore(config)
    try:
        view = core.view
        return {view.route(k).direct[0] for k in keys}
    finally:
        core.close()


def spread(config, prefix: str, count: int) -> list[str]:
    """``count`` keys named ``prefix...`` whose masters are not all the same
    (node addresses, so positions, differ from run to run)."""
    for attempt in range(100):
        keys = [f"{prefix}{attempt}:{i}" for i in range(count)]
        if len(masters_of(config, keys)) >= 2:
            return keys
    raise AssertionError("no keys on two masters")


def parsed(raw: bytes) -> list:
    reader = hiredis.Reader(replyError=str)
    reader.feed(raw)
    return reader.gets()


def queueable(command: tuple) -> bool:
    spec = lookup(command[0])
    return (spec is not None and spec.name not in ("select", "ping", "echo")
            and not arity_error(spec, len(command)))


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("where", ["one-master", "across"])
def test_exec_answers_as_redis_does_byte_for_byte(cluster, plain, protocol, where):
    """Every data command of the RESP suite's script inside one MULTI/EXEC:
    its keys all under one hash tag (one master) or spread over the ring."""
    prefix = f"{{tx{protocol}}}" if where == "one-master" else f"tx{protocol}{where}"
    commands = [c for c in script(prefix) if queueable(c)]
    keys = {c[1] for c in commands if len(c) > 1 and str(c[1]).startswith(prefix)}
    assert (len(masters_of(cluster, keys)) == 1) == (where == "one-master")
    dt, ref = Raw(port(cluster)), Raw(plain)
    try:
        for conn in (dt, ref):
            conn.command(*(("HELLO", "3", "AUTH", "default", cluster.password)
                           if protocol == 3 else ("AUTH", cluster.password)))
        replies = []
        for conn in (dt, ref):
            assert conn.command("MULTI") == b"+OK\r\n"
            for command in commands:
                assert conn.command(*command) == b"+QUEUED\r\n", command
            replies.append(conn.command("EXEC"))
        if replies[0] != replies[1]:
            ours, theirs = (parsed(r) for r in replies)
            assert [(c, o, t) for c, o, t in zip(commands, ours, theirs, strict=True)
                    if o != t] == []
            assert replies[0] == replies[1]
        assert replies[0].count(b"\r\n-") > 5  # runtime errors are per command
    finally:
        dt.close()
        ref.close()
    assert check(cluster).clean  # every copy took the transaction's effect


def test_errors_and_edge_cases_match_redis(cluster, plain):
    dt, ref = Raw(port(cluster)), Raw(plain)
    cases = [
        ("EXEC",), ("DISCARD",), ("MULTI",), ("MULTI",), ("SET", "e:a", "1"),
        ("GET",), ("NOSUCH", "x", "y"), ("WATCH", "e:a"), ("EXEC",),
        ("GET", "e:a"),
        ("MULTI",), ("SET", "e:a", "2"), ("DISCARD",), ("GET", "e:a"),
        ("MULTI",), ("UNWATCH",), ("PING",), ("ECHO", "hi"), ("INCR", "e:b"), ("EXEC",),
        ("MULTI",), ("EXEC",),
        ("WATCH", "e:a", "e:b"), ("UNWATCH",), ("SET", "e:a", "3"), ("MULTI",),
        ("GET", "e:a"), ("EXEC",),
        ("MULTI",), ("SET", "e:c", "x"), ("RESET",), ("EXEC",), ("GET", "e:c"),
        # blocking commands run without waiting inside MULTI
        ("MULTI",), ("RPUSH", "e:l", "a", "b"), ("BLPOP", "e:none", "e:l", "0"),
        ("BRPOP", "e:none", "0"), ("BLMOVE", "e:l", "e:l2", "LEFT", "RIGHT", "0"),
        ("BRPOPLPUSH", "e:l2", "e:l3", "0"), ("BLPOP", "e:c", "0"), ("ZADD", "e:z", "1", "m"),
        ("BZPOPMIN", "e:z", "0"), ("BZPOPMAX", "e:z", "0"), ("XADD", "e:s", "1-1", "f", "v"),
        ("XREAD", "BLOCK", "0", "STREAMS", "e:s", "0"), ("EXEC",), ("LRANGE", "e:l3", "0", "-1"),
        # scripts inside MULTI, on one master and across masters
        ("MULTI",), ("SET", "e:a", "5"),
        ("EVAL", "redis.call('INCR', KEYS[1]) return {redis.call('GET', KEYS[1]), "
                 "redis.call('LPOP', KEYS[2]), ARGV[1]}", "2", "e:a", "e:l3", "x"),
        ("EVALSHA", "0" * 40, "0"), ("EVAL", "return redis.call('INCR', KEYS[1])", "1", "e:l3"),
        ("EVAL", "return 1 +", "0"), ("EVAL", "return ARGV[1]", "0", "keyless"),
        ("INCR", "e:a"), ("EXEC",),
        ("MULTI",), ("SET", "{e}:a", "1"), ("EVAL", "return redis.call('INCR', KEYS[1])", "1",
                                             "{e}:a"), ("GET", "{e}:a"), ("EXEC",),
        ("MULTI",), ("EVAL", "return ARGV[1]", "0", "only"), ("EXEC",),
        ("GET", "e:a"), ("LRANGE", "e:l3", "0", "-1"),
        ("WATCH", "e:wk"), ("SET", "e:wk", "1"), ("MULTI",), ("EVAL", "return 1", "0"),
        ("EXEC",),  # a WATCHed key changed: nil, even for key-less scripts
        ("MULTI",), ("SET", "e:bk", "x"), ("ZPOPMIN", "e:zz", "0"), ("EXEC",), ("GET", "e:bk"),
    ]
    try:
        mismatches = []
        for conn in (dt, ref):
            conn.command("AUTH", cluster.password)
        for command in cases:
            if command == ("RESET",):
                for conn in (dt, ref):
                    assert conn.command(*command) == b"+RESET\r\n"
                    conn.command("AUTH", cluster.password)
                continue
            ours, theirs = dt.command(*command), ref.command(*command)
            if ours != theirs:
                mismatches.append(f"{command}: dtriad {ours!r} != redis {theirs!r}")
        assert not mismatches, "\n".join(mismatches)
    finally:
        dt.close()
        ref.close()


def test_what_dtriad_cannot_run_inside_multi_says_why(cluster):
    conn = Raw(port(cluster))
    try:
        conn.command("AUTH", cluster.password)
        conn.command("MULTI")
        assert conn.command("KEYS", "*").startswith(
            b"-ERR KEYS inside MULTI is not served: it asks every node")
        assert conn.command("EXEC").startswith(b"-EXECABORT")
    finally:
        conn.close()


def test_watch_sees_a_write_through_any_front_end(cluster):
    """A WATCHed key written through another DTServer's RESP port or over
    HTTP makes EXEC answer nil; an untouched one lets it run."""
    r, other = client(cluster, 0), client(cluster, 1)
    r.set("w:k", "1")
    for write in (lambda: other.set("w:k", "2"),
                  lambda: requests.get(f"{cluster.nodes[2].http}/set", timeout=10,
                                       params={"key": "w:k", "value": "3"})):
        with r.pipeline() as p:
            p.watch("w:k", "w:other")
            write()
            p.multi()
            p.set("w:k", "mine")
            p.set("w:other", "mine")
            with pytest.raises(redis.WatchError):
                p.execute()
        assert r.get("w:other") is None
    with r.pipeline() as p:
        p.watch("w:k")
        value = p.get("w:k")
        p.multi()
        p.set("w:k", value + b"!")
        assert p.execute() == [True]
    assert r.get("w:k") == b"3!"


def test_optimistic_locking_counts_every_increment(cluster):
    """redis-py's transaction() helper (WATCH, read, MULTI, write, retry on
    WatchError) from threads on three DTServers: no increment is lost."""
    threads, per_thread = 6, 15
    a, b = spread(cluster, "opt", 2)

    def worker(i: int) -> None:
        r = client(cluster, i % 3)
        for _ in range(per_thread):
            def move(pipe):
                x = int(pipe.get(a) or 0)
                pipe.multi()
                pipe.set(a, x + 1)
                pipe.incr(b)
            r.transaction(move, a)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    r = client(cluster)
    assert int(r.get(a)) == int(r.get(b)) == threads * per_thread


def test_cross_node_transactions_are_isolated(cluster):
    """Writers move units between keys on different masters in
    transactions while readers read all of them in transactions: every read
    sees the total unchanged, and the end state counts every transfer."""
    keys = spread(cluster, "iso", 4)
    client(cluster).mset({k: 100 for k in keys})
    stop, seen, errors = threading.Event(), [], []

    def writer(i: int) -> None:
        r = client(cluster, i % 3)
        for n in range(30):
            src, dst = keys[(i + n) % 4], keys[(i + n + 1) % 4]
            p = r.pipeline()
            p.decrby(src, 3)
            p.incrby(dst, 3)
            p.incr("iso:count")
            p.execute()

    def reader(i: int) -> None:
        r = client(cluster, i % 3)
        while not stop.is_set():
            p = r.pipeline()
            for k in keys:
                p.get(k)
            try:
                seen.append(sum(int(v) for v in p.execute()))
            except redis.RedisError as e:
                errors.append(e)

    writers = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    readers = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not errors
    assert seen and set(seen) == {400}
    r = client(cluster)
    assert sum(int(v) for v in r.mget(keys)) == 400
    assert int(r.get("iso:count")) == 4 * 30
    assert not locks(cluster)
    assert check(cluster).clean


class StopAt(Exception):
    """The driver stops here, as if its process had been SIGKILLed."""


def run_until(steps, client, script_name: str):
    """Drive a transaction's steps until the effect running ``script_name``
    (a TXN_* script, matched by its first line) has been performed, then
    abandon it: the DTServer 'dies' right after that step."""
    from dtriad.core import scripts
    target = getattr(scripts, script_name)
    reply, error = None, None
    while True:
        effect = steps.throw(error) if error is not None else steps.send(reply)
        error = None
        if isinstance(effect, Pause):
            time.sleep(effect.seconds)
            reply = None
            continue
        try:
            reply = client.perform(effect)
        except Exception as e:  # noqa: BLE001
            reply, error = None, e
        if getattr(effect, "args", (None, None))[1] == target:
            return


@pytest.mark.parametrize("dies_after, applied", [
    ("TXN_LOCK", False), ("TXN_SCRATCH", False), ("TXN_COMMIT", True), ("TXN_APPLY", True)])
def test_a_transaction_whose_dtserver_dies_is_finished_or_rolled_back(cluster, dies_after,
                                                                      applied):
    """A DTServer stops after each step of a cross-node transaction. Before
    the commit point nothing of it is ever applied; after it, all of it is.
    Either way the locks go: a write to a locked key waits, resolves the
    stale lock and then runs."""
    a, b = f"die:{dies_after}:a", f"die:{dies_after}:b"
    core = DTCore(cluster)
    try:
        while len({core.view.route(k).direct[0] for k in (a, b)}) < 2:
            a, b = a + "x", b + "y"
        r = client(cluster, 1)
        r.mset({a: "old", b: "old"})
        txn = core.requests.transactions
        queued = [txn.queued(["SET", a, "new"]), txn.queued(["SET", b, "new"])]
        run_until(txn.execute(queued, {}), core.client, dies_after)
    finally:
        core.close()
    # a's master (the coordinator) locks first and applies first: after its
    # apply only b is still locked
    locked = b if dies_after == "TXN_APPLY" else a
    assert locked.encode() in locks(cluster)
    started = time.monotonic()
    r.append(locked, "+")  # waits for the lock, resolves it, then runs
    assert time.monotonic() - started >= STALE_LOCK_S - 0.5  # it waited for the lock
    expected = b"new" if applied else b"old"
    p = r.pipeline()  # a transaction: it waits for the other lock too
    p.get(a)
    p.get(b)
    assert p.execute() == [expected + (b"+" if locked == a else b""),
                           expected + (b"+" if locked == b else b"")]
    wait_until(lambda: not locks(cluster), timeout=15, what="the locks resolved")
    # a part applied on a master whose DTServer died before its backups took
    # it is a repair intent: the repair threads' sweep settles it (10 s)
    wait_until(lambda: check(cluster).clean, timeout=40, what="every copy equal")


def test_a_commit_whose_reply_is_lost_is_still_applied_everywhere(cluster):
    """The coordinator commits, but its reply never reaches the DTServer (a
    stall past the backend timeout, a broken connection). The DTServer keeps
    its locks, asks the coordinator for the decision, finds it committed and
    applies every part: never some masters only."""
    a, b = spread(cluster, "lost", 2)
    r = client(cluster, 1)
    r.mset({a: "old", b: "old"})
    core = DTCore(cluster)
    try:
        txn = core.requests.transactions
        steps = txn.execute([txn.queued(["SET", a, "new"]), txn.queued(["SET", b, "new"])], {})
        run_until(steps, core.client, "TXN_COMMIT")  # the commit ran...
        with pytest.raises(StopIteration) as done:  # ...and its reply is lost
            error = redis.TimeoutError("Timeout reading from the coordinator")
            effect = steps.throw(error)
            while True:
                reply = core.client.perform(effect) if not isinstance(effect, Pause) else None
                effect = steps.send(reply)
        assert done.value.value == [b"OK", b"OK"]
    finally:
        core.close()
    assert r.mget([a, b]) == [b"new", b"new"]
    assert not locks(cluster)
    assert check(cluster).clean


def resp_process(config, node: str) -> int:
    """PID of the RESP front end of ``node`` (a child of its ``dtriad serve``)."""
    directory = str(Path(config.directory))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [a.decode(errors="replace") for a in argv]
        if "resp" in text and "--node" in text and text[text.index("--node") + 1] == node \
                and any(directory in a for a in text):
            return int(entry.name)
    raise AssertionError(f"no RESP process for {node}")


@pytest.mark.slow
def test_sigkill_of_a_resp_process_under_transactions_leaves_each_all_or_nothing(tmp_path):
    """Clients run cross-node transactions (the same increment on four keys)
    through one DTServer's RESP port; its process is SIGKILLed mid-stream.
    Afterwards, read through another DTServer, the four keys are equal: every
    transaction was applied everywhere or nowhere."""
    gen = quiet_cluster(tmp_path_factory_like(tmp_path), "kill", 1 << 20)
    config = next(gen)
    try:
        keys = spread(config, "kill", 4)
        client(config, 1).mset({k: 0 for k in keys})
        stop = threading.Event()
        done = [0]

        def hammer() -> None:
            r = client(config, 0, socket_timeout=5)
            while not stop.is_set():
                p = r.pipeline()
                for k in keys:
                    p.incr(k)
                try:
                    p.execute()
                    done[0] += 1
                except redis.RedisError:
                    return

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: done[0] >= 20, timeout=60, what="transactions running")
        os.kill(resp_process(config, config.nodes[0].name), signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        reader = client(config, 1)

        def settled() -> bool:
            p = reader.pipeline()  # a transaction: waits for (and resolves) any lock
            for k in keys:
                p.get(k)
            values = p.execute()
            return len(set(values)) == 1
        wait_until(settled, timeout=30, what="the four keys equal")
        values = [int(v) for v in reader.mget(keys)]
        assert values[0] >= done[0]  # every acknowledged transaction is there
        wait_until(lambda: not locks(config), timeout=30, what="no lock left")
        wait_until(lambda: check(config).clean, timeout=40, what="every copy equal")
    finally:
        next(gen, None)  # runs the fixture's teardown: local.down (close() would skip it)


def tmp_path_factory_like(tmp_path):
    class Factory:
        @staticmethod
        def mktemp(name: str):
            path = tmp_path / name
            path.mkdir()
            return path
    return Factory()


def test_publish_inside_multi_reaches_subscribers_after_the_writes(cluster):
    """Celery's result backend: MULTI, SETEX the result, PUBLISH its key,
    EXEC. The subscriber (on another DTServer) is told once the value is
    there; EXEC answers the receiver count in PUBLISH's place."""
    sub = client(cluster, 2).pubsub()
    sub.subscribe("pub:ready")
    assert sub.get_message(timeout=10)["type"] == "subscribe"
    p = client(cluster, 0).pipeline()
    p.setex("pub:result", 100, "42")
    p.publish("pub:ready", "pub:result")
    p.incr("pub:other")
    assert p.execute() == [True, 1, 1]
    message = sub.get_message(timeout=10)
    assert message["data"] == b"pub:result"
    assert client(cluster, 1).get(message["data"]) == b"42"
    sub.close()


def test_commands_that_need_a_connection_are_refused_over_http(cluster):
    """MULTI, SUBSCRIBE, PUBLISH... over HTTP would leave a pooled backend
    connection in a transaction or in subscribed mode: refused, saying where
    to send them, and the DTServer keeps answering."""
    http = cluster.nodes[0].http
    for argv in (["MULTI"], ["EXEC"], ["WATCH", "h:k"], ["SUBSCRIBE", "h:ch"],
                 ["PUBLISH", "h:ch", "m"], ["PSUBSCRIBE", "*"]):
        for _ in range(3):  # as often as the worker has pooled connections to reuse
            reply = requests.get(f"{http}/command", timeout=10,
                                 params=[("arg", a) for a in argv]).json()
            assert "RESP port" in reply["error"], (argv, reply)
    requests.get(f"{http}/set", params={"key": "h:k", "value": "v"}, timeout=10)
    assert requests.get(f"{http}/get", params={"key": "h:k"}, timeout=10).json() == "v"


def test_an_mset_across_masters_is_all_or_nothing(cluster):
    """MSET (and MSETNX) with keys on several masters run under the
    transaction protocol: a master that does not answer leaves none of the
    keys written (Redis's MSET is atomic), where the keys of the other masters
    used to be written first."""
    from dtriad.ops import cluster as local

    keys = spread(cluster, "ms", 6)
    r = client(cluster)
    assert r.mset({k: "before" for k in keys})
    victim = next(n for n in cluster.nodes
                  if n.redis in masters_of(cluster, keys[-1:]))
    pid = local.Pids.load(cluster.directory).node(victim.name).redis
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(redis.ResponseError):
            r.mset({k: "during" for k in keys})
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: not locks(cluster), timeout=20, what="no lock left")
    assert r.mget(keys) == [b"before"] * len(keys)
    assert r.msetnx({keys[0]: "x", f"{keys[-1]}:new": "x"}) is False  # keys[0] exists
    assert r.exists(f"{keys[-1]}:new") == 0
    assert r.msetnx({f"{k}:new": "y" for k in keys}) is True
    assert r.mget([f"{k}:new" for k in keys]) == [b"y"] * len(keys)
    wait_until(lambda: check(cluster).clean, timeout=30, what="every copy equal")

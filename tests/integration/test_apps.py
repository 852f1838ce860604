"""Real applications, unchanged, on a local cluster's RESP ports.

Each test runs a Redis-using library the way its users do, pointed at one
node's RESP port (producers, workers and readers on different nodes where it
matters), with its keys spread over the ring's masters: redis-py (MULTI/EXEC
pipelines, WATCH, ``Lock``, pub/sub, blocking pops, ``scan_iter``,
``redis.asyncio``), RQ, Celery (Redis broker and result backend), django-redis,
Dramatiq, Huey and limits. Workers are real subprocesses
(:class:`tests.integration.apps.Worker`), stopped by PID. The tests assert what
the application observes: results, counts, values.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import redis

from dtriad.config import parse_address
from tests.conftest import quiet_cluster
from tests.integration.apps import Worker, console_script

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
WAIT = 60  # seconds an application may take to see a result it waits for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from quiet_cluster(tmp_path_factory, "apps", 1024 * 1024)


def resp_port(config, index: int) -> int:
    return parse_address(config.nodes[index].resp)[1]


def url(config, index: int) -> str:
    """The URL an application is given: ``redis://:password@127.0.0.1:PORT/0``."""
    return f"redis://:{quote(config.password, safe='')}@127.0.0.1:{resp_port(config, index)}/0"


def client(config, index: int, **options) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=resp_port(config, index), password=config.password,
                       decode_responses=True, **options)


def spread(config, prefix: str) -> list[str]:
    """One key per master, in the nodes' order: ``prefix:N`` for the first N
    that each node masters."""
    ring, found = config.ring(), {}
    for i in itertools.count():
        found.setdefault(ring.master(f"{prefix}:{i}"), f"{prefix}:{i}")
        if len(found) == len(config.nodes):
            return [found[node.redis] for node in config.nodes]


def masters(config, keys) -> set[str]:
    ring = config.ring()
    return {ring.master(key) for key in keys}


def fresh(module: str):
    """Import ``module`` anew: it reads its RESP URL from the environment at import."""
    if module in sys.modules:
        return importlib.reload(sys.modules[module])
    return importlib.import_module(module)


def blocked(pool: ThreadPoolExecutor, call):
    """Start ``call`` in a thread; it must still be waiting half a second later."""
    future = pool.submit(call)
    time.sleep(0.5)
    assert not future.done(), f"returned without waiting: {future.result()!r}"
    return future


# ------------------------------------------------------------------ redis-py
def test_redis_py_transaction_pipeline_with_keys_on_every_node(cluster):
    a, b, c = spread(cluster, "apps:txn")
    r, other = client(cluster, 0), client(cluster, 1)
    assert len(masters(cluster, [a, b, c])) == 3

    pipe = r.pipeline()  # transaction=True: MULTI ... EXEC
    pipe.set(a, "1").incr(b).rpush(c, "x", "y").get(a).lrange(c, 0, -1)
    assert pipe.execute() == [True, 1, 2, "1", ["x", "y"]]
    assert (other.get(a), other.get(b), other.lrange(c, 0, -1)) == ("1", "1", ["x", "y"])

    # A command failing at EXEC (INCR of a list) fails alone; the others apply.
    pipe = r.pipeline()
    pipe.set(a, "2").incr(c).get(a)
    replies = pipe.execute(raise_on_error=False)
    assert replies[0] is True and replies[2] == "2"
    assert isinstance(replies[1], redis.ResponseError) and "WRONGTYPE" in str(replies[1])

    # A command refused while queued (wrong arity) discards the whole transaction.
    pipe = r.pipeline()
    pipe.set(a, "3").execute_command("SET", b)
    with pytest.raises(redis.ResponseError):
        pipe.execute()
    assert (other.get(a), other.get(b)) == ("2", "1")


def test_redis_py_watch_optimistic_locking(cluster):
    a, b, c = spread(cluster, "apps:watch")
    r, other = client(cluster, 0), client(cluster, 1)
    r.set(a, "10")
    r.set(b, "0")

    with r.pipeline() as pipe:  # a concurrent change through another node: WatchError
        pipe.watch(a, b)
        value = int(pipe.get(a))
        other.incr(b)
        pipe.multi()
        pipe.set(a, value + 1)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.get(a) == "10"

    with r.pipeline() as pipe:  # no change: EXEC applies
        pipe.watch(a, b)
        value = int(pipe.get(a))
        pipe.multi()
        pipe.set(a, value + 1).incr(c)
        assert pipe.execute() == [True, 1]
    assert other.get(a) == "11"

    # The usual retry loop (Redis.transaction) from four clients on three nodes.
    counter, rounds = spread(cluster, "apps:watch:counter")[2], 15

    def bump(pipe):
        current = int(pipe.get(counter) or 0)
        pipe.multi()
        pipe.set(counter, current + 1)

    def work(index):
        mine = client(cluster, index % 3)
        for _ in range(rounds):
            mine.transaction(bump, counter)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert other.get(counter) == str(4 * rounds)


def test_redis_py_lock(cluster):
    from redis.exceptions import LockNotOwnedError

    name = spread(cluster, "apps:lock")[1]
    r, other = client(cluster, 0), client(cluster, 2)
    first = r.lock(name, timeout=20)
    assert first.acquire(blocking=False)
    assert first.owned() and first.locked()
    assert other.lock(name, timeout=20).acquire(blocking=False) is False

    assert first.extend(30)  # Lua: the TTL grows by 30 s
    assert other.pttl(name) > 30_000

    # thread_local=False: acquired in a thread, checked and released here
    second = other.lock(name, timeout=20, sleep=0.05, blocking_timeout=WAIT, thread_local=False)
    with ThreadPoolExecutor(1) as pool:
        waiting = blocked(pool, second.acquire)
        first.release()  # Lua: deletes only our own token
        assert waiting.result(WAIT) is True
    assert second.owned() and not first.owned()
    assert r.get(name) == second.local.token.decode()
    second.release()
    assert r.get(name) is None

    third = r.lock(name, timeout=20)
    assert third.acquire(blocking=False)
    other.set(name, "someone else")
    with pytest.raises(LockNotOwnedError):
        third.release()
    assert r.get(name) == "someone else"


def test_redis_py_pubsub_across_nodes(cluster):
    sub, pub, third = client(cluster, 0), client(cluster, 1), client(cluster, 2)
    p = sub.pubsub()
    p.subscribe("apps:chan")
    p.psubscribe("apps:news.*")
    confirmations = [p.get_message(timeout=10) for _ in range(2)]
    assert [(m["type"], m["channel"], m["data"]) for m in confirmations] == [
        ("subscribe", "apps:chan", 1), ("psubscribe", "apps:news.*", 2)]

    assert sub.publish("apps:chan", "local") == 1  # published on the subscriber's node
    pub.publish("apps:chan", "hello")  # on another node
    pub.publish("apps:news.sports", "goal")
    got = [p.get_message(timeout=10) for _ in range(3)]
    assert [(m["type"], m["channel"], m["data"]) for m in got] == [
        ("message", "apps:chan", "local"), ("message", "apps:chan", "hello"),
        ("pmessage", "apps:news.sports", "goal")]
    assert got[2]["pattern"] == "apps:news.*"
    assert sub.pubsub_numsub("apps:chan") == [("apps:chan", 1)]
    assert sub.pubsub_numpat() == 1
    assert "apps:chan" in sub.pubsub_channels("apps:*")
    p.close()

    # listen() in a thread, messages from a third node, in the order sent.
    listener = sub.pubsub()
    listener.subscribe("apps:stream")
    assert listener.get_message(timeout=10)["type"] == "subscribe"
    sent = [f"m{i}" for i in range(20)] + ["stop"]

    def listen():
        received = []
        for message in listener.listen():
            if message["type"] == "message":
                received.append(message["data"])
                if message["data"] == "stop":
                    return received

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(listen)
        for data in sent:
            third.publish("apps:stream", data)
        assert future.result(WAIT) == sent
    listener.unsubscribe()
    listener.close()


def test_redis_py_blocking_pops_woken_through_another_node(cluster):
    a, b, c = spread(cluster, "apps:block")
    waiter = client(cluster, 0)  # no socket timeout: the commands wait
    pusher, third = client(cluster, 1), client(cluster, 2)

    with ThreadPoolExecutor(1) as pool:
        popped = blocked(pool, lambda: waiter.blpop([a, b], timeout=WAIT))
        assert pusher.rpush(b, "x") == 1
        assert tuple(popped.result(WAIT)) == (b, "x")

        assert waiter.brpop([a], timeout=1) is None  # the timeout: nil

        moved = blocked(pool, lambda: waiter.blmove(a, c, WAIT, "LEFT", "RIGHT"))
        third.rpush(a, "m1", "m2")
        assert moved.result(WAIT) == "m1"
        assert pusher.lrange(c, 0, -1) == ["m1"] and pusher.lrange(a, 0, -1) == ["m2"]

        zset = spread(cluster, "apps:block:z")[0]
        zpopped = blocked(pool, lambda: waiter.bzpopmin([zset], timeout=WAIT))
        pusher.zadd(zset, {"low": 1, "high": 2})
        assert tuple(zpopped.result(WAIT)) == (zset, "low", 1.0)

        stream = spread(cluster, "apps:block:s")[1]
        read = blocked(pool, lambda: waiter.xread({stream: "$"}, block=WAIT * 1000))
        entry = third.xadd(stream, {"field": "value"})
        reply = read.result(WAIT)
        entries = reply[stream][0] if isinstance(reply, dict) else dict(reply)[stream]
        assert [tuple(e) for e in entries] == [(entry, {"field": "value"})]


def test_redis_py_scan_iter(cluster):
    r, other = client(cluster, 0), client(cluster, 1)
    keys = {f"apps:scan:{i}" for i in range(300)} | set(spread(cluster, "apps:scan"))
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.set(key, "v")
    pipe.execute()
    assert len(masters(cluster, keys)) == 3  # spread() adds one key per master

    seen = list(other.scan_iter(match="apps:scan:*", count=37))
    assert len(seen) == len(keys) and set(seen) == keys

    fields = {f"f{i}": str(i) for i in range(500)}
    other.hset("apps:scan:hash", mapping=fields)
    assert dict(r.hscan_iter("apps:scan:hash", count=50)) == fields
    r.sadd("apps:scan:set", *fields)
    assert set(other.sscan_iter("apps:scan:set", match="f1*")) == {f for f in fields
                                                                 if f.startswith("f1")}


def test_redis_py_asyncio(cluster):
    import redis.asyncio as aredis
    from redis.exceptions import WatchError

    a, b, c = spread(cluster, "apps:async")

    def aclient(index):
        return aredis.Redis(host="127.0.0.1", port=resp_port(cluster, index),
                            password=cluster.password, decode_responses=True)

    async def main():
        r, other, third = aclient(0), aclient(1), aclient(2)
        try:
            async with r.pipeline() as pipe:  # MULTI/EXEC over three masters
                pipe.set(a, "1").incr(b).rpush(c, "x")
                assert await pipe.execute() == [True, 1, 1]
            assert await other.mget([a, b]) == ["1", "1"]

            async with r.pipeline() as pipe:
                await pipe.watch(a)
                await pipe.get(a)
                await other.set(a, "changed")
                pipe.multi()
                pipe.set(a, "mine")
                with pytest.raises(WatchError):
                    await pipe.execute()
            assert await r.get(a) == "changed"

            name = spread(cluster, "apps:async:lock")[0]
            first = r.lock(name, timeout=20)
            assert await first.acquire(blocking=False)
            second = other.lock(name, timeout=20, sleep=0.05, blocking_timeout=WAIT)
            waiting = asyncio.create_task(second.acquire())
            await asyncio.sleep(0.5)
            assert not waiting.done()
            await first.extend(10)
            await first.release()
            assert await asyncio.wait_for(waiting, WAIT) is True
            await second.release()
            assert await third.get(name) is None

            p = r.pubsub()
            await p.subscribe("apps:achan")
            assert (await p.get_message(timeout=10))["type"] == "subscribe"
            await other.publish("apps:achan", "hi")
            message = await p.get_message(ignore_subscribe_messages=True, timeout=10)
            assert (message["channel"], message["data"]) == ("apps:achan", "hi")
            await p.aclose()

            empty, woken = spread(cluster, "apps:async:pop")[:2]
            popped = asyncio.create_task(r.blpop([empty, woken], timeout=WAIT))
            await asyncio.sleep(0.5)
            assert not popped.done()
            await third.rpush(woken, "woken")
            assert tuple(await asyncio.wait_for(popped, WAIT)) == (woken, "woken")

            seen = [key async for key in other.scan_iter(match="apps:async:*")]
            assert sorted(seen) == sorted({a, b, c})
        finally:
            for each in (r, other, third):
                await each.aclose()

    asyncio.run(main())


# ------------------------------------------------------------------ RQ
def test_rq_worker_subprocess(cluster, tmp_path):
    from rq import Queue
    from rq.job import Job

    from tests.integration.apps import jobs

    producer = redis.Redis.from_url(url(cluster, 0))
    queue = Queue("apps-rq", connection=producer)
    good = [queue.enqueue(jobs.add, i, 10 * i) for i in range(5)]
    bad = queue.enqueue(jobs.fail, "boom")

    worker = Worker([console_script("rq"), "worker", "--burst", "--url", url(cluster, 1),
                     "apps-rq"], tmp_path / "rq-worker.log")
    with worker:
        code = worker.wait(WAIT * 2)
    assert code == 0, worker.output()

    reader = redis.Redis.from_url(url(cluster, 2))
    for i, job in enumerate(good):
        fetched = Job.fetch(job.id, connection=reader)
        assert (fetched.get_status(), fetched.return_value()) == ("finished", 11 * i)
    failed = Job.fetch(bad.id, connection=reader)
    assert failed.get_status() == "failed"
    assert Queue("apps-rq", connection=reader).failed_job_registry.get_job_ids() == [bad.id]
    assert "ValueError: boom" in failed.latest_result().exc_string
    assert len(Queue("apps-rq", connection=reader)) == 0
    assert len(masters(cluster, reader.keys("rq:*"))) > 1


# ------------------------------------------------------------------ Celery
def test_celery_redis_broker_and_result_backend(cluster, tmp_path):
    from celery import chord, group

    from tests.integration.apps import celery_app

    queue = f"apps-celery-{uuid.uuid4().hex[:8]}"
    app = celery_app.app
    app.conf.update(broker_url=url(cluster, 0), result_backend=url(cluster, 2),
                    task_default_queue=queue)
    worker = Worker([console_script("celery"), "-A", "tests.integration.apps.celery_app",
                     "worker", "--pool=solo", "--loglevel=INFO", "-Q", queue,
                     "-n", f"{queue}@%h"], tmp_path / "celery-worker.log",
                    env={"DTRIAD_CELERY_BROKER": url(cluster, 1),
                         "DTRIAD_CELERY_BACKEND": url(cluster, 1),
                         "DTRIAD_CELERY_QUEUE": queue})
    try:
        with worker:
            try:
                assert celery_app.add.delay(2, 3).get(timeout=WAIT / 2) == 5
                assert group(celery_app.add.s(i, i) for i in range(5))().get(
                    timeout=WAIT / 2) == [0, 2, 4, 6, 8]
                assert chord(celery_app.add.s(i, i) for i in range(5))(
                    celery_app.total.s()).get(timeout=WAIT / 2) == 20
                with pytest.raises(ValueError, match="boom"):
                    celery_app.fail.delay("boom").get(timeout=WAIT / 2)
            except BaseException as e:
                e.add_note(f"celery worker (pid {worker.pid}) output:\n{worker.output()}")
                raise
        keys = client(cluster, 0).keys("*")
        assert any(k.startswith("celery-task-meta-") for k in keys)
        assert len(masters(cluster, keys)) > 1
    finally:
        app.close()


# ------------------------------------------------------------------ django-redis
@contextlib.contextmanager
def django_caches(caches: dict):
    import django
    from django.conf import settings
    from django.test.utils import override_settings

    if not settings.configured:
        settings.configure(CACHES=caches)
        django.setup()
        yield
    else:  # configured already in this process: swap the caches in
        django.setup()
        with override_settings(CACHES=caches):
            yield


def test_django_redis_cache(cluster):
    caches = {"default": {"BACKEND": "django_redis.cache.RedisCache",
                          "LOCATION": f"redis://127.0.0.1:{resp_port(cluster, 0)}/0",
                          "OPTIONS": {"PASSWORD": cluster.password}}}
    with django_caches(caches):
        from django.core.cache import cache
        from django_redis import get_redis_connection

        cache.set("apps:dj:a", "alpha", timeout=300)
        assert cache.get("apps:dj:a") == "alpha"
        assert cache.add("apps:dj:a", "other") is False
        assert cache.get_or_set("apps:dj:b", lambda: {"x": 1}, timeout=300) == {"x": 1}

        cache.set("apps:dj:counter", 10, timeout=300)
        assert cache.incr("apps:dj:counter") == 11
        assert cache.decr("apps:dj:counter", 5) == 6
        assert cache.get("apps:dj:counter") == 6

        # django-redis stores "apps:dj:mN" as ":1:apps:dj:mN": names on two or more masters
        names = [f"apps:dj:m{i}" for i in range(12)]
        ring = cluster.ring()
        extra = next(f"apps:dj:m{i}" for i in itertools.count(12)
                     if ring.master(f":1:apps:dj:m{i}") != ring.master(f":1:{names[0]}"))
        values = {name: i * i for i, name in enumerate([*names, extra])}
        cache.set_many(values, timeout=300)
        assert cache.get_many([*values, "apps:dj:missing"]) == values
        assert sorted(cache.keys("apps:dj:m*")) == sorted(values)
        raw = get_redis_connection("default")
        assert len(masters(cluster, raw.keys(":1:apps:dj:m*"))) > 1

        assert 0 < cache.ttl("apps:dj:a") <= 300
        assert cache.touch("apps:dj:a", 1000) is True
        assert 300 < cache.ttl("apps:dj:a") <= 1000
        assert cache.touch("apps:dj:a", None) is True
        assert cache.ttl("apps:dj:a") is None
        assert cache.touch("apps:dj:missing", 10) is False

        assert cache.delete_pattern("apps:dj:m*") == len(values)
        assert cache.get_many(list(values)) == {}
        assert sorted(cache.keys("apps:dj:*")) == ["apps:dj:a", "apps:dj:b", "apps:dj:counter"]


# ------------------------------------------------------------------ others
def test_dramatiq_is_refused_saying_which_key_its_script_did_not_declare(cluster,
                                                                        monkeypatch):
    """Dramatiq's dispatch script declares one key (its namespace) and builds
    the others from it, on any node: dtriad refuses a script's undeclared
    keys (it cannot route them), with an error that names the key, rather
    than touch a wrong node. So Dramatiq does not run on dtriad."""
    monkeypatch.setenv("DTRIAD_DRAMATIQ_URL", url(cluster, 0))
    actors = fresh("tests.integration.apps.dramatiq_actors")
    with pytest.raises(redis.ResponseError,
                       match="the script used key 'dramatiq:__heartbeats__', which it did "
                             "not declare"):
        actors.add.send(1, 100)


def test_huey_consumer(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("DTRIAD_HUEY_URL", url(cluster, 0))
    app = fresh("tests.integration.apps.huey_app")
    pending = [app.add(i, 7) for i in range(5)]
    worker = Worker([console_script("huey_consumer"), "tests.integration.apps.huey_app.huey",
                     "-w", "2", "-k", "thread"], tmp_path / "huey-consumer.log",
                    env={"DTRIAD_HUEY_URL": url(cluster, 1)})
    with worker:
        try:
            results = [r.get(blocking=True, timeout=WAIT) for r in pending]
        except BaseException as e:
            e.add_note(f"huey consumer (pid {worker.pid}) output:\n{worker.output()}")
            raise
    assert results == [7, 8, 9, 10, 11]


def test_limits_redis_storage(cluster):
    from limits import parse, strategies
    from limits.storage import RedisStorage

    limit = parse("5/minute")
    moving = strategies.MovingWindowRateLimiter(RedisStorage(url(cluster, 0)))
    assert [moving.hit(limit, "apps", "user") for _ in range(7)] == [True] * 5 + [False] * 2
    elsewhere = strategies.MovingWindowRateLimiter(RedisStorage(url(cluster, 1)))
    assert elsewhere.test(limit, "apps", "user") is False
    assert elsewhere.get_window_stats(limit, "apps", "user").remaining == 0
    assert elsewhere.hit(limit, "apps", "another user") is True

    fixed = strategies.FixedWindowRateLimiter(RedisStorage(url(cluster, 2)))
    three = parse("3/minute")
    assert [fixed.hit(three, "apps", "f") for _ in range(4)] == [True, True, True, False]
    assert fixed.get_window_stats(three, "apps", "f").remaining == 0

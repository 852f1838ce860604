"""Unit tests of frontends/blocking.py: the argument rules (pure), and the
waiters' bookkeeping over an in-memory fake of the request core (no
backend, no socket: the watcher is injected)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from dtriad.config import Login
from dtriad.core.commands import REDIS, keys_of, lookup
from dtriad.exceptions import CommandError
from dtriad.frontends.blocking import (
    Blocking,
    merged_flags,
    millis_timeout,
    nonblocking,
    plan,
    seconds_timeout,
    split_block,
)


# ------------------------------------------------------------- argument rules
@pytest.mark.parametrize("arg, ms", [(b"0", 0), (b"1", 1000), (b"1.5", 1500), (b".25", 250),
                                     (b"1e1", 10_000), (b"+2", 2000), (b"-0.0001", 0),
                                     (b"0.0009", 0)])
def test_seconds_timeout(arg, ms):
    assert seconds_timeout(arg) == ms


@pytest.mark.parametrize("arg", [b"x", b"1x", b" 1", b"1 ", b"", b"inf", b"nan", b"1_0",
                                 b"0x10"])
def test_seconds_timeout_not_a_float(arg):
    with pytest.raises(CommandError, match="ERR timeout is not a float or out of range"):
        seconds_timeout(arg)


@pytest.mark.parametrize("arg", [b"-1", b"-0.001", b"-1e3"])
def test_seconds_timeout_negative(arg):
    with pytest.raises(CommandError, match="ERR timeout is negative"):
        seconds_timeout(arg)


def test_millis_timeout():
    assert millis_timeout(b"0") == 0
    assert millis_timeout(b"250") == 250
    for bad in (b"1.5", b"+1", b"01", b"-0", b" 1", b"x", b"99999999999999999999"):
        with pytest.raises(CommandError, match="not an integer or out of range"):
            millis_timeout(bad)
    with pytest.raises(CommandError, match="ERR timeout is negative"):
        millis_timeout(b"-5")


def test_split_block():
    xread, xreadgroup = REDIS["XREAD"], REDIS["XREADGROUP"]
    assert split_block(xread, [b"XREAD", b"COUNT", b"2", b"BLOCK", b"10", b"STREAMS", b"s",
                               b"$"]) == ([b"XREAD", b"COUNT", b"2", b"STREAMS", b"s", b"$"],
                                          b"10")
    # the last BLOCK counts; a key called BLOCK is not the option
    assert split_block(xread, [b"XREAD", b"block", b"1", b"BLOCK", b"2", b"STREAMS",
                               b"BLOCK", b"0"]) == ([b"XREAD", b"STREAMS", b"BLOCK", b"0"],
                                                    b"2")
    assert split_block(xread, [b"XREAD", b"STREAMS", b"BLOCK", b"0"])[1] is None
    # a group or a consumer called BLOCK is not the option
    argv = [b"XREADGROUP", b"GROUP", b"BLOCK", b"BLOCK", b"STREAMS", b"s", b">"]
    assert split_block(xreadgroup, argv) == (argv, None)


def test_nonblocking_for_http():
    argv = [b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"]
    assert nonblocking(REDIS["XREAD"], argv) == [b"XREAD", b"STREAMS", b"s", b"$"]
    assert nonblocking(REDIS["GET"], [b"GET", b"k"]) == [b"GET", b"k"]
    with pytest.raises(CommandError, match="timeout is negative"):
        nonblocking(REDIS["XREAD"], [b"XREAD", b"BLOCK", b"-1", b"STREAMS", b"s", b"$"])
    with pytest.raises(CommandError, match="BLPOP blocks.*LPOP"):
        nonblocking(REDIS["BLPOP"], [b"BLPOP", b"k", b"0"])


def test_plan():
    p = plan(REDIS["BLPOP"], [b"BLPOP", b"a", b"b", b"a", b"1.5"])
    assert (p.keys, p.timeout_ms, p.exclusive) == ([b"a", b"b"], 1500, True)
    assert p.tries([b"b"]) == [(b"b", ["LPOP", b"b"])]
    with pytest.raises(CommandError, match="ERR syntax error"):  # before the timeout, as Redis
        plan(REDIS["BLMOVE"], [b"BLMOVE", b"a", b"b", b"UP", b"LEFT", b"x"])
    p = plan(REDIS["XREAD"], [b"XREAD", b"BLOCK", b"5", b"STREAMS", b"s", b"t", b"$", b"0"])
    assert (p.keys, p.timeout_ms, p.exclusive, p.ids) == ([b"s", b"t"], 5, False,
                                                          {b"s": b"$", b"t": b"0"})
    p.ids[b"s"] = b"7-0"
    assert p.tries([b"s", b"t"]) == [(b"s", [b"XREAD", b"STREAMS", b"s", b"t", b"7-0", b"0"])]
    with pytest.raises(CommandError, match="Unbalanced XREAD"):
        plan(REDIS["XREAD"], [b"XREAD", b"BLOCK", b"5", b"STREAMS", b"s", b"t", b"$"])


def test_merged_flags():
    assert merged_flags("") == "Kglzt"
    assert merged_flags("AK") is None
    assert merged_flags("Ex") == "ExKglzt"
    assert merged_flags("Kglzt") is None


# ----------------------------------------------------------- the waiters
class FakeRequests:
    """LPOP/RPOP/LPUSH/RPUSH/LMOVE/ZPOPMIN/ZADD over dicts, as the request
    core's generators (no effect yielded)."""

    def __init__(self):
        self.lists: dict[bytes, list] = {}
        self.strings: dict[bytes, bytes] = {}
        self.before_pop = None  # called before a pop runs (a connection closing...)

    def checked(self, argv):
        return lookup(argv[0])

    def command(self, argv):
        return self._apply([a.encode() if isinstance(a, str) else a for a in argv])
        yield  # noqa: B901 - a generator of no effects

    def _apply(self, argv):
        name, key = argv[0].upper(), argv[1]
        if key in self.strings:
            raise CommandError("WRONGTYPE Operation against a key holding the wrong kind of "
                               "value")
        items = self.lists.setdefault(key, [])
        if name in (b"LPOP", b"RPOP"):
            if self.before_pop:
                self.before_pop()
            return (items.pop(0) if name == b"LPOP" else items.pop()) if items else None
        if name == b"LPUSH":
            items.insert(0, argv[2])
            return len(items)
        if name == b"RPUSH":
            items.extend(argv[2:])
            return len(items)
        raise AssertionError(f"not faked: {argv}")


class FakeWatcher:
    made: list[str] = []

    def __init__(self, node, on_key, password, username, timeout):
        FakeWatcher.made.append(node)

    def subscribe(self, key):
        future = asyncio.get_running_loop().create_future()
        future.set_result(True)
        return future

    def unsubscribe(self, key):
        pass

    def start(self):
        pass

    def close(self):
        pass


def _follow():
    route = SimpleNamespace(direct=("127.0.0.1:1",))
    return SimpleNamespace(route=lambda key: route)
    yield  # noqa: B901


def fake_server() -> tuple[Blocking, FakeRequests]:
    requests = FakeRequests()
    core = SimpleNamespace(requests=requests, follower=SimpleNamespace(follow=_follow),
                           config=SimpleNamespace(internal=Login(None, None),
                                                  backend_timeout=1.0))
    server = SimpleNamespace(core=core, client=None)
    blocking = Blocking(server, watcher=FakeWatcher, recheck=3600)  # no re-check unless run
    return blocking, requests


class FakeSession:
    def __init__(self, resp3: bool = False):
        self.gone = asyncio.Event()
        self.resp3 = resp3
        self.flushed = 0

    async def flush(self):
        self.flushed += 1


def blpop(blocking, session, *args) -> asyncio.Task:
    argv = [b"BLPOP", *(a.encode() for a in args)]
    return asyncio.get_running_loop().create_task(
        blocking.command(session, REDIS["BLPOP"], argv))


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)


def push(blocking, requests, key: bytes, *values: bytes) -> None:
    """A push through this process: the data changes, then the hook runs."""
    requests.lists.setdefault(key, []).extend(values)
    blocking.wrote(REDIS["RPUSH"], [b"RPUSH", key, *values])


def test_an_element_there_is_taken_at_once():
    async def main():
        blocking, requests = fake_server()
        requests.lists[b"k"] = [b"v"]
        session = FakeSession()
        assert await blpop(blocking, session, "k", "0") == b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
        assert session.flushed == 0  # it never waited
    asyncio.run(main())


def test_timeout_is_a_nil_array():
    async def main():
        blocking, _ = fake_server()
        assert await blpop(blocking, FakeSession(), "k", "0.01") == b"*-1\r\n"
        assert await blpop(blocking, FakeSession(resp3=True), "k", "0.01") == b"_\r\n"
    asyncio.run(main())


def test_first_come_first_served():
    async def main():
        blocking, requests = fake_server()
        tasks = []
        for _ in range(3):
            tasks.append(blpop(blocking, FakeSession(), "k", "0"))
            await settle()
        push(blocking, requests, b"k", b"1", b"2")
        await settle()
        assert [t.done() for t in tasks] == [True, True, False]
        assert [t.result()[-3:-2] for t in tasks[:2]] == [b"1", b"2"]
        push(blocking, requests, b"k", b"3")
        assert (await tasks[2]).endswith(b"3\r\n")
        assert not blocking._queues  # nothing left waiting
    asyncio.run(main())


def test_a_waiter_on_two_keys_takes_one_element_in_key_order():
    async def main():
        blocking, requests = fake_server()
        task = blpop(blocking, FakeSession(), "a", "b", "0")
        await settle()
        requests.lists[b"b"] = [b"from-b"]
        requests.lists[b"a"] = [b"from-a"]
        blocking.notify(b"b")
        blocking.notify(b"a")
        assert (await task).endswith(b"from-a\r\n")
        assert requests.lists[b"b"] == [b"from-b"]
    asyncio.run(main())


def test_a_closed_connection_pops_nothing():
    async def main():
        blocking, requests = fake_server()
        session = FakeSession()
        task = blpop(blocking, session, "k", "0")
        await settle()
        session.gone.set()
        await settle()
        assert task.done() and task.result() == b""
        push(blocking, requests, b"k", b"kept")
        await settle()
        assert requests.lists[b"k"] == [b"kept"]
    asyncio.run(main())


def test_closed_while_popping_puts_the_element_back():
    async def main():
        blocking, requests = fake_server()
        session = FakeSession()
        task = blpop(blocking, session, "k", "0")
        await settle()
        requests.before_pop = session.gone.set  # it closes while the pop is in flight
        push(blocking, requests, b"k", b"x", b"y")
        await settle()
        assert task.result() == b""
        assert requests.lists[b"k"] == [b"x", b"y"]
    asyncio.run(main())


def test_wrong_type_is_an_error_at_first_then_waited_past():
    async def main():
        blocking, requests = fake_server()
        requests.strings[b"s"] = b"v"
        with pytest.raises(CommandError, match="WRONGTYPE"):
            await blpop(blocking, FakeSession(), "s", "0")
        task = blpop(blocking, FakeSession(), "k", "0")
        await settle()
        requests.strings[b"k"] = b"now a string"
        blocking.notify(b"k")
        await settle()
        assert not task.done()  # as Redis 6.2: still blocked
        del requests.strings[b"k"]
        push(blocking, requests, b"k", b"list again")
        assert (await task).endswith(b"list again\r\n")
    asyncio.run(main())


def test_the_recheck_finds_what_no_notification_announced():
    async def main():
        blocking, requests = fake_server()
        task = blpop(blocking, FakeSession(), "k", "0")
        await settle()
        requests.lists[b"k"] = [b"silent"]  # written elsewhere, its notification lost
        await settle()
        assert not task.done()
        await blocking.run_once()
        assert (await task).endswith(b"silent\r\n")
        blocking.close()
    asyncio.run(main())


@pytest.mark.parametrize("argv, keys", [
    (["XREAD", "STREAMS", "a", "b", "0", "0"], ["a", "b"]),
    (["XREAD", "COUNT", "2", "BLOCK", "0", "STREAMS", "a", "0"], ["a"]),
    (["XREAD", "BLOCK", "STREAMS", "STREAMS", "a", "0"], ["a"]),
    (["XREADGROUP", "GROUP", "STREAMS", "c", "STREAMS", "a", ">"], ["a"]),
    (["XREADGROUP", "GROUP", "g", "STREAMS", "NOACK", "STREAMS", "a", "b", ">", ">"], ["a", "b"]),
    (["XREADGROUP", "GROUP", "g", "c", "COUNT", "STREAMS", "STREAMS", "a", ">"], ["a"]),
    (["XREAD", "COUNT", "1"], []),
])
def test_stream_keys_are_found_as_redis_reads_the_options(argv, keys):
    """COUNT and BLOCK take a value and XREADGROUP's GROUP two, so a group,
    consumer or count spelled STREAMS is not where the keys start."""
    assert keys_of(lookup(argv[0]), argv) == keys


def test_a_group_named_streams_blocks_on_the_right_stream():
    spec = REDIS["XREADGROUP"]
    argv = ["XREADGROUP", "GROUP", "STREAMS", "c", "BLOCK", "100", "STREAMS", "s", ">"]
    the_plan = plan(spec, argv)
    assert the_plan.keys == ["s"] and the_plan.ids == {"s": ">"} and the_plan.timeout_ms == 100

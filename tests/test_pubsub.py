"""Pub/sub's pure parts: Redis 6.2's glob matching (a table recorded from a
real redis-server 6.2.14, PSUBSCRIBE then PUBLISH), reply frames, the
subscribed-mode refusal, the output limit and local fan-out."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from dtriad.frontends.pubsub import (
    OutputLimit,
    PubSub,
    Subscriptions,
    frame,
    glob_match,
    ping_reply,
)

STRINGS = [b'', b'a', b'b', b'ab', b'abc', b'axb', b'aXc', b'*', b'\\', b'a\\', b'x', b'ax',
           b'bx', b'cx', b']', b']x', b'-x', b'hello', b'hallo', b'\x80', b'\xff', b'\x7f',
           b'\x00a', b'[', b'abxbc', b'!', b'c']
NONEMPTY = STRINGS[1:]
# pattern -> the strings of STRINGS that Redis 6.2.14 matches with it
MATCHES = {
    b'': [b''],
    b'*': NONEMPTY,
    b'**': NONEMPTY,
    b'?': [b'a', b'b', b'*', b'\\', b'x', b']', b'\x80', b'\xff', b'\x7f', b'[', b'!',
           b'c'],
    b'a*': [b'a', b'ab', b'abc', b'axb', b'aXc', b'a\\', b'ax', b'abxbc'],
    b'*a': [b'a', b'\x00a'],
    b'a*b': [b'ab', b'axb'],
    b'a?c': [b'abc', b'aXc'],
    b'[abc]': [b'a', b'b', b'c'],
    b'[^abc]': [b'*', b'\\', b'x', b']', b'\x80', b'\xff', b'\x7f', b'[', b'!'],
    b'[a-c]x': [b'ax', b'bx', b'cx'],
    b'[c-a]x': [b'ax', b'bx', b'cx'],
    b'\\*': [b'*'],
    b'\\': [b'\\'],
    b'a\\': [b'a\\'],
    b'[': [],
    b'[^': [b'a', b'b', b'*', b'\\', b'x', b']', b'\x80', b'\xff', b'\x7f', b'[', b'!',
            b'c'],
    b'[a-]x': [b'a', b'x', b']'],
    b'[]a]': [],
    b'[\\]]': [b']'],
    b'h[ae]llo': [b'hello', b'hallo'],
    b'*[': [],
    b'[\x80-\xff]': [b'\x80', b'\xff'],
    b'[\x01-\xff]': [b'\xff'],
    b'a*b*c': [b'abc', b'abxbc'],
    b'*?*': NONEMPTY,
    b'\x00*': [b'\x00a'],
    b'[a-b-c]': [b'a', b'b', b'c'],
    b'[!a]': [b'a', b'!'],
}


def test_glob_matches_as_redis_62():
    for pattern, matching in MATCHES.items():
        for string in STRINGS:
            assert glob_match(pattern, string) == (string in matching), (pattern, string)


def escape(literal: bytes) -> bytes:
    return b"".join(b"\\" + bytes([c]) for c in literal)


@given(st.binary(max_size=20), st.binary(max_size=20))
def test_an_escaped_literal_matches_only_itself(literal, other):
    assert glob_match(escape(literal), literal) == bool(literal) or not literal
    if other != literal:
        assert not glob_match(escape(literal), other)


@given(st.binary(min_size=1, max_size=20), st.binary(max_size=5), st.binary(max_size=5))
def test_a_star_matches_any_middle(middle, head, tail):
    pattern = escape(head) + b"*" + escape(tail)
    assert glob_match(pattern, head + middle + tail)


def test_hostile_patterns_take_linear_time():
    assert not glob_match(b"a*" * 5000 + b"b", b"a" * 20000)
    assert glob_match(b"*" * 10000, b"x" * 10000)
    assert glob_match(b"[" * 10000, b"[")  # one class of '[', never closed


def test_frames_in_resp2_and_resp3():
    assert frame(b"subscribe", [b"ch", 1], False) == b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    assert frame(b"unsubscribe", [None, 0], True) == b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
    assert frame(b"unsubscribe", [None, 0], False) == (
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n")
    assert frame(b"pmessage", [b"p*", b"\x00\r\n", b""], True) == (
        b">4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$3\r\n\x00\r\n\r\n$0\r\n\r\n")
    assert ping_reply([]) == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    assert ping_reply([b"hi"]) == b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"
    assert ping_reply([b"a", b"b"]).startswith(b"-ERR wrong number of arguments")


def test_only_resp2_subscribed_sessions_are_refused():
    pubsub = PubSub(SimpleNamespace())
    get, ping = SimpleNamespace(name="get"), SimpleNamespace(name="ping")
    idle = SimpleNamespace(pubsub=None, resp3=False)
    subscribed = SimpleNamespace(pubsub=Subscriptions(channels={b"c": None}), resp3=False)
    pushed = SimpleNamespace(pubsub=Subscriptions(channels={b"c": None}), resp3=True)
    assert pubsub.refuses(idle, get) is None
    assert pubsub.refuses(pushed, get) is None
    assert pubsub.refuses(subscribed, ping) is None
    assert pubsub.refuses(subscribed, get) == (
        b"-ERR Can't execute 'get': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT / RESET "
        b"are allowed in this context\r\n")


def test_output_limit_hard_and_soft():
    now = [0.0]
    limit = OutputLimit(hard=100, soft=10, seconds=60, clock=lambda: now[0])
    state = Subscriptions()
    assert not limit.over(state, 10)
    assert not limit.over(state, 50)  # over soft: the clock starts
    now[0] = 59.0
    assert not limit.over(state, 50)
    assert not limit.over(state, 5)  # under again: the clock stops
    now[0] = 70.0
    assert not limit.over(state, 50)
    now[0] = 130.0
    assert limit.over(state, 50)  # over soft for 60 s
    assert limit.over(Subscriptions(), 101)  # over hard at once


class FakeTransport:
    def __init__(self):
        self.aborted = False
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


class FakeSession:
    def __init__(self, resp3: bool = False):
        self.id, self.resp3, self.closed, self._pending = 1, resp3, False, 0
        self.transport = FakeTransport()
        self.pubsub = None
        self.pushed: list[bytes] = []

    def push(self, data: bytes) -> None:
        self.pushed.append(data)
        self._pending += len(data)


def test_fan_out_to_local_sessions_and_close_a_slow_one():
    async def main():
        pubsub = PubSub(SimpleNamespace(), limit=OutputLimit(hard=200, soft=150))
        fast, slow, push = FakeSession(), FakeSession(), FakeSession(resp3=True)
        for session in (fast, slow, push):
            session.pubsub = Subscriptions(channels={b"c": None})
        pubsub.channels[b"c"] = {fast, slow, push}
        push.pubsub.patterns[b"c*"] = None
        pubsub.patterns[b"c*"] = {push}
        pubsub._deliver(None, b"dtriad:c", b"m")
        pubsub._deliver(b"dtriad:c*", b"dtriad:c", b"m")
        pubsub._deliver(None, b"__sentinel__:hello", b"x")  # not ours
        assert fast.pushed == [b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"]
        assert push.pushed == [b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n",
                               b">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$1\r\nc\r\n$1\r\nm\r\n"]
        slow.transport.buffered = 190  # the client stopped reading
        pubsub._deliver(None, b"dtriad:c", b"m")
        assert slow.transport.aborted and slow.pubsub is None
        assert pubsub.channels[b"c"] == {fast, push}
        assert len(fast.pushed) == 2

    asyncio.run(main())

"""A RESP session never stalls, whatever the order of requests, replies and drains.

The session runs against a fake transport whose write buffer fills up
(``pause_writing``) until the test drains it (``resume_writing``);
hypothesis draws the interleavings of new requests, drains and event-loop
turns. Requests are ECHO (the general path) and GET (the fast path, see
:class:`FakeFast`, whose replies come a few loop steps later, and whose
backend sometimes fails, handing the request to the general path). Every
request must get its reply, in order.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from dtriad.frontends import respd
from dtriad.frontends.respd import Session


class EchoServer:
    """What a Session needs of its server: answers ``ECHO x`` with ``x`` padded,
    so a few replies fill the fake transport's buffer."""

    def __init__(self, reply_bytes: int, password: str | None = None, **limits):
        self.password = password
        self.sessions: set = set()
        self.core = SimpleNamespace(config=SimpleNamespace(**{
            "max_value_bytes": 1 << 20, "max_request_bytes": 64 << 20, "maxclients": 10_000,
            "auth_timeout_s": 10.0, **limits}))
        self.pad = b"." * reply_bytes
        self.fast = FakeFast(self)
        self.bursts = 0
        self.inflight = self.most = 0  # requests being answered: now, and at most

    def disconnected(self, session) -> None:
        self.sessions.discard(session)

    def concurrent_read(self, session, argv):  # noqa: ARG002 - the server's signature
        """ECHO n is a read unless n % 4 == 3: a pipelined burst of reads runs
        together until a request that is not one (respd.Session._burst)."""
        return argv[0] == b"ECHO" and int(argv[1]) % 4 != 3

    async def handle(self, session, argv) -> bytes:
        self.inflight += 1
        self.most = max(self.most, self.inflight)
        for _ in range(1 + int(argv[1]) % 3):  # backend round trips, of different lengths
            await asyncio.sleep(0)
        self.inflight -= 1
        return b"+" + argv[1] + self.pad + b"\r\n"


class FakeSlot:
    def __init__(self, argv):
        self.argv = argv
        self.reply = None


class FakeFast:
    """The fast path's part (frontends/fastpath.py): takes every GET, answers
    it after 0 to 6 loop steps, and every fifth one's backend fails."""

    def __init__(self, server: EchoServer):
        self.server = server
        self.sent = 0

    def send(self, session, argv) -> bool:
        if argv[0] != b"GET":
            return False
        slot = FakeSlot(argv)
        session.slots.append(slot)
        self.sent += 1
        loop = asyncio.get_running_loop()

        def answer(steps: int):
            if steps:
                loop.call_soon(answer, steps - 1)
            elif int(argv[1]) % 5 == 4:
                session.general(slot)
            else:
                slot.reply = b"+" + argv[1] + self.server.pad + b"\r\n"
                session.fast_done()

        loop.call_soon(answer, int(argv[1]) % 7)
        return True


class FakeTransport:
    def __init__(self, limit: int):
        self.limit = limit
        self.protocol: Session | None = None
        self.pending = 0  # written, not yet taken by the client
        self.out = bytearray()
        self.paused = False
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data
        self.pending += len(data)
        if self.pending > self.limit and not self.paused:
            self.paused = True
            self.protocol.pause_writing()

    def drain(self) -> None:
        self.pending = 0
        if self.paused:
            self.paused = False
            self.protocol.resume_writing()

    reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def request(n: int, command: bytes = b"ECHO") -> bytes:
    word = str(n).encode()
    return b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(command), command, len(word), word)


def replies(out: bytes, pad: int) -> list[int]:
    return [int(line[1:len(line) - pad]) for line in out.split(b"\r\n") if line]


async def play(events: list[tuple[str, int]], reply_bytes: int, limit: int,
               server: EchoServer | None = None) -> list[int]:
    server = server or EchoServer(reply_bytes)
    session = Session(server)
    transport = FakeTransport(limit)
    transport.protocol = session
    session.connection_made(transport)
    sent = 0
    for kind, count in events:
        if kind in ("send", "get"):
            command = b"GET" if kind == "get" else b"ECHO"
            session.data_received(b"".join(request(sent + i, command) for i in range(count)))
            sent += count
        elif kind == "drain":
            transport.drain()
        for _ in range(3):
            await asyncio.sleep(0)
    for _ in range(200):  # then the client reads everything
        transport.drain()
        await asyncio.sleep(0)
    got = replies(bytes(transport.out), reply_bytes)
    session.connection_lost(None)
    await asyncio.sleep(0)
    assert not session.slots and not session._general
    return got, sent


def test_a_request_that_arrives_while_replies_drain_is_answered():
    """The case found on a real socket: replies fill the buffer, a request
    arrives while the session waits for the drain, then the client reads."""
    events = [("send", 10), ("send", 1), ("drain", 0)]
    got, sent = asyncio.run(play(events, reply_bytes=1000, limit=3000))
    assert got == list(range(sent))


events = st.lists(st.tuples(st.sampled_from(["send", "get", "drain", "tick"]),
                            st.integers(1, 5)), max_size=30)


@settings(max_examples=150, deadline=None)
@given(events, st.sampled_from([10, 1000, 5000]), st.sampled_from([100, 3000, 20000]))
def test_no_interleaving_stalls_a_session(events, reply_bytes, limit):
    got, sent = asyncio.run(play(events, reply_bytes, limit))
    assert got == list(range(sent))


def test_fast_reads_take_the_fast_path_and_keep_the_order_around_general_requests():
    """GETs before, between and after ECHOs: replies in order; the GETs
    sent while the session was idle went the fast way."""
    idle = [("tick", 0)] * 10
    events = [*idle, ("get", 5), ("send", 2), ("get", 3), *idle, ("get", 4)]

    async def run():
        got, sent = await play(events, reply_bytes=10, limit=1 << 20)
        return got, sent

    server_sent = []
    original = FakeFast.send

    def counting(self, session, argv):
        taken = original(self, session, argv)
        server_sent.append(taken)
        return taken

    FakeFast.send = counting
    try:
        got, sent = asyncio.run(run())
    finally:
        FakeFast.send = original
    assert got == list(range(sent))
    # The first and last GETs came to an idle session: fast. The first ECHO
    # was offered, refused and handed over with the second (the middle GETs
    # go either way, by when the ECHOs are answered).
    assert server_sent[:6] == [True] * 5 + [False] and server_sent[-4:] == [True] * 4


def test_a_pipelined_burst_of_reads_runs_together_and_a_write_runs_alone():
    """ECHO n % 4 == 3 stands for a write: of 10 pipelined at once, 0-2 run
    together, 3 alone, 4-6 together, 7 alone, 8-9 together; the replies
    keep the order they were asked in."""
    server = EchoServer(10)
    got, sent = asyncio.run(play([("tick", 0), ("send", 10)], 10, 1 << 20, server))
    assert got == list(range(sent)) and server.most == 3


def test_a_big_request_to_an_idle_session_does_not_leave_reading_paused(monkeypatch):
    """Part of a request past the high-water mark pauses reading; the session
    must resume it (found by review: an idle session paused and never woke)."""
    monkeypatch.setattr(respd, "_HIGH_WATER", 1000)

    async def run():
        server = EchoServer(0)
        session, transport = Session(server), FakeTransport(1 << 20)
        transport.protocol = session
        session.connection_made(transport)
        for _ in range(3):
            await asyncio.sleep(0)  # idle: _serve waits for requests
        value = b"1" * 3000
        request = b"*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n" % (len(value), value)
        session.data_received(request[:2000])
        for _ in range(3):
            await asyncio.sleep(0)
        resumed = transport.reading
        session.data_received(request[2000:])
        for _ in range(10):
            await asyncio.sleep(0)
        session.connection_lost(None)
        return resumed, bytes(transport.out)

    resumed, out = asyncio.run(run())
    assert resumed and out == b"+" + b"1" * 3000 + b"\r\n"


def test_a_client_beyond_maxclients_gets_redis_error_and_is_closed():
    async def run():
        server = EchoServer(0, maxclients=2)
        transports = []
        for _ in range(3):
            session, transport = Session(server), FakeTransport(1 << 20)
            transport.protocol = session
            session.connection_made(transport)
            transports.append(transport)
        await asyncio.sleep(0)
        return server, transports

    server, transports = asyncio.run(run())
    assert [t.closed for t in transports] == [False, False, True]
    assert bytes(transports[2].out) == b"-ERR max number of clients reached\r\n"
    assert len(server.sessions) == 2


def test_a_connection_without_auth_is_closed_after_auth_timeout_s():
    async def run(steps: str):
        server = EchoServer(0, password="pw", auth_timeout_s=0.05)
        session, transport = Session(server), FakeTransport(1 << 20)
        transport.protocol = session
        session.connection_made(transport)
        for step in steps:
            if step == "a":
                session.authed = True  # as a good AUTH does
            elif step == "r":
                session.authed = False  # as RESET does: the deadline starts again
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.2)
        closed = transport.closed
        session.connection_lost(None)
        return transport, closed

    idle, closed = asyncio.run(run(""))
    assert closed and idle.out.startswith(b"-ERR authentication timeout")
    assert not asyncio.run(run("a"))[1]
    assert asyncio.run(run("ar"))[1]  # authenticated, then RESET and silent


def test_before_auth_a_client_that_does_not_read_stops_being_read():
    """Pipelined requests without AUTH (each answered NOAUTH) from a client
    that reads nothing: the session stops reading at 64 KiB, not 64 MiB."""
    async def run():
        server = EchoServer(0, password="pw")
        session, transport = Session(server), FakeTransport(1 << 20)
        paused = []
        transport.pause_reading = lambda: paused.append(session.parser.buffered)
        transport.protocol = session
        session.connection_made(transport)
        session.data_received(b"PING\r\n" * 20_000)
        session.connection_lost(None)
        return paused

    assert asyncio.run(run()) == [120_000]


def test_the_fast_path_keeps_only_short_spellings_of_its_own_commands():
    """Command names as sent are kept to skip the table lookup: only short
    spellings of FAST's commands, so junk names (up to max_value_bytes each)
    cannot fill memory or crowd out the real ones."""
    from dtriad.config import ReadQuorum
    from dtriad.frontends.fastpath import _SPELLINGS, FastReads
    fast = FastReads(SimpleNamespace(core=SimpleNamespace(
        config=SimpleNamespace(read_quorum=ReadQuorum.ONE))))
    session = SimpleNamespace(authed=True, multi=None, pubsub=None)
    for i in range(_SPELLINGS + 10):
        fast.send(session, [b"x" * 1000 + b"%d" % i, b"k"])  # unknown: not sent, not kept
    fast.send(session, [b"SET", b"k", b"v"])  # not a fast read
    fast.send(session, [b"GeT" + b" " * 20, b"k"])
    assert fast._specs == {}
    fast.core.follower = SimpleNamespace(current=lambda now: None)  # no view: not sent
    assert not fast.send(session, [b"get", b"k"])
    assert list(fast._specs) == [b"get"]

"""A table of hostile inputs, each sent to a real local cluster's processes.

Each row is (name, transport, what is sent, what must happen). The test sends
it over a raw socket (RESP, HTTP/1.1) or with ``requests`` and checks the
reply: an error a person can act on (never a 5xx, a traceback, a credential
or a hang), the connection closed exactly when Redis would close it, and
nothing written where it must not be. After every row
:meth:`~tests.integration.hostile.cluster.Target.still_serving` checks the
cluster: no process exited, every RESP and HTTP port answers a fresh client
and the one connected before, databases 1 and 4-15 of every backend and the
ring in force are unchanged.

The module prints a summary (counts by transport and outcome, then every
input) at its end (``pytest -s``) and writes it to
``test-artifacts/hostile-inputs.md``.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import hiredis
import pytest
import requests

from dtriad.core.scripts import META_DB, RING_KEY
from dtriad.exceptions import ArgumentError
from dtriad.placement.ringstate import RingState
from tests.conftest import quiet_cluster
from tests.integration.hostile.cluster import Target, backends_version
from tests.integration.hostile.report import Entry, Report
from tests.integration.hostile.wire import HttpResult, Resp, RespResult, http_raw

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MAX_VALUE = 2 * 1024 * 1024  # max_value_bytes of the module's cluster
MAX_REQUEST = 64 * 1024 * 1024  # the default max_request_bytes
MAX_ERROR = 1024  # an error line longer than this is not one a person reads
REPORT = Report()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from quiet_cluster(tmp_path_factory, "hostile", MAX_VALUE)


@pytest.fixture(scope="module")
def target(cluster):
    target = Target(cluster)
    target.start()
    yield target
    target.bystander.close()
    path = REPORT.write(backends_version())
    print("\n" + REPORT.markdown(backends_version()))
    print(f"(written to {path})")


# --------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    name: str
    transport: str
    sent: str   # what is sent, for the table
    must: str   # what must happen, for the table
    run: Callable[[Target], tuple[str, str]]  # checks; -> (outcome, what it got)

    def __str__(self) -> str:
        return self.name


class Err:
    """An expected error reply whose text matches ``pattern``."""

    def __init__(self, pattern: str):
        self.pattern = pattern

    def __repr__(self) -> str:
        return f"-/{self.pattern}/"


ANY = object()  # any reply that is not an error


def _pack(*args) -> bytes:
    return hiredis.pack_command(tuple(args))


def _clean(raw: bytes, target: Target) -> None:
    """No traceback and no credential in what a server sent."""
    assert b"Traceback" not in raw, raw[:500]
    for secret in target.secrets:
        assert secret.encode() not in raw, "a credential is in a reply"


def _match(result: RespResult, expect: list) -> None:
    assert len(result.replies) == len(expect), \
        f"{len(result.replies)} replies, expected {len(expect)}: {result.summary()}"
    for reply, want in zip(result.replies, expect, strict=True):
        if isinstance(want, Err):
            assert isinstance(reply, hiredis.ReplyError), f"{reply!r}, expected {want}"
            assert re.search(want.pattern, str(reply)), f"-{reply}, expected {want}"
            assert len(str(reply)) <= MAX_ERROR, \
                f"an error line of {len(str(reply))} bytes: {str(reply)[:120]!r}..."
        elif want is ANY:
            assert not isinstance(reply, hiredis.ReplyError), f"-{reply}"
        else:
            assert reply == want, f"{reply!r}, expected {want!r}"


def _outcome(result: RespResult) -> str:
    kind = ("error" if result.errors else "reply" if result.replies else "no reply")
    return f"{kind}, {'closed' if result.closed else 'kept open'}"


def resp(name: str, sent: str, data: bytes | Callable[[], bytes], expect: list, *,
         closed: bool, authed: bool = True, must: str | None = None,
         after: Callable[[Target], None] | None = None, chunks: Callable | None = None,
         transport: str | None = None) -> Row:
    """A RESP row: ``data`` sent on a fresh connection (after AUTH if
    ``authed``), its replies matched against ``expect``; the server must close
    the connection if ``closed``, else answer a PING on it afterwards."""
    transport = transport or ("RESP" if authed else "RESP before AUTH")
    if must is None:
        shown = ", ".join(repr(e) if isinstance(e, Err) else "a reply" if e is ANY else repr(e)
                          for e in expect) or "no reply"
        must = f"{shown}; {'closed' if closed else 'kept open'}"

    def run(target: Target) -> tuple[str, str]:
        conn = target.authed() if authed else Resp(target.resp_port())
        with conn:
            conn.send(data() if callable(data) else data)
            if chunks is not None:
                for chunk in chunks():
                    conn.send(chunk)
            result = conn.read(None) if closed else conn.read(len(expect), quiet_s=0.3)
            _clean(result.raw, target)
            _match(result, expect)
            if closed:
                assert result.closed, f"the connection stayed open: {result.summary()}"
            else:
                assert not result.closed, f"the connection was closed: {result.summary()}"
                pong = conn.command("PING")
                if authed:
                    assert pong == b"PONG", pong
                else:
                    assert isinstance(pong, hiredis.ReplyError) and "NOAUTH" in str(pong), pong
        if after is not None:
            after(target)
        return _outcome(result), result.summary()

    return Row(name, transport, sent, must, run)


def absent(*keys: str) -> Callable[[Target], None]:
    """Check that none of ``keys`` exists in any database of any backend."""
    def check(target: Target) -> None:
        for key in keys:
            assert not target.where(key), f"{key!r} was written: {target.where(key)}"
    return check


def _http_outcome(result: HttpResult) -> str:
    return "closed, no reply" if result.status is None else f"HTTP {result.status}"


def _check_http(result: HttpResult, statuses: set[int], code: str | None, target: Target,
                allow_close: bool, bare_ok: bool = False) -> None:
    _clean(result.body, target)
    if result.status is None:
        assert allow_close, "the server closed the connection without a reply"
        return
    assert result.status < 500, f"a {result.status}: {result.body[:300]!r}"
    assert result.status in statuses, f"{result.status}, expected one of {sorted(statuses)}: " \
                                      f"{result.body[:300]!r}"
    if code is not None and not (bare_ok and not result.body):
        body = json.loads(result.body)
        assert body["code"] == code and body["error"], body
        assert len(body["error"]) <= MAX_ERROR, body["error"][:200]


def http(name: str, sent: str, method: str, path: str, statuses: set[int],
         code: str | None = None, *, must: str | None = None,
         after: Callable[[Target, HttpResult], None] | None = None, **kwargs) -> Row:
    """A row sent with ``requests`` to node 0's HTTP port."""
    must = must or f"{'/'.join(map(str, sorted(statuses)))}" + (f" {code}" if code else "")

    def run(target: Target) -> tuple[str, str]:
        kwargs.setdefault("timeout", 15)
        if callable(kwargs.get("headers")):
            kwargs["headers"] = kwargs["headers"](target)
        if callable(kwargs.get("data")):
            kwargs["data"] = kwargs["data"](target)
        reply = requests.request(method, f"{target.http()}{path}", **kwargs)
        result = HttpResult(reply.status_code, dict(reply.headers), reply.content)
        _check_http(result, statuses, code, target, allow_close=False)
        if after is not None:
            after(target, result)
        return _http_outcome(result), result.summary()

    return Row(name, "HTTP", sent, must, run)


def raw_http(name: str, sent: str, request: bytes | Callable[[], bytes], statuses: set[int],
             code: str | None = None, *, allow_close: bool = False, must: str | None = None,
             bare_ok: bool = False,
             chunks: Callable[[], list[bytes]] | None = None,
             after: Callable[[Target, HttpResult], None] | None = None) -> Row:
    """A row sent as raw HTTP/1.1 bytes on a socket to node 0's HTTP port."""
    must = must or (f"{'/'.join(map(str, sorted(statuses)))}" + (f" {code}" if code else "")
                    + (" or closed" if allow_close else ""))

    def run(target: Target) -> tuple[str, str]:
        data = request() if callable(request) else request
        result = http_raw(target.http_port(), data, chunks=chunks() if chunks else [])
        _check_http(result, statuses, code, target, allow_close, bare_ok)
        if after is not None:
            after(target, result)
        return _http_outcome(result), result.summary()

    return Row(name, "HTTP raw", sent, must, run)


def _request(method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes = b"", length: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode("latin-1"), b"Host: 127.0.0.1",
             b"Connection: close"]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in (headers or {}).items()]
    if length and body and not any(k.lower() == "content-length" for k in headers or {}):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# ------------------------------------------------------------ RESP before AUTH
def _garbage(seed: int, size: int) -> bytes:
    return bytes(random.Random(seed).randrange(256) for _ in range(size))


def _pipelined_junk() -> bytes:
    return (b"PING\r\n" + _pack("FOO") + b"GET k\r\n" * 50
            + _pack("SET", "hostile:preauth:pipe", "v") + b"*1\r\n$x\r\n")


def _binary_garbage(target: Target) -> tuple[str, str]:
    """Whatever errors the bytes make, however many; closed at the end."""
    with Resp(target.resp_port()) as conn:
        conn.send(_garbage(7, 4096).replace(b"*", b"+") + b"\r\n*x\r\n")
        result = conn.read(None)
    _clean(result.raw, target)
    assert result.replies and all(isinstance(r, hiredis.ReplyError) for r in result.replies)
    assert all(len(e) <= MAX_ERROR for e in result.errors), [e[:80] for e in result.errors]
    assert result.closed
    return _outcome(result), result.summary()


PRE_AUTH = [
    resp("multibulk count over 1M", "`*1048577`", b"*1048577\r\n",
         [Err("^ERR Protocol error: (invalid|unauthenticated) multibulk length$")],
         closed=True, authed=False),
    resp("multibulk count of 2^31", "`*2147483648`", b"*2147483648\r\n",
         [Err("^ERR Protocol error: (invalid|unauthenticated) multibulk length$")],
         closed=True, authed=False),
    resp("11 arguments", "`*11` and 11 one-byte bulks",
         b"*11\r\n" + b"$1\r\na\r\n" * 11,
         [Err("^ERR Protocol error: unauthenticated multibulk length$")], closed=True,
         authed=False),
    resp("10 arguments", "`*10`: AUTH and 9 more (the limit)", _pack("AUTH", *["x"] * 9),
         [Err("^ERR syntax error$")], closed=False, authed=False),
    resp("bulk length over 512 MiB", "`*1 $536870913`", b"*1\r\n$536870913\r\n",
         [Err("^ERR Protocol error: invalid bulk length$")], closed=True, authed=False),
    resp("bulk over 16 KiB", "`AUTH` with a `$16385` password",
         b"*2\r\n$4\r\nAUTH\r\n$16385\r\n",
         [Err("^ERR Protocol error: unauthenticated bulk length$")], closed=True,
         authed=False),
    resp("16 KiB password", "`AUTH` + 16384 bytes (the limit)", _pack("AUTH", "p" * 16384),
         [Err("^WRONGPASS")], closed=False, authed=False),
    resp("negative bulk length", "`*1 $-5`", b"*1\r\n$-5\r\n",
         [Err("^ERR Protocol error: invalid bulk length$")], closed=True, authed=False),
    resp("bulk length $-1", "`*1 $-1` (a nil as a request)", b"*1\r\n$-1\r\n",
         [Err("^ERR Protocol error: invalid bulk length$")], closed=True, authed=False),
    resp("overflowing multibulk count", "`*` + 23 nines", b"*" + b"9" * 23 + b"\r\n",
         [Err("^ERR Protocol error: invalid multibulk length$")], closed=True, authed=False),
    resp("overflowing bulk length", "`*1 $` + 20 nines", b"*1\r\n$" + b"9" * 20 + b"\r\n",
         [Err("^ERR Protocol error: invalid bulk length$")], closed=True, authed=False),
    resp("*-1", "`*-1` (a nil array)", b"*-1\r\n", [], closed=False, authed=False,
         must="ignored (Redis's rule); kept open"),
    resp("*0", "`*0`", b"*0\r\n", [], closed=False, authed=False,
         must="ignored (Redis's rule); kept open"),
    resp("$ without digits", "`*1 $`", b"*1\r\n$\r\n",
         [Err("^ERR Protocol error: invalid bulk length$")], closed=True, authed=False),
    resp("* without digits", "`*`", b"*\r\n",
         [Err("^ERR Protocol error: invalid multibulk length$")], closed=True, authed=False),
    resp("multibulk count not a number", "`*abc`", b"*abc\r\n",
         [Err("^ERR Protocol error: invalid multibulk length$")], closed=True, authed=False),
    resp("not a bulk in a multibulk", "`*1 :5`", b"*1\r\n:5\r\n",
         [Err("^ERR Protocol error: expected '\\$', got ':'$")], closed=True, authed=False),
    resp("inline, unbalanced quotes", '`SET "k v`', b'SET "k v\r\n',
         [Err("^ERR Protocol error: unbalanced quotes in request$")], closed=True,
         authed=False),
    resp("inline, closing quote then text", "`GET \"k\"x`", b'GET "k"x\r\n',
         [Err("^ERR Protocol error: unbalanced quotes in request$")], closed=True,
         authed=False),
    resp("NUL-filled line", "1000 NUL bytes, CRLF", b"\x00" * 1000 + b"\r\n",
         [Err("^ERR unknown")], closed=False, authed=False),
    resp("60 KiB inline command name", "an inline line of 60 KiB `A`", b"A" * 60_000 + b"\r\n",
         [Err("^ERR unknown")], closed=False, authed=False),
    resp("inline line over 64 KiB", "70,000 bytes, no newline", b"A" * 70_000,
         [Err("^ERR Protocol error: too big inline request$")], closed=True, authed=False),
    resp("count line over 64 KiB", "`*` + 70,000 digits, no CRLF", b"*" + b"1" * 70_000,
         [Err("^ERR Protocol error: too big mbulk count string$")], closed=True, authed=False),
    Row("binary garbage", "RESP before AUTH", "4 KiB of seeded random bytes, then `*x` CRLF",
        "only errors, then closed at the protocol error", _binary_garbage),
    resp("pipelined junk", "PING, FOO, 50 inline GETs, SET, then `*1 $x`", _pipelined_junk,
         [Err("^NOAUTH"), Err("^ERR unknown")] + [Err("^NOAUTH")] * 51
         + [Err("^ERR Protocol error: invalid bulk length$")], closed=True, authed=False,
         after=absent("hostile:preauth:pipe")),
    resp("data command before AUTH", "`SET hostile:preauth v`",
         _pack("SET", "hostile:preauth", "v"),
         [Err("^NOAUTH Authentication required\\.$")], closed=False, authed=False,
         after=absent("hostile:preauth")),
    resp("HELLO 3 before AUTH", "`HELLO 3`", _pack("HELLO", "3"),
         [Err("^NOAUTH HELLO must be called with the client already authenticated")],
         closed=False, authed=False),
]


# ------------------------------------------------------------ RESP after AUTH
def _over_request() -> bytes:
    """MSET of 33 values of max_value_bytes: 66 MiB of arguments in one request."""
    value = b"$%d\r\n" % MAX_VALUE + b"v" * MAX_VALUE + b"\r\n"
    pairs = b"".join(_pack(f"hostile:req:{i:02d}")[4:] + value for i in range(33))
    return b"*67\r\n$4\r\nMSET\r\n" + pairs


def _declared(size: int) -> bytes:
    """The head of a SET whose key is declared ``size`` bytes long."""
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n" % size


def _stream(size: int, tail: bytes) -> Callable[[], list[bytes]]:
    def chunks() -> list[bytes]:
        block = b"k" * (1 << 20)
        out = [block] * (size // len(block))
        return [*out, b"k" * (size % len(block)) + b"\r\n" + tail]
    return chunks


def _db1_empty_of(*keys: str) -> Callable[[Target], None]:
    def check(target: Target) -> None:
        for i in range(len(target.config.nodes)):
            for key in keys:
                assert not target.backend(i, META_DB).exists(key), f"{key} in database 1"
    return check


def _in_db0(key: str, value: bytes) -> Callable[[Target], None]:
    """``key`` is an ordinary key: in database 0 of its copies (every backend of
    this 3-node, r=2 cluster), and nowhere else."""
    def check(target: Target) -> None:
        copies = min(target.config.replicas + 1, len(target.config.nodes))
        holders = [i for i in range(len(target.config.nodes))
                   if target.backend(i).get(key) == value]
        assert len(holders) == copies, f"{key} held by backends {holders}"
        dbs = {db for _, db in target.where(key)} - {2}  # 2: its version
        if key.startswith("dtriad:"):  # database 1's own key, checked after every row
            dbs.discard(META_DB)
        assert dbs == {0}, f"{key} in databases {dbs}"
        with target.authed(2) as conn:  # any DTServer
            assert conn.command("GET", key) == value
            assert conn.command("DEL", key) == 1
    return check


G_ESCAPES = {
    "_G assignment": "_G.hostile = 1 return 1",
    "rawset on _G": "rawset(_G, 'hostile', 1) return 1",
    "setmetatable(_G, nil)": "setmetatable(_G, nil) hostile = 1 return 1",
    "new global": "hostile = 1 return 1",
    "string library patched": "string.format = function() return '1' end return 1",
    "redis.call replaced": "redis.call = function() return 1 end return 1",
    "loadstring": "return loadstring('return 1')()",
    "getfenv(0)": "getfenv(0).hostile = 1 return 1",
    "debug.getupvalue of redis.call":
        "local n, real = debug.getupvalue(redis.call, 1) "
        "if type(real) == 'table' and real.call then real.call('SELECT', 1) "
        "return real.call('SET', 'hostile:escaped', '1') end return 'no escape'",
    "debug.getlocal of the wrapper":
        "for level = 1, 8 do local i = 1 while true do "
        "local name, v = debug.getlocal(level, i) if not name then break end "
        "if type(v) == 'table' and rawget(v, 'call') and v ~= redis then "
        "v.call('SELECT', 1) return v.call('SET', 'hostile:escaped', '1') end "
        "i = i + 1 end end return 'no escape'",
    "debug.getregistry": "local r = debug.getregistry() return type(r)",
    "dofile": "return dofile('/etc/passwd')",
    "os.execute": "return os.execute('id')",
    "io.open": "return io.open('/etc/passwd')",
    "require": "return require('os')",
}


def _escape(source: str) -> Row:
    def check(target: Target) -> None:
        absent("hostile:escaped")(target)
        for i, db in enumerate(target.backends()):  # nothing leaked into the backends' Lua
            leaked = db.eval("return {tostring(rawget(_G, 'hostile')), "
                             "string.format('%d', 5)}", 0)
            assert leaked == [b"nil", b"5"], f"backend {i}'s Lua state changed: {leaked}"
        for i in range(len(target.config.nodes)):  # the next script gets the real redis
            with target.authed(i) as conn:
                assert conn.command("EVAL", "return redis.call('GET', KEYS[1])", "1",
                                    "hostile:canary") == b"still here"

    def run(target: Target) -> tuple[str, str]:
        with target.authed() as conn:
            conn.send(_pack("EVAL", source, "0"))
            result = conn.read(1, quiet_s=0.2)
            _clean(result.raw, target)
            assert len(result.replies) == 1 and not result.closed, result.summary()
            reply = result.replies[0]
            refused = isinstance(reply, hiredis.ReplyError)
            assert refused or reply in (1, b"no escape", b"table"), \
                f"the script ran: {result.summary()}"
            assert conn.command("PING") == b"PONG"
        check(target)
        return ("error, kept open" if refused else "reply, kept open"), result.summary()

    return Row(f"EVAL escape: {source[:30]}", "RESP", f"`EVAL {source[:60]}...` 0",
               "refused, or runs on its own copy of redis only; nothing leaks to the "
               "backend's Lua state or the next script", run)


def _auth_repeatedly(target: Target) -> tuple[str, str]:
    with Resp(target.resp_port()) as conn:
        conn.send(_pack("AUTH", "wrong") * 100)
        result = conn.read(100, quiet_s=0.2)
        _clean(result.raw, target)
        _match(result, [Err("^WRONGPASS invalid username-password pair")] * 100)
        assert conn.command("AUTH", target.password) == b"OK"  # no lockout, as Redis
        assert conn.command("GET", "hostile:canary") == b"still here"
    for _ in range(20):
        with Resp(target.resp_port()) as conn:
            assert "WRONGPASS" in str(conn.command("AUTH", "default", "wrong"))
            assert "NOAUTH" in str(conn.command("GET", "hostile:canary"))
    return _outcome(result), result.summary()


def _client_kill(target: Target) -> tuple[str, str]:
    with target.authed() as conn, target.authed() as other:
        other_id = other.command("CLIENT", "ID")
        conn.send(_pack("CLIENT", "KILL", "ID", str(other_id))
                  + _pack("CLIENT", "KILL", "TYPE", "normal")
                  + _pack("CLIENT", "KILL", "127.0.0.1:1"))
        result = conn.read(3, quiet_s=0.2)
        _clean(result.raw, target)
        _match(result, [Err("^ERR")] * 3)
        assert other.command("PING") == b"PONG"
    return _outcome(result), result.summary()


def _subscribe_then_get(target: Target) -> tuple[str, str]:
    with target.authed() as conn:
        conn.send(_pack("SUBSCRIBE", "hostile:ch") + _pack("GET", "hostile:canary"))
        result = conn.read(2, quiet_s=0.2)
        _clean(result.raw, target)
        assert result.replies[0] == [b"subscribe", b"hostile:ch", 1], result.summary()
        _match(RespResult(result.replies[1:]), [Err(
            r"^ERR Can't execute 'get': only \(P\)SUBSCRIBE / \(P\)UNSUBSCRIBE / PING / QUIT "
            r"(/ RESET )?are allowed in this context$")])
        assert conn.command("PING") == [b"pong", b""]  # RESP2 subscribed mode's PING
        assert not result.closed
    return _outcome(result), result.summary()


def _eval_loop_bounded(target: Target) -> tuple[str, str]:
    with target.authed() as conn:
        reply = conn.command("EVAL", "local i = 0 while i < 2000000 do i = i + 1 end return i",
                             "0")
        assert reply == 2000000, reply
    return "reply, kept open", repr(reply)


AFTER_AUTH = [
    resp("argument over max_value_bytes", f"`SET hostile:big <{MAX_VALUE + 1} bytes>`",
         _pack("SET", "hostile:big", "v" * (MAX_VALUE + 1)),
         [Err(f"^TOO_LARGE value is {MAX_VALUE + 1} bytes; this cluster accepts at most "
              f"{MAX_VALUE} bytes")], closed=False, after=absent("hostile:big")),
    resp("request over max_request_bytes", "MSET of 33 values of max_value_bytes (66 MiB)",
         _over_request,
         [Err(f"^ERR Protocol error: the request's arguments add up to more than "
              f"{MAX_REQUEST} bytes$")], closed=True,
         after=absent("hostile:req:00", "hostile:req:32")),
    resp("0-argument request", "`*0`", b"*0\r\n", [], closed=False,
         must="ignored (Redis's rule); kept open"),
    resp("unknown command, 1 MiB name", "a 1 MiB command name", _pack("X" * (1 << 20)),
         [Err("^ERR unknown")], closed=False,
         must="ERR unknown command, the name cut short (Redis: 128 bytes); kept open"),
    resp("command name over max_value_bytes", f"a {MAX_VALUE + 1}-byte command name",
         lambda: _pack("X" * (MAX_VALUE + 1), "k"), [Err("^(ERR|TOO_LARGE)")], closed=False),
    resp("SELECT 1", "`SELECT 1`, then SET", _pack("SELECT", "1")
         + _pack("SET", "hostile:select", "v"),
         [Err("^ERR SELECT is not allowed"), b"OK"], closed=False,
         after=lambda t: (_db1_empty_of("hostile:select")(t),
                          _in_db0("hostile:select", b"v")(t))),
    resp("SELECT -1 / 2^64", "`SELECT -1`, `SELECT 18446744073709551616`",
         _pack("SELECT", "-1") + _pack("SELECT", "18446744073709551616"),
         [Err("^ERR"), Err("^ERR")], closed=False),
    resp("COPY k x DB 1", "`SET hostile:copy v`, `COPY hostile:copy hostile:x DB 1`",
         _pack("SET", "hostile:copy", "v") + _pack("COPY", "hostile:copy", "hostile:x", "DB", "1"),
         [b"OK", Err("^ERR")], closed=False,
         after=lambda t: (absent("hostile:x")(t), _in_db0("hostile:copy", b"v")(t))),
    resp("SWAPDB", "`SWAPDB 0 1`", _pack("SWAPDB", "0", "1"), [Err("^ERR")], closed=False),
    resp("MOVE", "`SET hostile:move v`, `MOVE hostile:move 1`",
         _pack("SET", "hostile:move", "v") + _pack("MOVE", "hostile:move", "1"),
         [b"OK", Err("^ERR")], closed=False,
         after=lambda t: (_db1_empty_of("hostile:move")(t),
                          _in_db0("hostile:move", b"v")(t))),
    resp("CONFIG SET", "`CONFIG SET requirepass x`, `CONFIG SET maxmemory 1`",
         _pack("CONFIG", "SET", "requirepass", "x") + _pack("CONFIG", "SET", "maxmemory", "1"),
         [Err("^ERR CONFIG SET is not served"), Err("^ERR CONFIG SET is not served")],
         closed=False,
         after=lambda t: [db.config_get("maxmemory") == {"maxmemory": "0"} or
                          pytest.fail("a backend's maxmemory changed") for db in t.backends()]),
    resp("CONFIG GET", "`CONFIG GET *`", _pack("CONFIG", "GET", "*"), [[]], closed=False,
         must="an empty list (no backend setting shown)"),
    resp("DEBUG", "`DEBUG SEGFAULT`, `DEBUG SLEEP 0`",
         _pack("DEBUG", "SEGFAULT") + _pack("DEBUG", "SLEEP", "0"),
         [Err("^ERR unknown"), Err("^ERR unknown")], closed=False),
    resp("SHUTDOWN", "`SHUTDOWN NOSAVE`, `SHUTDOWN`",
         _pack("SHUTDOWN", "NOSAVE") + _pack("SHUTDOWN"),
         [Err("^ERR unknown"), Err("^ERR unknown")], closed=False),
    resp("MONITOR", "`MONITOR`, then SET", _pack("MONITOR") + _pack("SET", "hostile:mon", "v"),
         [Err("^ERR unknown"), b"OK"], closed=False,
         must="refused; nothing streamed; kept open",
         after=lambda t: _in_db0("hostile:mon", b"v")(t)),
    resp("SCRIPT KILL", "`SCRIPT KILL`", _pack("SCRIPT", "KILL"), [Err("^(ERR|NOTBUSY)")],
         closed=False),
    resp("EVAL with SELECT", "`EVAL \"redis.call('SELECT', 1) ...\" 1 k`",
         _pack("EVAL", "redis.call('SELECT', 1) return redis.call('SET', KEYS[1], 'x')", "1",
               "hostile:evalselect"),
         [Err("SELECT")], closed=False, after=absent("hostile:evalselect")),
    resp("EVAL, undeclared key", "`EVAL \"return redis.call('SET', 'hostile:undeclared', 'x')\" 0`",
         _pack("EVAL", "return redis.call('SET', 'hostile:undeclared', 'x')", "0"),
         [Err("hostile:undeclared")], closed=False, after=absent("hostile:undeclared")),
    resp("EVAL, dtriad's databases", "`EVAL` of SET on key `dtriad:fence` declared",
         _pack("EVAL", "return redis.call('SET', KEYS[1], 'x')", "1", "hostile:{t}:declared")
         + _pack("EVAL", "redis.call('SWAPDB', 0, 1) return 1", "0"),
         [b"OK", Err("SWAPDB")], closed=False,
         after=lambda t: _in_db0("hostile:{t}:declared", b"x")(t)),
    *[_escape(source) for source in G_ESCAPES.values()],
    Row("EVAL, a bounded busy loop", "RESP", "`EVAL` of 2,000,000 Lua iterations",
        "its result; the backend free afterwards", _eval_loop_bounded),
    resp("MULTI nested", "`MULTI`, `MULTI`, `DISCARD`",
         _pack("MULTI") + _pack("MULTI") + _pack("DISCARD"),
         [b"OK", Err("^ERR MULTI calls can not be nested$"), b"OK"], closed=False),
    resp("EXEC without MULTI", "`EXEC`, `DISCARD`", _pack("EXEC") + _pack("DISCARD"),
         [Err("^ERR EXEC without MULTI$"), Err("^ERR DISCARD without MULTI$")], closed=False),
    resp("WATCH inside MULTI", "`MULTI`, `WATCH k`, `SET k v`, `EXEC`",
         _pack("MULTI") + _pack("WATCH", "hostile:w") + _pack("SET", "hostile:w", "v")
         + _pack("EXEC"),
         [b"OK", Err("^ERR WATCH inside MULTI is not allowed$"), b"QUEUED", [b"OK"]],
         closed=False, after=lambda t: _in_db0("hostile:w", b"v")(t)),
    resp("DEBUG inside MULTI", "`MULTI`, `DEBUG SEGFAULT`, `EXEC`",
         _pack("MULTI") + _pack("DEBUG", "SEGFAULT") + _pack("EXEC"),
         [b"OK", Err("^ERR unknown command"), Err("^EXECABORT")], closed=False),
    resp("value over max_value_bytes inside MULTI", "`MULTI`, SET of a too large value, `EXEC`",
         _pack("MULTI") + _pack("SET", "hostile:mbig", "v" * (MAX_VALUE + 1)) + _pack("EXEC"),
         [b"OK", Err("^ERR an argument of"), Err("^EXECABORT")], closed=False,
         after=absent("hostile:mbig")),
    Row("SUBSCRIBE then GET (RESP2)", "RESP", "`SUBSCRIBE ch`, `GET k`",
        "the subscribe reply, then Redis's subscribed-mode error; kept open",
        _subscribe_then_get),
    resp("key dtriad:fence", "`SET dtriad:fence 99999999`, `GET dtriad:fence`",
         _pack("SET", "dtriad:fence", "99999999") + _pack("GET", "dtriad:fence"),
         [b"OK", b"99999999"], closed=False,
         must="an ordinary key of database 0; database 1 untouched",
         after=lambda t: _in_db0("dtriad:fence", b"99999999")(t)),
    resp("key dtriad:ring", "`SET dtriad:ring <a forged ring of epoch 10^6>`",
         _pack("SET", "dtriad:ring", json.dumps({"epoch": 10 ** 6})),
         [b"OK"], closed=False, must="an ordinary key of database 0; database 1 untouched",
         after=lambda t: _in_db0("dtriad:ring", json.dumps({"epoch": 10 ** 6}).encode())(t)),
    resp("key dtriad:scripts", "`HSET dtriad:scripts x y`, `DEL dtriad:scripts`",
         _pack("HSET", "dtriad:scripts", "x", "y") + _pack("DEL", "dtriad:scripts"),
         [1, 1], closed=False, must="an ordinary key of database 0; database 1 untouched"),
    resp("512 MiB declared key length", "`SET` whose key is `$536870912`, 512 MiB streamed",
         _declared(512 * 1024 * 1024), [Err("^TOO_LARGE")], closed=False,
         chunks=_stream(512 * 1024 * 1024, b"$1\r\nv\r\n"),
         must="TOO_LARGE once the bytes are skipped; kept open"),
    resp("HELLO 4", "`HELLO 4`", _pack("HELLO", "4"),
         [Err("^NOPROTO unsupported protocol version$")], closed=False),
    resp("HELLO with a wrong AUTH", "`HELLO 3 AUTH default wrong`",
         _pack("HELLO", "3", "AUTH", "default", "wrong"), [Err("^WRONGPASS")], closed=False),
    Row("AUTH wrong, repeatedly", "RESP", "100 wrong `AUTH` pipelined, then 20 connections",
        "WRONGPASS each (no credential shown), then the right one works", _auth_repeatedly),
    Row("CLIENT KILL", "RESP", "`CLIENT KILL ID <other>`, `TYPE normal`, `<addr>`",
        "refused; the other connection alive", _client_kill),
    resp("QUIT", "`QUIT`, then GET", _pack("QUIT") + _pack("GET", "k"), [b"OK"], closed=True),
]


# ---------------------------------------------------------------------- HTTP
def _multipart(value: bytes, boundary: str = "B0UNDARY") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n"
            f"hostile:mp\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"value\""
            f"\r\n\r\n").encode() + value + f"\r\n--{boundary}--\r\n".encode()


def _no_header(name: str) -> Callable[[Target, HttpResult], None]:
    def check(target: Target, result: HttpResult) -> None:
        assert name.lower() not in {k.lower() for k in result.headers}, result.headers
    return check


def _chunked_set(target: Target, result: HttpResult) -> None:
    if result.status == 200:
        assert requests.get(f"{target.http()}/get", params={"key": "hostile:chunked"},
                            timeout=10).json() == "v"
    absent("hostile:chunked:bad")(target)


def _ring(epoch: int, **change) -> str:
    nodes = [{"name": f"evil{i}", "redis": f"10.66.6.{i}:6379", "http": f"http://10.66.6.{i}:1"}
             for i in range(3)]
    state = {"epoch": epoch, "replicas": 2, "vnodes": 1, "nodes": nodes, "pending": None,
             "pending_epoch": None, "migration": None}
    return json.dumps({**state, **change})


def _push(secret: str | None, state: str) -> Callable[[Target], dict]:
    def data(target: Target) -> dict:
        out = {"state": state}
        if secret is not None:
            out["secret"] = target.config.secret if secret == "right" else secret
        return out
    return data


def _auth_header(kind: str) -> Callable[[Target], dict]:
    def headers(target: Target) -> dict:
        return {"right": target.admin(), "none": {}, "wrong": {"Authorization": "Bearer wrong"},
                "basic": {"Authorization": f"Basic {target.config.secret}"},
                "huge": {"Authorization": "Bearer " + "x" * 60_000}}[kind]
    return headers


HTTP = [
    http("percent-encoded invalid UTF-8 in key", "`GET /get?key=%ff`", "GET", "/get?key=%ff",
         {400}, "BADARG"),
    http("invalid UTF-8 sequence in key", "`GET /set?key=%c3%28&value=v`", "GET",
         "/set?key=%c3%28&value=v", {400}, "BADARG", after=lambda t, r: absent("\ufffd(")(t)),
    http("raw invalid UTF-8 in a form body", "POST /set `key=hostile:f\\xff&value=v`", "POST",
         "/set", {400}, "BADARG", data=b"key=hostile:f\xff&value=v", headers=FORM,
         after=lambda t, r: absent("hostile:f\ufffd")(t)),
    http("raw invalid UTF-8 in a multipart body", "POST /set multipart, value `\\xff\\xfe`",
         "POST", "/set", {400}, "BADARG", data=_multipart(b"\xff\xfe"),
         headers={"Content-Type": "multipart/form-data; boundary=B0UNDARY"},
         after=lambda t, r: absent("hostile:mp")(t)),
    http("multipart without a boundary", "POST /set `multipart/form-data` without boundary",
         "POST", "/set", {400}, "BADARG", data=_multipart(b"v"),
         headers={"Content-Type": "multipart/form-data"}),
    http("JSON body", "POST /set `application/json`", "POST", "/set", {415}, "BADARG",
         data=b'{"key": "k"}', headers={"Content-Type": "application/json"}),
    raw_http("raw invalid UTF-8 in the query", "`GET /get?key=\\xff\\xfe HTTP/1.1`",
             b"GET /get?key=\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
             {400}, "BADARG", allow_close=True, bare_ok=True,
             must="400 (BADARG, or the HTTP server's own bodiless 400)"),
    raw_http("100 MB Content-Length never sent (form)", "POST /set, form, `Content-Length: "
             "100000000`, no body", _request("POST", "/set", {**FORM,
                                                             "Content-Length": "100000000"}),
             {413}, "TOO_LARGE"),
    raw_http("100 MB Content-Length never sent (no type)", "POST /set, no Content-Type, "
             "`Content-Length: 100000000`, no body",
             _request("POST", "/set", {"Content-Length": "100000000"}), {400, 404, 411, 413},
             allow_close=True),
    raw_http("100 MB Content-Length to /dashboard/login", "POST /dashboard/login, "
             "`Content-Length: 100000000`, no body",
             _request("POST", "/dashboard/login", {**FORM, "Content-Length": "100000000"}),
             {413}),
    raw_http("huge body to /dashboard/login", "POST /dashboard/login, a 3 MB body sent",
             _request("POST", "/dashboard/login", {**FORM, "Content-Length": "3000000"}),
             {413}, chunks=lambda: [b"token=" + b"x" * 2_999_994]),
    raw_http("Content-Length: -1", "POST /set, form, `Content-Length: -1`",
             _request("POST", "/set", {**FORM, "Content-Length": "-1"}, b"key=k&value=v"),
             {400}, allow_close=True, after=lambda t, r: absent("k")(t)),
    raw_http("Content-Length: abc", "POST /set, form, `Content-Length: abc`",
             _request("POST", "/set", {**FORM, "Content-Length": "abc"}, b"key=k&value=v"),
             {400}, allow_close=True),
    raw_http("two Content-Lengths", "POST /set with `Content-Length: 5` and `: 30`",
             _request("POST", "/set", {**FORM, "Content-Length": "5"}, b"key=hostile:cl"
                      b"&value=v").replace(b"Content-Length: 5", b"Content-Length: 5\r\n"
                                           b"Content-Length: 22"),
             {400}, allow_close=True, after=lambda t, r: absent("hostile:cl")(t)),
    raw_http("chunked form body", "POST /set, `Transfer-Encoding: chunked`, "
             "`key=hostile:chunked&value=v`",
             _request("POST", "/set", {**FORM, "Transfer-Encoding": "chunked"},
                      b"22\r\nkey=hostile:chunked&value=v\r\n0\r\n\r\n".replace(b"22\r\n",
                                                                              b"1b\r\n"),
                      length=False),
             {200, 400, 411, 413}, must="200 and the value stored as sent, or a 4xx",
             after=_chunked_set),
    raw_http("chunked body, bad chunk size", "POST /set, chunked, chunk size `zz`",
             _request("POST", "/set", {**FORM, "Transfer-Encoding": "chunked"},
                      b"zz\r\nkey=hostile:chunked:bad&value=v\r\n0\r\n\r\n", length=False),
             {400}, allow_close=True, after=lambda t, r: absent("hostile:chunked:bad")(t)),
    raw_http("chunked body over the limit", "POST /set, chunked, 7 MB of chunks",
             _request("POST", "/set", {**FORM, "Transfer-Encoding": "chunked"}, length=False),
             {400, 413}, allow_close=True,
             chunks=lambda: [b"100000\r\n" + b"v" * 0x100000 + b"\r\n"] * 7 + [b"0\r\n\r\n"]),
    http("PUT", "`PUT /set?key=k&value=v`", "PUT", "/set?key=hostile:put&value=v", {405},
         "BADARG", after=lambda t, r: absent("hostile:put")(t)),
    http("DELETE", "`DELETE /delete?key=hostile:canary`", "DELETE",
         "/delete?key=hostile:canary", {405}, "BADARG"),
    http("OPTIONS", "`OPTIONS /get`", "OPTIONS", "/get", {405}, "BADARG"),
    raw_http("unknown HTTP method", "`BREW /get HTTP/1.1`", _request("BREW", "/get"),
             {400, 405}, allow_close=True),
    http("unknown method path", "`GET /nosuch`", "GET", "/nosuch", {404}, "UNKNOWN_METHOD"),
    raw_http("path traversal", "`GET /../../etc/passwd`", _request("GET", "/../../etc/passwd"),
             {400, 404}, allow_close=True),
    http("1 MB URL", "`GET /get?key=<1 MB>`", "GET", "/get?key=" + "k" * 1_000_000,
         {200, 400, 413, 414, 431}, must="200 null (a valid key) or a 4xx"),
    http("4 MB URL", "`GET /set?key=k&value=<4 MB>`", "GET",
         "/set?key=hostile:url&value=" + "v" * 4_000_000, {400, 413, 414, 431},
         after=lambda t, r: absent("hostile:url")(t)),
    raw_http("CR in a header value", "`X-A: a\\rSet-Cookie: b`",
             _request("GET", "/get?key=k", {"X-A": "a\rSet-Cookie: b"}), {200, 400},
             allow_close=True, after=_no_header("set-cookie")),
    raw_http("obs-fold header", "`X-A: a` CRLF ` folded`",
             _request("GET", "/get?key=k", {"X-A": "a\r\n folded"}), {200, 400},
             allow_close=True),
    raw_http("LF-only line ends", "a request with bare LF line ends",
             b"GET /get?key=k HTTP/1.1\nHost: x\nConnection: close\n\n", {200, 400},
             allow_close=True),
    http("CR/LF in a key, reflected", "`/set?key=%0d%0aSet-Cookie:%20x&value=v`", "GET",
         "/set?key=hostile:%0d%0aSet-Cookie:%20x&value=v", {200},
         must="200: an ordinary key; no header made of it",
         after=lambda t, r: (_no_header("set-cookie")(t, r), requests.get(
             f"{t.http()}/delete", params={"key": "hostile:\r\nSet-Cookie: x"}, timeout=10))),
    http("CR/LF in an unknown method's name", "`GET /x%0d%0aSet-Cookie:%20y`", "GET",
         "/x%0d%0aSet-Cookie:%20y", {404}, "UNKNOWN_METHOD", after=_no_header("set-cookie")),
    http("command MULTI", "`/command?arg=MULTI`", "GET", "/command?arg=MULTI", {400}),
    http("command SUBSCRIBE", "`/command?arg=SUBSCRIBE&arg=ch`", "GET",
         "/command?arg=SUBSCRIBE&arg=ch", {400}),
    http("command BLPOP 0", "`/command?arg=BLPOP&arg=hostile:l&arg=0`", "GET",
         "/command?arg=BLPOP&arg=hostile:l&arg=0", {200, 400},
         must="an answer at once (null: nothing to pop) or 400; never a wait"),
    http("command DEBUG", "`/command?arg=DEBUG&arg=SEGFAULT`", "GET",
         "/command?arg=DEBUG&arg=SEGFAULT", {400}),
    http("command SELECT 1", "`/command?arg=SELECT&arg=1`", "GET", "/command?arg=SELECT&arg=1",
         {400}),
    http("command SHUTDOWN", "`/command?arg=SHUTDOWN`", "GET", "/command?arg=SHUTDOWN", {400}),
    http("command CONFIG SET", "`/command?arg=CONFIG&arg=SET&arg=maxmemory&arg=1`", "GET",
         "/command?arg=CONFIG&arg=SET&arg=maxmemory&arg=1", {400}),
    http("command without arg", "`/command`", "GET", "/command", {400}, "ERR"),
    http("command, EVAL with SELECT", "`/command?arg=EVAL&arg=redis.call('SELECT',1)&arg=0`",
         "GET", "/command", {400}, params={"arg": ["EVAL", "redis.call('SELECT', 1)", "0"]}),
    *[http(f"admin {m}, {how} secret", f"`GET /{m}`, {how} secret", "GET", f"/{m}", {401},
           "NOAUTH", headers=_auth_header(how))
      for m in ("ring", "keyDist", "check", "stats") for how in ("none", "wrong")],
    http("admin ring, Basic scheme", "`Authorization: Basic <secret>`", "GET", "/ring", {401},
         "NOAUTH", headers=_auth_header("basic")),
    http("admin ring, 60 KB bearer", "`Authorization: Bearer <60 KB>`", "GET", "/ring",
         {400, 401, 431}, headers=_auth_header("huge")),
    http("metrics without a token", "`GET /metrics`", "GET", "/metrics", {401}, "AUTH"),
    http("dashboard data without a token", "`GET /dashboard/data`", "GET", "/dashboard/data",
         {401}, "AUTH"),
    http("ringUpdate, forged ring, no secret", "POST /ringUpdate, a forged ring of epoch "
         "10^6, no secret", "POST", "/ringUpdate", {401}, "NOAUTH",
         data=_push(None, _ring(10 ** 6))),
    http("ringUpdate, forged ring, wrong secret", "the same with `secret=wrong` and a wrong "
         "bearer", "POST", "/ringUpdate", {401}, "NOAUTH", data=_push("wrong", _ring(10 ** 6)),
         headers=_auth_header("wrong")),
    http("ringUpdate, malformed ring, no secret", "POST /ringUpdate `state=[[[[`", "POST",
         "/ringUpdate", {400, 401}, data=_push(None, "[" * 100_000)),
    *[http(f"ringUpdate with the secret, {what}", f"POST /ringUpdate with the secret, {what}",
           "POST", "/ringUpdate", {400}, "BADARG", data=_push("right", state),
           headers=_auth_header("right"))
      for what, state in [("not JSON", "{"), ("nested 100,000 deep", "[" * 100_000),
                          ("10^9 vnodes", _ring(10 ** 6, vnodes=10 ** 9)),
                          ("epoch 2^64", _ring(2 ** 64)), ("epoch true", _ring(True)),
                          ("no nodes", _ring(10 ** 6, nodes=[])),
                          ("a member's port 0", _ring(10 ** 6, nodes=[
                              {"name": "a", "redis": "h:0", "http": "http://h:1"}])),
                          ("duplicate members", _ring(10 ** 6, nodes=[
                              {"name": "a", "redis": "h:1", "http": "http://h:1"}] * 2)),
                          ("token not matching", _ring(10 ** 6, token=7)),
                          ("5 MB", _ring(10 ** 6, migration={"x": "y" * 5_000_000}))]],
    http("ringUpdate with the secret, older epoch", "POST /ringUpdate with the secret, a "
         "well-formed forged ring of epoch 0", "POST", "/ringUpdate", {400, 409},
         must="409 STALE, or 400 if its members cannot be verified",
         data=_push("right", _ring(0)), headers=_auth_header("right")),
    http("login, wrong token", "POST /dashboard/login `token=wrong`", "POST",
         "/dashboard/login", {401}, data=b"token=wrong", headers=FORM,
         after=_no_header("set-cookie")),
]


# ---------------------------------------------------------------- ring loader
def _stored(state: str | bytes) -> Callable[[Target], tuple[str, str]]:
    """Replace node 0's backend's database 1 ring with ``state`` (the fence
    untouched), let every DTServer poll it, check they keep the real ring and
    serve, then put the real one back."""
    def run(target: Target) -> tuple[str, str]:
        db1 = target.backend(0, META_DB)
        real = db1.get(RING_KEY)
        try:
            db1.set(RING_KEY, state)
            deadline = time.monotonic() + 2.5  # > 2 poll intervals (1 s) of every DTServer
            while time.monotonic() < deadline:
                for i in range(len(target.config.nodes)):
                    with target.authed(i) as conn:
                        assert conn.command("SET", f"hostile:ring:{i}", "v") == b"OK"
                        assert conn.command("GET", "hostile:canary") == b"still here"
                time.sleep(0.2)
            rings = [target.ring_in_force(i) for i in range(len(target.config.nodes))]
            assert rings == target.rings, f"a DTServer took the stored ring: {rings}"
        finally:
            db1.set(RING_KEY, real)
        for i in range(len(target.config.nodes)):
            with target.authed(i) as conn:
                conn.command("DEL", f"hostile:ring:{i}")
        return "ignored, ring kept", f"rings in force {rings}"
    return run


def _from_json(text: str | bytes) -> Callable[[Target], tuple[str, str]]:
    def run(target: Target) -> tuple[str, str]:
        with pytest.raises(ArgumentError) as caught:
            RingState.from_json(text)
        message = caught.value.message
        assert message.startswith(("malformed ring state", "ring state")), message
        assert len(message) <= MAX_ERROR
        return "refused (ArgumentError)", message[:100]
    return run


MALFORMED = {
    "not JSON": "{", "invalid UTF-8": b"\xff\xfe{}", "nested 100,000 deep": "[" * 100_000,
    "a list": "[]", "10^9 vnodes": _ring(5, vnodes=10 ** 9),
    "epoch 2^64": _ring(2 ** 64), "epoch a float": _ring(1.5), "epoch NaN": _ring(5)
    .replace('"epoch": 5', '"epoch": NaN'), "epoch true": _ring(True),
    "replicas -1": _ring(5, replicas=-1), "nodes a dict": _ring(5, nodes={}),
    "2000 members": _ring(5, nodes=[{"name": f"n{i}", "redis": f"h:{i + 1}",
                                     "http": "http://h"} for i in range(2000)]),
    "member not an object": _ring(5, nodes=[1]),
    "member's http javascript:": _ring(5, nodes=[{"name": "a", "redis": "h:1",
                                                  "http": "javascript:x"}]),
    "member's redis without port": _ring(5, nodes=[{"name": "a", "redis": "h",
                                                    "http": "http://h"}]),
    "member's name 10 KB": _ring(5, nodes=[{"name": "a" * 10_000, "redis": "h:1",
                                            "http": "http://h"}]),
    "pending epoch older": _ring(5, pending=json.loads(_ring(1))["nodes"], pending_epoch=4),
    "pending without epoch": _ring(5, pending=json.loads(_ring(1))["nodes"]),
    "token not matching": _ring(5, token=99),
    "migration a list": _ring(5, migration=[]),
    "5 MB": _ring(5, migration={"x": "y" * 5_000_000}),
}

RING = [
    *[Row(f"ring loader: {what}", "ring loader (in process)",
          f"`RingState.from_json` of {what}", "ArgumentError naming the field",
          _from_json(text)) for what, text in MALFORMED.items()],
    *[Row(f"stored ring: {what}", "ring loader (backend db 1)",
          f"node 0's backend, database 1 `dtriad:ring` := {what}",
          "ignored by every DTServer (ring in force unchanged); still serving",
          _stored(state)) for what, state in [
              ("not JSON", "{"),
              ("nested 100,000 deep", "[" * 100_000),
              ("10^9 vnodes, epoch 10^6", _ring(10 ** 6, vnodes=10 ** 9)),
              ("a forged ring of a LOWER token", _ring(0)),
              ("malformed, LOWER token", _ring(0, vnodes=0)),
              ("5 MB, epoch 10^6", _ring(10 ** 6, migration={"x": "y" * 5_000_000})),
          ]],
]

ROWS = PRE_AUTH + AFTER_AUTH + HTTP + RING


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_hostile_input(target, row: Row):
    entry = REPORT.add(Entry(row.name, row.transport, row.sent, row.must))
    try:
        entry.outcome, entry.got = row.run(target)
    except BaseException as e:
        entry.outcome, entry.got = "FAILED", f"{type(e).__name__}: {e}"[:300]
        raise
    try:
        target.still_serving()
    except BaseException as e:
        entry.got += f"; AFTERWARDS {type(e).__name__}: {e}"[:600]
        raise
    entry.passed = True


def test_every_row_named_once():
    names = [r.name for r in ROWS]
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]

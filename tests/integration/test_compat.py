"""Redis 6.2 compatibility of the RESP front end, command by command.

A differential suite: every case is a short sequence of commands sent, as raw
RESP, to a DTServer's RESP port and to a plain Redis 6.2 (the ``plain``
fixture, the truth), both emptied with FLUSHALL first; the raw reply bytes
must be identical, in RESP2 and in RESP3 (``HELLO 3``). The keys of a case
are spread over the ring (the names A, B, C, D, E are sent as names chosen
for the cluster's ring so that A, B and C have three different masters:
:func:`spread`), with some cases on keys sharing a ``{t}`` tag (always one
node).

A step of a case is one of:

* a tuple: one command; the replies are compared byte for byte;
* :class:`After`: a command built from the earlier replies on the same
  server (DUMP's payload fed to RESTORE); compared byte for byte;
* :class:`Probe`: a function run on each server; it asserts an invariant
  (SPOP returns a member that is then gone) and returns a value that must be
  the same on both (a whole-keyspace SCAN's set of keys, a reply with its
  idle times masked). The invariant holds on the plain Redis too, or the
  case itself is wrong;
* :class:`DtError`: dtriad must answer an error with these words (commands
  dtriad refuses on purpose, SWAPDB and MOVE); Redis's reply is not compared.

Sections: the case table (one function per family: strings, lists, hashes,
sets, zsets, hll, geo, streams, keys, keyspace, server), the runner and its
test (id ``family-command-index``, per protocol), the hypothesis-generated
sequences, and last ``dtriad check`` over the cluster after all of it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtriad.membership.check import check
from dtriad.ops.procs import free_port, start_redis, stop_pid
from tests.conftest import backend, quiet_cluster
from tests.integration.test_resp import MAX_VALUE, Raw, resp_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from quiet_cluster(tmp_path_factory, "compat", MAX_VALUE)


# ---------------------------------------------------------------- step kinds
Call = Callable[..., Any]  # call(*args) -> the parsed reply (hiredis), on one server


@dataclass(frozen=True)
class After:
    """A command built from the parsed replies so far on the same server."""

    build: Callable[[list], tuple]


@dataclass(frozen=True)
class Probe:
    """``run(call, previous replies)`` on each server: asserts an invariant and
    returns a value that must be equal on both."""

    run: Callable[[Call, list], Any]
    label: str = ""


@dataclass(frozen=True)
class Beyond62:
    """A command Redis 6.2 lacks that dtriad serves (SORT_RO, Redis 7.0's
    read-only SORT): dtriad runs ``command``, the plain Redis ``equivalent``,
    and the replies must be equal."""

    command: tuple
    equivalent: tuple


@dataclass(frozen=True)
class DtError:
    """dtriad must answer an error mentioning ``words`` (Redis's reply is not compared)."""

    command: tuple
    words: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    id: str
    steps: tuple


CASES: list[Case] = []
_counts: Counter = Counter()


def case(family: str, command: str, *steps) -> None:
    _counts[family, command] += 1
    CASES.append(Case(f"{family}-{command}-{_counts[family, command]}", steps))


# Keys on different masters (test_the_case_keys_span_several_masters), and
# keys sharing a hash tag.
A, B, C, D, E = "{a}x", "b:0", "c:1", "d:0", "e:2"  # never equal to a value of a case
T1, T2, T3 = "{t}1", "{t}2", "{t}3"
S = A  # a string key for one-key cases
SPREAD = (A, B, C, D, E)


def is_error(reply: Any) -> bool:
    return isinstance(reply, hiredis.ReplyError)


def pairs(reply: list) -> list[tuple]:
    """[(field, value)] of a WITHVALUES/WITHSCORES reply, flat (RESP2) or nested (RESP3)."""
    if reply and isinstance(reply[0], list):
        return [tuple(p) for p in reply]
    return list(zip(reply[::2], reply[1::2], strict=True))


def as_map(reply: Any) -> dict:
    """A RESP2 flat field list or a RESP3 map, as a dict."""
    if isinstance(reply, dict):
        return dict(reply)
    return dict(zip(reply[::2], reply[1::2], strict=True))


def num(value: Any) -> float:
    return float(value.decode() if isinstance(value, bytes) else value)


# ------------------------------------------------------------------ strings
def strings() -> None:
    f = "strings"
    case(f, "getex", ("SET", S, "v"), ("GETEX", S), ("TTL", S))
    case(f, "getex", ("SET", S, "v"), ("GETEX", S, "EX", "100"), ("TTL", S))
    case(f, "getex", ("SET", S, "v"), ("GETEX", S, "PX", "100000"), ("TTL", S))
    case(f, "getex", ("SET", S, "v"), ("GETEX", S, "EXAT", "9999999999"), ("EXISTS", S),
         ("GETEX", S, "PERSIST"), ("TTL", S))
    case(f, "getex", ("SET", S, "v"), ("GETEX", S, "PXAT", "9999999999000"),
         ("GETEX", S, "PERSIST"), ("TTL", S))
    case(f, "getex", ("SET", S, "v", "EX", "100"), ("GETEX", S, "PERSIST"), ("TTL", S))
    case(f, "getex", ("GETEX", S), ("GETEX", S, "EX", "10"), ("EXISTS", S))
    case(f, "getex", ("SET", S, "v"), ("GETEX", S, "EX", "0"), ("GETEX", S, "EX", "-1"),
         ("GETEX", S, "PX", "0"), ("TTL", S))
    case(f, "getex", ("SET", S, "v"), ("GETEX", S, "EX", "abc"), ("GETEX", S, "EX"),
         ("GETEX", S, "EX", "10", "PX", "100"), ("GETEX", S, "EX", "10", "PERSIST"),
         ("GETEX", S, "FOO"), ("TTL", S))
    case(f, "getex", ("GETEX",), ("RPUSH", S, "x"), ("GETEX", S), ("GETEX", S, "EX", "5"))
    case(f, "substr", ("SET", S, "Hello World"), ("SUBSTR", S, "0", "4"),
         ("SUBSTR", S, "-5", "-1"), ("SUBSTR", S, "5", "2"), ("SUBSTR", S, "0", "100"),
         ("SUBSTR", S, "100", "200"))
    case(f, "substr", ("SUBSTR", S, "0", "1"), ("SET", S, "v"), ("SUBSTR", S, "x", "1"),
         ("SUBSTR", S, "0"), ("RPUSH", B, "x"), ("SUBSTR", B, "0", "1"))
    case(f, "msetnx", ("MSETNX", A, "1", B, "2", C, "3"), ("MGET", A, B, C),
         ("MSETNX", A, "9", D, "4"), ("MGET", A, D), ("EXISTS", D))
    case(f, "msetnx", ("MSETNX", T1, "1", T2, "2"), ("MSETNX", T2, "x", T3, "y"),
         ("MGET", T1, T2, T3))
    case(f, "msetnx", ("MSETNX", A, "1", A, "2"), ("GET", A))
    case(f, "msetnx", ("MSETNX", A), ("MSETNX", A, "1", B), ("MSETNX",), ("EXISTS", A, B))
    case(f, "msetnx", ("RPUSH", B, "x"), ("MSETNX", A, "1", B, "2"), ("EXISTS", A),
         ("TYPE", B))
    case(f, "setbit", ("SETBIT", S, "7", "1"), ("GET", S), ("SETBIT", S, "7", "0"),
         ("SETBIT", S, "100", "1"), ("GET", S), ("STRLEN", S))
    case(f, "setbit", ("SET", S, "a"), ("SETBIT", S, "6", "1"), ("SETBIT", S, "1", "0"),
         ("GET", S))
    case(f, "setbit", ("SETBIT", S, "7", "2"), ("SETBIT", S, "-1", "1"),
         ("SETBIT", S, "4294967296", "1"), ("SETBIT", S, "x", "1"), ("SETBIT", S, "1"),
         ("EXISTS", S))
    case(f, "setbit", ("LPUSH", S, "x"), ("SETBIT", S, "1", "1"))
    case(f, "getbit", ("SET", S, "\x80"), ("GETBIT", S, "0"), ("GETBIT", S, "1"),
         ("GETBIT", S, "1000"), ("GETBIT", "nokey", "0"))
    case(f, "getbit", ("SET", S, "v"), ("GETBIT", S, "-1"), ("GETBIT", S, "x"),
         ("GETBIT", S), ("SADD", B, "1"), ("GETBIT", B, "0"))
    case(f, "bitcount", ("SET", S, "foobar"), ("BITCOUNT", S), ("BITCOUNT", S, "0", "0"),
         ("BITCOUNT", S, "1", "1"), ("BITCOUNT", S, "-2", "-1"), ("BITCOUNT", S, "5", "1"),
         ("BITCOUNT", S, "0", "100"))
    case(f, "bitcount", ("BITCOUNT", "nokey"), ("SET", S, "foobar"), ("BITCOUNT", S, "0"),
         ("BITCOUNT", S, "0", "1", "BIT"), ("BITCOUNT", S, "a", "b"), ("BITCOUNT",))
    case(f, "bitcount", ("RPUSH", S, "x"), ("BITCOUNT", S))
    case(f, "bitpos", ("SET", S, b"\xff\xf0\x00"), ("BITPOS", S, "0"), ("BITPOS", S, "1"),
         ("BITPOS", S, "1", "2"), ("BITPOS", S, "0", "1", "-1"), ("BITPOS", S, "1", "2", "-1"))
    case(f, "bitpos", ("SET", S, b"\x00\x00\x00"), ("BITPOS", S, "1"), ("BITPOS", S, "0"),
         ("SET", B, b"\xff\xff"), ("BITPOS", B, "0"), ("BITPOS", B, "0", "0", "-1"))
    case(f, "bitpos", ("BITPOS", "nokey", "0"), ("BITPOS", "nokey", "1"), ("SET", S, "a"),
         ("BITPOS", S, "2"), ("BITPOS", S, "1", "x"), ("BITPOS", S), ("HSET", B, "f", "v"),
         ("BITPOS", B, "1"))
    case(f, "bitfield", ("BITFIELD", S, "SET", "i8", "0", "100", "GET", "u4", "0"),
         ("GET", S), ("BITFIELD", S, "INCRBY", "i8", "0", "10", "GET", "i8", "0"))
    case(f, "bitfield", ("BITFIELD", S, "INCRBY", "u2", "100", "1", "OVERFLOW", "SAT",
                         "INCRBY", "u2", "102", "1"),
         ("BITFIELD", S, "INCRBY", "u2", "100", "3", "OVERFLOW", "SAT", "INCRBY", "u2",
          "102", "3"),
         ("BITFIELD", S, "OVERFLOW", "FAIL", "INCRBY", "u2", "100", "3"),
         ("BITFIELD", S, "OVERFLOW", "WRAP", "INCRBY", "i8", "0", "200"), ("GET", S))
    case(f, "bitfield", ("BITFIELD", S, "SET", "u8", "#1", "255", "GET", "u8", "#1",
                         "GET", "i64", "0"), ("STRLEN", S), ("BITFIELD", S))
    case(f, "bitfield", ("BITFIELD", "nokey", "GET", "u8", "0"), ("EXISTS", "nokey"),
         ("BITFIELD", S, "GET", "u64", "0"), ("BITFIELD", S, "GET", "i8", "-1"),
         ("BITFIELD", S, "FOO", "u8", "0"), ("BITFIELD", S, "SET", "u8", "0"),
         ("BITFIELD", S, "OVERFLOW", "NOPE", "GET", "u8", "0"), ("BITFIELD",))
    case(f, "bitfield", ("LPUSH", S, "x"), ("BITFIELD", S, "GET", "u8", "0"),
         ("BITFIELD", S, "SET", "u8", "0", "1"))
    case(f, "bitfield_ro", ("SET", S, "hello"), ("BITFIELD_RO", S, "GET", "u8", "0",
                                                  "GET", "i4", "4"),
         ("BITFIELD_RO", "nokey", "GET", "u8", "0"), ("BITFIELD_RO", S))
    case(f, "bitfield_ro", ("SET", S, "hello"), ("BITFIELD_RO", S, "SET", "u8", "0", "1"),
         ("BITFIELD_RO", S, "INCRBY", "u8", "0", "1"), ("GET", S), ("BITFIELD_RO",),
         ("SADD", B, "1"), ("BITFIELD_RO", B, "GET", "u8", "0"))
    case(f, "bitop", ("SET", A, "foobar"), ("SET", B, "abcdef"), ("BITOP", "AND", C, A, B),
         ("GET", C), ("BITOP", "OR", D, A, B), ("GET", D), ("BITOP", "XOR", E, A, B),
         ("GET", E))
    case(f, "bitop", ("SET", A, "foo"), ("BITOP", "NOT", C, A), ("GET", C),
         ("SET", B, "a"), ("BITOP", "AND", D, A, B), ("GET", D), ("STRLEN", D))
    case(f, "bitop", ("SET", A, "foo"), ("SET", C, "old"), ("BITOP", "AND", C, A, "nokey"),
         ("GET", C), ("BITOP", "OR", C, "nokey", "nokey2"), ("EXISTS", C))
    case(f, "bitop", ("SET", A, "foo"), ("SET", B, "bar"), ("BITOP", "NOT", C, A, B),
         ("BITOP", "FOO", C, A), ("BITOP", "AND", C), ("BITOP", "AND"), ("EXISTS", C))
    case(f, "bitop", ("SET", A, "foo"), ("RPUSH", B, "x"), ("BITOP", "AND", C, A, B),
         ("EXISTS", C), ("RPUSH", C, "x"), ("BITOP", "OR", C, A), ("TYPE", C))
    case(f, "bitop", ("SET", T1, "ab"), ("SET", T2, "cd"), ("BITOP", "XOR", T3, T1, T2),
         ("GET", T3), ("BITOP", "AND", T1, T1, T2), ("GET", T1))


# -------------------------------------------------------------------- lists
def lists() -> None:
    f = "lists"
    L = A
    fill = ("RPUSH", L, "a", "b", "c", "1", "2", "3", "c", "c")
    case(f, "lpos", fill, ("LPOS", L, "c"), ("LPOS", L, "c", "RANK", "2"),
         ("LPOS", L, "c", "RANK", "-1"), ("LPOS", L, "c", "RANK", "-2"),
         ("LPOS", L, "c", "RANK", "9"))
    case(f, "lpos", fill, ("LPOS", L, "c", "COUNT", "2"), ("LPOS", L, "c", "COUNT", "0"),
         ("LPOS", L, "c", "COUNT", "0", "RANK", "-1"), ("LPOS", L, "x", "COUNT", "2"))
    case(f, "lpos", fill, ("LPOS", L, "c", "MAXLEN", "1"), ("LPOS", L, "c", "MAXLEN", "3"),
         ("LPOS", L, "c", "COUNT", "0", "MAXLEN", "7"), ("LPOS", L, "a", "RANK", "-1",
                                                          "MAXLEN", "2"))
    case(f, "lpos", fill, ("LPOS", L, "c", "RANK", "0"), ("LPOS", L, "c", "COUNT", "-1"),
         ("LPOS", L, "c", "MAXLEN", "-1"), ("LPOS", L, "c", "RANK", "x"),
         ("LPOS", L, "c", "FOO", "1"), ("LPOS", L, "c", "RANK"), ("LPOS", L))
    case(f, "lpos", ("LPOS", "nokey", "x"), ("LPOS", "nokey", "x", "COUNT", "1"),
         ("SET", L, "v"), ("LPOS", L, "v"))
    case(f, "linsert", ("RPUSH", L, "a", "b", "c"), ("LINSERT", L, "BEFORE", "b", "X"),
         ("LINSERT", L, "after", "c", "Y"), ("LINSERT", L, "AFTER", "zz", "W"),
         ("LRANGE", L, "0", "-1"))
    case(f, "linsert", ("LINSERT", "nokey", "BEFORE", "a", "x"), ("EXISTS", "nokey"),
         ("RPUSH", L, "a"), ("LINSERT", L, "MIDDLE", "a", "x"), ("LINSERT", L, "BEFORE", "a"),
         ("SET", B, "v"), ("LINSERT", B, "BEFORE", "a", "x"))
    case(f, "linsert", ("RPUSH", L, "a", "a"), ("LINSERT", L, "AFTER", "a", "m"),
         ("LINSERT", L, "BEFORE", "a", "m"), ("LRANGE", L, "0", "-1"))
    for src, dst in (("LEFT", "LEFT"), ("LEFT", "RIGHT"), ("RIGHT", "LEFT"),
                     ("RIGHT", "RIGHT")):
        case(f, "lmove", ("RPUSH", A, "1", "2", "3"), ("RPUSH", B, "x", "y"),
             ("LMOVE", A, B, src, dst), ("LRANGE", A, "0", "-1"), ("LRANGE", B, "0", "-1"))
    case(f, "lmove", ("RPUSH", A, "1", "2", "3"), ("LMOVE", A, C, "RIGHT", "LEFT"),
         ("LMOVE", A, C, "left", "right"), ("LRANGE", C, "0", "-1"), ("LLEN", A))
    case(f, "lmove", ("RPUSH", A, "1", "2", "3"), ("LMOVE", A, A, "LEFT", "RIGHT"),
         ("LMOVE", A, A, "RIGHT", "LEFT"), ("LRANGE", A, "0", "-1"))
    case(f, "lmove", ("RPUSH", A, "1"), ("LMOVE", A, B, "LEFT", "LEFT"), ("EXISTS", A),
         ("LMOVE", A, B, "LEFT", "LEFT"), ("LRANGE", B, "0", "-1"))
    case(f, "lmove", ("RPUSH", A, "1"), ("SET", B, "v"), ("LMOVE", A, B, "LEFT", "LEFT"),
         ("LRANGE", A, "0", "-1"), ("LMOVE", B, A, "LEFT", "LEFT"),
         ("LMOVE", A, B, "UP", "LEFT"), ("LMOVE", A, B, "LEFT"), ("LLEN", A))
    case(f, "lmove", ("RPUSH", T1, "a", "b"), ("LMOVE", T1, T2, "LEFT", "RIGHT"),
         ("LMOVE", T1, T2, "LEFT", "RIGHT"), ("LRANGE", T2, "0", "-1"), ("EXISTS", T1))
    case(f, "rpoplpush", ("RPUSH", A, "1", "2", "3"), ("RPOPLPUSH", A, B),
         ("RPOPLPUSH", A, B), ("LRANGE", B, "0", "-1"), ("LRANGE", A, "0", "-1"))
    case(f, "rpoplpush", ("RPUSH", A, "1", "2"), ("RPOPLPUSH", A, A), ("LRANGE", A, "0", "-1"),
         ("RPOPLPUSH", "nokey", A), ("LLEN", A))
    case(f, "rpoplpush", ("RPUSH", A, "1"), ("HSET", B, "f", "v"), ("RPOPLPUSH", A, B),
         ("LLEN", A), ("RPOPLPUSH", B, A), ("RPOPLPUSH", A), ("RPOPLPUSH", A, B, C))
    case(f, "rpoplpush", ("RPUSH", T1, "x"), ("RPOPLPUSH", T1, T2), ("EXISTS", T1),
         ("LRANGE", T2, "0", "-1"))
    case(f, "lpushx", ("LPUSHX", L, "a", "b"), ("EXISTS", L), ("RPUSH", L, "x"),
         ("LPUSHX", L, "a", "b", "c"), ("LRANGE", L, "0", "-1"))
    case(f, "lpushx", ("SET", L, "v"), ("LPUSHX", L, "a"), ("LPUSHX", L))
    case(f, "rpushx", ("RPUSHX", L, "a", "b"), ("EXISTS", L), ("RPUSH", L, "x"),
         ("RPUSHX", L, "a", "b", "c"), ("LRANGE", L, "0", "-1"))
    case(f, "rpushx", ("SADD", L, "1"), ("RPUSHX", L, "a", "b"), ("RPUSHX", L))


# ------------------------------------------------------------------- hashes
def hrandfield_probe(key: str, fields: dict[bytes, bytes], count: int | None,
                     withvalues: bool = False) -> Probe:
    def run(call, _):
        args = ["HRANDFIELD", key] + ([] if count is None else [str(count)])
        reply = call(*args, *(["WITHVALUES"] if withvalues else []))
        if count is None:
            assert reply in fields, reply
            return None
        got = pairs(reply) if withvalues else [(f, None) for f in reply]
        assert len(got) == (min(count, len(fields)) if count >= 0 else -count), reply
        for field, value in got:
            assert field in fields and (not withvalues or value == fields[field]), reply
        if count >= 0:
            assert len({f for f, _ in got}) == len(got), reply  # distinct
        assert call("HLEN", key) == len(fields)
        return None
    return Probe(run, f"HRANDFIELD {count} {withvalues}")


def hashes() -> None:
    f = "hashes"
    H = B
    case(f, "hincrbyfloat", ("HSET", H, "f", "10.50"), ("HINCRBYFLOAT", H, "f", "0.1"),
         ("HINCRBYFLOAT", H, "f", "-5"), ("HINCRBYFLOAT", H, "f", "5.0e3"), ("HGET", H, "f"))
    case(f, "hincrbyfloat", ("HINCRBYFLOAT", H, "new", "1"), ("HINCRBYFLOAT", H, "new", "1.5"),
         ("HINCRBYFLOAT", H, "i", "3"), ("HGETALL", H))
    case(f, "hincrbyfloat", ("HSET", H, "s", "abc"), ("HINCRBYFLOAT", H, "s", "1"),
         ("HINCRBYFLOAT", H, "n", "abc"), ("HINCRBYFLOAT", H, "n", "inf"),
         ("HINCRBYFLOAT", H, "n"), ("HGETALL", H))
    case(f, "hincrbyfloat", ("SET", H, "v"), ("HINCRBYFLOAT", H, "f", "1"))
    fields = {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"}
    fill = ("HSET", H, "a", "1", "b", "2", "c", "3", "d", "4")
    for count, withvalues in ((None, False), (2, False), (-6, False), (3, True), (-7, True)):
        case(f, "hrandfield", fill, hrandfield_probe(H, fields, count, withvalues))
    case(f, "hrandfield", fill, ("HRANDFIELD", H, "4"), ("HRANDFIELD", H, "10", "WITHVALUES"),
         ("HRANDFIELD", H, "0"), ("HRANDFIELD", H, "0", "WITHVALUES"))
    case(f, "hrandfield", ("HRANDFIELD", "nokey"), ("HRANDFIELD", "nokey", "2"),
         ("HRANDFIELD", "nokey", "-2", "WITHVALUES"), fill, ("HRANDFIELD", H, "x"),
         ("HRANDFIELD", H, "1", "FOO"), ("HRANDFIELD", H, "1", "WITHVALUES", "x"),
         ("HRANDFIELD",))
    case(f, "hrandfield", ("SET", H, "v"), ("HRANDFIELD", H), ("HRANDFIELD", H, "1"))
    case(f, "hscan", fill, ("HSCAN", H, "0"), ("HSCAN", H, "0", "MATCH", "[ab]"),
         ("HSCAN", H, "0", "COUNT", "100"), ("HSCAN", H, "0", "MATCH", "z*", "COUNT", "1"))
    case(f, "hscan", ("HSCAN", "nokey", "0"), fill, ("HSCAN", H, "x"),
         ("HSCAN", H, "0", "COUNT", "0"), ("HSCAN", H, "0", "MATCH"), ("HSCAN", H, "0", "FOO",
                                                                         "1"), ("HSCAN", H))
    case(f, "hscan", ("SADD", H, "1"), ("HSCAN", H, "0"))


# --------------------------------------------------------------------- sets
MEMBERS = [b"1", b"2", b"3", b"4", b"5"]


def spop_probe(key: str, count: int | None) -> Probe:
    def run(call, _):
        if count is None:
            got = [call("SPOP", key)]
        else:
            got = call("SPOP", key, str(count))
            assert len(got) == min(count, len(MEMBERS)), got
        assert len(set(got)) == len(got) and set(got) <= set(MEMBERS), got
        for member in got:
            assert call("SISMEMBER", key, member) == 0
        assert call("SCARD", key) == len(MEMBERS) - len(got)
        return None
    return Probe(run, f"SPOP {count}")


def srandmember_probe(key: str, count: int | None) -> Probe:
    def run(call, _):
        if count is None:
            assert call("SRANDMEMBER", key) in MEMBERS
        else:
            got = call("SRANDMEMBER", key, str(count))
            assert set(got) <= set(MEMBERS), got
            if count >= 0:
                assert len(got) == min(count, len(MEMBERS)) and len(set(got)) == len(got), got
            else:
                assert len(got) == -count, got
        assert call("SCARD", key) == len(MEMBERS)
        return None
    return Probe(run, f"SRANDMEMBER {count}")


def sets() -> None:
    f = "sets"
    fill = ("SADD", A, *MEMBERS)
    for count in (None, 1, 3):
        case(f, "spop", fill, spop_probe(A, count))
    case(f, "spop", fill, ("SPOP", A, "5"), ("EXISTS", A), ("SADD", A, "1", "2"),
         ("SPOP", A, "10"), ("EXISTS", A))
    case(f, "spop", ("SPOP", "nokey"), ("SPOP", "nokey", "2"), fill, ("SPOP", A, "0"),
         ("SPOP", A, "-1"), ("SPOP", A, "x"), ("SPOP", A, "1", "2"), ("SPOP",), ("SCARD", A))
    case(f, "spop", ("SET", A, "v"), ("SPOP", A), ("SPOP", A, "1"))
    for count in (None, 2, -8):
        case(f, "srandmember", fill, srandmember_probe(A, count))
    case(f, "srandmember", fill, ("SRANDMEMBER", A, "5"), ("SRANDMEMBER", A, "20"),
         ("SRANDMEMBER", A, "0"), ("SRANDMEMBER", "nokey"), ("SRANDMEMBER", "nokey", "3"),
         ("SRANDMEMBER", A, "x"), ("SRANDMEMBER", A, "1", "2"), ("SET", B, "v"),
         ("SRANDMEMBER", B))
    case(f, "smismember", fill, ("SMISMEMBER", A, "1", "9", "2", "1"),
         ("SMISMEMBER", "nokey", "1", "2"), ("SMISMEMBER", A), ("SET", B, "v"),
         ("SMISMEMBER", B, "1"))
    case(f, "smove", ("SADD", A, "1", "2"), ("SADD", B, "3"), ("SMOVE", A, B, "1"),
         ("SMEMBERS", A), ("SMEMBERS", B), ("SMOVE", A, B, "9"), ("SMOVE", "nokey", B, "1"))
    case(f, "smove", ("SADD", A, "1"), ("SMOVE", A, C, "1"), ("EXISTS", A), ("SMEMBERS", C),
         ("SMOVE", C, C, "1"), ("SMOVE", C, C, "7"), ("SMEMBERS", C))
    case(f, "smove", ("SADD", A, "1"), ("SADD", B, "1", "2"), ("SMOVE", A, B, "1"),
         ("EXISTS", A), ("SMEMBERS", B))
    case(f, "smove", ("SADD", A, "1"), ("SET", B, "v"), ("SMOVE", A, B, "1"), ("SMEMBERS", A),
         ("SMOVE", B, A, "1"), ("SMOVE", A, B), ("SMEMBERS", A))
    case(f, "smove", ("SADD", T1, "1", "2"), ("SMOVE", T1, T2, "2"), ("SMEMBERS", T1),
         ("SMEMBERS", T2))
    sources = (("SADD", A, "1", "2", "3", "4"), ("SADD", B, "3", "4", "5"),
               ("SADD", C, "4", "5", "6"))
    for op in ("SINTER", "SUNION", "SDIFF"):
        case(f, op.lower(), *sources, (op, A, B), (op, A, B, C), (op, B, A), (op, A))
        case(f, op.lower(), *sources, (op, A, "nokey"), (op, "nokey", A), (op, "nokey"),
             (op,))
        case(f, op.lower(), *sources, ("SET", D, "v"), (op, A, D), (op, D, A),
             (op, "nokey", D))
        case(f, op.lower(), ("SADD", T1, "1", "2"), ("SADD", T2, "2", "3"), (op, T1, T2),
             (op, T2, T1, T1))
        store = op + "STORE"
        case(f, store.lower(), *sources, (store, D, A, B), ("SMEMBERS", D),
             (store, E, A, B, C), ("SMEMBERS", E), ("TYPE", E))
        case(f, store.lower(), *sources, ("SET", D, "old"), (store, D, A, C), ("TYPE", D),
             ("SMEMBERS", D), (store, A, A, B), ("SMEMBERS", A))
        case(f, store.lower(), *sources, ("SET", D, "old"), (store, D, "nokey", "nokey2"),
             ("EXISTS", D), (store, D), (store,), ("SET", E, "v"), (store, D, A, E),
             ("EXISTS", D))
        case(f, store.lower(), ("SADD", T1, "1", "2"), ("SADD", T2, "2", "3"),
             (store, T3, T1, T2), ("SMEMBERS", T3), (store, T1, T2), ("SMEMBERS", T1))
    case(f, "sinterstore", ("SADD", A, "a", "b", "c"), ("SADD", B, "b", "c", "d"),
         ("SINTERSTORE", C, A, B), ("SCARD", C), ("SISMEMBER", C, "b"), ("SISMEMBER", C, "a"))
    case(f, "sunionstore", ("SADD", A, "a", "b"), ("SADD", B, "1", "c"),
         ("SUNIONSTORE", C, A, B), ("SCARD", C), ("SMISMEMBER", C, "a", "1", "x"))
    case(f, "sscan", fill, ("SSCAN", A, "0"), ("SSCAN", A, "0", "MATCH", "[12]"),
         ("SSCAN", A, "0", "COUNT", "1"), ("SSCAN", "nokey", "0"))
    case(f, "sscan", fill, ("SSCAN", A, "x"), ("SSCAN", A, "0", "COUNT", "0"),
         ("SSCAN", A), ("SET", B, "v"), ("SSCAN", B, "0"))


# -------------------------------------------------------------- sorted sets
ZFILL = ("ZADD", A, "1", "a", "2", "b", "2", "c", "3.5", "d", "10", "e")
LEXFILL = ("ZADD", B, "0", "a", "0", "b", "0", "c", "0", "d", "0", "e", "0", "f")
ZSCORES = {b"a": 1.0, b"b": 2.0, b"c": 2.0, b"d": 3.5, b"e": 10.0}


def zrandmember_probe(key: str, count: int | None, withscores: bool = False) -> Probe:
    def run(call, _):
        if count is None:
            assert call("ZRANDMEMBER", key) in ZSCORES
            return None
        reply = call("ZRANDMEMBER", key, str(count), *(["WITHSCORES"] if withscores else []))
        got = pairs(reply) if withscores else [(m, None) for m in reply]
        assert len(got) == (min(count, len(ZSCORES)) if count >= 0 else -count), reply
        for member, score in got:
            assert member in ZSCORES and (not withscores or num(score) == ZSCORES[member])
        if count >= 0:
            assert len({m for m, _ in got}) == len(got), reply
        assert call("ZCARD", key) == len(ZSCORES)
        return None
    return Probe(run, f"ZRANDMEMBER {count} {withscores}")


def zsets() -> None:
    f = "zsets"
    for op in ("ZPOPMIN", "ZPOPMAX"):
        case(f, op.lower(), ZFILL, (op, A), (op, A, "2"), (op, A, "0"), ("ZRANGE", A, "0", "-1"))
        case(f, op.lower(), ZFILL, (op, A, "10"), ("EXISTS", A), (op, A), (op, A, "2"))
        case(f, op.lower(), ZFILL, (op, A, "-1"), (op, A, "x"), (op, A, "1", "2"), (op,),
             ("SET", B, "v"), (op, B))
    case(f, "zrangestore", ZFILL, ("ZRANGESTORE", C, A, "0", "-1"),
         ("ZRANGE", C, "0", "-1", "WITHSCORES"), ("ZRANGESTORE", D, A, "1", "2"),
         ("ZRANGE", D, "0", "-1", "WITHSCORES"))
    case(f, "zrangestore", ZFILL, ("ZRANGESTORE", C, A, "2", "(10", "BYSCORE"),
         ("ZRANGE", C, "0", "-1", "WITHSCORES"),
         ("ZRANGESTORE", C, A, "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2"),
         ("ZRANGE", C, "0", "-1", "WITHSCORES"))
    case(f, "zrangestore", LEXFILL, ("ZRANGESTORE", C, B, "[b", "(e", "BYLEX"),
         ("ZRANGE", C, "0", "-1"), ("ZRANGESTORE", C, B, "+", "-", "BYLEX", "REV", "LIMIT",
                                    "0", "2"), ("ZRANGE", C, "0", "-1"))
    case(f, "zrangestore", ZFILL, ("SET", C, "old"), ("ZRANGESTORE", C, A, "5", "6"),
         ("EXISTS", C), ("ZRANGESTORE", C, "nokey", "0", "-1"), ("EXISTS", C))
    case(f, "zrangestore", ZFILL, ("ZRANGESTORE", C, A, "0", "1", "WITHSCORES"),
         ("ZRANGESTORE", C, A, "0", "1", "LIMIT", "0", "1"), ("ZRANGESTORE", C, A, "0"),
         ("ZRANGESTORE", C, A, "a", "b", "BYSCORE"), ("SET", D, "v"),
         ("ZRANGESTORE", C, D, "0", "-1"), ("EXISTS", C))
    case(f, "zrangestore", ("ZADD", T1, "1", "x", "2", "y"), ("ZRANGESTORE", T2, T1, "0", "0"),
         ("ZRANGE", T2, "0", "-1", "WITHSCORES"), ("ZRANGESTORE", T1, T1, "1", "1"),
         ("ZRANGE", T1, "0", "-1", "WITHSCORES"))
    case(f, "zrange", ZFILL, ("ZRANGE", A, "2", "3.5", "BYSCORE"),
         ("ZRANGE", A, "(2", "+inf", "BYSCORE", "WITHSCORES"),
         ("ZRANGE", A, "-inf", "+inf", "BYSCORE", "LIMIT", "1", "3"),
         ("ZRANGE", A, "-inf", "+inf", "BYSCORE", "LIMIT", "1", "-1", "WITHSCORES"))
    case(f, "zrange", ZFILL, ("ZRANGE", A, "10", "2", "BYSCORE", "REV"),
         ("ZRANGE", A, "+inf", "(2", "BYSCORE", "REV", "LIMIT", "0", "2", "WITHSCORES"),
         ("ZRANGE", A, "0", "1", "REV"), ("ZRANGE", A, "0", "-1", "REV", "WITHSCORES"))
    case(f, "zrange", LEXFILL, ("ZRANGE", B, "[b", "[d", "BYLEX"),
         ("ZRANGE", B, "-", "+", "BYLEX", "LIMIT", "2", "2"),
         ("ZRANGE", B, "(f", "[b", "BYLEX", "REV"), ("ZRANGE", B, "+", "-", "BYLEX", "REV",
                                                    "LIMIT", "1", "10"))
    case(f, "zrange", LEXFILL, ("ZRANGE", B, "-", "+", "BYLEX", "WITHSCORES"),
         ("ZRANGE", B, "0", "1", "LIMIT", "0", "1"), ("ZRANGE", B, "a", "c", "BYLEX"),
         ("ZRANGE", B, "x", "y", "BYSCORE"), ("ZRANGE", B, "0", "1", "BYSCORE", "BYLEX"),
         ("ZRANGE", B, "0", "1", "FOO"), ("ZRANGE", B, "-", "+", "BYLEX", "LIMIT", "0"))
    case(f, "zrange", ("ZRANGE", "nokey", "0", "-1", "BYSCORE"), ("SET", A, "v"),
         ("ZRANGE", A, "0", "-1", "REV"))
    case(f, "zrangebylex", LEXFILL, ("ZRANGEBYLEX", B, "-", "+"),
         ("ZRANGEBYLEX", B, "[b", "(d"), ("ZRANGEBYLEX", B, "(a", "[c", "LIMIT", "1", "5"),
         ("ZRANGEBYLEX", B, "[z", "+"))
    case(f, "zrangebylex", LEXFILL, ("ZRANGEBYLEX", B, "a", "+"),
         ("ZRANGEBYLEX", B, "-", "+", "LIMIT", "1"), ("ZRANGEBYLEX", B, "-", "+", "FOO"),
         ("ZRANGEBYLEX", B, "-"), ("ZRANGEBYLEX", "nokey", "-", "+"), ("SET", C, "v"),
         ("ZRANGEBYLEX", C, "-", "+"))
    case(f, "zrevrangebylex", LEXFILL, ("ZREVRANGEBYLEX", B, "+", "-"),
         ("ZREVRANGEBYLEX", B, "(d", "[b"), ("ZREVRANGEBYLEX", B, "+", "-", "LIMIT", "2", "2"),
         ("ZREVRANGEBYLEX", B, "-", "+"))
    case(f, "zrevrangebylex", LEXFILL, ("ZREVRANGEBYLEX", B, "b", "a"),
         ("ZREVRANGEBYLEX", B, "+", "-", "LIMIT", "x", "1"), ("ZREVRANGEBYLEX", B, "+"))
    case(f, "zrevrangebyscore", ZFILL, ("ZREVRANGEBYSCORE", A, "+inf", "-inf"),
         ("ZREVRANGEBYSCORE", A, "3.5", "(1", "WITHSCORES"),
         ("ZREVRANGEBYSCORE", A, "+inf", "-inf", "WITHSCORES", "LIMIT", "1", "2"),
         ("ZREVRANGEBYSCORE", A, "-inf", "+inf"))
    case(f, "zrevrangebyscore", ZFILL, ("ZREVRANGEBYSCORE", A, "x", "1"),
         ("ZREVRANGEBYSCORE", A, "1", "0", "LIMIT"), ("ZREVRANGEBYSCORE", A, "1"),
         ("ZREVRANGEBYSCORE", "nokey", "1", "0"))
    case(f, "zlexcount", LEXFILL, ("ZLEXCOUNT", B, "-", "+"), ("ZLEXCOUNT", B, "[b", "(e"),
         ("ZLEXCOUNT", B, "(z", "+"), ("ZLEXCOUNT", B, "b", "c"), ("ZLEXCOUNT", "nokey", "-",
                                                                  "+"), ("ZLEXCOUNT", B, "-"))
    case(f, "zlexcount", ("SET", B, "v"), ("ZLEXCOUNT", B, "-", "+"))
    case(f, "zremrangebyrank", ZFILL, ("ZREMRANGEBYRANK", A, "0", "1"),
         ("ZRANGE", A, "0", "-1"), ("ZREMRANGEBYRANK", A, "-1", "-1"), ("ZRANGE", A, "0", "-1"),
         ("ZREMRANGEBYRANK", A, "5", "10"))
    case(f, "zremrangebyrank", ZFILL, ("ZREMRANGEBYRANK", A, "0", "-1"), ("EXISTS", A),
         ("ZREMRANGEBYRANK", A, "0", "-1"), ("ZADD", A, "1", "a"),
         ("ZREMRANGEBYRANK", A, "x", "1"), ("ZREMRANGEBYRANK", A, "0"), ("SET", C, "v"),
         ("ZREMRANGEBYRANK", C, "0", "1"))
    case(f, "zremrangebyscore", ZFILL, ("ZREMRANGEBYSCORE", A, "2", "(10"),
         ("ZRANGE", A, "0", "-1", "WITHSCORES"), ("ZREMRANGEBYSCORE", A, "-inf", "+inf"),
         ("EXISTS", A))
    case(f, "zremrangebyscore", ZFILL, ("ZREMRANGEBYSCORE", A, "x", "1"),
         ("ZREMRANGEBYSCORE", A, "5", "1"), ("ZREMRANGEBYSCORE", "nokey", "0", "1"),
         ("ZREMRANGEBYSCORE", A, "1"))
    case(f, "zremrangebylex", LEXFILL, ("ZREMRANGEBYLEX", B, "[b", "(d"),
         ("ZRANGE", B, "0", "-1"), ("ZREMRANGEBYLEX", B, "-", "+"), ("EXISTS", B))
    case(f, "zremrangebylex", LEXFILL, ("ZREMRANGEBYLEX", B, "b", "c"),
         ("ZREMRANGEBYLEX", "nokey", "-", "+"), ("ZREMRANGEBYLEX", B, "-"), ("SET", C, "v"),
         ("ZREMRANGEBYLEX", C, "-", "+"))
    case(f, "zrevrank", ZFILL, ("ZREVRANK", A, "a"), ("ZREVRANK", A, "e"), ("ZREVRANK", A, "x"),
         ("ZREVRANK", "nokey", "a"), ("ZREVRANK", A), ("ZREVRANK", A, "a", "WITHSCORE"))
    case(f, "zrevrank", ("SET", A, "v"), ("ZREVRANK", A, "a"))
    case(f, "zmscore", ZFILL, ("ZMSCORE", A, "a", "x", "d"), ("ZMSCORE", "nokey", "a", "b"),
         ("ZMSCORE", A), ("ZADD", C, "1.5e10", "m", "-inf", "n"), ("ZMSCORE", C, "m", "n"))
    case(f, "zmscore", ("SET", A, "v"), ("ZMSCORE", A, "a"))
    for count, withscores in ((None, False), (3, False), (-8, False), (2, True), (-3, True)):
        case(f, "zrandmember", ZFILL, zrandmember_probe(A, count, withscores))
    case(f, "zrandmember", ZFILL, ("ZRANDMEMBER", A, "5"), ("ZRANDMEMBER", A, "9", "WITHSCORES"),
         ("ZRANDMEMBER", A, "0"), ("ZRANDMEMBER", "nokey"), ("ZRANDMEMBER", "nokey", "2"),
         ("ZRANDMEMBER", A, "x"), ("ZRANDMEMBER", A, "1", "FOO"), ("SET", C, "v"),
         ("ZRANDMEMBER", C))
    zsrc = (("ZADD", A, "1", "a", "2", "b", "3", "c"), ("ZADD", B, "10", "b", "20", "c",
                                                         "30", "d"),
            ("ZADD", C, "5", "c", "6", "x"))
    for op in ("ZUNION", "ZINTER"):
        low = op.lower()
        case(f, low, *zsrc, (op, "2", A, B), (op, "2", A, B, "WITHSCORES"),
             (op, "3", A, B, C, "WITHSCORES"), (op, "1", B))
        case(f, low, *zsrc, (op, "2", A, B, "WEIGHTS", "2", "0.5", "WITHSCORES"),
             (op, "2", A, B, "AGGREGATE", "MIN", "WITHSCORES"),
             (op, "2", A, B, "AGGREGATE", "MAX", "WITHSCORES"),
             (op, "3", A, B, C, "WEIGHTS", "1", "-1", "2", "AGGREGATE", "SUM", "WITHSCORES"))
        case(f, low, *zsrc, ("SADD", D, "a", "c"), (op, "2", A, D, "WITHSCORES"),
             (op, "2", A, "nokey", "WITHSCORES"), ("SET", E, "v"), (op, "2", A, E))
        case(f, low, *zsrc, (op, "0", A), (op, "3", A, B), (op, "-1", A), (op, "x", A),
             (op, "2", A, B, "WEIGHTS", "1"), (op, "2", A, B, "WEIGHTS", "1", "x"),
             (op, "2", A, B, "AGGREGATE", "AVG"), (op, "1", A, "FOO"), (op, "1"))
        case(f, low, ("ZADD", T1, "1", "a"), ("ZADD", T2, "2", "a", "3", "b"),
             (op, "2", T1, T2, "WITHSCORES"))
        store = op + "STORE"
        case(f, store.lower(), *zsrc, (store, D, "2", A, B),
             ("ZRANGE", D, "0", "-1", "WITHSCORES"),
             (store, E, "3", A, B, C, "WEIGHTS", "1", "2", "3", "AGGREGATE", "MAX"),
             ("ZRANGE", E, "0", "-1", "WITHSCORES"))
        case(f, store.lower(), *zsrc, ("SET", D, "old"), (store, D, "2", A, C), ("TYPE", D),
             (store, A, "2", A, B), ("ZRANGE", A, "0", "-1", "WITHSCORES"))
        case(f, store.lower(), *zsrc, ("SET", D, "old"), (store, D, "1", "nokey"),
             ("EXISTS", D), (store, D, "0", A), (store, D, "2", A), (store, D, "1", A,
                                                                    "WITHSCORES"),
             (store, D, "1", A, "AGGREGATE", "MIN", "WEIGHTS", "x"))
        case(f, store.lower(), ("ZADD", T1, "1", "a"), ("SADD", T2, "a", "b"),
             (store, T3, "2", T1, T2, "WEIGHTS", "3", "4"), ("ZRANGE", T3, "0", "-1",
                                                             "WITHSCORES"))
    case(f, "zdiff", *zsrc, ("ZDIFF", "2", A, B), ("ZDIFF", "2", A, B, "WITHSCORES"),
         ("ZDIFF", "3", B, A, C, "WITHSCORES"), ("ZDIFF", "1", A), ("ZDIFF", "2", A, "nokey"))
    case(f, "zdiff", *zsrc, ("ZDIFF", "0", A), ("ZDIFF", "3", A), ("ZDIFF", "2", A, B,
                                                                  "WEIGHTS", "1", "1"),
         ("ZDIFF", "1", A, "AGGREGATE", "MIN"), ("SADD", D, "a"), ("ZDIFF", "2", A, D),
         ("SET", E, "v"), ("ZDIFF", "2", A, E), ("ZDIFF", "1"))
    case(f, "zdiffstore", *zsrc, ("ZDIFFSTORE", D, "2", A, B),
         ("ZRANGE", D, "0", "-1", "WITHSCORES"), ("ZDIFFSTORE", D, "2", A, A), ("EXISTS", D))
    case(f, "zdiffstore", *zsrc, ("ZDIFFSTORE", D, "0", A), ("ZDIFFSTORE", D, "2", A),
         ("ZDIFFSTORE", D, "1", A, "WITHSCORES"), ("SET", E, "v"), ("ZDIFFSTORE", D, "2", A,
                                                                  E), ("EXISTS", D))
    case(f, "zdiffstore", ("ZADD", T1, "1", "a", "2", "b"), ("ZADD", T2, "1", "b"),
         ("ZDIFFSTORE", T1, "2", T1, T2), ("ZRANGE", T1, "0", "-1", "WITHSCORES"))
    case(f, "zscan", ZFILL, ("ZSCAN", A, "0"), ("ZSCAN", A, "0", "MATCH", "[ab]"),
         ("ZSCAN", A, "0", "COUNT", "2"), ("ZSCAN", "nokey", "0"))
    case(f, "zscan", ZFILL, ("ZSCAN", A, "x"), ("ZSCAN", A), ("SET", B, "v"), ("ZSCAN", B, "0"))


# -------------------------------------------------------------- hyperloglog
def hll() -> None:
    f = "hll"
    case(f, "pfadd", ("PFADD", A, "a", "b", "c"), ("PFADD", A, "a"), ("PFADD", A, "d"),
         ("GET", A), ("TYPE", A))
    case(f, "pfadd", ("PFADD", A), ("PFADD", A), ("EXISTS", A), ("PFCOUNT", A))
    case(f, "pfadd", ("SET", A, "notanhll"), ("PFADD", A, "x"), ("RPUSH", B, "x"),
         ("PFADD", B, "x"), ("PFADD",))
    case(f, "pfcount", ("PFADD", A, *[str(i) for i in range(100)]), ("PFCOUNT", A),
         ("PFCOUNT", A), ("PFCOUNT", "nokey"), ("GET", A))
    case(f, "pfcount", ("PFADD", A, "a", "b", "c"), ("PFADD", B, "c", "d"),
         ("PFADD", C, "e", "f", "g", "h"), ("PFCOUNT", A, B), ("PFCOUNT", A, B, C),
         ("PFCOUNT", A, "nokey"), ("GET", A))
    case(f, "pfcount", ("PFADD", T1, "a"), ("PFADD", T2, "b"), ("PFCOUNT", T1, T2))
    case(f, "pfcount", ("SET", A, "x"), ("PFCOUNT", A), ("PFADD", B, "a"), ("PFCOUNT", B, A),
         ("RPUSH", C, "x"), ("PFCOUNT", C), ("PFCOUNT",))
    case(f, "pfmerge", ("PFADD", A, "a", "b", "c"), ("PFADD", B, "c", "d"),
         ("PFMERGE", C, A, B), ("PFCOUNT", C), ("GET", C), ("PFMERGE", A, B), ("PFCOUNT", A))
    case(f, "pfmerge", ("PFMERGE", C, "nokey"), ("EXISTS", C), ("PFCOUNT", C), ("PFMERGE", D),
         ("EXISTS", D), ("PFMERGE",))
    case(f, "pfmerge", ("PFADD", A, "a"), ("SET", B, "x"), ("PFMERGE", C, A, B),
         ("EXISTS", C), ("PFMERGE", B, A))
    case(f, "pfmerge", ("PFADD", T1, "a"), ("PFADD", T2, "b"), ("PFMERGE", T3, T1, T2),
         ("PFCOUNT", T3))


# ---------------------------------------------------------------------- geo
GEOFILL = ("GEOADD", A, "13.361389", "38.115556", "Palermo", "15.087269", "37.502669",
           "Catania", "12.496366", "41.902782", "Rome")


def geo() -> None:
    f = "geo"
    case(f, "geoadd", GEOFILL, ("GEOADD", A, "13.361389", "38.115556", "Palermo"),
         ("ZRANGE", A, "0", "-1", "WITHSCORES"))
    case(f, "geoadd", GEOFILL, ("GEOADD", A, "NX", "1", "1", "Palermo", "2", "2", "X"),
         ("GEOADD", A, "XX", "3", "3", "Palermo", "4", "4", "Y"),
         ("GEOADD", A, "CH", "5", "5", "Palermo", "6", "6", "Z"), ("GEOPOS", A, "Palermo", "Y"))
    case(f, "geoadd", ("GEOADD", A, "181", "0", "x"), ("GEOADD", A, "0", "86", "x"),
         ("GEOADD", A, "a", "0", "x"), ("GEOADD", A, "0", "0"), ("GEOADD", A, "NX", "XX", "0",
                                                                  "0", "x"),
         ("GEOADD", A, "1", "2", "x", "3"), ("EXISTS", A), ("SET", B, "v"),
         ("GEOADD", B, "1", "1", "x"))
    case(f, "geopos", GEOFILL, ("GEOPOS", A, "Palermo", "Catania", "Nowhere"),
         ("GEOPOS", "nokey", "a"), ("GEOPOS", A), ("SET", B, "v"), ("GEOPOS", B, "a"))
    case(f, "geodist", GEOFILL, ("GEODIST", A, "Palermo", "Catania"),
         ("GEODIST", A, "Palermo", "Catania", "km"), ("GEODIST", A, "Palermo", "Rome", "mi"),
         ("GEODIST", A, "Palermo", "Rome", "ft"), ("GEODIST", A, "Palermo", "Nowhere"))
    case(f, "geodist", GEOFILL, ("GEODIST", A, "Palermo", "Catania", "parsec"),
         ("GEODIST", A, "Palermo"), ("GEODIST", "nokey", "a", "b"), ("SET", B, "v"),
         ("GEODIST", B, "a", "b"))
    case(f, "geohash", GEOFILL, ("GEOHASH", A, "Palermo", "Catania", "Nowhere"),
         ("GEOHASH", A), ("GEOHASH", "nokey", "a"), ("SET", B, "v"), ("GEOHASH", B, "a"))
    case(f, "georadius", GEOFILL, ("GEORADIUS", A, "15", "37", "200", "km"),
         ("GEORADIUS", A, "15", "37", "200", "km", "WITHDIST", "ASC"),
         ("GEORADIUS", A, "15", "37", "500", "km", "WITHCOORD", "WITHDIST", "WITHHASH", "DESC"),
         ("GEORADIUS", A, "15", "37", "500", "km", "COUNT", "1", "ASC"),
         ("GEORADIUS", A, "15", "37", "1", "m"))
    case(f, "georadius", GEOFILL, ("GEORADIUS", A, "15", "37", "500", "km", "STORE", C),
         ("ZRANGE", C, "0", "-1", "WITHSCORES"),
         ("GEORADIUS", A, "15", "37", "500", "km", "STOREDIST", D, "ASC"),
         ("ZRANGE", D, "0", "-1", "WITHSCORES"),
         ("GEORADIUS", A, "15", "37", "1", "km", "STORE", C), ("EXISTS", C))
    case(f, "georadius", GEOFILL, ("GEORADIUS", A, "15", "37", "200", "parsec"),
         ("GEORADIUS", A, "15", "37", "-1", "km"), ("GEORADIUS", A, "x", "37", "1", "km"),
         ("GEORADIUS", A, "15", "37", "200", "km", "COUNT", "0"),
         ("GEORADIUS", A, "15", "37", "200", "km", "STORE", C, "WITHDIST"),
         ("GEORADIUS", A, "15", "37", "200"), ("GEORADIUS", "nokey", "15", "37", "200", "km"),
         ("SET", B, "v"), ("GEORADIUS", B, "15", "37", "200", "km"))
    case(f, "georadius_ro", GEOFILL, ("GEORADIUS_RO", A, "15", "37", "200", "km", "WITHDIST"),
         ("GEORADIUS_RO", A, "15", "37", "500", "km", "COUNT", "2", "DESC", "WITHCOORD"),
         ("GEORADIUS_RO", A, "15", "37", "200", "km", "STORE", C), ("EXISTS", C))
    case(f, "georadiusbymember", GEOFILL,
         ("GEORADIUSBYMEMBER", A, "Palermo", "300", "km", "WITHDIST", "ASC"),
         ("GEORADIUSBYMEMBER", A, "Palermo", "1000", "km", "COUNT", "2", "DESC"),
         ("GEORADIUSBYMEMBER", A, "Palermo", "300", "km", "STORE", C),
         ("ZRANGE", C, "0", "-1", "WITHSCORES"))
    case(f, "georadiusbymember", GEOFILL, ("GEORADIUSBYMEMBER", A, "Nowhere", "300", "km"),
         ("GEORADIUSBYMEMBER", A, "Palermo", "300"), ("GEORADIUSBYMEMBER", "nokey", "a", "1",
                                                      "km"))
    case(f, "georadiusbymember_ro", GEOFILL,
         ("GEORADIUSBYMEMBER_RO", A, "Rome", "500", "km", "WITHCOORD", "ASC"),
         ("GEORADIUSBYMEMBER_RO", A, "Rome", "500", "km", "STOREDIST", C), ("EXISTS", C),
         ("GEORADIUSBYMEMBER_RO", A, "Nowhere", "1", "km"))
    case(f, "geosearch", GEOFILL,
         ("GEOSEARCH", A, "FROMMEMBER", "Palermo", "BYRADIUS", "300", "km", "ASC"),
         ("GEOSEARCH", A, "FROMLONLAT", "15", "37", "BYRADIUS", "500", "km", "WITHDIST",
          "WITHCOORD", "DESC"),
         ("GEOSEARCH", A, "FROMLONLAT", "15", "37", "BYBOX", "400", "400", "km", "ASC",
          "WITHHASH"),
         ("GEOSEARCH", A, "FROMMEMBER", "Rome", "BYBOX", "1000", "1000", "km", "COUNT", "2",
          "ASC"))
    case(f, "geosearch", GEOFILL,
         ("GEOSEARCH", A, "FROMLONLAT", "15", "37", "BYRADIUS", "500", "km", "COUNT", "1",
          "ANY"),
         ("GEOSEARCH", A, "FROMLONLAT", "15", "37", "BYRADIUS", "500", "km", "ANY"),
         ("GEOSEARCH", A, "BYRADIUS", "500", "km"),
         ("GEOSEARCH", A, "FROMLONLAT", "15", "37"),
         ("GEOSEARCH", A, "FROMMEMBER", "Rome", "FROMLONLAT", "15", "37", "BYRADIUS", "1",
          "km"),
         ("GEOSEARCH", A, "FROMMEMBER", "Nowhere", "BYRADIUS", "1", "km"),
         ("GEOSEARCH", A, "FROMMEMBER", "Rome", "BYRADIUS", "1", "km", "STORE", C),
         ("GEOSEARCH", "nokey", "FROMLONLAT", "15", "37", "BYRADIUS", "500", "km"))
    case(f, "geosearchstore", GEOFILL,
         ("GEOSEARCHSTORE", C, A, "FROMLONLAT", "15", "37", "BYRADIUS", "500", "km", "ASC"),
         ("ZRANGE", C, "0", "-1", "WITHSCORES"),
         ("GEOSEARCHSTORE", D, A, "FROMMEMBER", "Palermo", "BYBOX", "500", "500", "km",
          "STOREDIST", "DESC", "COUNT", "2"), ("ZRANGE", D, "0", "-1", "WITHSCORES"))
    case(f, "geosearchstore", GEOFILL, ("SET", C, "old"),
         ("GEOSEARCHSTORE", C, A, "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km"),
         ("EXISTS", C),
         ("GEOSEARCHSTORE", C, A, "FROMLONLAT", "15", "37", "BYRADIUS", "500", "km",
          "WITHDIST"),
         ("GEOSEARCHSTORE", C, A, "FROMLONLAT", "15", "37"),
         ("GEOSEARCHSTORE", C, "nokey", "FROMLONLAT", "15", "37", "BYRADIUS", "500", "km"))
    case(f, "geosearchstore", ("GEOADD", T1, "13.361389", "38.115556", "Palermo"),
         ("GEOSEARCHSTORE", T2, T1, "FROMLONLAT", "13", "38", "BYRADIUS", "100", "km"),
         ("ZRANGE", T2, "0", "-1", "WITHSCORES"))


# ------------------------------------------------------------------ streams
X = A
XFILL = (("XADD", X, "1-1", "f", "1"), ("XADD", X, "2-0", "f", "2", "g", "x"),
         ("XADD", X, "3-5", "f", "3"), ("XADD", X, "4-0", "f", "4"))
GROUP = ("XGROUP", "CREATE", X, "g", "0")


def masked(command: tuple, drop: tuple[bytes, ...] = (), positions: tuple[int, ...] = ()) -> Probe:
    """A command whose reply is compared with some fields (``drop``: names in a
    field/value list or map) or positions of each row (``positions``) left out."""

    def clean(reply):
        if is_error(reply):
            return ("error", str(reply))
        if isinstance(reply, dict) or (isinstance(reply, list) and drop and
                                        any(isinstance(x, bytes) and x in drop for x in reply)):
            return sorted((k, clean(v)) for k, v in as_map(reply).items() if k not in drop)
        if isinstance(reply, list):
            if positions and reply and all(isinstance(x, list) for x in reply):
                return [[v for i, v in enumerate(row) if i not in positions]
                        if isinstance(row, list) and len(row) > max(positions) else clean(row)
                        for row in reply]
            return [clean(x) for x in reply]
        return reply

    return Probe(lambda call, _: clean(call(*command)), " ".join(command))


def xadd_auto(call, _):
    first = call("XADD", X, "*", "f", "1")
    second = call("XADD", X, "*", "f", "2")
    pattern = re.compile(rb"(\d+)-(\d+)")
    m1, m2 = pattern.fullmatch(first), pattern.fullmatch(second)
    assert m1 and m2, (first, second)
    assert (int(m1[1]), int(m1[2])) < (int(m2[1]), int(m2[2]))
    assert call("XLEN", X) == 2
    assert [e[0] for e in call("XRANGE", X, "-", "+")] == [first, second]
    third = call("XADD", X, f"{int(m2[1])}-*", "f", "3")  # 6.2 does not take ms-*: an error
    return ("error", str(third)) if is_error(third) else "id"


def streams() -> None:
    f = "streams"
    case(f, "xadd", *XFILL, ("XLEN", X), ("XRANGE", X, "-", "+"))
    case(f, "xadd", ("XADD", X, "5", "f", "v"), ("XADD", X, "5", "f", "v"),
         ("XADD", X, "4-9", "f", "v"), ("XADD", X, "0-0", "f", "v"),
         ("XADD", B, "0-0", "f", "v"), ("XADD", X, "x-1", "f", "v"), ("XLEN", X))
    case(f, "xadd", ("XADD", X, "NOMKSTREAM", "1-1", "f", "v"), ("EXISTS", X),
         ("XADD", X, "1-1", "f"), ("XADD", X, "1-1"), ("XADD", X, "1-1", "f", "v", "g"),
         ("SET", B, "v"), ("XADD", B, "1-1", "f", "v"))
    case(f, "xadd", *XFILL, ("XADD", X, "MAXLEN", "2", "5-0", "f", "5"), ("XLEN", X),
         ("XADD", X, "MAXLEN", "=", "1", "6-0", "f", "6"), ("XRANGE", X, "-", "+"))
    case(f, "xadd", *XFILL, ("XADD", X, "MINID", "3", "5-0", "f", "5"),
         ("XRANGE", X, "-", "+"), ("XADD", X, "MAXLEN", "~", "1", "6-0", "f", "6"),
         ("XLEN", X), ("XADD", X, "MAXLEN", "~", "1", "LIMIT", "10", "7-0", "f", "7"),
         ("XADD", X, "MAXLEN", "1", "LIMIT", "10", "8-0", "f", "8"),
         ("XADD", X, "MAXLEN", "-1", "9-0", "f", "9"))
    case(f, "xadd", Probe(xadd_auto, "XADD *"))
    case(f, "xlen", ("XLEN", X), *XFILL, ("XLEN", X), ("XLEN", X, "x"), ("SET", B, "v"),
         ("XLEN", B))
    case(f, "xrange", *XFILL, ("XRANGE", X, "2", "3-5"), ("XRANGE", X, "-", "+", "COUNT", "2"),
         ("XRANGE", X, "(1-1", "+"), ("XRANGE", X, "2-0", "(4-0"), ("XRANGE", X, "5", "9"))
    case(f, "xrange", *XFILL, ("XRANGE", X, "x", "+"), ("XRANGE", X, "-", "+", "COUNT"),
         ("XRANGE", X, "-", "+", "COUNT", "0"), ("XRANGE", X, "-"), ("XRANGE", "nokey", "-",
                                                                    "+"),
         ("XRANGE", X, "(-", "+"))
    case(f, "xrevrange", *XFILL, ("XREVRANGE", X, "+", "-"), ("XREVRANGE", X, "3-5", "2"),
         ("XREVRANGE", X, "+", "-", "COUNT", "1"), ("XREVRANGE", X, "-", "+"),
         ("XREVRANGE", X, "(4-0", "-"))
    case(f, "xrevrange", ("SET", B, "v"), ("XREVRANGE", B, "+", "-"), ("XREVRANGE", B, "+"))
    case(f, "xdel", *XFILL, ("XDEL", X, "2-0", "9-9", "3-5"), ("XLEN", X),
         ("XRANGE", X, "-", "+"), ("XDEL", X, "2-0"), ("XINFO", "STREAM", X))
    case(f, "xdel", ("XDEL", "nokey", "1-1"), *XFILL, ("XDEL", X, "x"), ("XDEL", X),
         ("SET", B, "v"), ("XDEL", B, "1-1"))
    case(f, "xtrim", *XFILL, ("XTRIM", X, "MAXLEN", "3"), ("XRANGE", X, "-", "+"),
         ("XTRIM", X, "MINID", "4"), ("XRANGE", X, "-", "+"), ("XTRIM", X, "MAXLEN", "0"),
         ("XLEN", X), ("EXISTS", X))
    case(f, "xtrim", *XFILL, ("XTRIM", X, "MAXLEN", "~", "1"), ("XTRIM", X, "MAXLEN", "=", "2"),
         ("XTRIM", X, "MAXLEN", "x"), ("XTRIM", X, "FOO", "1"), ("XTRIM", X),
         ("XTRIM", X, "MAXLEN", "1", "LIMIT", "1"), ("XTRIM", "nokey", "MAXLEN", "1"))
    case(f, "xread", *XFILL, ("XADD", B, "1-0", "h", "1"), ("XADD", B, "5-0", "h", "5"),
         ("XREAD", "STREAMS", X, B, "0", "0"), ("XREAD", "COUNT", "1", "STREAMS", X, B, "2",
                                                "1"),
         ("XREAD", "STREAMS", X, B, "4-0", "5"), ("XREAD", "STREAMS", X, "$"))
    case(f, "xread", *XFILL, ("XREAD", "STREAMS", X), ("XREAD", "STREAMS", X, B, "0"),
         ("XREAD", "COUNT", "x", "STREAMS", X, "0"), ("XREAD", X, "0"),
         ("XREAD", "STREAMS", X, "x"), ("XREAD", "STREAMS", "nokey", "0"), ("SET", C, "v"),
         ("XREAD", "STREAMS", C, "0"))
    case(f, "xread", ("XADD", T1, "1-0", "a", "1"), ("XADD", T2, "2-0", "b", "2"),
         ("XREAD", "COUNT", "5", "STREAMS", T1, T2, "0-0", "0-0"))
    case(f, "xgroup", *XFILL, GROUP, GROUP, ("XGROUP", "CREATE", X, "g2", "$"),
         ("XGROUP", "CREATE", "nokey", "g", "0"),
         ("XGROUP", "CREATE", C, "g", "$", "MKSTREAM"), ("XLEN", C), ("XINFO", "GROUPS", X))
    case(f, "xgroup", *XFILL, GROUP, ("XGROUP", "SETID", X, "g", "2-0"),
         ("XINFO", "GROUPS", X), ("XGROUP", "SETID", X, "nogroup", "0"),
         ("XGROUP", "SETID", X, "g", "$"), ("XINFO", "GROUPS", X))
    case(f, "xgroup", *XFILL, GROUP, ("XGROUP", "DESTROY", X, "g"),
         ("XGROUP", "DESTROY", X, "g"), ("XINFO", "GROUPS", X),
         ("XGROUP", "DESTROY", "nokey", "g"))
    case(f, "xgroup", *XFILL, GROUP, ("XGROUP", "CREATECONSUMER", X, "g", "alice"),
         ("XGROUP", "CREATECONSUMER", X, "g", "alice"),
         ("XGROUP", "CREATECONSUMER", X, "nogroup", "bob"), ("XINFO", "GROUPS", X),
         ("XGROUP", "DELCONSUMER", X, "g", "alice"), ("XGROUP", "DELCONSUMER", X, "g", "zed"),
         ("XINFO", "GROUPS", X))
    case(f, "xgroup", *XFILL, GROUP, ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "2",
                                      "STREAMS", X, ">"),
         ("XGROUP", "DELCONSUMER", X, "g", "alice"), ("XPENDING", X, "g"))
    case(f, "xgroup", ("XGROUP", "FOO", X, "g"), ("XGROUP", "CREATE", X),
         ("XGROUP", "CREATE", X, "g", "x", "MKSTREAM"), ("XGROUP",),
         ("SET", B, "v"), ("XGROUP", "CREATE", B, "g", "$"))
    case(f, "xgroup", ("XGROUP", "HELP"))
    case(f, "xreadgroup", *XFILL, GROUP,
         ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", X, ">"),
         ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", X, ">"),
         ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", X, ">"),
         ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", X, "0"),
         ("XREADGROUP", "GROUP", "g", "bob", "COUNT", "1", "STREAMS", X, "2"),
         ("XPENDING", X, "g"))
    case(f, "xreadgroup", *XFILL, GROUP,
         ("XREADGROUP", "GROUP", "g", "alice", "NOACK", "STREAMS", X, ">"),
         ("XPENDING", X, "g"), ("XINFO", "GROUPS", X))
    case(f, "xreadgroup", *XFILL, GROUP, ("XREADGROUP", "GROUP", "nog", "a", "STREAMS", X, ">"),
         ("XREADGROUP", "GROUP", "g", "a", "STREAMS", "nokey", ">"),
         ("XREADGROUP", "GROUP", "g", "STREAMS", X, ">"), ("XREADGROUP", "STREAMS", X, ">"),
         ("XREADGROUP", "GROUP", "g", "a", "STREAMS", X), ("XPENDING", X, "g"))
    case(f, "xreadgroup", ("XADD", T1, "1-0", "a", "1"), ("XADD", T2, "1-0", "b", "1"),
         ("XGROUP", "CREATE", T1, "g", "0"), ("XGROUP", "CREATE", T2, "g", "0"),
         ("XREADGROUP", "GROUP", "g", "c", "STREAMS", T1, T2, ">", ">"),
         ("XPENDING", T1, "g"), ("XPENDING", T2, "g"))
    case(f, "xreadgroup", *XFILL, GROUP, ("XADD", B, "1-0", "b", "1"),
         ("XGROUP", "CREATE", B, "g", "0"),
         ("XREADGROUP", "GROUP", "g", "c", "STREAMS", X, B, ">", ">"),
         ("XPENDING", X, "g"), ("XPENDING", B, "g"))
    # a group or consumer named STREAMS (or COUNT) is not the option: the keys
    # are found as Redis reads the options
    case(f, "xreadgroup", *XFILL, ("XGROUP", "CREATE", X, "STREAMS", "0"),
         ("XADD", B, "1-0", "b", "1"), ("XGROUP", "CREATE", B, "STREAMS", "0"),
         ("XREADGROUP", "GROUP", "STREAMS", "STREAMS", "COUNT", "1", "STREAMS", X, ">"),
         ("XREADGROUP", "GROUP", "STREAMS", "COUNT", "STREAMS", X, B, ">", ">"),
         ("XPENDING", X, "STREAMS"), ("XPENDING", B, "STREAMS"))
    case(f, "xread", *XFILL, ("XADD", B, "1-0", "b", "1"),
         ("XREAD", "COUNT", "2", "STREAMS", X, B, "0", "0"),
         ("XREAD", "COUNT", "STREAMS", "STREAMS", X, "0"))
    read = ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", X, ">")
    case(f, "xack", *XFILL, GROUP, read, ("XACK", X, "g", "1-1", "2-0", "9-9"),
         ("XACK", X, "g", "1-1"), ("XPENDING", X, "g"), ("XACK", X, "nog", "3-5"),
         ("XACK", "nokey", "g", "1-1"), ("XACK", X, "g", "x"), ("XACK", X, "g"))
    case(f, "xpending", *XFILL, GROUP, read, ("XPENDING", X, "g"),
         masked(("XPENDING", X, "g", "-", "+", "10"), positions=(2,)),
         masked(("XPENDING", X, "g", "-", "+", "2", "alice"), positions=(2,)),
         masked(("XPENDING", X, "g", "(1-1", "+", "10", "bob"), positions=(2,)))
    case(f, "xpending", *XFILL, GROUP, read,
         masked(("XPENDING", X, "g", "IDLE", "0", "-", "+", "10"), positions=(2,)),
         ("XPENDING", X, "g", "IDLE", "99999999", "-", "+", "10"),
         ("XPENDING", X, "g", "-", "+"), ("XPENDING", X, "g", "-", "+", "x"),
         ("XPENDING", X, "nog"), ("XPENDING", "nokey", "g"), ("XPENDING", X))
    case(f, "xpending", *XFILL, GROUP, ("XPENDING", X, "g"),
         ("XPENDING", X, "g", "-", "+", "10"))
    case(f, "xclaim", *XFILL, GROUP, read, ("XCLAIM", X, "g", "bob", "0", "1-1", "2-0"),
         masked(("XPENDING", X, "g", "-", "+", "10"), positions=(2, 3)),
         ("XCLAIM", X, "g", "carol", "0", "3-5", "JUSTID"), ("XPENDING", X, "g"),
         ("XCLAIM", X, "g", "bob", "99999999", "4-0"))
    case(f, "xclaim", *XFILL, GROUP, read, ("XDEL", X, "2-0"),
         ("XCLAIM", X, "g", "bob", "0", "2-0", "1-1"), ("XPENDING", X, "g"),
         ("XCLAIM", X, "g", "bob", "0", "9-9", "FORCE", "JUSTID"),
         ("XCLAIM", X, "g", "bob", "0", "1-1", "RETRYCOUNT", "7", "JUSTID"),
         masked(("XPENDING", X, "g", "-", "+", "10"), positions=(2,)))
    case(f, "xclaim", *XFILL, GROUP, ("XCLAIM", X, "nog", "bob", "0", "1-1"),
         ("XCLAIM", X, "g", "bob", "x", "1-1"), ("XCLAIM", X, "g", "bob", "0", "x"),
         ("XCLAIM", X, "g", "bob", "0"), ("XCLAIM", "nokey", "g", "bob", "0", "1-1"))
    case(f, "xautoclaim", *XFILL, GROUP, read,
         ("XAUTOCLAIM", X, "g", "bob", "0", "0-0", "COUNT", "2"),
         ("XAUTOCLAIM", X, "g", "bob", "0", "2-1"),
         ("XAUTOCLAIM", X, "g", "carol", "0", "0", "JUSTID"), ("XPENDING", X, "g"),
         ("XAUTOCLAIM", X, "g", "carol", "99999999", "0"))
    case(f, "xautoclaim", *XFILL, GROUP, ("XAUTOCLAIM", X, "nog", "bob", "0", "0"),
         ("XAUTOCLAIM", X, "g", "bob", "x", "0"), ("XAUTOCLAIM", X, "g", "bob", "0", "x"),
         ("XAUTOCLAIM", X, "g", "bob", "0", "0", "COUNT", "0"),
         ("XAUTOCLAIM", X, "g", "bob", "0"), ("XAUTOCLAIM", "nokey", "g", "bob", "0", "0"))
    case(f, "xinfo", *XFILL, ("XINFO", "STREAM", X), GROUP, ("XINFO", "STREAM", X),
         ("XINFO", "STREAM", "nokey"), ("XINFO", "STREAM", X, "x"))
    case(f, "xinfo", *XFILL, GROUP, read, ("XGROUP", "CREATE", X, "h", "$"),
         ("XINFO", "GROUPS", X), masked(("XINFO", "CONSUMERS", X, "g"), drop=(b"idle",)),
         ("XINFO", "CONSUMERS", X, "h"), ("XINFO", "CONSUMERS", X, "nog"))
    case(f, "xinfo", *XFILL, GROUP, read,
         ("XINFO", "HELP"), ("XINFO", "FOO", X), ("XINFO",), ("SET", B, "v"),
         ("XINFO", "STREAM", B), ("XINFO", "GROUPS", "nokey"))
    case(f, "xinfo", *XFILL, GROUP, read,
         masked(("XINFO", "STREAM", X, "FULL"),
                drop=(b"seen-time", b"pel", b"consumers", b"groups")))


# --------------------------------------------------------------------- keys
def restore_from(key: str, index: int, *extra: str) -> After:
    return After(lambda prev: ("RESTORE", key, "0", prev[index], *extra))


def keys() -> None:
    f = "keys"
    case(f, "rename", ("SET", A, "v"), ("RENAME", A, B), ("GET", B), ("EXISTS", A),
         ("RENAME", B, B), ("GET", B))
    case(f, "rename", ("SET", A, "v", "EX", "100"), ("SET", B, "old"), ("RENAME", A, B),
         ("TTL", B), ("GET", B))
    case(f, "rename", ("RPUSH", A, "1", "2"), ("HSET", B, "f", "v"), ("RENAME", A, B),
         ("TYPE", B), ("LRANGE", B, "0", "-1"))
    case(f, "rename", ("RENAME", "nokey", B), ("RENAME", "nokey", "nokey"), ("RENAME", A),
         ("EXISTS", B))
    case(f, "rename", ("ZADD", T1, "1", "a"), ("RENAME", T1, T2), ("ZRANGE", T2, "0", "-1"))
    case(f, "renamenx", ("SET", A, "v"), ("SET", B, "w"), ("RENAMENX", A, B), ("GET", B),
         ("RENAMENX", A, C), ("GET", C), ("EXISTS", A))
    case(f, "renamenx", ("SET", A, "v"), ("RENAMENX", A, A), ("RENAMENX", "nokey", B),
         ("RENAMENX", A))
    case(f, "renamenx", ("SET", T1, "v"), ("RENAMENX", T1, T2), ("GET", T2))
    case(f, "copy", ("SET", A, "v", "EX", "100"), ("COPY", A, B), ("GET", B), ("TTL", B),
         ("SET", C, "w"), ("COPY", A, C), ("GET", C))
    case(f, "copy", ("RPUSH", A, "1", "2"), ("SET", B, "w"), ("COPY", A, B, "REPLACE"),
         ("TYPE", B), ("LRANGE", B, "0", "-1"), ("RPUSH", A, "3"), ("LLEN", B))
    case(f, "copy", ("HSET", A, "f", "v"), ("SADD", C, "1"), ("ZADD", D, "1", "m"),
         ("COPY", A, B), ("COPY", C, E), ("HGETALL", B), ("SMEMBERS", E),
         ("COPY", D, A, "REPLACE"), ("ZRANGE", A, "0", "-1", "WITHSCORES"))
    case(f, "copy", ("COPY", "nokey", B), ("SET", A, "v"), ("COPY", A, A), ("COPY", A),
         ("COPY", A, B, "FOO"), ("COPY", A, B, "DB", "x"), ("EXISTS", B))
    case(f, "copy", *XFILL, GROUP, ("COPY", X, B), ("XINFO", "GROUPS", B), ("XLEN", B))
    case(f, "copy", ("SET", T1, "v"), ("COPY", T1, T2), ("MGET", T1, T2))
    case(f, "dump", ("SET", A, "hello"), ("DUMP", A), restore_from(B, 1), ("GET", B),
         ("TYPE", B))
    case(f, "dump", ("RPUSH", A, "1", "2", "3"), ("DUMP", A), restore_from(B, 1, "REPLACE"),
         ("LRANGE", B, "0", "-1"), restore_from(B, 1))
    case(f, "dump", ("HSET", A, "f", "v", "g", "w"), ("SADD", C, "1", "2"), ("DUMP", A),
         ("DUMP", C), restore_from(B, 2), restore_from(D, 3), ("HGETALL", B), ("SMEMBERS", D))
    case(f, "dump", ZFILL, ("DUMP", A), restore_from(B, 1), ("ZRANGE", B, "0", "-1",
                                                               "WITHSCORES"))
    case(f, "dump", ("SET", A, "v"), ("DUMP", A),
         After(lambda prev: ("RESTORE", B, "100000", prev[1])), ("TTL", B),
         After(lambda prev: ("RESTORE", C, "9999999999000", prev[1], "ABSTTL")),
         ("EXISTS", C), ("PERSIST", C))
    case(f, "dump", ("DUMP", "nokey"), ("RESTORE", B, "0", "garbage"),
         ("RESTORE", B, "x", "garbage"), ("RESTORE", B, "0"), ("SET", A, "v"), ("DUMP", A),
         After(lambda prev: ("RESTORE", B, "-1", prev[5])),
         After(lambda prev: ("RESTORE", B, "0", prev[5], "FOO")), ("EXISTS", B))
    case(f, "dump", *XFILL, GROUP, ("DUMP", X), restore_from(B, 5), ("XRANGE", B, "-", "+"))
    case(f, "touch", ("SET", A, "1"), ("SET", B, "2"), ("TOUCH", A, B, "nokey", A),
         ("TOUCH", "nokey"), ("TOUCH",))
    encodings = [("SET", A, "12345"), ("SET", B, "short"), ("SET", C, "x" * 100),
                 ("RPUSH", D, "a"), ("HSET", E, "f", "v"), ("SADD", T1, "1"),
                 ("SADD", T2, "a"), ("ZADD", T3, "1", "a")]
    case(f, "object", *encodings, *[("OBJECT", "ENCODING", c[1]) for c in encodings],
         ("OBJECT", "ENCODING", "nokey"))
    case(f, "object", ("SET", A, "x"), ("APPEND", A, "y"), ("OBJECT", "ENCODING", A),
         ("SET", B, "9"), ("INCRBYFLOAT", B, "0.5"), ("OBJECT", "ENCODING", B),
         ("RPUSH", C, *[str(i) for i in range(200)]), ("OBJECT", "ENCODING", C),
         ("SADD", D, *[str(i) for i in range(600)]), ("OBJECT", "ENCODING", D),
         ("ZADD", E, "1", "x" * 70), ("OBJECT", "ENCODING", E))
    case(f, "object", ("SET", A, "v"), ("OBJECT", "FREQ", A), ("OBJECT", "FREQ", "nokey"))
    case(f, "object", ("SET", A, "100"), ("SET", B, "hello"), ("OBJECT", "REFCOUNT", A),
         ("OBJECT", "REFCOUNT", B), ("OBJECT", "REFCOUNT", "nokey"))

    def idletime(call, _):
        assert call("SET", A, "v") == b"OK"
        idle = call("OBJECT", "IDLETIME", A)
        assert isinstance(idle, int) and idle >= 0, idle
        return call("OBJECT", "IDLETIME", "nokey")

    case(f, "object", Probe(idletime, "OBJECT IDLETIME"))
    case(f, "object", ("OBJECT", "HELP"), ("OBJECT", "FOO", A), ("OBJECT", "ENCODING"),
         ("OBJECT",))

    def randomkey(call, _):
        assert call("RANDOMKEY") is None
        assert call("SET", B, "v") == b"OK"
        assert call("RANDOMKEY") == NAMES.get(B, B).encode()
        for key in (A, C, T1):
            call("SET", key, "v")
        for _ in range(10):
            assert call("RANDOMKEY") in {NAMES.get(k, k).encode() for k in (A, B, C, T1)}
        return None

    case(f, "randomkey", Probe(randomkey, "RANDOMKEY"))
    case(f, "randomkey", ("RANDOMKEY", "x"))
    nums = ("RPUSH", A, "3", "1", "10", "2", "-1.5")
    case(f, "sort", nums, ("SORT", A), ("SORT", A, "DESC"), ("SORT", A, "LIMIT", "1", "2"),
         ("SORT", A, "LIMIT", "0", "-1", "DESC"), ("SORT", A, "ALPHA"),
         ("SORT", A, "ALPHA", "DESC", "LIMIT", "2", "10"))
    case(f, "sort", ("RPUSH", A, "b", "a", "C"), ("SORT", A), ("SORT", A, "ALPHA"),
         ("SORT", "nokey"), ("SORT", A, "FOO"), ("SORT", A, "LIMIT", "1"),
         ("SORT", A, "LIMIT", "x", "1"), ("SET", B, "v"), ("SORT", B))
    case(f, "sort", ("SADD", A, "5", "3", "9"), ("ZADD", B, "3", "x", "1", "y", "2", "z"),
         ("SORT", A), ("SORT", A, "BY", "nosort"), ("SORT", B, "ALPHA"),
         ("SORT", B, "BY", "nosort"), ("SORT", B, "BY", "nosort", "LIMIT", "1", "1"))
    weights = (("RPUSH", A, "1", "2", "3"), ("MSET", "w_1", "30", "w_2", "10", "w_3", "20"),
               ("MSET", "o_1", "one", "o_2", "two"), ("HSET", "h_1", "f", "x", "g", "9"),
               ("HSET", "h_3", "f", "z", "g", "1"))
    case(f, "sort", *weights, ("SORT", A, "BY", "w_*"), ("SORT", A, "BY", "w_*", "DESC"),
         ("SORT", A, "BY", "nokey_*"), ("SORT", A, "BY", "h_*->g"))
    case(f, "sort", *weights, ("SORT", A, "GET", "o_*"), ("SORT", A, "GET", "#", "GET", "o_*"),
         ("SORT", A, "BY", "w_*", "GET", "o_*", "GET", "h_*->f"),
         ("SORT", A, "BY", "nosort", "GET", "#", "GET", "w_*"))
    case(f, "sort", *weights, ("SORT", A, "STORE", B), ("LRANGE", B, "0", "-1"),
         ("SORT", A, "BY", "w_*", "GET", "o_*", "STORE", C), ("LRANGE", C, "0", "-1"),
         ("SORT", "nokey", "STORE", C), ("EXISTS", C), ("SET", D, "v"),
         ("SORT", A, "STORE", D), ("TYPE", D))
    case(f, "sort", ("RPUSH", "{s}l", "2", "1"), ("SET", "{s}w_1", "5"), ("SET", "{s}w_2", "1"),
         ("SORT", "{s}l", "BY", "{s}w_*", "STORE", "{s}out"), ("LRANGE", "{s}out", "0", "-1"))
    def ro(*args):
        return Beyond62(("SORT_RO", *args), ("SORT", *args))

    case(f, "sort_ro", nums, ro(A), ro(A, "DESC", "LIMIT", "0", "2"), ro(A, "ALPHA"),
         DtError(("SORT_RO", A, "STORE", B), ("syntax error",)), ("EXISTS", B))
    case(f, "sort_ro", *weights, ro(A, "BY", "w_*", "GET", "#", "GET", "o_*"), ro("nokey"),
         DtError(("SORT_RO",), ("wrong number of arguments",)), ("SET", C, "v"), ro(C))
    case(f, "sort", ("RPUSH", A, "1", "x"), ("SORT", A), ("SORT", A, "DESC", "ALPHA"))


# ----------------------------------------------------------------- keyspace
def scan_all(*options: str) -> Probe:
    """Iterate SCAN to cursor 0; every key once; the sorted keys are compared."""

    def run(call, _):
        cursor, seen = b"0", []
        for _ in range(10_000):
            reply = call("SCAN", cursor, *options)
            assert not is_error(reply), reply
            cursor, batch = reply
            seen += batch
            if cursor == b"0":
                break
        else:
            raise AssertionError("SCAN never came back to cursor 0")
        duplicates = [k for k, n in Counter(seen).items() if n > 1]
        assert not duplicates, f"keys returned more than once: {duplicates}"
        return sorted(seen)

    return Probe(run, "SCAN " + " ".join(options))


def sorted_reply(*command: str) -> Probe:
    def run(call, _):
        reply = call(*command)
        return ("error", str(reply)) if is_error(reply) else sorted(reply)
    return Probe(run, " ".join(command))


MANY = ("MSET", *[x for i in range(40) for x in (f"k{i}", str(i))])
TYPED = (("MSET", A, "1", "user:1", "a", "user:2", "b"), ("RPUSH", B, "x"),
         ("RPUSH", "user:list", "x"), ("SADD", C, "1"), ("HSET", D, "f", "v"),
         ("ZADD", E, "1", "m"), ("SET", T1, "v"))


def keyspace() -> None:
    f = "keyspace"
    case(f, "scan", scan_all(), MANY, scan_all(), scan_all("COUNT", "3"))
    case(f, "scan", MANY, *TYPED, scan_all("MATCH", "k1*"), scan_all("MATCH", "user:*",
                                                                      "COUNT", "2"),
         scan_all("MATCH", "nothing*"))
    case(f, "scan", MANY, *TYPED, scan_all("TYPE", "string"), scan_all("TYPE", "list"),
         scan_all("TYPE", "zset", "COUNT", "1"), scan_all("MATCH", "user:*", "TYPE", "list"),
         scan_all("TYPE", "nosuchtype"))
    case(f, "scan", ("SCAN", "x"), ("SCAN", "0", "COUNT", "0"), ("SCAN", "0", "COUNT", "x"),
         ("SCAN", "0", "FOO", "1"), ("SCAN", "0", "MATCH"), ("SCAN",))
    case(f, "keys", sorted_reply("KEYS", "*"), MANY, *TYPED, sorted_reply("KEYS", "*"),
         sorted_reply("KEYS", "user:*"), sorted_reply("KEYS", "k?"),
         sorted_reply("KEYS", "{*"), sorted_reply("KEYS", "[kd]*"))
    case(f, "keys", ("KEYS",), ("KEYS", "a", "b"))
    case(f, "dbsize", ("DBSIZE",), MANY, *TYPED, ("DBSIZE",), ("DEL", "k1", A, B),
         ("DBSIZE",), ("DBSIZE", "x"))
    case(f, "flushdb", MANY, ("FLUSHDB",), ("DBSIZE",), ("EXISTS", "k1"), *TYPED,
         ("FLUSHDB", "ASYNC"), ("DBSIZE",), MANY, ("FLUSHDB", "SYNC"), ("DBSIZE",),
         ("FLUSHDB", "FOO"), ("FLUSHDB", "SYNC", "x"))
    case(f, "flushall", MANY, ("FLUSHALL",), ("DBSIZE",), *TYPED, ("FLUSHALL", "ASYNC"),
         ("KEYS", "*"), MANY, ("FLUSHALL", "SYNC"), ("DBSIZE",), ("FLUSHALL", "FOO"),
         ("FLUSHALL", "ASYNC", "x"))
    # Redis moves the key away, dtriad refuses: the two keyspaces differ after it.
    case(f, "swapdb", ("SET", A, "v"), DtError(("SWAPDB", "0", "1"), ("database",)))
    case(f, "move", ("SET", A, "v"), DtError(("MOVE", A, "1"), ("database",)))


# ------------------------------------------------------------------- server
def time_shape(call, _):
    reply = call("TIME")
    assert isinstance(reply, list) and len(reply) == 2, reply
    assert all(isinstance(x, bytes) and x.isdigit() for x in reply), reply
    assert int(reply[1]) < 1_000_000
    return "ok"


def lastsave_shape(call, _):
    reply = call("LASTSAVE")
    assert isinstance(reply, int) and reply > 0, reply
    return "ok"


def memory_usage(call, _):
    for command in (("SET", A, "v"), ("RPUSH", B, "1", "2"), ("HSET", C, "f", "v"),
                    ("SADD", D, "1"), ("ZADD", E, "1", "m")):
        call(*command)
    for key in (A, B, C, D, E):
        for extra in ((), ("SAMPLES", "0"), ("SAMPLES", "5")):
            usage = call("MEMORY", "USAGE", key, *extra)
            assert isinstance(usage, int) and usage > 0, (key, usage)
    return call("MEMORY", "USAGE", "nokey")


def command_count(call, _):
    count = call("COMMAND", "COUNT")
    assert isinstance(count, int) and count > 0, count
    return "ok"


def server() -> None:
    f = "server"
    case(f, "time", Probe(time_shape, "TIME"), ("TIME", "x"))
    case(f, "lastsave", Probe(lastsave_shape, "LASTSAVE"), ("LASTSAVE", "x"))
    case(f, "memory", Probe(memory_usage, "MEMORY USAGE"))
    case(f, "memory", ("MEMORY", "USAGE", "nokey"), ("MEMORY", "USAGE", "nokey", "SAMPLES", "1"),
         ("SET", A, "v"), ("MEMORY", "USAGE", A, "SAMPLES", "x"),
         ("MEMORY", "USAGE", A, "FOO"), ("MEMORY", "USAGE"))
    case(f, "command", Probe(command_count, "COMMAND COUNT"), ("COMMAND", "COUNT", "x"))
    served = ["get", "set", "getex", "mset", "msetnx", "bitfield", "bitfield_ro", "bitop",
              "lmove", "lpos", "hrandfield", "smismember", "sinterstore", "zrangestore",
              "zunionstore", "zinter", "pfcount", "pfmerge", "geosearchstore", "georadius",
              "xadd", "xreadgroup", "xread", "xautoclaim", "rename", "copy", "sort",
              "object", "scan", "del", "exists"]
    for chunk in range(0, len(served), 4):
        case(f, "command", ("COMMAND", "INFO", *served[chunk:chunk + 4]))
    case(f, "command", ("COMMAND", "INFO", "nosuchcommand", "GET"), ("COMMAND", "INFO"))


for family in (strings, lists, hashes, sets, zsets, hll, geo, streams, keys, keyspace, server):
    family()


# ------------------------------------------------------------------- runner
class Conn:
    """One server: raw replies, and their parsed form for Probes and After steps."""

    def __init__(self, port: int, password: str, protocol: int):
        self.raw = Raw(port)
        hello = ("HELLO", "3", "AUTH", "default", password) if protocol == 3 else (
            "AUTH", password)
        assert not is_error(parse(self.raw.command(*hello)))

    def command(self, *args) -> bytes:
        return self.raw.command(*(NAMES.get(a, a) if isinstance(a, str) else a for a in args))

    def call(self, *args) -> Any:
        return parse(self.command(*args))

    def close(self) -> None:
        self.raw.close()


def parse(raw: bytes) -> Any:
    reader = hiredis.Reader()
    reader.feed(raw)
    return reader.gets()


def flush_dtriad(cluster, conn: Conn) -> None:
    """Each case starts empty: FLUSHALL through the RESP port."""
    assert conn.command("FLUSHALL") == b"+OK\r\n"


def run_steps(cluster, plain, steps, protocol: int, port_index: int) -> list[str]:
    dt = Conn(resp_port(cluster, port_index), cluster.password, protocol)
    ref = Conn(plain, cluster.password, protocol)
    mismatches = []
    try:
        flush_dtriad(cluster, dt)
        assert ref.command("FLUSHALL") == b"+OK\r\n"
        history: dict[Conn, list] = {dt: [], ref: []}
        for step in steps:
            if isinstance(step, Probe):
                values = {}
                for name, conn in (("redis", ref), ("dtriad", dt)):
                    try:
                        values[name] = step.run(conn.call, history[conn])
                    except AssertionError as e:
                        if name == "redis":
                            raise AssertionError(f"the case is wrong: plain Redis fails "
                                                 f"{step.label}: {e}") from e
                        values[name] = f"invariant broken: {e}"
                    history[conn].append(values[name])
                if values["dtriad"] != values["redis"]:
                    mismatches.append(f"{step.label}: dtriad {values['dtriad']!r} != "
                                      f"redis {values['redis']!r}")
                continue
            if isinstance(step, DtError):
                ours = dt.command(*step.command)
                ref.command(*step.command)
                history[dt].append(parse(ours))
                history[ref].append(None)
                if not (ours.startswith(b"-") and all(w.encode() in ours.lower()
                                                      for w in step.words)):
                    mismatches.append(f"{step.command}: dtriad {ours!r} is not an error "
                                      f"mentioning {step.words}")
                continue
            replies = {}
            for conn in (dt, ref):
                if isinstance(step, Beyond62):
                    command = step.command if conn is dt else step.equivalent
                else:
                    command = step.build(history[conn]) if isinstance(step, After) else step
                replies[conn] = conn.command(*command)
                history[conn].append(parse(replies[conn]))
            if replies[dt] != replies[ref]:
                mismatches.append(f"{command}: dtriad {replies[dt]!r} != redis "
                                  f"{replies[ref]!r}")
    finally:
        dt.close()
        ref.close()
    return mismatches


# What no front end can turn back into Redis 6.2's reply when the backends run
# Redis 7.0 (the README says so): DUMP payloads are RDB format 10, XCLAIM of
# deleted entries drops them, XINFO ... FULL has 7.0's fields, XGROUP HELP
# is 7.0's text, and 7.0 checks some stream arguments in another order. These cases compare with a
# plain server of the backends' own version when that is not 6.2.
VERSION_SPECIFIC = {"keys-dump-1", "keys-dump-2", "keys-dump-3", "keys-dump-4", "keys-dump-5",
                    "keys-dump-6", "keys-dump-7", "streams-xadd-6", "streams-xgroup-7",
                    "streams-xclaim-2", "streams-xinfo-4"}


# The keys the cases name as A, B, C, D and E, as sent: chosen for this
# cluster's ring so that A, B and C have three different masters (nodes are
# placed by their addresses, which are free ports), whatever the ring.
NAMES: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def spread(cluster) -> dict[str, str]:
    ring = cluster.ring()
    taken: list[str] = [ring.preference_list(A)[0]]
    NAMES.clear()
    NAMES[A] = A
    for symbol in (B, C, D, E):
        for n in range(10_000):
            name = symbol if n == 0 else f"{symbol}~{n}"
            master = ring.preference_list(name)[0]
            if master not in taken or len(set(taken)) >= min(3, len(cluster.nodes)):
                break
        NAMES[symbol] = name
        taken.append(master)
    yield dict(NAMES)
    NAMES.clear()


@pytest.fixture(scope="module")
def plain_like_backends(cluster, plain, tmp_path_factory):
    """A plain server of the backends' own Redis (``plain`` itself when they run 6.2)."""
    if backend(cluster, cluster.nodes[0]).info("server")["redis_version"].startswith("6.2"):
        yield plain
        return
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("plain-like-backends"), cluster.password,
                       persist=False)
    yield port
    stop_pid(proc.pid, needle=str(port))


@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.id for c in CASES])
def test_command_matches_redis(cluster, plain, plain_like_backends, index, protocol):
    reference = plain_like_backends if CASES[index].id in VERSION_SPECIFIC else plain
    mismatches = run_steps(cluster, reference, CASES[index].steps, protocol, index % 3)
    assert not mismatches, "\n".join(mismatches)


def test_version_specific_cases_exist():
    assert VERSION_SPECIFIC <= {c.id for c in CASES}


def test_case_table_is_large_enough():
    per_family = Counter(c.id.split("-")[0] for c in CASES)
    assert len(CASES) >= 250, dict(per_family)


def test_the_case_keys_span_several_masters(cluster, spread):
    ring = cluster.ring()
    masters = {key: ring.preference_list(spread[key])[0] for key in SPREAD}
    assert len(set(masters.values())) == min(3, len(cluster.nodes)), masters
    tagged = {ring.preference_list(key)[0] for key in (T1, T2, T3)}
    assert len(tagged) == 1


# ------------------------------------------------------- generated sequences
KEYSPACE = ["k1", "k2", "{g}a", "{g}b", "z"]
key = st.sampled_from(KEYSPACE)
small = st.sampled_from(["0", "1", "2", "3", "7", "-1", "x"])
member = st.sampled_from(["1", "2", "3", "4"])  # integers: an intset's order is fixed
field = st.sampled_from(["f", "g", "h"])
value = st.sampled_from(["a", "b", "10", "-3", "1.5", ""])
side = st.sampled_from(["LEFT", "RIGHT"])
keys2 = st.lists(key, min_size=1, max_size=3)


def cmd(name, *parts):
    return st.tuples(st.just(name), *parts)


def _flatten(part) -> tuple:
    if isinstance(part, (list, tuple)):
        return tuple(x for p in part for x in _flatten(p))
    return (part,)


def flat(*parts):
    return st.tuples(*parts).map(_flatten)


COMMANDS = st.one_of(
    cmd("SET", key, value), cmd("GET", key), cmd("APPEND", key, value), cmd("INCR", key),
    cmd("INCRBY", key, small), cmd("STRLEN", key), cmd("GETDEL", key),
    flat(st.just("MSET"), st.lists(st.tuples(key, value), min_size=1, max_size=3)),
    flat(st.just("MSETNX"), st.lists(st.tuples(key, value), min_size=1, max_size=3)),
    flat(st.just("MGET"), keys2), flat(st.just("DEL"), keys2), flat(st.just("EXISTS"), keys2),
    cmd("TYPE", key), cmd("RENAME", key, key), cmd("RENAMENX", key, key),
    cmd("COPY", key, key), cmd("COPY", key, key, st.just("REPLACE")),
    flat(st.just("RPUSH"), key, st.lists(value, min_size=1, max_size=3)),
    flat(st.just("LPUSH"), key, st.lists(value, min_size=1, max_size=3)),
    cmd("LPOP", key), cmd("RPOP", key, small), cmd("LRANGE", key, st.just("0"), st.just("-1")),
    cmd("LMOVE", key, key, side, side), cmd("RPOPLPUSH", key, key), cmd("LLEN", key),
    cmd("LPOS", key, value), cmd("LINSERT", key, st.just("BEFORE"), value, value),
    flat(st.just("SADD"), key, st.lists(member, min_size=1, max_size=3)),
    flat(st.just("SREM"), key, st.lists(member, min_size=1, max_size=2)),
    cmd("SMEMBERS", key), cmd("SCARD", key), cmd("SMOVE", key, key, member),
    flat(st.just("SINTER"), keys2), flat(st.just("SUNION"), keys2),
    flat(st.just("SDIFF"), keys2), flat(st.just("SINTERSTORE"), key, keys2),
    flat(st.just("SUNIONSTORE"), key, keys2), flat(st.just("SDIFFSTORE"), key, keys2),
    flat(st.just("SMISMEMBER"), key, st.lists(member, min_size=1, max_size=3)),
    flat(st.just("HSET"), key, st.lists(st.tuples(field, value), min_size=1, max_size=2)),
    cmd("HGET", key, field), cmd("HGETALL", key), cmd("HDEL", key, field),
    cmd("HINCRBY", key, field, small), cmd("HINCRBYFLOAT", key, field, small),
    flat(st.just("ZADD"), key, st.lists(st.tuples(small, member), min_size=1, max_size=3)),
    cmd("ZRANGE", key, st.just("0"), st.just("-1"), st.just("WITHSCORES")),
    cmd("ZINCRBY", key, small, member), cmd("ZPOPMIN", key), cmd("ZPOPMAX", key, small),
    cmd("ZRANGESTORE", key, key, st.just("0"), small),
    flat(st.just("ZUNIONSTORE"), key, keys2.map(lambda ks: (str(len(ks)), *ks))),
    flat(st.just("ZINTERSTORE"), key, keys2.map(lambda ks: (str(len(ks)), *ks))),
    flat(st.just("ZDIFFSTORE"), key, keys2.map(lambda ks: (str(len(ks)), *ks))),
    flat(st.just("ZUNION"), keys2.map(lambda ks: (str(len(ks)), *ks)), st.just("WITHSCORES")),
    cmd("SORT", key), cmd("SORT", key, st.just("ALPHA"), st.just("STORE"), key),
    cmd("DBSIZE"),
)


@settings(max_examples=30, deadline=None)
@given(sequence=st.lists(COMMANDS, min_size=1, max_size=12))
def test_generated_sequences_match_redis(cluster, plain, sequence):
    mismatches = run_steps(cluster, plain, [tuple(c) for c in sequence], 2, len(sequence) % 3)
    assert not mismatches, "\n".join(mismatches)


# ------------------------------------------------------------- consistency
def test_every_copy_is_identical_after_the_whole_file(cluster):
    """Last in the file: every write above reached every copy, identically."""
    report = check(cluster)
    assert report.clean, report.lines({n.redis: n.name for n in cluster.nodes})


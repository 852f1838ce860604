"""The pure parts of EVAL/EVALSHA/SCRIPT (core/userscripts.py): argument
errors, the script's sha, the allow-list generated from the command table,
tagged replies and their RESP encoding. Running scripts is tested on a real
cluster (tests/integration/test_scripts.py)."""

from __future__ import annotations

import hashlib

import pytest

from dtriad.core import userscripts
from dtriad.core.commands import REDIS, Kind
from dtriad.core.userscripts import (
    ALLOWED,
    PROLOGUE,
    REFUSED,
    WRAPPER,
    ErrorReply,
    Status,
    decode,
    error_of,
    numkeys,
    sha1,
)
from dtriad.exceptions import CommandError
from dtriad.frontends.resp import encode


@pytest.mark.parametrize("argv, error", [
    (["EVAL", "return 1", "-1"], "ERR Number of keys can't be negative"),
    (["EVAL", "return 1", "2", "k"], "ERR Number of keys can't be greater than number of args"),
    (["EVAL", "return 1", "x"], "ERR value is not an integer or out of range"),
    (["EVAL", "return 1", b"1.5", "k"], "ERR value is not an integer or out of range"),
])
def test_numkeys_errors_are_redis_s(argv, error):
    with pytest.raises(CommandError) as e:
        numkeys(argv)
    assert e.value.line == error


def test_numkeys():
    assert numkeys(["EVAL", "s", "0"]) == 0
    assert numkeys(["EVAL", "s", b"2", "a", "b", "arg"]) == 2


def test_sha1_is_redis_s_for_text_and_bytes():
    assert sha1("return 1") == hashlib.sha1(b"return 1").hexdigest()
    assert sha1("é".encode()) == sha1("é")
    assert sha1("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709"


def test_the_allow_list_is_the_data_commands_of_the_table():
    data = {n for n, s in REDIS.items() if s.kind in (Kind.READ, Kind.WRITE)}
    assert data | {"TIME", "PING", "ECHO"} == set(ALLOWED)
    assert ALLOWED["SET"][4] and not ALLOWED["GET"][4]
    assert ALLOWED["PFCOUNT"][4]  # it caches the count in the key: a write
    assert ALLOWED["DEL"][1:4] == (1, -1, 1)
    assert ALLOWED["ZUNIONSTORE"][5] == "zstore" and ALLOWED["XREAD"][5] == "xread"
    for name in ("SELECT", "SWAPDB", "MOVE", "FLUSHALL", "KEYS", "SCAN", "CONFIG", "PUBLISH",
                 "EVAL", "SCRIPT", "BLPOP", "SUBSCRIBE", "MULTI", "RANDOMKEY"):
        assert name in REFUSED and name not in ALLOWED, name
    assert REFUSED["EVAL"] == "noscript" and "database 0 only" in REFUSED["SELECT"]
    assert not set(ALLOWED) & set(REFUSED)


def test_the_wrapper_is_filled_and_the_prologue_is_one_line():
    assert "@META_DB@" not in WRAPPER and "@ALLOWED@" not in WRAPPER
    assert "\n" not in PROLOGUE
    for name in ("redis", "_G", "getfenv", "setfenv", "loadstring", "load", "rawget",
                 "rawset", "getmetatable", "setmetatable"):
        assert f" {name}," in PROLOGUE or f" {name} =" in PROLOGUE, name


def test_tagged_replies_decode_to_raw_replies():
    assert decode(b"bulk") == b"bulk" and decode(7) == 7 and decode(None) is None
    status = decode([b"+", b"OK"])
    assert isinstance(status, Status) and status == b"OK"
    nested = decode([b"*", 1, [b"+", b"x"], [b"-", b"ERR e"], b"b", None, [b"*"]])
    assert nested == [1, b"x", b"ERR e", b"b", None, []]
    assert isinstance(nested[1], Status) and isinstance(nested[2], ErrorReply)


def test_status_and_nested_errors_encode_as_redis_does():
    assert encode(Status(b"OK")) == b"+OK\r\n"
    assert encode(b"OK") == b"$2\r\nOK\r\n"
    assert encode([1, Status(b"x"), ErrorReply(b"ERR e"), b"b", None]) == (
        b"*5\r\n:1\r\n+x\r\n-ERR e\r\n$1\r\nb\r\n$-1\r\n")
    assert encode(Status(b"PONG"), resp3=True) == b"+PONG\r\n"


def test_a_script_s_error_reply_is_sent_as_it_is():
    assert error_of("My Error").line == "My Error"
    assert error_of("WRONGTYPE custom").line == "WRONGTYPE custom"
    assert error_of("ERR x").code == "ERR"


def test_the_cache_scripts_use_database_1():
    for script in (userscripts.STORE, userscripts.SOURCE, userscripts.EXISTS,
                   userscripts.FLUSH):
        assert "SELECT', 1)" in script and userscripts.SCRIPTS_KEY in script

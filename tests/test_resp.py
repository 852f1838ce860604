"""The sans-I/O RESP code: the request parser (whole, byte by byte, with
trailing bytes), redis-cli's quoting, and reply encoding in RESP2 and RESP3."""

import re
from types import SimpleNamespace

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtriad.core.commands import REDIS, lookup, reply_is_array, reply_is_status, reply_shape
from dtriad.frontends.resp import (
    ProtocolError,
    RequestParser,
    TooLarge,
    encode,
    encode_shaped,
    error,
    split_args,
)


def multibulk(*args: bytes) -> bytes:
    return hiredis.pack_command(args)


def parse_all(data: bytes, chunk: int | None = None, **options) -> list:
    parser = RequestParser(**options)
    out = []
    pieces = [data] if chunk is None else [data[i:i + chunk]
                                           for i in range(0, len(data), chunk)]
    for piece in pieces:
        parser.feed(piece)
        while (request := parser.next()) is not None:
            out.append(request)
    return out


REQUESTS = [[b"SET", b"k", b"v"], [b"GET", b"k"], [b"SET", b"bin", b"\r\n\x00*$"],
            [b"MSET", b"a", b"", b"b", b"2"]]
WIRE = b"".join(multibulk(*r) for r in REQUESTS)


@pytest.mark.parametrize("chunk", [None, 1, 3, 7])
def test_multibulk_requests_whole_and_byte_by_byte(chunk):
    assert parse_all(WIRE, chunk) == REQUESTS


def test_trailing_bytes_wait_for_the_rest():
    parser = RequestParser()
    parser.feed(WIRE + b"*2\r\n$3\r\nGET\r\n$1\r\n")
    assert [parser.next() for _ in REQUESTS] == REQUESTS
    assert parser.next() is None
    parser.feed(b"k\r\n")
    assert parser.next() == [b"GET", b"k"]
    assert parser.next() is None


@given(st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=5), max_size=6),
       st.integers(1, 50))
def test_any_requests_survive_any_chunking(requests, chunk):
    data = b"".join(multibulk(*r) for r in requests)
    assert parse_all(data, chunk) == requests


def test_inline_commands_with_quotes_and_empty_lines():
    data = b'set greeting "hello world"\r\n\r\nGET  greeting\nset k \'it\\\'s\'\r\n'
    assert parse_all(data) == [[b"set", b"greeting", b"hello world"],
                               [b"GET", b"greeting"], [b"set", b"k", b"it's"]]
    assert parse_all(data, 1) == parse_all(data)


def test_an_oversized_argument_is_skipped_not_buffered():
    big = b"x" * 5000
    data = multibulk(b"SET", b"k", big) + multibulk(b"GET", b"k")
    for chunk in (None, 100):
        requests = parse_all(data, chunk, max_bulk=1000)
        assert requests == [[b"SET", b"k", TooLarge(5000)], [b"GET", b"k"]]
    parser = RequestParser(max_bulk=1000)
    parser.feed(data[:3000])
    assert parser.next() is None and parser.buffered < 100  # skipped as it arrived


@pytest.mark.parametrize("data, message", [
    (b"*x\r\n", "invalid multibulk length"),
    (b"*1\r\n+GET\r\n", "expected '$', got '+'"),
    (b"*1\r\n$-5\r\n", "invalid bulk length"),
    (b"*1\r\n$abc\r\n", "invalid bulk length"),
    (b'set k "open\r\n', "unbalanced quotes"),
    (b"x" * (70 * 1024), "too big inline request"),
])
def test_protocol_errors_name_the_problem(data, message):
    parser = RequestParser()
    parser.feed(data)
    with pytest.raises(ProtocolError, match=re.escape(message)):
        parser.next()


def test_before_auth_only_small_requests_are_read():
    """Redis 7's rule: 10 arguments of 16 KiB at most until AUTH; the error
    comes before anything big is buffered."""
    parser = RequestParser(authenticated=False)
    parser.feed(multibulk(b"AUTH", b"default", b"p" * 100))
    assert parser.next() == [b"AUTH", b"default", b"p" * 100]
    parser.feed(b"*100000\r\n")
    with pytest.raises(ProtocolError, match="unauthenticated multibulk length"):
        parser.next()
    parser = RequestParser(authenticated=False)
    parser.feed(b"*2\r\n$4\r\nAUTH\r\n$1048576\r\n")
    with pytest.raises(ProtocolError, match="unauthenticated bulk length"):
        parser.next()
    parser = RequestParser(authenticated=False)
    parser.authenticated = True  # AUTH succeeded
    parser.feed(multibulk(*[b"SADD", b"s", *(b"m%d" % i for i in range(20))]))
    assert len(parser.next()) == 22


def test_a_request_may_not_add_up_to_more_than_max_request():
    parser = RequestParser(max_bulk=1000, max_request=2500)
    parser.feed(multibulk(b"MSET", b"a", b"x" * 900, b"b", b"y" * 900))
    assert parser.next()[0] == b"MSET"
    parser.feed(b"*7\r\n$4\r\nMSET\r\n" + b"$1\r\nk\r\n$900\r\n" + b"z" * 902
                + b"$1\r\nk\r\n$900\r\n" + b"z" * 902 + b"$1\r\nk\r\n$900\r\n")
    with pytest.raises(ProtocolError, match="add up to more than 2500 bytes"):
        parser.next()


@pytest.mark.parametrize("line, args", [
    ('set a "x\\ny\\t\\x41\\"z"', [b"set", b"a", b'x\ny\tA"z']),
    ("get 'a b'", [b"get", b"a b"]),
    ('get ""', [b"get", b""]),
    ("  lpush   l  1 ", [b"lpush", b"l", b"1"]),
    ('get "a"b', None),
    ('get "a', None),
    ("get 'a", None),
    ("", []),
])
def test_split_args_follows_redis_cli(line, args):
    assert split_args(line) == args


def test_encoding_in_resp2_and_resp3():
    assert encode(b"OK", status=True) == b"+OK\r\n"
    assert encode(b"OK") == b"$2\r\nOK\r\n"
    assert encode(None) == b"$-1\r\n"
    assert encode(None, null_array=True) == b"*-1\r\n"
    assert encode(None, resp3=True) == b"_\r\n"
    assert encode(-7) == b":-7\r\n"
    assert encode([b"a", None, 3, []]) == b"*4\r\n$1\r\na\r\n$-1\r\n:3\r\n*0\r\n"
    assert encode([b"a", None], resp3=True) == b"*2\r\n$1\r\na\r\n_\r\n"
    assert encode_shaped([b"f", b"1"], "map", True) == b"%1\r\n$1\r\nf\r\n$1\r\n1\r\n"
    assert encode_shaped([b"1"], "set", True) == b"~1\r\n$1\r\n1\r\n"
    assert encode_shaped(b"2.5", "double", True) == b",2.5\r\n"
    assert encode_shaped([b"a", b"1"], "scores", True) == b"*1\r\n*2\r\n$1\r\na\r\n,1\r\n"
    assert encode_shaped(None, "double", True) == b"_\r\n"
    assert error("ERR two\r\nlines") == b"-ERR two  lines\r\n"


def test_reply_types_depend_on_the_arguments():
    assert reply_is_status(lookup(b"set"), [b"SET", b"k", b"v"])
    assert not reply_is_status(lookup(b"set"), [b"SET", b"k", b"v", b"get"])
    assert reply_is_array(lookup("LPOP"), [b"LPOP", b"l", b"2"])
    assert not reply_is_array(lookup("LPOP"), [b"LPOP", b"l"])
    zrange = [b"ZRANGE", b"z", b"0", b"1", b"withscores"]
    assert reply_shape(lookup("zrange"), zrange, True) == "scores"
    assert reply_shape(lookup("zrange"), zrange, False) is None
    assert reply_shape(lookup("geopos"), [b"GEOPOS", b"g", b"m"], False) == "geopos"
    assert encode_shaped([None, [b"1", b"2"]], "geopos", False) == (
        b"*2\r\n*-1\r\n*2\r\n$1\r\n1\r\n$1\r\n2\r\n")
    assert encode_shaped([[b"st", []]], "streams", True) == b"%1\r\n$2\r\nst\r\n*0\r\n"
    assert encode_shaped(None, "streams", False) == b"*-1\r\n"
    assert reply_shape(lookup("zadd"), [b"ZADD", b"z", b"incr", b"1", b"a"], True) == "double"
    assert reply_shape(lookup("zadd"), [b"ZADD", b"z", b"1", b"a"], True) is None


def test_the_table_speaks_redis_arity():
    assert REDIS["GET"].arity_ok(2) and not REDIS["GET"].arity_ok(3)
    assert REDIS["DEL"].arity_ok(5) and not REDIS["DEL"].arity_ok(1)
    assert REDIS["MSET"].key_spec == (1, -1, 2)
    assert lookup(b"nosuch") is None


class PythonOnly(RequestParser):
    """The parser without its hiredis path: the reference it must match."""

    def _feed_c(self, data: bytes) -> bytes:
        return data


def run_parser(parser: RequestParser, pieces: list[bytes]) -> tuple[list, list]:
    """Every request parsed, then the protocol error if one came; and how
    many bytes were counted as buffered after each piece was fed."""
    out, buffered = [], []
    try:
        for piece in pieces:
            parser.feed(piece)
            buffered.append(parser.buffered)
            while (request := parser.next()) is not None:
                out.append(request)
    except ProtocolError as e:
        out.append(("error", str(e)))
    return out, buffered


# Pieces of client input: canonical requests, and everything the C path must
# hand to the Python parser (inline commands, RESP3 and reply types, odd
# number forms, an empty multibulk, arguments over the limits, garbage).
FRAGMENTS = st.one_of(
    st.lists(st.binary(max_size=30), min_size=1, max_size=4).map(lambda a: multibulk(*a)),
    st.sampled_from([
        b"GET k\r\n", b"\r\n", b"*0\r\n", b"*-1\r\n", b"*1\r\n+OK\r\n", b"*1\r\n:5\r\n",
        b"*1\r\n$-1\r\n", b"~1\r\n$1\r\na\r\n", b"%1\r\n$1\r\na\r\n$1\r\nb\r\n",
        b">1\r\n$1\r\na\r\n", b"*1\r\n$03\r\nGET\r\n", b"*01\r\n$3\r\nGET\r\n",
        b"*1\r\n$+3\r\nGET\r\n", b"*2\r\n*1\r\n$1\r\na\r\n$1\r\nb\r\n", b"*1\r\n$3\r\nGETX\r\n",
        b"*x\r\n", b"*1\r\n$1\r\nab\r\n", b"$3\r\nGET\r\n", b"*1\r\n$3\r\nGET\n",
        multibulk(b"SET", b"k", b"x" * 300), multibulk(b"MSET", b"a", b"y" * 150, b"b", b"z" * 150),
        b"*4294967295\r\n", b"*3000000\r\n", b"*2\r\n$99999999999999999999\r\n",
    ]))


@given(st.lists(FRAGMENTS, max_size=8), st.lists(st.integers(1, 60), max_size=8),
       st.booleans())
def test_the_hiredis_path_parses_exactly_as_the_python_parser(fragments, cuts, limits):
    """Whatever the input and wherever it is cut, the parser with its C path
    returns the same requests, the same error at the same point, and counts
    the same bytes buffered as the pure Python parser."""
    data = b"".join(fragments)
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(data[start:start + cut])
        start += cut
    pieces.append(data[start:])
    options = {"max_bulk": 200, "max_request": 400} if limits else {}
    requests, buffered = run_parser(RequestParser(**options), pieces)
    expected, python_buffered = run_parser(PythonOnly(**options), pieces)
    assert requests == expected
    # requests parsed in C count what they hold, at least their wire bytes
    assert all(c >= p for c, p in zip(buffered, python_buffered, strict=True))


def test_the_hiredis_path_takes_whole_requests_and_leaves_the_rest():
    parser = RequestParser()
    parser.feed(WIRE + b"*2\r\n$3\r\nGET\r\n$1\r\n")
    assert len(parser._ready) == len(REQUESTS)  # parsed in C
    assert [parser.next() for _ in REQUESTS] == REQUESTS
    assert parser.next() is None
    parser.feed(b"k\r\n")
    assert parser.next() == [b"GET", b"k"]


@pytest.mark.parametrize("name", sorted(__import__("dtriad.frontends.fastpath",
                                                     fromlist=["PLAIN"]).PLAIN))
def test_the_fast_paths_plain_replies_are_what_the_command_table_gives(name):
    """The fast path encodes PLAIN commands' bulk strings and integers without
    the command table: for any arguments (words that change other
    commands' replies included), that is the table's encoding."""
    from dtriad.frontends.fastpath import FastRead
    from dtriad.frontends.respd import RespServer
    spec = lookup(name)
    for extra in ([], [b"WITHSCORES"], [b"GET"], [b"HELP"], [b"COUNT", b"2"], [b"0", b"-1"]):
        argv = [name.encode(), b"k", *extra]
        for resp3 in (False, True):
            session = SimpleNamespace(resp3=resp3, fast_done=lambda: None)
            for value in (b"v", b"", b"\r\n", 0, 7, -2):
                read = FastRead(SimpleNamespace(server=None, core=SimpleNamespace(
                    record=lambda *a: None)), session, spec, argv, "n1", 0.0)
                if isinstance(value, bytes) and resp3:
                    continue  # the table's way (RESP3 is not the plain path's)
                read.set_result(value)
                assert read.reply == RespServer.encode(None, session, spec, argv, value), \
                    (argv, value, resp3)


def test_requests_after_reset_in_the_same_read_meet_the_pre_auth_limits():
    """RESET ends the AUTH: what came with it in one read is parsed after the
    session is unauthenticated again, so Redis 7's pre-AUTH limits apply."""
    parser = RequestParser()
    parser.feed(multibulk(b"RESET") + multibulk(b"MSET", *[b"k%d" % i for i in range(12)]))
    assert parser.next() == [b"RESET"]
    parser.authenticated = False  # what the session does on RESET
    with pytest.raises(ProtocolError, match="unauthenticated multibulk length"):
        parser.next()


def test_requests_parsed_in_c_count_what_they_hold():
    """Reading pauses at a high-water mark of buffered bytes: tiny requests
    parsed in C count their Python objects, not their 10 wire bytes."""
    parser = RequestParser()
    data = multibulk(b"") * 10_000
    parser.feed(data)
    assert len(parser._ready) == 10_000 and parser.buffered >= 100 * 10_000
    while parser.next() is not None:
        pass
    assert parser.buffered == 0


def test_a_huge_multibulk_count_is_the_python_parsers_error():
    parser = RequestParser()
    parser.feed(multibulk(b"GET", b"k") + b"*4294967295\r\n")
    assert parser.next() == [b"GET", b"k"]
    with pytest.raises(ProtocolError, match="invalid multibulk length"):
        parser.next()

"""RESP2, sans-I/O: a request parser (``feed(bytes)`` / ``next()``), reply
encoding and redis-cli's argument quoting. No sockets here; see
:mod:`dtriad.frontends.respd` for the asyncio transport.

The parser accepts what redis-server accepts: multibulk requests
(``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``, what every client library sends) and
inline commands (``GET k``, what a person types into telnet), with Redis's
quoting rules. An argument longer than ``max_bulk`` is not buffered: its bytes
are skipped as they arrive and the request comes back with a :class:`TooLarge`
in its place, so the front end can answer with a clear error and keep the
connection.

Whole multibulk requests are parsed by hiredis (C) when that changes nothing
(:meth:`RequestParser.feed`); everything else, and every limit, is the pure
Python parser's.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import hiredis

MAX_INLINE = 64 * 1024          # Redis's PROTO_INLINE_MAX_SIZE
MAX_MULTIBULK = 1024 * 1024     # Redis's limit on arguments per request
MAX_BULK = 512 * 1024 * 1024    # Redis's proto-max-bulk-len default
MAX_REQUEST = 64 * 1024 * 1024  # all of one request's arguments (like client-query-buffer-limit)
# Before AUTH, Redis 7 accepts requests of at most 10 arguments of 16 KiB each.
UNAUTH_ARGS = 10
UNAUTH_BULK = 16 * 1024
_COMPACT = 64 * 1024
# Python objects of a request parsed in C (its list, each argument's bytes
# object, its place in the queue), over its wire bytes.
_REQUEST_COST = 120
_ARGUMENT_COST = 48


class ProtocolError(Exception):
    """The client sent bytes that are not RESP; the connection must close."""


@dataclass(frozen=True)
class TooLarge:
    """Stands in for an argument of ``size`` bytes that was skipped."""

    size: int


class RequestParser:
    """Incremental parser of client requests: ``feed`` bytes, then call
    ``next`` until it returns ``None`` (more bytes needed).

    Memory is bounded before anything is buffered: an argument above
    ``max_bulk`` is skipped (:class:`TooLarge`), a request whose arguments
    add up to more than ``max_request`` bytes is a protocol error, and while
    ``authenticated`` is False only Redis 7's unauthenticated requests are
    accepted (10 arguments of 16 KiB at most)."""

    def __init__(self, max_bulk: int = MAX_BULK, max_request: int = MAX_REQUEST,
                 authenticated: bool = True):
        self.max_bulk = max_bulk
        self.max_request = max_request
        self.authenticated = authenticated
        self._size = 0                  # bytes of the arguments of the request being read
        self._buf = bytearray()
        self._pos = 0
        self._argc: int | None = None   # arguments of the multibulk being read
        self._args: list[Any] = []
        self._bulk: int | None = None   # length of the bulk string being read
        self._skip = 0                  # bytes of an oversized argument still to skip
        self._ready: collections.deque = collections.deque()  # (request, its cost) parsed in C
        self._ready_bytes = 0
        self._reader = hiredis.Reader()

    def feed(self, data: bytes) -> None:
        if (self.authenticated and data[:1] == b"*" and self._argc is None
                and not self._skip and self._pos == len(self._buf)):
            data = self._feed_c(data)
        self._buf += data

    def _feed_c(self, data: bytes) -> bytes:
        """Parse the whole requests at the start of ``data`` with hiredis
        (about a third of the Python parser's cost); return the bytes left
        for the Python parser.

        A request is taken only if its bytes are exactly the canonical RESP
        of what hiredis returned (``*N``, then ``$len`` and the bytes of each
        argument): so it is a plain multibulk of bulks, ends where that
        encoding ends, and parses as the Python parser would. The first one
        that is not (an inline command, a RESP3 type, anything malformed), is
        incomplete, or needs a limit's check, and everything after it, is left
        to the Python parser, which keeps its errors and its limits."""
        reader, pack, ready = self._reader, hiredis.pack_command, self._ready
        limit = min(self.max_bulk, self.max_request)
        reader.feed(data)
        pos = 0
        while True:
            try:
                request = reader.gets()
                if request is False:
                    break
                wire = pack(tuple(request))
            except Exception:  # noqa: BLE001 - not RESP hiredis takes (a huge *N: MemoryError)
                break
            end = pos + len(wire)
            if (not request or len(wire) > limit or len(request) > MAX_MULTIBULK
                    or data[pos:end] != wire):
                break
            # what the parsed request holds in memory, not its wire bytes: the
            # high-water mark that pauses reading counts this
            size = _REQUEST_COST + _ARGUMENT_COST * len(request) + end - pos
            ready.append((request, size))
            self._ready_bytes += size
            pos = end
            if len(request[0]) == 5 and request[0].upper() == b"RESET":
                break  # it ends the AUTH: what follows meets the pre-AUTH limits
        if pos != len(data):
            self._reader = hiredis.Reader()  # it holds what the Python parser now reads
        return data[pos:] if pos else data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos + self._ready_bytes

    def next(self) -> list[Any] | None:
        """The next complete request as a list of bytes arguments, or None."""
        if self._ready:
            request, size = self._ready.popleft()
            self._ready_bytes -= size
            return request
        buf = self._buf
        while True:
            if self._skip:
                take = min(len(buf) - self._pos, self._skip)
                self._pos += take
                self._skip -= take
                if self._skip:
                    return self._need()
            if self._argc is None:
                if self._pos >= len(buf):
                    return self._need()
                if buf[self._pos] != 0x2A:  # '*'
                    request = self._inline()
                    if request is None:
                        return self._need()
                    if request:
                        return request
                    continue  # an empty line: Redis ignores it
                end = buf.find(b"\r\n", self._pos)
                if end < 0:
                    return self._need(MAX_INLINE, "too big mbulk count string")
                count = _number(buf, self._pos + 1, end, "invalid multibulk length")
                if count > MAX_MULTIBULK:
                    raise ProtocolError("Protocol error: invalid multibulk length")
                if count > UNAUTH_ARGS and not self.authenticated:
                    raise ProtocolError("Protocol error: unauthenticated multibulk length")
                self._pos = end + 2
                if count <= 0:
                    continue
                self._argc, self._args, self._size = count, [], 0
            while len(self._args) < self._argc:
                if self._bulk is None:
                    if self._pos >= len(buf):
                        return self._need()
                    if buf[self._pos] != 0x24:  # '$'
                        raise ProtocolError(
                            f"Protocol error: expected '$', got '{chr(buf[self._pos])}'")
                    end = buf.find(b"\r\n", self._pos)
                    if end < 0:
                        return self._need(MAX_INLINE, "too big bulk count string")
                    size = _number(buf, self._pos + 1, end, "invalid bulk length")
                    if size < 0 or size > MAX_BULK:
                        raise ProtocolError("Protocol error: invalid bulk length")
                    if size > UNAUTH_BULK and not self.authenticated:
                        raise ProtocolError("Protocol error: unauthenticated bulk length")
                    self._pos = end + 2
                    if size > self.max_bulk:
                        self._args.append(TooLarge(size))
                        self._skip = size + 2
                        break
                    self._size += size
                    if self._size > self.max_request:
                        raise ProtocolError(f"Protocol error: the request's arguments add up "
                                            f"to more than {self.max_request} bytes")
                    self._bulk = size
                end = self._pos + self._bulk
                if end + 2 > len(buf):
                    return self._need()
                self._args.append(bytes(buf[self._pos:end]))
                self._pos = end + 2
                self._bulk = None
            else:
                request, self._argc, self._args = self._args, None, []
                return request

    def _inline(self) -> list[bytes] | None:
        buf = self._buf
        end = buf.find(b"\n", self._pos)
        if end < 0:
            if len(buf) - self._pos > MAX_INLINE:
                raise ProtocolError("Protocol error: too big inline request")
            return None
        line = bytes(buf[self._pos:end]).rstrip(b"\r")
        self._pos = end + 1
        args = split_args(line)
        if args is None:
            raise ProtocolError("Protocol error: unbalanced quotes in request")
        return args

    def _need(self, limit: int | None = None, what: str = "") -> None:
        if limit is not None and len(self._buf) - self._pos > limit:
            raise ProtocolError(f"Protocol error: {what}")
        if self._pos > _COMPACT and self._pos * 2 > len(self._buf):
            del self._buf[:self._pos]
            self._pos = 0
        return None


def _number(buf: bytearray, start: int, end: int, what: str) -> int:
    try:
        return int(buf[start:end])
    except ValueError:
        raise ProtocolError(f"Protocol error: {what}") from None


_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b",
            ord("a"): b"\a"}
_SPACE = b" \n\r\t\v\f"


def split_args(line: bytes | str) -> list[bytes] | None:
    """Split a command line the way redis-cli and redis-server do
    (``sdssplitargs``): spaces separate arguments; inside double quotes
    ``\\n \\r \\t \\b \\a \\xHH`` and ``\\"`` are escapes; inside single quotes only
    ``\\'``. None if the quotes do not balance (or a closing quote is not
    followed by a space)."""
    data = line.encode() if isinstance(line, str) else line
    args: list[bytes] = []
    i, n = 0, len(data)
    while True:
        while i < n and data[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        quote = 0
        while True:
            if i >= n:
                if quote:
                    return None
                break
            c = data[i]
            if quote:
                if c == 0x5C and quote == 0x22 and i + 3 < n and data[i + 1] == 0x78 \
                        and _hex(data[i + 2:i + 4]):
                    current.append(int(data[i + 2:i + 4], 16))  # "\xHH"
                    i += 3
                elif c == 0x5C and quote == 0x22 and i + 1 < n:
                    i += 1
                    current += _ESCAPES.get(data[i], bytes([data[i]]))
                elif c == 0x5C and quote == 0x27 and i + 1 < n and data[i + 1] == 0x27:
                    current.append(0x27)  # \' inside single quotes
                    i += 1
                elif c == quote:
                    if i + 1 < n and data[i + 1] not in _SPACE:
                        return None
                    quote = 0
                    i += 1
                    break
                else:
                    current.append(c)
            elif c in _SPACE:
                break
            elif c in (0x22, 0x27):
                quote = c
            else:
                current.append(c)
            i += 1
        args.append(bytes(current))


def _hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


# ------------------------------------------------------------------ replies
OK = b"+OK\r\n"


def encode(value: Any, status: bool = False, null_array: bool = False,
           resp3: bool = False) -> bytes:
    """A Redis reply (as redis-py/hiredis return it) as RESP bytes. Strings
    are bulk strings unless ``status``; a nil is ``$-1`` unless ``null_array``
    (``*-1``), or ``_`` in RESP3."""
    if value is None:
        return b"_\r\n" if resp3 else b"*-1\r\n" if null_array else b"$-1\r\n"
    if isinstance(value, bytes):
        # a script's status or nested error reply says so (core/userscripts.py)
        prefix = b"+" if status else getattr(value, "resp_prefix", b"")
        if prefix:
            return prefix + value + b"\r\n"
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, bool):
        return b":1\r\n" if value else b":0\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        return encode(value.encode(), status)
    if isinstance(value, list | tuple):
        return b"*%d\r\n" % len(value) + b"".join(encode(v, status, resp3=resp3)
                                                   for v in value)
    raise TypeError(f"cannot encode {type(value).__name__} as RESP")


def encode_shaped(value: Any, shape: str, resp3: bool) -> bytes:
    """A reply the backends give in RESP2's flat form, in the type Redis gives
    it (:func:`dtriad.core.commands.reply_shape` names the shape): ``map``
    (flat pairs: HGETALL, XINFO STREAM), ``maps`` (an array of those),
    ``set``, ``double``, ``doubles`` (ZMSCORE), ``scores`` (member, score
    pairs), ``flatscores`` (one member and its score), ``pairs`` (HRANDFIELD
    WITHVALUES), ``streams`` (XREAD: stream -> entries) and ``geopos``
    (coordinates, a nil array for a missing member)."""
    if value is None:
        return b"_\r\n" if resp3 else b"*-1\r\n" if shape == "streams" else b"$-1\r\n"
    if shape == "geopos":
        return b"*%d\r\n" % len(value) + b"".join(
            (b"_\r\n" if resp3 else b"*-1\r\n") if v is None else
            b"*2\r\n" + b"".join(_double(x) if resp3 else encode(x) for x in v) for v in value)
    if shape == "double":
        return _double(value)
    if shape == "pending":  # XPENDING's summary: no consumers is a nil array
        return b"*%d\r\n" % len(value) + b"".join(
            b"*-1\r\n" if v is None and i == 3 else encode(v) for i, v in enumerate(value))
    if shape == "geocoords":  # [member, dist?, hash?, [longitude, latitude]] items
        return b"*%d\r\n" % len(value) + b"".join(
            b"*%d\r\n" % len(item) + b"".join(
                b"*2\r\n" + _double(v[0]) + _double(v[1]) if isinstance(v, list)
                else encode(v, resp3=True) for v in item)
            for item in value)
    if shape == "doubles":
        return b"*%d\r\n" % len(value) + b"".join(
            b"_\r\n" if v is None else _double(v) for v in value)
    if shape == "map":
        return b"%%%d\r\n" % (len(value) // 2) + b"".join(encode(v, resp3=True) for v in value)
    if shape == "maps":
        return b"*%d\r\n" % len(value) + b"".join(encode_shaped(v, "map", True) for v in value)
    if shape == "set":
        return b"~%d\r\n" % len(value) + b"".join(encode(v, resp3=True) for v in value)
    if shape == "scores":
        return b"*%d\r\n" % (len(value) // 2) + b"".join(
            b"*2\r\n" + encode(value[i]) + _double(value[i + 1])
            for i in range(0, len(value), 2))
    if shape == "flatscores":
        return b"*%d\r\n" % len(value) + b"".join(
            encode(v) if i % 2 == 0 else _double(v) for i, v in enumerate(value))
    if shape == "pairs":
        return b"*%d\r\n" % (len(value) // 2) + b"".join(
            b"*2\r\n" + encode(value[i], resp3=True) + encode(value[i + 1], resp3=True)
            for i in range(0, len(value), 2))
    if shape == "streams":
        return b"%%%d\r\n" % len(value) + b"".join(
            encode(key, resp3=True) + encode(entries, resp3=True) for key, entries in value)
    raise ValueError(f"unknown reply shape {shape!r}")


def _double(value: bytes) -> bytes:
    return b"," + value + b"\r\n"


def error(line: str) -> bytes:
    """``-ERR ...\\r\\n``; a message must stay on one line."""
    flat = line.replace("\r", " ").replace("\n", " ")
    return b"-" + flat.encode("utf-8", "replace") + b"\r\n"

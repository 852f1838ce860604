"""Raw sockets for hostile inputs: bytes out, what came back (and whether the
server closed the connection) in.

Every read has a deadline: a server that neither answers nor closes within it
is a hang, reported as such (:class:`Hang`), never waited on for ever.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import hiredis

HANG_S = 15.0  # generous: every input here is answered in milliseconds


class Hang(AssertionError):
    """The server neither answered nor closed the connection in time."""


@dataclass
class RespResult:
    replies: list = field(default_factory=list)  # hiredis values; errors as ReplyError
    raw: bytes = b""
    closed: bool = False  # the server closed the connection

    @property
    def errors(self) -> list[str]:
        return [str(r) for r in self.replies if isinstance(r, hiredis.ReplyError)]

    def summary(self, limit: int = 70) -> str:
        shown = []
        for r in self.replies[:3]:
            if isinstance(r, hiredis.ReplyError):
                shown.append("-" + str(r))
            elif isinstance(r, bytes):
                shown.append(repr(r))
            else:
                shown.append(repr(r))
        more = f" (+{len(self.replies) - 3} more)" if len(self.replies) > 3 else ""
        text = "; ".join(s[:limit] for s in shown) or "no reply"
        return f"{text}{more}; {'closed' if self.closed else 'kept open'}"


class Resp:
    """One raw RESP connection."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=HANG_S)
        self.reader = hiredis.Reader()
        self.closed = False

    def __enter__(self) -> Resp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send everything; a server that closes meanwhile is not an error here
        (what it answered before closing is read by :meth:`read`)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def command(self, *args) -> object:
        """Send one command and return its one reply (the connection must stay open)."""
        self.send(hiredis.pack_command(args))
        result = self.read(1)
        assert len(result.replies) == 1 and not result.closed, result.summary()
        return result.replies[0]

    def read(self, count: int | None = None, quiet_s: float = 0.0) -> RespResult:
        """Read ``count`` replies, or (``count`` None) everything until the
        server closes. With ``quiet_s``, stop after that long without a byte
        once ``count`` replies came (to see that no more come)."""
        out = RespResult()
        deadline = time.monotonic() + HANG_S
        while True:
            while True:
                reply = self.reader.gets()
                if reply is False:
                    break
                out.replies.append(reply)
            if count is not None and len(out.replies) >= count and not quiet_s:
                return out
            wait = deadline - time.monotonic()
            if count is not None and len(out.replies) >= count:
                wait = quiet_s
            if wait <= 0:
                raise Hang(f"no reply nor close within {HANG_S}s; got {out.summary()}")
            self.sock.settimeout(wait)
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                if count is not None and len(out.replies) >= count:
                    return out
                raise Hang(f"no reply nor close within {HANG_S}s; got {out.summary()}") \
                    from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = out.closed = True
                return out
            out.raw += chunk
            self.reader.feed(chunk)

    def closes(self) -> bool:
        """True if the server closes the connection (EOF) within the deadline,
        False if a PING still gets an answer."""
        if self.closed:
            return True
        self.send(b"*1\r\n$4\r\nPING\r\n")
        result = self.read(1)
        return result.closed and not result.replies


@dataclass
class HttpResult:
    status: int | None  # None: the server closed without a status line
    headers: dict[str, str]
    body: bytes
    closed: bool = False

    def summary(self) -> str:
        if self.status is None:
            return "closed without a reply"
        return f"{self.status} {self.body[:90]!r}"


def http_raw(port: int, request: bytes, host: str = "127.0.0.1",
             chunks: list[bytes] = ()) -> HttpResult:
    """Send ``request`` (then each of ``chunks``, ignoring a server that stops
    reading or closes) on a fresh socket; read one HTTP/1.1 response."""
    sock = socket.create_connection((host, port), timeout=HANG_S)
    try:
        try:
            sock.sendall(request)
            sock.settimeout(2)
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server answered (or closed) before reading everything
        sock.settimeout(HANG_S)
        return _read_response(sock)
    finally:
        sock.close()


def _read_response(sock: socket.socket) -> HttpResult:
    data = b""
    deadline = time.monotonic() + HANG_S

    def more() -> bytes:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            return sock.recv(1 << 20)
        except TimeoutError:
            raise Hang(f"no HTTP reply nor close within {HANG_S}s; got {data[:200]!r}") \
                from None
        except ConnectionResetError:
            return b""

    while b"\r\n\r\n" not in data:
        chunk = more()
        if not chunk:
            return HttpResult(None, {}, data, True)
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = more()
            if not chunk:
                break
            body += chunk
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while not body.endswith(b"0\r\n\r\n"):
            chunk = more()
            if not chunk:
                break
            body += chunk
        body = _unchunk(body)
    else:
        while chunk := more():
            body += chunk
    return HttpResult(status, headers, body)


def _unchunk(body: bytes) -> bytes:
    out, pos = b"", 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return out
        size = int(body[pos:end].split(b";")[0] or b"0", 16)
        if size == 0:
            return out
        out += body[end + 2:end + 2 + size]
        pos = end + 2 + size + 2

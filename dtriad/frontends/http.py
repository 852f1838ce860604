"""DTServer: the paper's HTTP RPC API as a spyne application (HttpRpc in, JSON out).

Every method is a thin adapter over :class:`dtriad.core.dtcore.DTCore`. Both
``GET /set?key=a&value=b`` and a form-encoded POST work. Errors are JSON objects
``{"error": ..., "code": ...}`` with a 4xx/5xx status, never a stack trace.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
from http import HTTPStatus
from typing import Any

from spyne import AnyDict, Application, Array, Integer, ServiceBase, Unicode, rpc
from spyne.error import RequestTooLongError, ResourceNotFoundError
from spyne.model.fault import Fault
from spyne.protocol.http import HttpRpc
from spyne.protocol.json import JsonDocument
from spyne.server.wsgi import WsgiApplication

from dtriad.config import NodeSpec
from dtriad.core.commands import Kind, lookup
from dtriad.core.dtcore import DTCore, method_names
from dtriad.exceptions import (
    ArgumentError,
    CommandError,
    DtriadError,
    UnknownMethodError,
    ValueTooLargeError,
)
from dtriad.membership.check import check as run_check
from dtriad.membership.check import http_ring

log = logging.getLogger(__name__)
NAMESPACE = "dtriad"


def status_line(code: int) -> str:
    """``503`` -> ``"503 Service Unavailable"``."""
    status = HTTPStatus(code)
    return f"{status.value} {status.phrase}"


class DtFault(Fault):
    """Carries a :class:`DtriadError` through spyne's fault path."""

    def __init__(self, error: DtriadError):
        super().__init__(faultcode=error.code, faultstring=error.message)
        self.error = error


def as_dtriad_error(fault: BaseException) -> DtriadError:
    """Map any fault spyne raises to our error tree."""
    if isinstance(fault, DtFault):
        return fault.error
    if isinstance(fault, ResourceNotFoundError):
        match = re.search(r"\{" + NAMESPACE + r"\}([^'\"]*)", str(fault.faultstring))
        name = match.group(1) if match else "?"
        return UnknownMethodError(
            f"unknown method {name!r}; methods are {', '.join(method_names())}")
    if isinstance(fault, RequestTooLongError):
        return ValueTooLargeError("request body")
    code = getattr(fault, "faultcode", "") or ""
    if code.startswith("Client"):
        return ArgumentError(str(getattr(fault, "faultstring", fault)))
    return DtriadError("internal error in the DTServer; see its log")


class DtJsonDocument(JsonDocument):
    """JSON out, with faults as ``{"error", "code"}`` and our status codes."""

    def _fault_to_doc(self, inst, cls=None):
        error = as_dtriad_error(inst)
        return [{"error": error.message, "code": error.code}]

    def fault_to_http_response_code(self, fault):
        return status_line(as_dtriad_error(fault).http_status)


def bearer(environ: dict) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _call(ctx, method: str, run, admin: bool = False) -> Any:
    core: DTCore = ctx.udc
    try:
        if admin:
            core.authorize(bearer(ctx.transport.req_env), method)
        result = run(core)
    except DtriadError as e:
        core.stats.record(method, e.code)
        raise DtFault(e) from e
    core.stats.record(method)
    return result


def _text(value: Any) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _cmd(ctx, method: str, **args) -> Any:
    return _call(ctx, method, lambda core: core.call(method, **args))


def _json(value: Any) -> Any:
    """A Redis reply as JSON: bulk strings as text (UTF-8), arrays as lists."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def run_command(core: DTCore, argv: list[str], write_quorum: str | None = None,
                read_quorum: str | None = None) -> Any:
    """HTTP's ``command``: any data command of the table, plus PING, ECHO and
    DBSIZE; the RESP port's connection commands (AUTH, HELLO ...) mean nothing here."""
    spec = core.checked(argv)
    if spec.kind is not Kind.LOCAL:
        return core.command(argv, write_quorum, read_quorum)
    if spec.name == "ping":
        return argv[1] if len(argv) > 1 else "PONG"
    if spec.name == "echo":
        return argv[1]
    if spec.name == "dbsize":
        return core.dbsize()
    raise CommandError(f"ERR '{spec.name}' is a command of the RESP port's connections, "
                       f"not of the HTTP API; use 'ring', 'health' or 'stats' for what "
                       f"this DTServer knows")


def check_report(core: DTCore, own: tuple[str, int]) -> dict:
    """``dtriad check`` run by a DTServer, over every node it knows; ``own``
    (host, port) is this DTServer's, which answers for itself."""
    nodes, names = [], set()
    for name, redis, http in core._catalog():
        if name not in names:
            names.add(name)
            nodes.append(NodeSpec(name, redis, http))
    config = dataclasses.replace(core.config, nodes=tuple(nodes))

    def ring_of(node: NodeSpec) -> dict:
        if (node.http_host, node.http_port) == own:
            return core.ring_info()
        return http_ring(node, config.admin_headers())

    report = run_check(config, ring_of=ring_of)
    return report.as_dict({n.redis: n.name for n in nodes})


def _own_address(ctx) -> tuple[str, int]:
    environ = ctx.transport.req_env
    host, _, port = environ.get("HTTP_HOST", "").rpartition(":")
    if not host or not port.isdigit():
        host, port = environ.get("SERVER_NAME", ""), environ.get("SERVER_PORT", "0")
    return host, int(port)


class DTService(ServiceBase):
    """The paper's eight methods, then dtriad's additions and admin methods.

    Reads take an optional ``read_quorum`` (one, quorum) and writes an
    optional ``write_quorum`` (all, quorum, one) overriding the cluster's.
    """

    @rpc(Unicode, Unicode, _returns=Unicode)
    def get(ctx, key, read_quorum):
        return _text(_cmd(ctx, "get", key=key, read_quorum=read_quorum))

    @rpc(Unicode, Unicode, Unicode, _returns=Unicode)
    def set(ctx, key, value, write_quorum):
        return _text(_cmd(ctx, "set", key=key, value=value, write_quorum=write_quorum))

    @rpc(Unicode, Unicode, _returns=Integer)
    def getStrlen(ctx, key, read_quorum):
        return _cmd(ctx, "getStrlen", key=key, read_quorum=read_quorum)

    @rpc(Unicode, Unicode, Unicode, _returns=Integer)
    def append(ctx, key, value, write_quorum):
        return _cmd(ctx, "append", key=key, value=value, write_quorum=write_quorum)

    @rpc(Unicode, Unicode, Unicode, _returns=Integer)
    def lPush(ctx, key, value, write_quorum):
        return _cmd(ctx, "lPush", key=key, value=value, write_quorum=write_quorum)

    @rpc(Unicode, Unicode, _returns=Unicode)
    def lPop(ctx, key, write_quorum):
        return _text(_cmd(ctx, "lPop", key=key, write_quorum=write_quorum))

    @rpc(Unicode, Unicode, Unicode, _returns=Unicode)
    def lIndex(ctx, key, index, read_quorum):
        return _text(_cmd(ctx, "lIndex", key=key, index=index, read_quorum=read_quorum))

    @rpc(Unicode, Unicode, _returns=Integer)
    def lLen(ctx, key, read_quorum):
        return _cmd(ctx, "lLen", key=key, read_quorum=read_quorum)

    @rpc(Unicode, Unicode, _returns=Integer)
    def delete(ctx, key, write_quorum):
        return _cmd(ctx, "delete", key=key, write_quorum=write_quorum)

    @rpc(Unicode, Unicode, _returns=Integer)
    def exists(ctx, key, read_quorum):
        return _cmd(ctx, "exists", key=key, read_quorum=read_quorum)

    @rpc(Unicode, Unicode, Unicode, _returns=Integer)
    def expire(ctx, key, seconds, write_quorum):
        return _cmd(ctx, "expire", key=key, seconds=seconds, write_quorum=write_quorum)

    @rpc(Unicode, Unicode, _returns=Integer)
    def ttl(ctx, key, read_quorum):
        return _cmd(ctx, "ttl", key=key, read_quorum=read_quorum)

    @rpc(Unicode, Unicode, _returns=Integer)
    def incr(ctx, key, write_quorum):
        return _cmd(ctx, "incr", key=key, write_quorum=write_quorum)

    @rpc(Array(Unicode), Unicode, _returns=Array(Unicode))
    def mget(ctx, key, read_quorum):
        return [_text(v) for v in _call(ctx, "mget",
                                        lambda core: core.mget(key or [], read_quorum))]

    @rpc(Array(Unicode), Array(Unicode), Unicode, _returns=Unicode)
    def mset(ctx, key, value, write_quorum):
        return _text(_call(ctx, "mset",
                           lambda core: core.mset(key or [], value or [], write_quorum)))

    @rpc(Array(Unicode), Unicode, Unicode, _returns=AnyDict)
    def command(ctx, arg, read_quorum, write_quorum):
        """Any command of the command table as its Redis argv, one ``arg`` each:
        ``/command?arg=LRANGE&arg=l&arg=0&arg=-1`` answers ``["a", "b"]``."""
        argv = [a if a is not None else "" for a in arg or []]
        spec = lookup(argv[0]) if argv else None
        return _call(ctx, f"command:{spec.name}" if spec else "command", lambda core: _json(
            run_command(core, argv, write_quorum, read_quorum)))

    @rpc(_returns=AnyDict)
    def check(ctx):
        """Both invariants over every backend (what ``dtriad check`` reports)."""
        return _call(ctx, "check", lambda core: check_report(core, _own_address(ctx)),
                     admin=True)

    @rpc(_returns=AnyDict)
    def ring(ctx):
        return _call(ctx, "ring", lambda core: core.ring_info(), admin=True)

    @rpc(_returns=AnyDict)
    def keyDist(ctx):
        return _call(ctx, "keyDist", lambda core: core.key_dist(), admin=True)

    @rpc(_returns=AnyDict)
    def health(ctx):
        result = _call(ctx, "health", lambda core: core.health())
        if result["status"] == "down":
            ctx.transport.resp_code = "503 Service Unavailable"
        return result

    @rpc(Unicode, Unicode, _returns=AnyDict)
    def ringUpdate(ctx, secret, state):
        """Internal: the DTSentinel pushes a ring (needs the cluster secret)."""
        return _call(ctx, "ringUpdate", lambda core: core.install(secret, state))

    @rpc(_returns=AnyDict)
    def stats(ctx):
        return _call(ctx, "stats", lambda core: {**core.stats.snapshot(),
                                                  "repairs": core.repairs.snapshot()},
                     admin=True)


def make_wsgi_app(core: DTCore) -> WsgiApplication:
    """The DTServer as a WSGI application bound to ``core``."""
    # spyne logs every client fault with a traceback; they are answered, not crashes.
    logging.getLogger("spyne").setLevel(logging.CRITICAL)
    app = Application([DTService], NAMESPACE,
                      in_protocol=HttpRpc(validator="soft"),
                      out_protocol=DtJsonDocument(ignore_wrappers=True))
    app.event_manager.add_listener("method_call", lambda ctx: setattr(ctx, "udc", core))
    # Room for the largest value plus form encoding (up to 3 bytes per byte).
    limit = core.config.max_value_bytes * 3 + 64 * 1024
    return WsgiFront(WsgiApplication(app, max_content_length=limit), max_body=limit)


class WsgiFront:
    """What sits in front of spyne's WSGI application.

    * A form-encoded POST body is moved into the query string, so POST and GET
      take exactly the same path (spyne turns every empty value of a POST into
      None, but keeps it as "" in a GET; ``value=`` is a valid empty value).
    * Each (small) reply is sent whole with a Content-Length, so keep-alive
      works: spyne streams replies chunked, and its ``chunked=False`` mode is
      broken on Python 3 (it joins bytes with ``''``).
    """

    FORM = "application/x-www-form-urlencoded"

    def __init__(self, app, max_body: int):
        self.app = app
        self.max_body = max_body

    def __call__(self, environ, start_response):
        if (environ.get("REQUEST_METHOD") == "POST"
                and environ.get("CONTENT_TYPE", "").split(";")[0].strip() == self.FORM):
            try:
                length = int(environ.get("CONTENT_LENGTH") or -1)
            except ValueError:
                return self._error(start_response, ArgumentError(
                    f"Content-Length must be an integer, got {environ['CONTENT_LENGTH']!r}"))
            if length > self.max_body:  # refused before reading it
                return self._error(start_response, ValueTooLargeError(
                    "request body", length, self.max_body))
            body = environ["wsgi.input"].read(length if length >= 0 else self.max_body + 1)
            if len(body) > self.max_body:
                return self._error(start_response, ValueTooLargeError(
                    "request body", len(body), self.max_body))
            query = "&".join(p for p in (environ.get("QUERY_STRING", ""),
                                         body.decode("latin-1")) if p)
            # Handed to spyne as the GET it is now: spyne rewrites a POST's
            # empty values to None wherever they came from.
            environ = {**environ, "REQUEST_METHOD": "GET", "QUERY_STRING": query,
                       "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO()}
        started = []
        body = b"".join(self.app(environ, lambda status, headers, exc=None:
                                 started.append((status, headers))))
        status, headers = started[-1]
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    @staticmethod
    def _error(start_response, error: DtriadError):
        body = json.dumps({"error": error.message, "code": error.code}).encode()
        start_response(status_line(error.http_status),
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(body)))])
        return [body]

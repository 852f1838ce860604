"""DTServer: the paper's HTTP RPC API as a spyne application (HttpRpc in, JSON out).

The service is generated from the command table, where each method is declared
once: :data:`dtriad.core.commands.METHODS` -> :class:`DTService`, one spyne
``@rpc`` per entry, named as the entry (the URL path: ``/get?key=k``), its
HttpRpc parameters the entry's arguments then its levels (``read_quorum`` or
``write_quorum``), an array for each of its ``arrays`` and text otherwise, and
its return type from the entry's :class:`~dtriad.core.commands.Returns`. A
plain entry runs its Redis command through ``DTCore.call``; one that names a
handler runs that handler of :data:`HANDLERS` (several keys, ``command``,
the admin methods). Entries marked ``secret`` need ``Authorization: Bearer``
(the secret); with ``http_auth = "token"`` the data methods need it too (the
``data_token`` or the secret).

Both ``GET /set?key=a&value=b`` and a form-encoded POST work. Errors are JSON
objects ``{"error": ..., "code": ...}`` with a 4xx/5xx status, never a stack
trace.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode

import spyne.const
from spyne import AnyDict, Application, Array, Integer, ServiceBase, Unicode, rpc
from spyne.const.http import HTTP_200
from spyne.error import RequestTooLongError, ResourceNotFoundError
from spyne.evmgr import EventManager
from spyne.model.fault import Fault
from spyne.protocol.http import HttpRpc
from spyne.protocol.json import JsonDocument
from spyne.server.http import HttpTransportContext
from spyne.server.wsgi import (
    WsgiApplication,
    WsgiMethodContext,
    WsgiTransportContext,
    _get_http_headers,
    _parse_qs,
)
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from dtriad.config import NodeSpec
from dtriad.core.commands import (
    METHODS,
    ApiMethod,
    Group,
    Kind,
    Returns,
    lookup,
    method_names,
    text,
)
from dtriad.core.dtcore import DTCore
from dtriad.exceptions import (
    ArgumentError,
    BodyTimeoutError,
    CommandError,
    DtriadError,
    HttpMethodError,
    MediaTypeError,
    UnknownMethodError,
    ValueTooLargeError,
)
from dtriad.frontends.blocking import nonblocking
from dtriad.frontends.dashboard import Observability
from dtriad.membership.check import check as run_check
from dtriad.membership.check import http_ring

log = logging.getLogger(__name__)
NAMESPACE = "dtriad"
# The methods that need the data_token when http_auth is "token": every one
# that reads or writes keys (health, the admin methods and ringUpdate have their own rules).
DATA_METHODS = frozenset(m.name for m in METHODS.values()
                         if m.group in (Group.DATA, Group.MULTI))


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


class AttrsOnce:
    """A spyne protocol's ``get_cls_attrs`` from a plain dict: spyne's keeps
    them in a WeakKeyDictionary behind an eagerly computed debug line (a
    Python-level ``len`` and ``get`` of that dictionary, ~15 times a
    request). Types are a handful, declared once; the dict is bounded in
    case something generates them on the fly."""

    LIMIT = 4096

    def get_cls_attrs(self, cls):
        try:
            return self._attrs_once[cls]
        except AttributeError:
            self._attrs_once = {}
        except KeyError:
            pass
        attrs = super().get_cls_attrs(cls)
        if len(self._attrs_once) < self.LIMIT:
            self._attrs_once[cls] = attrs
        return attrs


class DtJsonDocument(AttrsOnce, JsonDocument):
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


def _call(ctx, method: ApiMethod, run: Callable[[DTCore], Any],
          record: str | None = None) -> Any:
    """``run(core)`` as ``method``: the secret checked first if the method needs
    it, the outcome counted in the stats (as ``record``, else the method's name)."""
    core: DTCore = ctx.udc
    record = record or method.name
    group = _FAMILY[method.name]
    started = time.perf_counter()
    try:
        if method.secret:
            core.authorize(bearer(ctx.transport.req_env), method.name)
        elif method.name in DATA_METHODS:
            core.authorize_data(bearer(ctx.transport.req_env), method.name)
        result = run(core)
    except DtriadError as e:
        core.record("http", record, group, time.perf_counter() - started, e.code)
        raise DtFault(e) from e
    core.record("http", record, group, time.perf_counter() - started)
    return result


def family(method: ApiMethod) -> str:
    """The metrics' command family: the Redis command's group, else "admin"."""
    spec = lookup(method.redis) if method.redis else None
    return spec.group if spec else "admin"


_FAMILY = {m.name: family(m) for m in METHODS.values()}  # looked up once, not per request


def jsonable(value: Any) -> Any:
    """A Redis reply as JSON: bulk strings as text (UTF-8), arrays as lists."""
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return text(value)


def run_command(core: DTCore, argv: list[str], write_quorum: str | None = None,
                read_quorum: str | None = None) -> Any:
    """HTTP's ``command``: any data command of the table, plus PING, ECHO and
    DBSIZE; the RESP port's connection commands (AUTH, HELLO ...) mean nothing here."""
    spec = core.requests.checked(argv)
    if spec.kind is not Kind.LOCAL:
        argv = nonblocking(spec, argv)  # XREAD ... BLOCK answers at once: a worker never waits
        return core.run(core.requests.command(argv, write_quorum, read_quorum))
    if spec.name == "ping":
        return argv[1] if len(argv) > 1 else "PONG"
    if spec.name == "echo":
        return argv[1]
    if spec.name == "dbsize":
        return core.reports.dbsize()
    raise CommandError(f"ERR '{spec.name}' is a command of the RESP port's connections, "
                       f"not of the HTTP API; use 'ring', 'health' or 'stats' for what "
                       f"this DTServer knows")


def check_report(core: DTCore, own: tuple[str, int]) -> dict:
    """``dtriad check`` run by a DTServer, over every node it knows; ``own``
    (host, port) is this DTServer's, which answers for itself."""
    nodes, names = [], set()
    for name, redis, http in core.reports.catalog():
        if name not in names:
            names.add(name)
            nodes.append(NodeSpec(name, redis, http))
    config = dataclasses.replace(core.config, nodes=tuple(nodes))

    def ring_of(node: NodeSpec) -> dict:
        if (node.http_host, node.http_port) == own:
            return core.reports.ring()
        return http_ring(node, config.admin_headers())

    report = run_check(config, ring_of=ring_of)
    return report.as_dict({n.redis: n.name for n in nodes})


def _own_address(ctx) -> tuple[str, int]:
    environ = ctx.transport.req_env
    host, _, port = environ.get("HTTP_HOST", "").rpartition(":")
    if not host or not port.isdigit():
        host, port = environ.get("SERVER_NAME", ""), environ.get("SERVER_PORT", "0")
    return host, int(port)


# ------------------------------------------------------------------ handlers
# What a method of the table does when it is not one Redis command: called as
# handler(ctx, method, **params), with the method's HTTP parameters by name.
def _run_method(core: DTCore, method: ApiMethod, write_quorum: str | None = None,
                read_quorum: str | None = None, **args: Any) -> Any:
    argv = core.requests.argv_of(method.name, **args)
    return core.run(core.requests.command(argv, write_quorum, read_quorum))


def _redis_method(ctx, method: ApiMethod, **args) -> Any:
    """A plain entry: its Redis command, with its named arguments and level."""
    return _call(ctx, method, lambda core: _run_method(core, method, **args))


def _mget(ctx, method: ApiMethod, key, read_quorum) -> Any:
    return _call(ctx, method, lambda core: core.run(core.requests.command(
        core.requests.mget_argv(key or []), read_quorum=read_quorum)))


def _mset(ctx, method: ApiMethod, key, value, write_quorum) -> Any:
    return _call(ctx, method, lambda core: core.run(core.requests.command(
        core.requests.mset_argv(key or [], value or []), write_quorum=write_quorum)))


def _command(ctx, method: ApiMethod, arg, read_quorum, write_quorum) -> Any:
    """Any command of the command table as its Redis argv, one ``arg`` each:
    ``/command?arg=LRANGE&arg=l&arg=0&arg=-1`` answers ``["a", "b"]``; counted
    in the stats as ``command:lrange``."""
    argv = [a if a is not None else "" for a in arg or []]
    spec = lookup(argv[0]) if argv else None
    return _call(ctx, method, lambda core: jsonable(
        run_command(core, argv, write_quorum, read_quorum)),
        record=f"command:{spec.name}" if spec else None)


def _check(ctx, method: ApiMethod) -> Any:
    return _call(ctx, method, lambda core: check_report(core, _own_address(ctx)))


def _ring(ctx, method: ApiMethod) -> Any:
    return _call(ctx, method, lambda core: core.reports.ring())


def _key_dist(ctx, method: ApiMethod) -> Any:
    return _call(ctx, method, lambda core: core.reports.key_dist())


def _health(ctx, method: ApiMethod) -> Any:
    """Answered 503 when every backend is down (for load balancers)."""
    result = _call(ctx, method, lambda core: core.reports.health())
    if result["status"] == "down":
        ctx.transport.resp_code = status_line(HTTPStatus.SERVICE_UNAVAILABLE)
    return result


def _ring_update(ctx, method: ApiMethod, secret, state) -> Any:
    return _call(ctx, method, lambda core: core.install(secret, state))


def _stats(ctx, method: ApiMethod) -> Any:
    return _call(ctx, method, lambda core: {**core.stats.snapshot(),
                                            "repairs": core.repairs.snapshot()})


HANDLERS: dict[str, Callable[..., Any]] = {
    "mget": _mget, "mset": _mset, "command": _command, "check": _check, "ring": _ring,
    "key_dist": _key_dist, "health": _health, "ring_update": _ring_update, "stats": _stats,
}


# ------------------------------------------------------ the generated service
def _identity(value: Any) -> Any:
    return value


def _texts(values: list[Any]) -> list[Any]:
    return [text(v) for v in values]


# Returns -> (spyne's return type, how the handler's result becomes it).
_RETURNS: dict[Returns, tuple[type, Callable[[Any], Any]]] = {
    Returns.TEXT: (Unicode, text),
    Returns.INTEGER: (Integer, _identity),
    Returns.TEXTS: (Array(Unicode), _texts),
    Returns.DICT: (AnyDict, _identity),
}


def _rpc(method: ApiMethod):
    """The spyne ``@rpc`` for one entry of the command table."""
    handler = HANDLERS[method.handler] if method.handler else _redis_method
    returns, answer = _RETURNS[method.returns]
    params = method.params

    def serve(ctx, *values):
        return answer(handler(ctx, method, **dict(zip(params, values, strict=True))))

    serve.__name__ = serve.__qualname__ = method.name
    serve.__doc__ = method.summary
    types = [Array(Unicode) if p in method.arrays else Unicode for p in params]
    # "out_bare": the reply is the return value itself, not wrapped in a
    # <name>Response object that the JSON document then unwraps (ignore_wrappers).
    return rpc(*types, _args=params, _returns=returns, _body_style="out_bare")(serve)


DTService = type(ServiceBase)("DTService", (ServiceBase,), {
    "__module__": __name__,
    "__doc__": """Every method of :data:`dtriad.core.commands.METHODS`, generated.

    Reads take an optional ``read_quorum`` (one, quorum) and writes an
    optional ``write_quorum`` (all, quorum, one) overriding the cluster's.
    """,
    **{m.name: _rpc(m) for m in METHODS.values()},
})


class QuietEvents(EventManager):
    """spyne's event manager, where an event nobody listens to costs nothing
    (spyne's built an empty ordered set for each of the ~30 events, in four
    managers, that a request fires, nearly all without listeners)."""

    def fire_event(self, event_name, ctx, *args, **kwargs):
        handlers = self.handlers.get(event_name)
        if handlers:
            for handler in handlers:
                handler(ctx, *args, **kwargs)


class DtHttpRpc(AttrsOnce, HttpRpc):
    """HttpRpc (parameters from the query string), without per-request work
    this API does not need: no cookies parsed into the header document (no
    method takes an in-header), no debug lines formatted for a logger that
    is off, and the request's context used as the method's when one method
    answers the name (spyne copied it for each, there is only ever one)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, parse_cookie=False, **kwargs)

    def decompose_incoming_envelope(self, ctx, message_type):
        ctx.transport.itself.decompose_incoming_envelope(self, ctx, message_type)

    def generate_method_contexts(self, ctx):
        handles = self.get_call_handles(ctx)
        if len(handles) != 1:
            return super().generate_method_contexts(ctx)
        ctx.descriptor = handles[0]
        return [ctx]


class SpyneTransport(WsgiTransportContext):
    """spyne's WSGI transport context, the request's headers (spyne's
    ``headers``, a dict built by walking the whole environ, which granian
    fills with the process environment too) gathered only if read: HttpRpc
    reads them only for a method with an in-header, and this API has none."""

    def __init__(self, parent, transport, req_env, content_type):
        HttpTransportContext.__init__(self, parent, transport, req_env, content_type)
        self.req_env = req_env
        self.req_method = req_env.get("REQUEST_METHOD")

    @functools.cached_property
    def headers(self) -> dict:
        return _get_http_headers(self.req_env)


class SpyneContext(WsgiMethodContext):
    """spyne's WSGI method context, its attributes set directly: spyne's own
    ``__setattr__`` (a Python call on each of the ~60 attributes a request
    sets) only refuses new attribute names after ``__init__``, a guard for
    user code that this module's handlers do not need (they use ``udc``)."""

    __setattr__ = object.__setattr__
    HttpTransportContext = SpyneTransport


class SpyneServer(WsgiApplication):
    """spyne's WSGI server, running each request through spyne's own steps
    (its context, the in protocol's decomposition, method lookup and
    deserialization, the service's call wrapper and events, the out
    protocol's serialization) without what this API never uses and spyne
    did per request anyway:

    * no WSDL: spyne rebuilt the request's URL on every request to look for
      ``?wsdl``, which it then failed to serve (a bare 500); such a request
      is now a call like any other (``wsdl`` is not a parameter);
    * the body is not handed over: HttpRpc reads parameters from the query
      string only, and :class:`WsgiFront` has moved any form body there;
    * the reply is sent whole, with its Content-Length (spyne's unchunked
      mode is broken on Python 3), and no MTOM or generator replies;
    * the ``wsgi_call``/``wsgi_return``/``wsgi_close`` events are not fired:
      the DTServer listens to none;
    * its context is :class:`SpyneContext`.
    """

    def __init__(self, app, *args, **kwargs):
        super().__init__(app, *args, **kwargs)
        self.takes_headers = any(d.in_header for ds in app.interface.service_method_map.values()
                                 for d in ds)

    def decompose_incoming_envelope(self, prot, ctx, message):
        """The method's name and parameters (spyne's, without URL patterns,
        which this API has none of, and without formatting a debug line)."""
        environ = ctx.in_document
        if ctx.method_request_string is None:
            ctx.method_request_string = \
                f"{{{prot.app.interface.get_tns()}}}{environ['PATH_INFO'].split('/')[-1]}"
        if self.takes_headers:
            ctx.in_header_doc = ctx.transport.headers
        ctx.in_body_doc = _parse_qs(environ["QUERY_STRING"])

    def __call__(self, req_env, start_response, wsgi_url=None):
        ctx = SpyneContext(self, req_env, self.app.out_protocol.mime_type)
        ctx.in_string = ()
        contexts = self.generate_contexts(ctx, None)
        p_ctx, others = contexts[0], contexts[1:]
        p_ctx.active = True
        if p_ctx.in_error:
            return self.handle_error(p_ctx, others, p_ctx.in_error, start_response)
        self.get_in_object(p_ctx)
        if p_ctx.in_error:
            return self.handle_error(p_ctx, others, p_ctx.in_error, start_response)
        self.get_out_object(p_ctx)
        if p_ctx.out_error:
            return self.handle_error(p_ctx, others, p_ctx.out_error, start_response)
        if p_ctx.transport.resp_code is None:
            p_ctx.transport.resp_code = HTTP_200
        try:
            self.get_out_string(p_ctx)
        except Exception as e:  # noqa: BLE001 - answered as spyne does, a Server fault
            log.exception("serializing the reply of %s", p_ctx.method_request_string)
            p_ctx.out_error = Fault("Server", str(e))
            return self.handle_error(p_ctx, others, p_ctx.out_error, start_response)
        body = b"".join(p_ctx.out_string)
        headers = p_ctx.transport.resp_headers
        headers["Content-Length"] = str(len(body))
        start_response(p_ctx.transport.resp_code,
                       [(k, v) for k, vs in headers.items()
                        for v in (vs if isinstance(vs, list | tuple) else (vs,))])
        p_ctx.close()
        return [body]


def _no_debug(*args, **kwargs) -> None:
    pass


def make_wsgi_app(core: DTCore) -> WsgiApplication:
    """The DTServer as a WSGI application bound to ``core``."""
    # spyne logs every client fault with a traceback; they are answered, not crashes.
    logging.getLogger("spyne").setLevel(logging.CRITICAL)
    # ... and makes ~30 logger.debug() calls a request, each a call and a level
    # check for a line that can never be written at CRITICAL: they are no-ops.
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("spyne.") and isinstance(logger, logging.Logger):
            logger.debug = _no_debug
    # Room for the largest value plus form encoding (up to 3 bytes per byte).
    limit = core.config.max_value_bytes * 3 + 64 * 1024
    # spyne ran a full gc.collect() on closing a request, once a second, "to
    # have file descriptors returned" (ours are never left to the collector).
    spyne.const.MIN_GC_INTERVAL = float("inf")
    app = Application([DTService], NAMESPACE,
                      in_protocol=DtHttpRpc(validator="soft"),
                      out_protocol=DtJsonDocument(ignore_wrappers=True))
    app.event_manager.add_listener("method_call", lambda ctx: setattr(ctx, "udc", core))
    server = SpyneServer(app, max_content_length=limit)
    for manager in (app.event_manager, app.in_protocol.event_manager,
                    app.out_protocol.event_manager, DTService.event_manager,
                    server.event_manager):
        manager.__class__ = QuietEvents
    return Observability(core, WsgiFront(server,
                                         max_body=limit,
                                         body_timeout=core.config.body_timeout_s,
                                         authorize=core.authorize_data))


_RAW = re.compile(rb"[\x80-\xff]")


def utf8_query(raw: bytes) -> str:
    """A query string or form body as ASCII, every parameter checked to be
    UTF-8: raw bytes are percent-encoded (so ``é`` sent raw and ``%C3%A9`` are
    one key), and a parameter whose bytes are not UTF-8 is refused rather
    than turned into U+FFFD (which made ``%ff`` and ``%fe`` one key)."""
    if raw.isascii() and b"%" not in raw:  # nothing to encode or check (most requests)
        return raw.decode("ascii")
    text = _RAW.sub(lambda m: b"%%%02X" % m.group()[0], raw).decode("ascii")
    try:
        parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise ArgumentError(f"parameters must be UTF-8 text (percent-encoded or not); "
                            f"byte 0x{e.object[e.start]:02x} is not valid UTF-8 there") from e
    return text


def multipart_query(body: bytes, content_type: str) -> str:
    """A multipart/form-data body's fields as a query string, under
    :func:`utf8_query`'s rule (werkzeug would decode them itself, replacing
    bytes that are not UTF-8)."""
    _, options = parse_options_header(content_type)
    boundary = options.get("boundary")
    if not boundary:
        raise ArgumentError("a multipart/form-data body needs a boundary")
    decoder = MultipartDecoder(boundary.encode("latin-1"))
    decoder.receive_data(body)
    decoder.receive_data(None)
    pairs: list[tuple[bytes, bytes]] = []
    name, value = b"", bytearray()
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, NeedData | Epilogue):
                break
            if isinstance(event, Field | File):
                name, value = event.name.encode("utf-8", "surrogateescape"), bytearray()
            elif isinstance(event, Data):
                value += event.data
                if not event.more_data:
                    pairs.append((name, bytes(value)))
    except ValueError as e:
        raise ArgumentError(f"the multipart/form-data body is malformed: {e}") from e
    return utf8_query(urlencode(pairs).encode("ascii"))


class WsgiFront:
    """What sits in front of spyne's WSGI application.

    * Parameters are UTF-8 text, one rule for query strings and bodies,
      percent-encoded or raw (:func:`utf8_query`); other bytes are refused.
    * Bodies are bounded before they are read, form-encoded or multipart;
      other body types are refused (415).
    * A body must arrive within ``body_timeout`` seconds plus one per MiB it
      declares, else 408 ``TIMEOUT``: granian has no body timeout, and its
      worker's one Python thread would wait for a trickling client. It is read
      by a small pool of reader threads (a stalled read cannot be interrupted;
      it ends when the client goes); when every reader is busy, 408 at once.
    * With ``http_auth = "token"``, a data method without the token is refused
      (401) before its body is read; spyne's handler checks it again.
    * A POST body (form-encoded or multipart) is moved into the query string, so POST and GET
      take exactly the same path (spyne turns every empty value of a POST into
      None, but keeps it as "" in a GET; ``value=`` is a valid empty value).
    * Each (small) reply is sent whole with a Content-Length, so keep-alive
      works: spyne streams replies chunked, and its ``chunked=False`` mode is
      broken on Python 3 (it joins bytes with ``''``).
    """

    FORM = "application/x-www-form-urlencoded"
    MULTIPART = "multipart/form-data"

    READERS = 16       # body reads in progress at once, per worker process
    RATE = 1 << 20     # bytes a second a body may arrive at, at least, on top of body_timeout

    def __init__(self, app, max_body: int, body_timeout: float = 2.0,
                 authorize: Callable[[str | None, str], None] | None = None):
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.authorize = authorize
        self._readers = ThreadPoolExecutor(self.READERS, thread_name_prefix="dtriad-body")
        self._free = threading.BoundedSemaphore(self.READERS)

    def read_body(self, stream, size: int, declared: int) -> bytes:
        """``stream.read(size)`` within the deadline, else :class:`BodyTimeoutError`."""
        deadline = self.body_timeout + max(declared, 0) / self.RATE
        if not self._free.acquire(blocking=False):
            raise BodyTimeoutError(
                f"the request body was not read: {self.READERS} slow bodies are being "
                f"read already; send the body at once, or retry")

        def read() -> bytes:
            try:
                return stream.read(size)
            finally:
                self._free.release()

        future = self._readers.submit(read)
        try:
            return future.result(timeout=deadline)
        except FutureTimeout:
            raise BodyTimeoutError(
                f"the request body did not arrive within {deadline:.1f} s "
                f"(body_timeout_s plus a second per MiB); send it at once") from None

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD", "POST"):  # PUT's body would reach spyne unchecked
            return self._error(start_response, HttpMethodError(
                f"the HTTP API takes GET and POST, not {method:.20}"))
        try:
            query = utf8_query(environ.get("QUERY_STRING", "").encode("latin-1"))
        except ArgumentError as e:
            return self._error(start_response, e)
        environ["QUERY_STRING"] = query  # the request's own dict (PEP 3333 lets us)
        name = environ.get("PATH_INFO", "").split("/")[-1]  # spyne's rule
        if self.authorize is not None and name in DATA_METHODS:
            try:  # before the body is read
                self.authorize(bearer(environ), name)
            except DtriadError as e:
                return self._error(start_response, e)
        kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        post = environ.get("REQUEST_METHOD") == "POST"
        if post and not kind:  # no body type: its body is not read (spyne would, unbounded)
            environ.update({"CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO()})
        if post and kind and kind not in (self.FORM, self.MULTIPART):
            return self._error(start_response, MediaTypeError(
                f"the HTTP API reads parameters from the query string or an {self.FORM} "
                f"or {self.MULTIPART} body, not {kind}"))
        if post and kind:
            try:
                length = int(environ.get("CONTENT_LENGTH") or -1)
            except ValueError:
                return self._error(start_response, ArgumentError(
                    f"Content-Length must be an integer, got {environ['CONTENT_LENGTH']!r}"))
            if length > self.max_body:  # refused before reading it
                return self._error(start_response, ValueTooLargeError(
                    "request body", length, self.max_body))
            try:
                body = self.read_body(environ["wsgi.input"],
                                      length if length >= 0 else self.max_body + 1, length)
            except BodyTimeoutError as e:
                return self._error(start_response, e)
            if len(body) > self.max_body:
                return self._error(start_response, ValueTooLargeError(
                    "request body", len(body), self.max_body))
        if post and kind:
            try:
                fields = utf8_query(body) if kind == self.FORM else multipart_query(
                    body, environ.get("CONTENT_TYPE", ""))
                query = "&".join(p for p in (query, fields) if p)
            except ArgumentError as e:
                return self._error(start_response, e)
            # Handed to spyne as the GET it is now: spyne rewrites a POST's
            # empty values to None wherever they came from.
            environ.update({"REQUEST_METHOD": "GET", "QUERY_STRING": query,
                            "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO()})
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

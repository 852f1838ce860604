"""``dtriad.Redis``: a redis-py client that skips the front end's hop.

An application on a trusted host (one given the cluster file, with its
internal credentials: README, "Security") can talk to the backends itself:

    import dtriad
    r = dtriad.Redis(cluster="/etc/dtriad/dtriad.toml", decode_responses=True)
    r.set("k", "v"); r.get("k"); r.hgetall("h")

It is a :class:`redis.Redis`, so its command methods, return types and
errors are redis-py's. What differs is where a command goes:
:meth:`Redis.execute_command` hands it to the request core
(:class:`~dtriad.core.dtcore.DTCore`, the same routing, replication,
version and fence checks as a DTServer's) driven by the threaded
:class:`~dtriad.backends.client.DTClient`, and redis-py's response callbacks
turn the raw reply into what redis-py returns. The core follows the ring as a
DTServer does (a poll a second, and at once when a backend's fence refuses a
write), so ring changes need nothing from the application.

Through a DTServer's RESP port instead (the ``fallback`` connection), as the
request core does not serve them on a pooled connection: the commands of a
connection (AUTH, SELECT, CLIENT..., transactions, pub/sub, blocking pops,
scripts), ``pipeline()`` and ``pubsub()``; and a read none of whose copies
answered this host (a backend unreachable from here), which the DTServer
tries again. A write that failed is never sent twice: its error is raised.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import redis
from redis._parsers import BaseParser
from redis.backoff import NoBackoff
from redis.client import EMPTY_RESPONSE
from redis.exceptions import ResponseError
from redis.retry import Retry

from dtriad.backends.outcome import DOWN_ERRORS
from dtriad.config import ClusterConfig, ReadQuorum, parse_address
from dtriad.core.commands import Kind, arity_error, lookup
from dtriad.core.dtcore import DTCore
from dtriad.core.steps import run
from dtriad.exceptions import BackendError, CommandError, DtriadError, UnavailableError
from dtriad.frontends.blocking import split_block
from dtriad.frontends.fastpath import FAST

# Served by the request core: keyed data commands and the cluster-wide ones.
_CORE_KINDS = (Kind.READ, Kind.WRITE, Kind.CLUSTER)
_GENERAL = object()  # a fast read's answer: "let the request core do it"


class Redis(redis.Redis):
    """A redis-py client whose commands go straight to the backends.

    ``cluster``: a cluster file (``cluster.json``, or a host's
    ``dtriad.toml``) or a :class:`~dtriad.config.ClusterConfig`; it must hold
    the internal credentials (``backend_password``). ``node`` names the
    DTServer of the fallback connection (default: the first with a RESP
    port). Other keyword arguments are redis-py's, for that connection and
    for decoding (``decode_responses``, ``encoding``).
    """

    def __init__(self, cluster: str | os.PathLike | ClusterConfig, node: str | None = None,
                 **kwargs: Any):
        config = cluster if isinstance(cluster, ClusterConfig) else ClusterConfig.load(cluster)
        fronts = [n for n in config.nodes if n.resp and (node is None or n.name == node)]
        if not fronts:
            raise DtriadError(f"no node {'named ' + repr(node) + ' ' if node else ''}with a "
                              f"RESP port in the cluster file: dtriad.Redis needs one for "
                              f"what the backends cannot answer alone")
        host, port = parse_address(fronts[0].resp)
        kwargs.setdefault("password", config.password)
        kwargs.setdefault("username", config.username)
        if kwargs.get("protocol", 2) not in (2, "2"):
            raise DtriadError("dtriad.Redis speaks RESP2 (redis-py's protocol=2): the request "
                              "core's replies are RESP2's")
        kwargs["protocol"] = 2
        # The fallback never resends: a write that may have arrived is raised.
        kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        super().__init__(host=host, port=port, **kwargs)
        self.config = config
        # Metrics are a DTServer's: an application process exports none. Its
        # repair thread clears the repair intents its writes leave (and
        # repairs a copy that missed one), as a DTServer's does.
        self.core = DTCore(dataclasses.replace(config, metrics=False))
        self.core.start_repairs()
        self._fast_ok = config.read_quorum == ReadQuorum.ONE

    # ------------------------------------------------------------ commands
    def execute_command(self, *args: Any, **options: Any) -> Any:
        spec = lookup(args[0]) if args else None
        if spec is None or spec.kind not in _CORE_KINDS:
            return super().execute_command(*args, **options)
        encode = self.get_encoder().encode  # redis-py's rules (and DataError) for arguments
        argv = [encode(a) for a in args]
        if spec.name in ("xread", "xreadgroup") and split_block(spec, argv)[1] is not None:
            return super().execute_command(*args, **options)  # it waits: a DTServer's job
        try:
            if spec.name in FAST and self._fast_ok:
                raw = self._fast_read(spec, argv)
                if raw is not _GENERAL:
                    return self._callback(args[0], raw, options)
            raw = run(self.core.requests.command(argv), self.core.client)
        except CommandError as e:  # Redis's own error (WRONGTYPE, syntax...): redis-py's type
            if EMPTY_RESPONSE in options:  # as redis-py: mget([]) is [], not an error
                return options[EMPTY_RESPONSE]
            raise BaseParser.parse_error(e.line) from None
        except UnavailableError:
            if spec.kind is Kind.WRITE:
                raise
            return super().execute_command(*args, **options)  # the DTServer tries its way
        except DtriadError as e:
            error = redis.exceptions.ConnectionError if isinstance(e, BackendError) \
                else redis.exceptions.ResponseError
            raise error(e.line) from e
        return self._callback(args[0], raw, options)

    def _fast_read(self, spec, argv: list) -> Any:
        """The RESP front end's fast path, threaded (frontends/fastpath.py):
        a one-key read with Redis's arity, sent on this thread's own
        connection to the first unsuspected copy, when the ring in force
        needs no poll. Anything else, or a copy that fails, is
        :data:`_GENERAL`: the request core does it, as it does every
        command."""
        if arity_error(spec, len(argv)) or \
                any(len(a) > self.config.max_value_bytes for a in argv):
            return _GENERAL
        core = self.core
        view = core.follower.current(time.monotonic())
        if view is None:
            return _GENERAL
        node = next((n for n in view.route(argv[1]).read if not core.suspects.suspected(n)),
                    None)
        if node is None:
            return _GENERAL
        conn = core.client.connection(node)  # this thread's own
        try:
            conn.send_command(*argv)
            return conn.read_response()
        except ResponseError as e:  # about the data (WRONGTYPE): the answer
            raise CommandError.from_redis(e) from None
        except DOWN_ERRORS:
            conn.disconnect()
            core.suspects.suspect(node)
            return _GENERAL
        except BaseException:  # its reply unread: the connection would be out of step
            conn.disconnect()
            raise

    def _callback(self, name: Any, raw: Any, options: dict) -> Any:
        """What redis-py's ``parse_response`` makes of ``raw``: decoded as the
        connection would, then the command's response callback."""
        options.pop("keys", None)
        options.pop(EMPTY_RESPONSE, None)
        if not options.pop(redis.client.NEVER_DECODE, False):
            raw = self._decode(raw)
        name = name.decode() if isinstance(name, bytes) else str(name)
        callback = self.response_callbacks.get(name)
        return callback(raw, **options) if callback else raw

    def _decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._decode(v) for v in value]
        return self.get_encoder().decode(value)

    def close(self) -> None:
        super().close()
        core = getattr(self, "core", None)
        if core is not None:
            core.close()

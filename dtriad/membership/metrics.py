"""Prometheus metrics of a DTSentinel, served at ``http://ADDRESS/metrics``.

One process, so one registry; the HTTP server is the library's WSGI app on a
thread of the DTSentinel, behind the same ``Authorization: Bearer`` check as
a DTServer's ``/metrics`` (the cluster's ``viewer_token`` or ``secret``).
Each node's key count is read when scraped (``DBSIZE``: constant time).
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class _NodeKeys(Collector):
    def __init__(self, probe: Callable[[], dict[str, int | None]]):
        self.probe = probe

    def collect(self):
        keys = GaugeMetricFamily("dtriad_node_keys", "Key copies on each node's backend "
                                 "(DBSIZE), ring members only.", labels=["node"])
        up = GaugeMetricFamily("dtriad_node_up", "1 if the node's backend answered the "
                               "scrape's DBSIZE.", labels=["node"])
        for node, count in sorted(self.probe().items()):
            up.add_metric([node], 0 if count is None else 1)
            if count is not None:
                keys.add_metric([node], count)
        yield keys
        yield up


class SentinelMetrics:
    def __init__(self, probe: Callable[[], dict[str, int | None]] | None = None):
        self.registry = reg = CollectorRegistry(auto_describe=True)
        self.epoch = Gauge("dtriad_ring_epoch", "The committed ring's epoch.", registry=reg)
        self.pending_epoch = Gauge("dtriad_ring_pending_epoch", "The epoch of the ring being "
                                   "migrated to (0: none).", registry=reg)
        self.members = Gauge("dtriad_ring_members", "Nodes in the committed ring.",
                             registry=reg)
        self.leading = Gauge("dtriad_dtsentinel_leading", "1 while this DTSentinel holds "
                             "the lease.", registry=reg)
        self.keys_moved = Counter("dtriad_migration_keys_moved_total", "Keys copied by "
                                  "migrations.", registry=reg)
        self.rate = Gauge("dtriad_migration_keys_per_second", "Copy rate of the migration "
                          "running now (0 when none runs).", registry=reg)
        self.transfers = Counter("dtriad_migration_transfers_total", "Arc transfers "
                                 "finished by migrations.", registry=reg)
        self.migrations = Counter("dtriad_migrations_total", "Ring changes committed.",
                                  registry=reg)
        self.lost_arcs = Counter("dtriad_lost_arcs_total", "Arcs declared lost (no copy "
                                 "answered within lost_after_ms).", registry=reg)
        if probe is not None:
            reg.register(_NodeKeys(probe))

    def serve(self, address: str, credentials: list[str]) -> WSGIServer:
        """Serve ``/metrics`` on ``address`` ("host:port") from a daemon thread."""
        host, _, port = address.rpartition(":")
        inner = make_wsgi_app(self.registry)

        def app(environ, start_response):
            scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
            given = token.strip().encode() if scheme.lower() == "bearer" else b""
            if credentials and not any(hmac.compare_digest(given, c.encode())
                                       for c in credentials):
                start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                    ("WWW-Authenticate", 'Bearer realm="dtriad"')])
                return [b"this needs the cluster's viewer_token or secret as "
                        b"'Authorization: Bearer <token>'\n"]
            return inner(environ, start_response)

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        server = make_server(host, int(port), app, handler_class=Quiet)
        threading.Thread(target=server.serve_forever, name="dtriad-metrics",
                         daemon=True).start()
        log.info("metrics on http://%s/metrics", address)
        return server

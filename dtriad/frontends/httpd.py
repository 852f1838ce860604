"""Running a DTServer: granian (production) or wsgiref (the original setup).

granian is a Rust HTTP server with a WSGI interface. Each worker is its own
process with one Python thread, so requests never wait on each other's GIL
hand-offs (threaded servers paid up to the 5 ms switch interval per backend
reply). ``wsgiref`` is kept only to measure the original system's setup.
"""

from __future__ import annotations

import gc
import logging
import os

from dtriad import logs
from dtriad.config import ClusterConfig
from dtriad.core.dtcore import DTCore
from dtriad.frontends.http import make_wsgi_app

log = logging.getLogger(__name__)
ENV_CLUSTER = "DTRIAD_CLUSTER"
ENV_STATE = "DTRIAD_RING_STATE"
ENV_NODE = "DTRIAD_NODE"


def setup_logs(config: ClusterConfig, node: str | None) -> None:
    logs.setup("dtserver", node, config.log_format, logs.secrets_of(config),
               text_format="%(asctime)s %(levelname)s %(name)s %(message)s")


def app_from_env():
    """WSGI app factory for granian's workers (each worker calls it once)."""
    config = ClusterConfig.load(os.environ[ENV_CLUSTER])
    setup_logs(config, os.environ.get(ENV_NODE))
    core = DTCore(config, state_file=os.environ.get(ENV_STATE) or None)
    core.start_repairs()
    app = make_wsgi_app(core)
    # What is built by now lives as long as the worker: out of the cyclic
    # collector's sight, its full collections do not walk it again (garbage
    # left from starting is collected first, not frozen with it).
    gc.collect()
    gc.freeze()
    return app


def serve(cluster_file: str, host: str, port: int, workers: int = 2,
          server: str = "granian", state_file: str | None = None) -> None:
    """Serve the cluster's HTTP API on ``host:port`` until SIGTERM/SIGINT.

    ``state_file`` is where the workers share the ring the DTSentinel pushed.
    """
    cluster_file = os.path.abspath(cluster_file)
    config = ClusterConfig.load(cluster_file)  # fail here, with a clear error, not in a worker
    node = next((n.name for n in config.nodes if n.http_port == port), None)
    setup_logs(config, node)
    os.environ[ENV_CLUSTER] = cluster_file
    if node:
        os.environ[ENV_NODE] = node
    if state_file:
        os.environ[ENV_STATE] = os.path.abspath(state_file)
    if server == "wsgiref":
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        class Backlog(WSGIServer):
            # wsgiref's listen backlog of 5 dropped the connections of 16
            # clients (each request is a new connection: HTTP/1.0), which
            # then waited a second for TCP to retry: a benchmark round could
            # answer nothing. A deeper backlog measures the server itself.
            request_queue_size = 128

        make_server(host, port, app_from_env(), server_class=Backlog,
                    handler_class=Quiet).serve_forever()
        return
    log.info("HTTP front end on %s:%d (%d granian workers)", host, port, workers)
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    Granian("dtriad.frontends.httpd:app_from_env", factory=True, address=host, port=port,
            interface=Interfaces.WSGI, workers=workers, blocking_threads=1,
            websockets=False, log_level=LogLevels.warning,
            log_dictconfig=granian_logging(config)).serve()


def granian_logging(config: ClusterConfig) -> dict:
    """granian's own log lines, in the same format as ours (it replaces the
    logging configuration of its processes with this)."""
    formatter = ("dtriad.logs.JsonFormatter" if config.log_format == "json"
                 else "logging.Formatter")
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"line": {"()": formatter}},
        "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "line",
                             "stream": "ext://sys.stderr"}},
        "loggers": {"_granian": {"handlers": ["err"], "level": "WARNING", "propagate": False},
                    "granian.access": {"handlers": ["err"], "level": "WARNING",
                                       "propagate": False}},
    }

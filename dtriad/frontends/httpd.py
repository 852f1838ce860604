"""Running a DTServer: granian (production) or wsgiref (the original setup).

granian is a Rust HTTP server with a WSGI interface. Each worker is its own
process with one Python thread, so requests never wait on each other's GIL
hand-offs (threaded servers paid up to the 5 ms switch interval per backend
reply). ``wsgiref`` is kept only to measure the original system's setup.
"""

from __future__ import annotations

import logging
import os

from dtriad.config import ClusterConfig
from dtriad.core.dtcore import DTCore
from dtriad.frontends.http import make_wsgi_app

ENV_CLUSTER = "DTRIAD_CLUSTER"
ENV_STATE = "DTRIAD_RING_STATE"


def app_from_env():
    """WSGI app factory for granian's workers (each worker calls it once)."""
    core = DTCore(ClusterConfig.load(os.environ[ENV_CLUSTER]),
                  state_file=os.environ.get(ENV_STATE) or None)
    core.start_repairs()
    return make_wsgi_app(core)


def serve(cluster_file: str, host: str, port: int, workers: int = 2,
          server: str = "granian", state_file: str | None = None) -> None:
    """Serve the cluster's HTTP API on ``host:port`` until SIGTERM/SIGINT.

    ``state_file`` is where the workers share the ring the DTSentinel pushed.
    """
    cluster_file = os.path.abspath(cluster_file)
    ClusterConfig.load(cluster_file)  # fail here, with a clear error, not in a worker
    os.environ[ENV_CLUSTER] = cluster_file
    if state_file:
        os.environ[ENV_STATE] = os.path.abspath(state_file)
    if server == "wsgiref":
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        make_server(host, port, app_from_env(), handler_class=Quiet).serve_forever()
        return
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    logging.basicConfig(level=logging.INFO)
    Granian("dtriad.frontends.httpd:app_from_env", factory=True, address=host, port=port,
            interface=Interfaces.WSGI, workers=workers, blocking_threads=1,
            websockets=False, log_level=LogLevels.warning).serve()

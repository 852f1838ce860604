"""``/dashboard`` and ``/metrics``: what an operator looks at, in front of the API.

Who may look: anyone holding the cluster's ``viewer_token`` (read-only) or its
``secret``. Prometheus sends one as ``Authorization: Bearer <token>``. A
browser logs in once with a form: the DTServer answers with a session cookie
(``HttpOnly``, ``SameSite=Strict``) holding an expiry and an HMAC of it keyed
by the credentials, never a credential itself, so no secret ever reaches the
page's HTML or JavaScript, and any worker of any DTServer of the cluster can
check it without shared state. A cluster with neither credential is open.

The page (``static/``) polls ``/dashboard/data`` every second: the ring
(tokens, shares, node states), each backend's key count (``DBSIZE``), the
migration in progress and this DTServer's request counters by front end and
command family, from which the page computes rates and latencies.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from dtriad.backends.outcome import DOWN_ERRORS
from dtriad.core.dtcore import DTCore
from dtriad.core.metrics import CONTENT_TYPE
from dtriad.placement.ring import RING_SIZE

STATIC = Path(__file__).with_name("static")
COOKIE = "dtriad_view"
SESSION_S = 12 * 3600
MAX_LOGIN_BODY = 4096
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}
# Everything the page needs is its own: no inline script, no other origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class Observability:
    """WSGI middleware: ``/metrics`` and ``/dashboard...`` here, the rest to ``app``."""

    def __init__(self, core: DTCore, app):
        self.core = core
        self.app = app
        creds = [c for c in (core.config.secret, core.config.viewer_token) if c]
        self.credentials = creds
        self.key = hashlib.sha256(b"dtriad dashboard\0" + "\0".join(creds).encode()).digest()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self.metrics(environ, start_response)
        if path == "/dashboard" or path.startswith("/dashboard/"):
            return self.dashboard(path, environ, start_response)
        return self.app(environ, start_response)

    # ------------------------------------------------------------ credentials
    def _valid(self, token: str | None) -> bool:
        if not self.credentials:
            return True
        given = (token or "").encode()
        return any(hmac.compare_digest(given, c.encode()) for c in self.credentials)

    def _bearer(self, environ) -> str | None:
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def _session(self, expiry: int) -> str:
        mac = hmac.new(self.key, str(expiry).encode(), hashlib.sha256).hexdigest()
        return f"{expiry}.{mac}"

    def _has_session(self, environ) -> bool:
        if not self.credentials:
            return True
        for part in environ.get("HTTP_COOKIE", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name != COOKIE:
                continue
            expiry, _, _ = value.partition(".")
            if expiry.isdigit() and int(expiry) > time.time() \
                    and hmac.compare_digest(value.encode(), self._session(int(expiry)).encode()):
                return True
        return False

    def _allowed(self, environ) -> bool:
        token = self._bearer(environ)
        return self._valid(token) if token is not None else self._has_session(environ)

    # ---------------------------------------------------------------- replies
    @staticmethod
    def _reply(start_response, status: str, body: bytes, content_type: str,
               extra: list[tuple[str, str]] = ()) -> list[bytes]:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                   ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                   *extra]
        start_response(status, headers)
        return [body]

    def _denied(self, start_response) -> list[bytes]:
        body = json.dumps({"error": "this needs the cluster's viewer_token or secret, as "
                                    "'Authorization: Bearer <token>' (or log in at /dashboard)",
                           "code": "AUTH"}).encode()
        return self._reply(start_response, "401 Unauthorized", body, "application/json",
                           [("WWW-Authenticate", 'Bearer realm="dtriad"')])

    # ---------------------------------------------------------------- metrics
    def metrics(self, environ, start_response):
        if not self._allowed(environ):
            return self._denied(start_response)
        self.core.refresh_gauges()
        return self._reply(start_response, "200 OK", self.core.metrics.exposition(),
                           CONTENT_TYPE)

    # -------------------------------------------------------------- dashboard
    def dashboard(self, path: str, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/dashboard/login" and method == "POST":
            return self.login(environ, start_response)
        if path.startswith("/dashboard/static/"):
            name = path.rsplit("/", 1)[1]
            if name not in ASSETS:
                return self._reply(start_response, "404 Not Found", b"not found", "text/plain")
            return self._reply(start_response, "200 OK", (STATIC / name).read_bytes(),
                               ASSETS[name])
        if path == "/dashboard/data":
            if not self._allowed(environ):
                return self._denied(start_response)
            body = json.dumps(self.data(environ)).encode()
            return self._reply(start_response, "200 OK", body, "application/json")
        if path in ("/dashboard", "/dashboard/"):
            if self._has_session(environ):
                return self._page(start_response, "dashboard.html", "200 OK")
            return self._login_page(start_response, "", "200 OK")
        return self._reply(start_response, "404 Not Found", b"not found", "text/plain")

    def _page(self, start_response, name: str, status: str, text: str | None = None,
              extra: list[tuple[str, str]] = ()) -> list[bytes]:
        body = (text if text is not None else (STATIC / name).read_text()).encode()
        return self._reply(start_response, status, body, "text/html; charset=utf-8",
                           [("Content-Security-Policy", CSP), ("X-Frame-Options", "DENY"),
                            *extra])

    def _login_page(self, start_response, error: str, status: str) -> list[bytes]:
        text = (STATIC / "login.html").read_text().replace("{error}", html.escape(error))
        return self._page(start_response, "login.html", status, text)

    def login(self, environ, start_response):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_LOGIN_BODY:
            return self._login_page(start_response, "the login form is too large",
                                    "413 Content Too Large")
        body = environ["wsgi.input"].read(length).decode("utf-8", "replace")
        token = (parse_qs(body).get("token") or [""])[0].strip()
        if not self._valid(token):
            return self._login_page(start_response, "that is neither the viewer token nor "
                                    "the secret of this cluster", "401 Unauthorized")
        expiry = int(time.time()) + SESSION_S
        cookie = (f"{COOKIE}={self._session(expiry)}; Path=/dashboard; HttpOnly; "
                  f"SameSite=Strict; Max-Age={SESSION_S}")
        start_response("303 See Other", [("Location", "/dashboard"), ("Set-Cookie", cookie),
                                         ("Content-Length", "0"), ("Cache-Control", "no-store")])
        return [b""]

    # ------------------------------------------------------------------- data
    def data(self, environ) -> dict[str, Any]:
        """What the page draws (no address, no credential)."""
        core = self.core
        ring = core.reports.ring()
        nodes = []
        for node in ring["nodes"]:
            try:
                keys = core.client.execute(node["redis"], "DBSIZE")
                state = node["state"]
            except DOWN_ERRORS:
                keys, state = None, "down"
            nodes.append({"name": node["name"], "state": state,
                          "tokens": [int(t, 16) / RING_SIZE for t in node["tokens"]],
                          "share": node["share"], "keys": keys})
        return {
            "node": self._own_name(environ), "time": time.time(), "epoch": ring["epoch"],
            "pending_epoch": ring["pending_epoch"], "replicas": ring["replicas"],
            "vnodes": ring["vnodes"], "copies": ring["copies"], "nodes": nodes,
            "migration": ring["migration"], "last_migration": ring["last_migration"],
            "traffic": core.metrics.traffic(),
        }

    def _own_name(self, environ) -> str | None:
        """This DTServer's node, by the port the request came to."""
        port = str(environ.get("SERVER_PORT", ""))
        for node in self.core.config.nodes:
            if str(node.http_port) == port:
                return node.name
        return None

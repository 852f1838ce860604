"""Logging for every dtriad process: plain text for a terminal (the default),
or one JSON object per line (``log_format = "json"``) for a log pipeline.

A JSON line carries ``time`` (UTC, ISO 8601), ``level``, ``component``
(``dtserver``, ``resp``, ``dtsentinel``), ``node``, the ring ``epoch`` the
process works by (``context``, kept current by the ring follower and the
DTSentinel), ``logger``, ``message``, and the ``request`` or ``migration`` id
when the call passes one (``log.info(..., extra={"migration": "epoch-4"})``).

No secret reaches a log in either format: every configured credential is
replaced by ``[redacted]`` in the final line, whatever put it there.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

# What every line of this process says about where it comes from.
context: dict[str, Any] = {"component": None, "node": None, "epoch": None}
IDS = ("request", "migration")
REDACTED = "[redacted]"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            **context,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in IDS:
            if hasattr(record, field):
                out[field] = getattr(record, field)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class Redacting(logging.Formatter):
    """Wraps a formatter; removes every secret from what it produced."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str | None]):
        super().__init__()
        self.inner = inner
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, REDACTED)
        return line


def setup(component: str, node: str | None = None, fmt: str = "text",
          secrets: Iterable[str | None] = (), level: int = logging.INFO,
          text_format: str = "%(asctime)s %(levelname)s %(name)s %(message)s",
          stream: TextIO | None = None) -> logging.Handler:
    """Send this process's logs to ``stream`` (stderr) in ``fmt``; replaces any
    handler configured before (``logging.basicConfig``)."""
    context.update(component=component, node=node)
    inner = JsonFormatter() if fmt == "json" else logging.Formatter(text_format)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(Redacting(inner, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def add_secrets(*secrets: str | None) -> None:
    """Redact these too, from now on (a rotated password), in every handler
    :func:`setup` installed."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, Redacting):
            formatter.secrets = sorted({*formatter.secrets, *filter(None, secrets)},
                                       key=len, reverse=True)


def secrets_of(config: Any) -> list[str]:
    """The credentials a cluster configuration holds (never to be logged)."""
    return [s for s in (getattr(config, "password", None), getattr(config, "secret", None),
                        getattr(config, "viewer_token", None),
                        getattr(config, "data_token", None),
                        getattr(config, "backend_password", None),
                        getattr(config, "sentinel_password", None)) if s]

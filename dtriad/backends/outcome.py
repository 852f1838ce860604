"""What the request core asks of backends, and what comes back.

The request core (:mod:`dtriad.core`) is sans-I/O: its generators ``yield``
*effects* and receive replies. This module is the vocabulary it shares with
the two clients that carry effects out (:mod:`.client`, threaded, and
:mod:`.aclient`, asyncio), so neither side imports the other's internals:

* the effects: :class:`Execute` (one command on one backend),
  :class:`Fanout` (one command on several at once, answered by one
  :class:`Outcome` per backend) and :class:`Pause` (a backoff);
* which errors mean "the backend is down" (:data:`DOWN_ERRORS`) as opposed
  to Redis answering with an error about the data, and :func:`describe`;
* :class:`Suspects`: backends that failed moments ago and the incarnation
  (``run_id``) the ring admitted each with, one table per DTServer shared by
  both clients and the core;
* the EVALSHA-then-EVAL rule (:func:`by_sha`, :func:`retry_as_eval`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Errors that mean "this backend is not answering", as opposed to Redis
# answering with an error about the data (ResponseError).
DOWN_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class Execute:
    """Run ``args`` on ``node``; the raw reply, or the backend's error raised."""

    node: str
    args: tuple


@dataclass(frozen=True, slots=True)
class Fanout:
    """Run ``args`` on every node of ``nodes`` in parallel, skipping suspected
    ones; a list of :class:`Outcome`, one per node, in order."""

    nodes: tuple
    args: tuple


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds`` before the next step (a backoff); the driver sleeps
    (``time.sleep`` in threads, ``asyncio.sleep`` in the event loop)."""

    seconds: float


Steps = Generator[Execute | Fanout | Pause, Any, Any]


@dataclass(frozen=True)
class Outcome:
    """What one backend answered to one command."""

    node: str
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def rejected(self) -> bool:
        """Redis answered, with an error about the command or the data."""
        return isinstance(self.error, ResponseError)

    @property
    def down(self) -> bool:
        return self.error is not None and not self.rejected


def describe(exc: BaseException) -> str:
    """A short reason for a failed backend, for error messages."""
    if isinstance(exc, RedisTimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text:
        return "connection refused"
    return text.splitlines()[0][:200]


class SuspectedDown(RedisConnectionError):
    """A backend that failed moments ago is skipped until its cooldown ends."""

    def __init__(self, message: str = "failed moments ago; skipped until its cooldown ends"):
        super().__init__(message)


class Restarted(RedisConnectionError):
    """A backend answered with another incarnation than the ring admitted: it
    restarted (or was replaced) and no longer holds what the ring says it
    holds, so it is treated as down until the DTSentinel brings it back."""

    def __init__(self, node: str, run_id: str, expected: str):
        super().__init__(f"{node} restarted (run_id {run_id[:8]}..., the ring admitted "
                         f"{expected[:8]}...): not served until the DTSentinel brings it back")
        self.node, self.run_id, self.expected = node, run_id, expected


def run_id_of(info: Any) -> str:
    """The ``run_id`` field of an ``INFO server`` reply (raw or parsed)."""
    if isinstance(info, dict):
        return str(info.get("run_id", ""))
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line[7:].strip()
    return ""


def check_incarnation(node: str, info: Any, expected: str | None) -> None:
    """Raise :class:`Restarted` unless ``INFO server``'s ``run_id`` is ``expected``."""
    if expected is None:
        return
    run_id = run_id_of(info)
    if run_id != expected:
        raise Restarted(node, run_id, expected)


class Suspects:
    """Backends that failed moments ago, and the incarnation each was admitted with.

    A backend that failed (refused, timed out) is *suspected* for ``cooldown``
    seconds: reads ask it last and writes skip it, so a hung backend costs one
    timeout per cooldown instead of one per request. The first request after
    the cooldown probes it again. ``incarnations(node)`` is the ``run_id`` the
    ring admitted ``node`` with (None: not checked); the request core sets it.
    """

    def __init__(self, cooldown: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.cooldown = cooldown
        self._clock = clock
        self._until: dict[str, float] = {}
        self.incarnations: Callable[[str], str | None] = lambda node: None
        self.on_suspect: Callable[[str], None] | None = None  # metrics: a backend failed

    def suspect(self, node: str) -> None:
        self._until[node] = self._clock() + self.cooldown
        if self.on_suspect is not None:
            self.on_suspect(node)

    def count(self) -> int:
        """Backends suspected right now."""
        return sum(1 for node in list(self._until) if self.suspected(node))

    def suspected(self, node: str) -> bool:
        until = self._until.get(node)
        if until is None:
            return False
        if self._clock() >= until:
            self._until.pop(node, None)
            return False
        return True

    def clear(self, node: str | None = None) -> None:
        """``node`` answered: no longer suspected (None: forget every suspicion)."""
        if node is None:
            self._until.clear()
        else:
            self._until.pop(node, None)


_SHAS: dict[str, str] = {}
_SHAS_LOCK = threading.Lock()


def by_sha(args: Sequence[Any]) -> Sequence[Any]:
    """``EVAL script ...`` -> ``EVALSHA sha1 ...``: the scripts are long (the
    write path's are about 1.5 KB) and sent with every command otherwise.
    A server that does not know the script yet answers NOSCRIPT, and the
    command is sent again as EVAL (:func:`retry_as_eval`), which loads it."""
    if args and args[0] == "EVAL":
        sha = _SHAS.get(args[1])
        if sha is None:
            sha = hashlib.sha1(args[1].encode()).hexdigest()
            with _SHAS_LOCK:
                _SHAS[args[1]] = sha
        return ("EVALSHA", sha, *args[2:])
    return args


def retry_as_eval(sent: Sequence[Any], args: Sequence[Any],
                  error: BaseException | None) -> bool:
    """``sent`` (the :func:`by_sha` form of ``args``) met NOSCRIPT: send ``args``."""
    return sent is not args and isinstance(error, NoScriptError)


def unknown_script(outcomes: dict[str, Outcome]) -> list[str]:
    """The backends of a fanout that answered NOSCRIPT (to be sent the EVAL)."""
    return [node for node, o in outcomes.items() if isinstance(o.error, NoScriptError)]

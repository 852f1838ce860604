"""Drivers of sans-I/O request steps: the core's logic, written once for threads and asyncio.

The request core (:mod:`dtriad.core.requests`, :mod:`dtriad.core.follower`)
never talks to a backend itself. Its methods are generators that ``yield``
what they need done (the effects of :mod:`dtriad.backends.outcome`: an
``Execute``, a ``Fanout`` or a ``Pause``) and receive the reply, or the
backend's exception thrown back into the generator. A *driver* performs
the effects: :func:`run` with the threaded
:class:`~dtriad.backends.client.DTClient` (HTTP workers, the DTSentinel,
``dtriad check``), :func:`arun` with the asyncio
:class:`~dtriad.backends.aclient.AsyncClient` (the RESP front end). So
routing, replication and repair exist once, whichever transport asked.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dtriad.backends.outcome import DOWN_ERRORS, Execute, Fanout, Pause, Steps, describe
from dtriad.core.scripts import BUMP, INSTALL, INSTALL_MANY, STATE, STATES


def run(steps: Steps, client) -> Any:
    """Drive ``steps`` to completion with a blocking client (``client.perform``)."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.throw(error) if error is not None else steps.send(reply)
        except StopIteration as done:
            return done.value
        error = None
        if isinstance(effect, Pause):
            time.sleep(effect.seconds)
            reply = None
            continue
        try:
            reply = client.perform(effect)
        except Exception as e:  # noqa: BLE001 - handed to the steps, which decide
            reply, error = None, e


async def arun(steps: Steps, client) -> Any:
    """Drive ``steps`` to completion with an asyncio client (``await client.perform``)."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.throw(error) if error is not None else steps.send(reply)
        except StopIteration as done:
            return done.value
        error = None
        if isinstance(effect, Pause):
            await asyncio.sleep(effect.seconds)
            reply = None
            continue
        try:
            reply = await client.perform(effect)
        except Exception as e:  # noqa: BLE001 - handed to the steps, which decide
            reply, error = None, e


def sync_key(source: str, target: str, key: Any, token: int, attempts: int = 4,
             bump_at_most: int | None = None) -> Steps:
    """Make ``target``'s copy of ``key`` equal ``source``'s: value, TTL and
    version (or absent), never by replaying a command. True when settled.

    The state travels through this process as DUMP/RESTORE rather than
    MIGRATE: a MIGRATE blocks its source until the target answers, so two
    copies in opposite directions (A to B while B to A) deadlock both
    servers until the timeout. INSTALL takes only a newer version, so a
    late, older state never undoes a newer one; if ``target`` holds a
    newer version of different data, ``source`` is bumped past it
    (``BUMP``) and installed again. Both writes are fenced at ``token``.
    False if it did not settle within ``attempts`` (concurrent writers).

    ``bump_at_most``: never bump past a target version above it, return
    False instead. A caller that chose ``source`` from versions it read
    earlier (a reconcile) passes the target's version then: a target that has
    moved past it took a newer write since, maybe acknowledged, which the
    source's older state must not replace.
    """
    version, payload, ttl = yield Execute(source, ("EVAL", STATE, 1, key))
    for _ in range(attempts):
        reply = yield Execute(target, ("EVAL", INSTALL, 1, key, token, version,
                                       payload or b"", ttl))
        if not isinstance(reply, list):
            return True
        if bump_at_most is not None and int(reply[0]) > bump_at_most:
            return False
        version, payload, ttl = yield Execute(source, ("EVAL", BUMP, 1, key, token, reply[0]))
    return False



def sync_keys(source: str, targets: list[str], keys: list[Any], token: int) -> Steps:
    """:func:`sync_key` for several keys and targets in two round trips: the
    states read at once (``STATES``), installed on every target in parallel
    (``INSTALL_MANY``); a key a target holds a newer version of goes the long
    way (:func:`sync_key`, with ``BUMP``). -> {target: why} for each target
    that did not settle every key."""
    failures: dict[str, str] = {}
    if not targets or not keys:
        return failures
    states = yield Execute(source, ("EVAL", STATES, len(keys), *keys))
    args = [x for version, payload, ttl in states for x in (version, payload or b"", ttl)]
    outcomes = yield Fanout(targets, ("EVAL", INSTALL_MANY, len(keys), *keys, token, *args))
    for o in outcomes:
        if not o.ok:
            failures[o.node] = describe(o.error)
            continue
        for key, answer in zip(keys, o.value, strict=True):
            if isinstance(answer, list):  # it holds a newer version of other data
                try:
                    if not (yield from sync_key(source, o.node, key, token)):
                        failures[o.node] = "kept changing under concurrent writes"
                except DOWN_ERRORS as e:
                    failures[o.node] = describe(e)
    return failures

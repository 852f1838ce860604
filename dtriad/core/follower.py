"""Following the ring the DTSentinel publishes.

A DTServer routes by a :class:`~dtriad.placement.ringstate.View` of the
newest ring state it knows, replaced whole (never edited) when a newer one
arrives, by one of three ways:

* **pushed**: the DTSentinel posts it (``ringUpdate``, :meth:`RingFollower.install`);
* **shared**: with several worker processes, the push lands in one of them,
  which writes ``state_file``; every worker checks that file's signature
  (one ``stat``, at most every ``FILE_CHECK_S``), so all of them use a
  pushed ring within milliseconds, before the DTSentinel fences the backends;
* **fetched**: a write refused by a backend's fence (its ring is old), and a
  poll once per ``poll_interval``, read the newest ring any backend holds
  (:func:`newest_ring`).

Whichever way it comes, a ring is adopted only if its MAC verifies under the
cluster secret (:class:`RingCheck`); any other is rejected with a logged
reason and changes nothing. See ``docs/membership.md`` for why a DTServer
that missed a push can never write by an old ring (the fence), only be told
to fetch the new one, and for the MAC ("Authenticated rings").
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from dtriad import logs
from dtriad.backends.outcome import Fanout, Steps, Suspects, describe
from dtriad.config import ClusterConfig
from dtriad.core.commands import METHODS
from dtriad.core.scripts import READ_META
from dtriad.exceptions import ArgumentError, StaleRingError
from dtriad.placement.ringmac import Unsigned, ring_key, signed_json, verify_json
from dtriad.placement.ringstate import RingState, View

FILE_CHECK_S = 0.002  # how often a worker looks for a ring saved by another
log = logging.getLogger("dtriad.ring")


class RejectedRing(ArgumentError):
    """A ring state that may not be adopted, with why. ``legacy``: the state
    it holds if it is merely unsigned and names only cluster-file nodes (what
    a DTSentinel may take over in an upgrade: ``docs/membership.md``)."""

    def __init__(self, message: str, legacy: RingState | None = None):
        super().__init__(message)
        self.legacy = legacy


class RingCheck:
    """Which ring states may be adopted: with a cluster secret, only one whose
    MAC verifies; without one (nothing can be verified), only one naming no
    node but the cluster file's, at the file's addresses, so no credential
    goes where a ring alone says. A rejected state is logged once (per
    distinct text), with why."""

    MEMORY = 1024  # distinct rejected texts remembered, not to log one twice

    def __init__(self, config: ClusterConfig):
        self.config = config
        self._logged: set[bytes] = set()

    def parse(self, text: str | bytes, where: str) -> RingState:
        """The state ``text`` holds, if it may be adopted; else
        :class:`RejectedRing` (logged) with why."""
        try:
            state = verify_json(text, ring_key(self.config.secret))
        except Unsigned as e:
            strangers = self.strangers(e.state)
            if self.config.secret is None and not strangers:
                return e.state
            why = (f"it names {', '.join(strangers)}, not nodes of the cluster file"
                   if strangers else "it carries no MAC (stored before rings were signed?)")
            if self.config.secret is None:
                why += "; with no cluster secret, no other ring is adopted"
            error = RejectedRing(f"unverified ring state of epoch {e.state.epoch} (token "
                                 f"{e.state.token}): {why}", None if strangers else e.state)
            self._log(text, where, error)
            raise error from None
        except ArgumentError as e:
            self._log(text, where, e)
            raise RejectedRing(e.message) from e
        return state

    def strangers(self, state: RingState) -> list[str]:
        """Members that are not a cluster-file node at the file's addresses."""
        known = {(n.name, n.redis, n.http) for n in self.config.nodes}
        return [f"{m.name!r} at {m.redis!r}, {m.http!r}" for m in state.members().values()
                if (m.name, m.redis, m.http) not in known]

    def sign(self, state: RingState) -> str:
        return signed_json(state, ring_key(self.config.secret))

    def _log(self, text: str | bytes, where: str, error: ArgumentError) -> None:
        digest = hashlib.sha256(text.encode() if isinstance(text, str) else text).digest()
        if digest in self._logged:
            return
        if len(self._logged) >= self.MEMORY:
            self._logged.clear()
        self._logged.add(digest)
        log.warning("rejected the ring state %s: %s; it changes nothing", where, error)


class Stored(NamedTuple):
    """What the backends hold (:func:`read_rings`)."""

    state: RingState | None  # the newest that may be adopted
    down: dict[str, str]  # backends that did not answer, with why
    rejected: dict[str, str]  # backends holding a state that may not be, with why
    legacy: RingState | None  # the newest unsigned one naming only cluster-file nodes
    fence: int  # the highest fence any backend answered with


def newest_ring(nodes: Sequence[str], check: RingCheck) -> Steps:
    """``(state, down)``: the newest ring state the backends hold that
    ``check`` lets be adopted (None if none), and which backends did not
    answer, with why."""
    stored = yield from read_rings(nodes, check)
    return stored.state, stored.down


def read_rings(nodes: Sequence[str], check: RingCheck) -> Steps:
    """What the backends hold (one parallel round), as :class:`Stored`."""
    newest, legacy, down, rejected, fence = None, None, {}, {}, 0
    for outcome in (yield Fanout(tuple(nodes), ("EVAL", READ_META, 0))):
        if not outcome.ok:
            down[outcome.node] = describe(outcome.error)
            continue
        if not outcome.value:
            continue
        fence = max(fence, int(outcome.value[0] or 0))
        if not outcome.value[1]:
            continue
        try:
            state = check.parse(outcome.value[1], f"stored on {outcome.node}")
        except RejectedRing as e:
            rejected[outcome.node] = e.message
            if e.legacy is not None and (legacy is None or e.legacy.token > legacy.token):
                legacy = e.legacy
            continue
        if newest is None or state.token > newest.token:
            newest = state
    return Stored(newest, down, rejected, legacy, fence)


class RingFollower:
    """The ring in force (:attr:`view`) and how it is kept current.

    ``suspects`` learns each member's admitted incarnation from the ring, so
    a backend that restarted since is not served (``docs/membership.md``).
    ``pools`` is called with every member's address when a ring names it (the
    threaded client opens its pool ahead of the first request).
    """

    def __init__(self, config: ClusterConfig, suspects: Suspects,
                 pools: Callable[[str], object] = lambda node: None,
                 state_file: str | os.PathLike | None = None, poll_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.suspects = suspects
        self._pools = pools
        self.check = RingCheck(config)
        self.state_file = Path(state_file) if state_file else None
        self.poll_interval = poll_interval
        self._clock = clock
        self._file_signature: tuple | None = None
        self._lock = threading.Lock()
        self._next_poll = 0.0
        self._next_file_check = 0.0
        self.view = View(RingState.initial(config))
        logs.context["epoch"] = config.epoch
        suspects.incarnations = lambda node: self.view.run_ids.get(node)

    def follow(self) -> Steps:
        """The ring in force: a ring another worker saved is adopted (one
        ``stat``), and a backend's fence is polled once per ``poll_interval``."""
        now = self._clock()
        if self.state_file is not None and now >= self._next_file_check:
            # at most one stat per FILE_CHECK_S: a worker that has not seen a
            # pushed ring yet is refused by the backends' fence, not trusted
            self._next_file_check = now + FILE_CHECK_S
            self._check_file()
        if now >= self._next_poll:
            self._next_poll = now + self.poll_interval
            yield from self.refresh()
        return self.view

    def current(self, now: float) -> View | None:
        """What :meth:`follow` answers at ``now`` when that needs no backend
        (the state file's ``stat`` is done here); None when a poll is due
        (the RESP fast path routes only by a ring it need not poll for)."""
        if now >= self._next_poll:
            return None
        if self.state_file is not None and now >= self._next_file_check:
            self._next_file_check = now + FILE_CHECK_S
            self._check_file()
        return self.view

    def _check_file(self) -> None:
        try:
            st = os.stat(self.state_file)
            signature = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            signature = None
        if signature == self._file_signature:
            return
        self._file_signature = signature
        if signature is not None:
            try:
                self.adopt(self.check.parse(self.state_file.read_bytes(),
                                            f"in {self.state_file}"), progress=True)
            except (OSError, ArgumentError):
                self._file_signature = None  # half-written by another worker

    def refresh(self) -> Steps:
        """Fetch the newest ring any backend holds (after a fence refusal, or a
        poll); True if it replaced the ring in force."""
        nodes = list(self.view.state.members()) + [
            n.redis for n in self.config.nodes if n.redis not in self.view.names]
        newest, _ = yield from newest_ring(nodes, self.check)
        if newest is not None and self.adopt(newest):
            self._save(newest)
            return True
        return False

    def adopt(self, state: RingState, progress: bool = False) -> bool:
        """Use ``state`` if it is newer than the ring in force (or, with
        ``progress``, the same ring with fresher migration progress). At the
        same token, the published ring also replaces the cluster file's
        (``RingState.initial``): it names every member's incarnation."""
        with self._lock:
            current = self.view.state
            if state.token < current.token or (state.token == current.token and state == current
                                               and not (progress and
                                                        state.migration != current.migration)):
                return False
            before = self.view.run_ids
            for member in state.members().values():
                self._pools(member.redis)
                if before.get(member.redis, member.run_id) != member.run_id:
                    self.suspects.clear(member.redis)  # refused as restarted; admitted now
            self.view = View(state)
            logs.context["epoch"] = state.epoch
            return True

    def install(self, state_json: str | None) -> Steps:
        """A ring pushed by the DTSentinel (the request carried the secret; the
        ring must verify too): never older than ours."""
        if not state_json:
            raise ArgumentError(f"missing argument 'state'; usage: {METHODS['ringUpdate'].usage}")
        state = self.check.parse(state_json, "pushed (ringUpdate)")
        current = (yield from self.follow()).token
        if state.token < current:
            raise StaleRingError(state.token, current)
        if self.adopt(state, progress=True):
            self._save(state)
        return {"epoch": state.epoch, "token": state.token}

    def _save(self, state: RingState) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_name(f"{self.state_file.name}.{os.getpid()}.tmp")
        tmp.write_text(self.check.sign(state))
        os.replace(tmp, self.state_file)

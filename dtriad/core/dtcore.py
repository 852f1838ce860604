"""The request core shared by every front end (HTTP today, RESP later).

It owns the command table, argument checks, routing over the ring and the
replication rules of DESIGN.md section 4 (the protocol is in
``docs/consistency.md``):

* a write is applied first by the key's master, which serializes it and gives
  the key a new version; the backups then apply the same command only if they
  are exactly at the master's previous version, so every copy applies a key's
  writes in one order, once each. A copy that is behind, ahead or answers
  differently gets the master's state instead (never a replayed command);
* the write returns only when the required copies (``write_quorum``) hold it;
  otherwise :class:`QuorumError` says how many do, and the copies that missed
  it are queued for repair;
* a command the master rejects (WRONGTYPE, not an integer) is applied nowhere;
* a read asks the master first, then the backups in ring order
  (``read_quorum`` one), or a majority of copies at once, answering with the
  newest version and repairing the older copies (``read_quorum`` quorum).

Replies are raw Redis replies (bytes, int, list, None); front ends encode them.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from redis.exceptions import ResponseError

from dtriad.backends.client import DOWN_ERRORS, DTClient, Outcome, describe
from dtriad.config import READ_QUORUMS, WRITE_QUORUMS, ClusterConfig, required_copies
from dtriad.core import steps
from dtriad.core.commands import (
    ADMIN,
    API,
    INTERNAL,
    MULTI_KEY,
    Kind,
    RedisCommand,
    arity_error,
    lookup,
    method_names,
)
from dtriad.core.commands import Route as Routing
from dtriad.core.repair import Repairs
from dtriad.core.scripts import CLEAN, READ_META, READ_VERSIONED, SWEEP, WRITE_BACKUP, WRITE_MASTER
from dtriad.core.steps import Execute, Fanout, Pause, Steps
from dtriad.exceptions import (
    ArgumentError,
    AuthError,
    CommandError,
    DtriadError,
    MasterMovedError,
    QuorumError,
    RingChangingError,
    StaleRingError,
    UnavailableError,
    UnknownMethodError,
    ValueTooLargeError,
)
from dtriad.placement.ringstate import RingState, Route, View

COMMANDS = API  # the HTTP API's methods (dtriad.core.commands.API)
FILE_CHECK_S = 0.002  # how often a worker looks for a ring saved by another
SWEEP_EVERY_S = 5.0  # how often the repair thread looks for old repair intents
INTENT_AGE_S = 10.0  # an intent this old was left by a writer that stopped
SWEEP_BATCH = 500  # intents reconciled per member and sweep
log = logging.getLogger("dtriad.core.dtcore")


def newest_ring_steps(nodes: Sequence[str]) -> Steps:
    """The newest ring state the backends hold (one parallel round), and which
    backends did not answer. A malformed stored state is skipped."""
    newest, down = None, {}
    for outcome in (yield Fanout(tuple(nodes), ("EVAL", READ_META, 0))):
        if not outcome.ok:
            down[outcome.node] = describe(outcome.error)
            continue
        if not outcome.value or not outcome.value[1]:
            continue
        try:
            state = RingState.from_json(outcome.value[1])
        except ArgumentError:
            continue
        if newest is None or state.token > newest.token:
            newest = state
    return newest, down


def newest_ring(client: DTClient, nodes: Sequence[str]) -> tuple[RingState | None,
                                                                dict[str, str]]:
    return steps.run(newest_ring_steps(nodes), client)


def read_first(suspects: DTClient, nodes: Sequence[str], command: tuple, key: Any) -> Steps:
    """``(reply, node)`` of the first of ``nodes`` to answer, in ring order
    with suspected backends last. An error about the data (WRONGTYPE) is the
    answer, raised as :class:`CommandError`; if no backend answers,
    :class:`UnavailableError` says why for each."""
    failures: dict[str, str] = {}
    for node in sorted(nodes, key=suspects.suspected):  # stable sort
        try:
            value = yield Execute(node, command)
        except ResponseError as e:
            raise CommandError.from_redis(e) from e
        except DOWN_ERRORS as e:
            failures[node] = describe(e)
            suspects.suspect(node)
            continue
        suspects.clear(node)
        return value, node
    raise UnavailableError(_text(key), {n: failures[n] for n in nodes})


def _stale(error: BaseException | None) -> bool:
    """A backend refused a write: its fence says our ring is old."""
    return isinstance(error, ResponseError) and str(error).startswith("STALERING")


def _newest(outcomes: Sequence[Outcome]) -> Outcome:
    """The READ_VERSIONED answer with the highest version; max() keeps the
    first of equals, so ties go to ring order (the master first)."""
    return max(outcomes, key=lambda o: int(o.value[0]))


class _Stale(Exception):
    """The ring moved under a write that no copy applied: route it again."""


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Stats:
    """Counters of requests and errors; cheap and thread-safe."""

    def __init__(self):
        self.started = time.time()
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def record(self, method: str, error: str | None = None) -> None:
        with self._lock:
            self.requests[method] += 1
            if error:
                self.errors[error] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {"uptime_s": round(time.time() - self.started, 3),
                    "requests": dict(self.requests), "errors": dict(self.errors),
                    "total": sum(self.requests.values())}


class DTCore:
    """Routes commands over the ring and enforces the replication rules.

    The ring in force is a :class:`~dtriad.placement.ringstate.View`, replaced whole when
    the DTSentinel pushes a newer one (:meth:`install`). With several worker
    processes, the push lands in one of them, which writes ``state_file``;
    every worker checks that file's signature (one ``stat``, at most every
    ``FILE_CHECK_S``), so a pushed ring is used by all of them within
    milliseconds, before the DTSentinel fences the backends. Every write
    carries the ring token and is refused by a backend fenced at a newer one,
    so a DTServer that missed a push fetches the ring and retries instead of
    writing by an old ring; reads poll a backend's fence once per
    ``poll_interval``.
    """

    def __init__(self, config: ClusterConfig, client: DTClient | None = None,
                 state_file: str | os.PathLike | None = None, poll_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.client = client or DTClient([n.redis for n in config.nodes],
                                         password=config.password,
                                         username=config.username,
                                         timeout=config.backend_timeout)
        self.stats = Stats()
        self.state_file = Path(state_file) if state_file else None
        self.poll_interval = poll_interval
        self._clock = clock
        self._file_signature: tuple | None = None
        self._lock = threading.Lock()
        self.view = View(RingState.initial(config))
        # a backend that restarted since the ring admitted it is not served
        self.client.incarnations = lambda node: self.view.run_ids.get(node)
        self._next_poll = 0.0
        self._next_file_check = 0.0
        self._next_sweep = 0.0
        self.repairs = Repairs()
        self._stop = threading.Event()
        self._view()

    def start_repairs(self, interval: float = 1.0) -> threading.Thread:
        """Reconcile queued keys in a background thread until :meth:`close`."""
        thread = threading.Thread(target=self.repairs.run_forever, name="dtriad-repairs",
                                  args=(self.reconcile, interval, self._stop, self.intents),
                                  daemon=True)
        thread.start()
        return thread

    def intents(self) -> None:
        """Clear the repair intents of writes every copy holds (in batches),
        and, every ``SWEEP_EVERY_S``, reconcile the keys of intents older
        than ``INTENT_AGE_S`` on every member: their writer stopped mid-write,
        or a copy missed the write (``dtriad/core/repair.py``)."""
        for master, pending in self.repairs.take_settled().items():
            items = [x for pair in pending.items() for x in pair]
            try:
                for i in range(0, len(items), 1000):
                    self.client.execute(master, "EVAL", CLEAN, 0, *items[i:i + 1000])
            except (*DOWN_ERRORS, ResponseError) as e:  # the sweep clears them later
                log.debug("clearing intents on %s deferred: %s", master, describe(e))
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_S
        for node in self._view().state.members():
            try:
                found = self.client.execute(node, "EVAL", SWEEP, 0, int(INTENT_AGE_S * 1e6),
                                            SWEEP_BATCH)
            except (*DOWN_ERRORS, ResponseError):
                continue
            done = []
            for key, version in zip(found[::2], found[1::2], strict=True):
                try:
                    if self.reconcile(key):
                        done += [key, version]
                except (DtriadError, *DOWN_ERRORS, ResponseError) as e:
                    log.debug("repair of %r deferred: %s", key, e)
            if done:
                try:
                    self.client.execute(node, "EVAL", CLEAN, 0, *done)
                except (*DOWN_ERRORS, ResponseError):
                    pass

    # --------------------------------------------------------------- the ring
    def run(self, work: Steps) -> Any:
        """Drive request steps with the blocking client (HTTP workers, repairs)."""
        return steps.run(work, self.client)

    @property
    def ring(self):
        """The committed ring (the one reads and keyDist go by)."""
        return self._view().ring

    def _view(self) -> View:
        return self.run(self.view_steps())

    def view_steps(self) -> Steps:
        """The ring in force: a ring another worker saved is adopted (one
        ``stat``), and a backend's fence is polled once per ``poll_interval``."""
        now = self._clock()
        if self.state_file is not None and now >= self._next_file_check:
            # at most one stat per FILE_CHECK_S: a worker that has not seen a
            # pushed ring yet is refused by the backends' fence, not trusted
            self._next_file_check = now + FILE_CHECK_S
            try:
                st = os.stat(self.state_file)
                signature = (st.st_mtime_ns, st.st_ino, st.st_size)
            except FileNotFoundError:
                signature = None
            if signature != self._file_signature:
                self._file_signature = signature
                if signature is not None:
                    try:
                        self._adopt(RingState.from_json(self.state_file.read_bytes()),
                                    progress=True)
                    except (OSError, ArgumentError):
                        self._file_signature = None  # half-written by another worker
        if now >= self._next_poll:
            self._next_poll = now + self.poll_interval
            yield from self.refresh_steps()
        return self.view

    def _adopt(self, state: RingState, progress: bool = False) -> bool:
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
                self.client.pool(member.redis)
                if before.get(member.redis, member.run_id) != member.run_id:
                    self.client.clear(member.redis)  # refused as restarted; admitted now
            self.view = View(state)
            return True

    def refresh(self) -> bool:
        return self.run(self.refresh_steps())

    def refresh_steps(self) -> Steps:
        """Fetch the newest ring any backend holds (after a fence refusal, or a poll)."""
        nodes = list(self.view.state.members()) + [
            n.redis for n in self.config.nodes if n.redis not in self.view.names]
        newest, _ = yield from newest_ring_steps(nodes)
        if newest is not None and self._adopt(newest):
            self._save_state(newest)
            return True
        return False

    def authorize(self, secret: str | None, what: str) -> None:
        """Admin and internal methods need the cluster secret (when it has one)."""
        if self.config.secret is None:
            return
        if not hmac.compare_digest(str(secret or "").encode(), self.config.secret.encode()):
            raise AuthError(f"{what} needs the cluster secret ('secret' in cluster.json or "
                            f"dtriad.toml), sent as 'Authorization: Bearer <secret>'")

    def install(self, secret: str | None, state_json: str | None) -> dict:
        """A ring pushed by the DTSentinel: authenticated, never older than ours."""
        if not self.config.secret:
            raise AuthError("this DTServer has no cluster secret, so it takes no ring updates")
        self.authorize(secret, "ringUpdate")
        if not state_json:
            raise ArgumentError("missing argument 'state'; usage: ringUpdate secret state")
        state = RingState.from_json(state_json)
        current = self._view().token
        if state.token < current:
            raise StaleRingError(state.token, current)
        if self._adopt(state, progress=True):
            self._save_state(state)
        return {"epoch": state.epoch, "token": state.token}

    def _save_state(self, state: RingState) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_name(f"{self.state_file.name}.{os.getpid()}.tmp")
        tmp.write_text(state.to_json())
        os.replace(tmp, self.state_file)

    # ----------------------------------------------------------------- commands
    def call(self, method: str, write_quorum: str | None = None,
             read_quorum: str | None = None, **args: Any) -> Any:
        """Run one of the HTTP API's methods (:data:`dtriad.core.commands.API`) by
        its name and named arguments; the levels override the cluster's."""
        spec = API.get(method)
        if spec is None:
            raise UnknownMethodError(
                f"unknown method {method!r}; methods are {', '.join(method_names())}")
        argv = [spec.redis]
        for name in spec.args:
            value = args.get(name)
            if value is None:
                raise ArgumentError(f"missing argument {name!r}; usage: {spec.usage}")
            if name in spec.ints:
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise ArgumentError(f"{name} must be an integer, got {_text(value)!r}; "
                                        f"usage: {spec.usage}") from None
            argv.append(value)
        return self.run(self.command_steps(argv, write_quorum, read_quorum))

    def command(self, argv: Sequence[Any], write_quorum: str | None = None,
                read_quorum: str | None = None) -> Any:
        """Run one Redis command (``["SET", "k", "v"]``) over the ring."""
        return self.run(self.command_steps(argv, write_quorum, read_quorum))

    def command_steps(self, argv: Sequence[Any], write_quorum: str | None = None,
                      read_quorum: str | None = None) -> Steps:
        """Check, route and replicate one Redis command of :data:`dtriad.core.commands.REDIS`
        (not the front end's own, such as PING): the one request path of every
        front end. Replies are raw Redis replies."""
        spec = self.checked(argv)
        if spec.kind is Kind.LOCAL:
            raise CommandError(f"ERR '{spec.name}' is answered by the front end, not the ring")
        if spec.kind is Kind.READ:
            level = self.level("read_quorum", read_quorum)
            if spec.route is Routing.SINGLE:
                return (yield from self.read_steps(argv[1], argv, level))
            if spec.route is Routing.MGET:
                return (yield from self.mget_steps(argv[1:], level))
            return sum((yield from self.each_steps(spec, argv[1:], level)))
        level = self.level("write_quorum", write_quorum)
        if spec.route is Routing.SINGLE:
            return (yield from self.replicate_steps([argv[1]], argv, level))
        if spec.route is Routing.PAIRS:
            return (yield from self.mset_steps(argv[1::2], argv[2::2], level))
        return sum((yield from self.each_steps(spec, argv[1:], level)))

    def checked(self, argv: Sequence[Any]) -> RedisCommand:
        """The command's spec, once its name, arity and sizes are acceptable;
        errors read as Redis's own (``ERR wrong number of arguments ...``)."""
        if not argv:
            raise CommandError("ERR empty command")
        spec = lookup(argv[0])
        if spec is None:
            raise CommandError(f"ERR unknown or unsupported command '{_text(argv[0])}'")
        problem = arity_error(spec, len(argv))
        if problem:
            raise CommandError(problem)
        for value in argv[1:]:
            self.check_size("an argument" if spec.route is Routing.NONE else "value", value)
        if spec.name == "setrange":
            try:
                end = int(argv[2]) + len(argv[3])
            except ValueError:
                end = 0  # Redis itself answers: not an integer
            if end > self.config.max_value_bytes:
                raise ValueTooLargeError("the value SETRANGE would make", end,
                                         self.config.max_value_bytes)
        return spec

    def level(self, name: str, value: str | None) -> str:
        """A request's consistency level, or the cluster's when it gives none."""
        if value is None or value == "":
            return getattr(self.config, name)
        allowed = WRITE_QUORUMS if name == "write_quorum" else READ_QUORUMS
        if value not in allowed:
            raise ArgumentError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def check_size(self, what: str, value: str | bytes | int) -> None:
        limit = self.config.max_value_bytes
        if isinstance(value, int):
            return
        size = len(value.encode("utf-8")) if isinstance(value, str) else len(value)
        if size > limit:
            raise ValueTooLargeError(what, size, limit)

    def read(self, key: Any, *command: Any, quorum: str | None = None) -> Any:
        return self.run(self.read_steps(key, command, self.level("read_quorum", quorum)))

    def read_steps(self, key: Any, command: Sequence[Any], level: str) -> Steps:
        """``read_quorum`` one: master first, then backups in ring order, the
        first answer wins (suspected backends last). quorum: see
        :meth:`_quorum_read`."""
        route = (yield from self.view_steps()).route(key)
        if level == "quorum":
            return (yield from self._quorum_read(key, route, command))
        value, _ = yield from read_first(self.client, route.read, tuple(command), key)
        return value

    def _quorum_read(self, key: Any, route: Route, command: Sequence[Any]) -> Steps:
        """Ask every full copy at once; a majority must answer. The newest
        version answers (ties: ring order) and older or differing copies are
        repaired from it before returning."""
        copies = route.direct
        required = required_copies(len(copies), "quorum")
        outcomes = yield Fanout(copies, ("EVAL", READ_VERSIONED, 1, key, *command))
        answered = [o for o in outcomes if o.ok]
        if len(answered) < required:
            names = self.view.names
            raise UnavailableError(_text(key), {
                names.get(o.node, o.node): describe(o.error) for o in outcomes if not o.ok},
                needed=f"{required} of {len(copies)} copies for a quorum read")
        newest = _newest(answered)
        stale = [o.node for o in answered if o.value != newest.value]
        if stale:
            failures: dict[str, str] = {}
            token = self.view.token
            for node in stale:
                yield from self._sync([key], newest.node, node, token, failures)
        _, ok, reply = newest.value
        if not ok:
            raise CommandError.from_redis(ResponseError(_text(reply)))
        return reply

    def write(self, key: Any, *command: Any, quorum: str | None = None) -> Any:
        """Apply ``command`` to every copy of ``key``; see the module docstring."""
        return self.run(self.replicate_steps([key], command,
                                             self.level("write_quorum", quorum)))

    def replicate_steps(self, keys: Sequence[Any], command: Sequence[Any], level: str,
                        attempts: int = 8) -> Steps:
        """One replicated write of ``command`` on ``keys`` (keys of one route).

        A write refused by a fence is routed again by the newest ring the
        backends hold. If they hold none newer yet (the DTSentinel has fenced
        the members and not yet stored the ring, ``docs/membership.md``), it
        backs off (10 ms, doubling up to 200 ms: 0.7 s in all) rather than
        fail at once."""
        for attempt in range(attempts):
            view = yield from self.view_steps()
            try:
                return (yield from self._write_once(view, keys, command, level))
            except _Stale:
                if not (yield from self.refresh_steps()) and attempt + 1 < attempts:
                    yield Pause(min(0.2, 0.01 * 2 ** attempt))
        raise RingChangingError(f"the ring changed {attempts} times during one write to "
                                f"{_text(keys[0])!r}; retry")

    def _write_once(self, view: View, keys: Sequence[Any], command: Sequence[Any],
                    level: str) -> Steps:
        route = view.route(keys[0])
        master, names = route.direct[0], view.names
        failures: dict[str, str] = {}
        if self.client.suspected(master):
            failures[names.get(master, master)] = ("the key's master failed moments ago; "
                                                   "writes resume once it answers or the "
                                                   "ring replaces it")
            self._check_quorum(keys, route, set(), failures, level, sent=False)
        try:
            reply = yield Execute(master, ("EVAL", WRITE_MASTER, len(keys), *keys,
                                           view.token, *command))
        except ResponseError as e:
            if _stale(e):
                raise _Stale from e
            raise CommandError.from_redis(e) from e
        except DOWN_ERRORS as e:
            self.client.suspect(master)
            failures[names.get(master, master)] = (
                f"the key's master: {describe(e)}; it may have applied the write")
            self._check_quorum(keys, route, set(), failures, level)
            raise  # unreachable: no copy holds the write
        raw, version, previous = reply[0], reply[1], reply[2:2 + len(keys)]
        # A reply beyond 2^53 is re-read as text by the script (Lua numbers are doubles)
        result = int(raw) if len(reply) > 2 + len(keys) else raw
        backups = route.direct[1:]
        outcomes = yield Fanout(backups, ("EVAL", WRITE_BACKUP, len(keys), *keys,
                                          view.token, version, *previous, *command))
        if any(_stale(o.error) for o in outcomes):
            return (yield from self._ring_moved(keys, master, result, level))
        held = {master}
        for o in outcomes:
            if o.ok and o.value[0] == b"applied" and o.value[1] == raw:
                held.add(o.node)
            elif o.down:
                failures[names.get(o.node, o.node)] = describe(o.error)
            elif (yield from self._sync(keys, master, o.node, view.token, failures)):
                held.add(o.node)  # behind, ahead or diverged: given the master's state
        for node in route.copy_to:  # gaining the key in a migration: the resulting state
            if (yield from self._sync(keys, master, node, view.token, failures)):
                held.add(node)
        if self._check_quorum(keys, route, held, failures, level):
            self.repairs.settle(master, keys, version)  # its intent is cleared
        return result

    def _ring_moved(self, keys: Sequence[Any], master: str, result: Any, level: str) -> Steps:
        """The master applied a write but a backup's fence says the ring moved.

        If the new ring keeps the same master, its history still holds: every
        copy of the new route gets its state. Otherwise the write is *not*
        routed again: the new master may already hold it (a migration copied
        the old master's state), and applying it there again would apply it
        twice (the fault suite caught an INCR counted twice this way). The
        caller gets an ambiguous error, and the key is queued for repair."""
        yield from self.refresh_steps()
        view = yield from self.view_steps()
        route = view.route(keys[0])
        if route.direct[0] != master:
            self.repairs.add(keys)
            raise MasterMovedError(_text(keys[0]))
        failures: dict[str, str] = {}
        held = {master}
        for node in route.direct[1:] + route.copy_to:
            if (yield from self._sync(keys, master, node, view.token, failures)):
                held.add(node)
        self._check_quorum(keys, route, held, failures, level)
        return result

    def _check_quorum(self, keys: Sequence[Any], route: Route, held: set[str],
                      failures: dict[str, str], level: str, sent: bool = True) -> bool:
        """Raise :class:`QuorumError` unless enough copies hold the write; a
        write ``sent`` that some copy missed is queued for repair. True if
        every copy holds it."""
        owners = route.owners
        if all(n in held for n in owners):
            return True
        if sent:
            self.repairs.add(keys)
        copies = sum(1 for n in owners if n in held)
        required = required_copies(len(owners), level)
        if copies < required:
            names = self.view.names
            missing = {names.get(n, n): failures.get(names.get(n, n), "did not take it")
                       for n in owners if n not in held}
            total, authority = len(owners), route.direct[0]
            if authority not in owners:  # it is leaving the key; a migration copies it on
                total += 1
                copies += authority in held
            raise QuorumError(_text(keys[0]), copies, required, total, missing)
        return False

    def _sync(self, keys: Sequence[Any], source: str, target: str, token: int,
              failures: dict[str, str]) -> Steps:
        """Give ``target`` ``source``'s state of ``keys`` (:func:`dtriad.core.steps.sync_key`)."""
        settled, why = True, "kept changing under concurrent writes"
        try:
            for key in keys:
                settled = (yield from steps.sync_key(source, target, key, token)) and settled
        except (*DOWN_ERRORS, ResponseError) as e:
            settled, why = False, describe(e)
        if not settled:
            name = self.view.names.get(target, target)
            failures[name] = f"missed the write and was not repaired yet: {why}"
        return settled

    def reconcile(self, key: Any) -> bool:
        return self.run(self.reconcile_steps(key))

    def reconcile_steps(self, key: Any) -> Steps:
        """Make every full copy of ``key`` equal the newest one (highest
        version; ties go to ring order, so the master). True when all agree."""
        view = yield from self.view_steps()
        route = view.route(key)
        outcomes = yield Fanout(route.direct, ("EVAL", READ_VERSIONED, 1, key, "EXISTS", key))
        if not all(o.ok for o in outcomes):
            return False
        newest = _newest(outcomes).node
        failures: dict[str, str] = {}
        agreed = True
        for node in route.direct + route.copy_to:
            if node != newest:
                agreed = (yield from self._sync([key], newest, node, view.token,
                                                failures)) and agreed
        return agreed

    def each_steps(self, spec: RedisCommand, keys: Sequence[Any], level: str) -> Steps:
        """A command whose every argument is a key (DEL, UNLINK, EXISTS), run
        once per group of keys sharing copies; one reply per group."""
        view = yield from self.view_steps()
        if spec.kind is Kind.READ and level == "quorum":
            return (yield from self._quorum_reads(view, keys, spec.name))
        groups: dict[Route, list[Any]] = {}
        for key in keys:
            groups.setdefault(view.route(key), []).append(key)
        replies = []
        for route, group in groups.items():
            if spec.kind is Kind.READ:
                value, _ = yield from read_first(self.client, route.read,
                                                 (spec.name, *group), group[0])
            else:
                value = yield from self.replicate_steps(group, (spec.name, *group), level)
            replies.append(value)
        return replies

    def _quorum_reads(self, view: View, keys: Sequence[Any], command: str) -> Steps:
        replies = []
        for key in keys:
            replies.append((yield from self._quorum_read(key, view.route(key), (command, key))))
        return replies

    def mget(self, keys: Sequence[Any], quorum: str | None = None) -> list[Any]:
        if not keys:
            raise ArgumentError("missing argument 'key'; usage: mget key [key ...]")
        return self.run(self.mget_steps(keys, self.level("read_quorum", quorum)))

    def mget_steps(self, keys: Sequence[Any], level: str) -> Steps:
        """Values of ``keys`` in order; one MGET per group of keys sharing copies
        (with ``read_quorum`` quorum, one quorum read per key)."""
        view = yield from self.view_steps()
        if level == "quorum":
            return (yield from self._quorum_reads(view, keys, "GET"))
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(view.route(key).read, []).append(i)
        result: list[Any] = [None] * len(keys)
        for nodes, indexes in groups.items():
            group_keys = [keys[i] for i in indexes]
            values, _ = yield from read_first(self.client, nodes, ("MGET", *group_keys),
                                              group_keys[0])
            for i, value in zip(indexes, values, strict=True):
                result[i] = value
        return result

    def mset(self, keys: Sequence[Any], values: Sequence[Any],
             quorum: str | None = None) -> Any:
        """Store pairs (the HTTP API's ``mset``: keys and values as two lists)."""
        if not keys:
            raise ArgumentError("missing argument 'key'; usage: mset key value [key value ...]")
        if len(keys) != len(values):
            raise ArgumentError(
                f"mset needs one value per key, got {len(keys)} keys and {len(values)} values")
        for key, value in zip(keys, values, strict=True):
            self.check_size("key", key)
            self.check_size("value", value)
        return self.run(self.mset_steps(keys, values, self.level("write_quorum", quorum)))

    def mset_steps(self, keys: Sequence[Any], values: Sequence[Any], level: str) -> Steps:
        """Each group of keys sharing copies is one replicated MSET."""
        view = yield from self.view_steps()
        groups: dict[Route, dict[Any, Any]] = {}
        for key, value in zip(keys, values, strict=True):
            groups.setdefault(view.route(key), {})[key] = value  # the last of a repeated key
        for pairs in groups.values():
            flat = [item for pair in pairs.items() for item in pair]
            yield from self.replicate_steps(list(pairs), ("MSET", *flat), level)
        return b"OK"

    # -------------------------------------------------------------------- admin
    def _catalog(self) -> list[tuple[str, str, str]]:
        """(name, redis, http) of every node this DTServer knows, ring members first."""
        members = self.view.state.members()
        out = [(m.name, m.redis, m.http) for m in members.values()]
        out += [(n.name, n.redis, n.http) for n in self.config.nodes if n.redis not in members]
        return out

    def ring_info(self) -> dict:
        view = self._view()
        state, ring, pending = view.state, view.ring, view.pending
        share, roles = (pending or ring).share(), (pending or ring).roles()
        nodes = []
        for name, address, http in self._catalog():
            in_ring, in_pending = address in ring.nodes, pending and address in pending.nodes
            node_state = ("up" if in_ring and (pending is None or in_pending) else
                          "leaving" if in_ring else "joining" if in_pending else "out")
            after = pending or ring
            nodes.append({
                "name": name, "redis": address, "http": http, "state": node_state,
                "tokens": [format(t, "040x") for t in after.node_tokens(address)],
                "share": {k: round(v, 6) for k, v in share.get(
                    address, {"master": 0.0, "backup": 0.0}).items()},
                "arcs": roles.get(address, {"master": 0, "backup": 0}),
            })
        return {
            "epoch": state.epoch,
            "token": state.token,
            "replicas": state.replicas,
            "vnodes": state.vnodes,
            "copies": ring.copies,
            "write_quorum": self.config.write_quorum,
            "read_quorum": self.config.read_quorum,
            "nodes": nodes,
            "pending_epoch": state.pending_epoch,
            "migration": state.migration if pending is not None or state.migration else None,
        }

    def health(self) -> dict:
        backends = {}
        for name, address, _ in self._catalog():
            start = time.perf_counter()
            try:
                self.client.execute(address, "PING")
                backends[name] = {"redis": address, "up": True,
                                  "latency_ms": round((time.perf_counter() - start) * 1e3, 3)}
            except DOWN_ERRORS as e:
                backends[name] = {"redis": address, "up": False, "error": describe(e)}
        members = set(self.view.ring.nodes)
        up = sum(b["up"] for b in backends.values() if b["redis"] in members)
        status = "ok" if up == len(members) else ("down" if up == 0 else "degraded")
        return {"status": status, "epoch": self.view.state.epoch, "backends": backends}

    def key_dist(self, scan_count: int = 1000) -> dict:
        """Keys held by each backend, by role (SCAN; an admin call, not for the hot path)."""
        ring = self._view().ring
        result = {}
        for name, address, _ in self._catalog():
            counts = Counter(master=0, backup=0, misplaced=0)
            try:
                for key in self.client.redis(address).scan_iter(count=scan_count):
                    owners = ring.preference_list(key)
                    role = ("master" if owners[0] == address else
                            "backup" if address in owners else "misplaced")
                    counts[role] += 1
                result[name] = dict(counts, total=sum(counts.values()))
            except DOWN_ERRORS as e:
                result[name] = {"error": describe(e)}
        return result

    def dbsize(self) -> int:
        """Keys in the whole cluster, each counted once, on its master."""
        return sum(counts.get("master", 0) for counts in self.key_dist().values())

    def close(self) -> None:
        self._stop.set()
        self.client.close()


__all__ = ["ADMIN", "COMMANDS", "DTCore", "DtriadError", "INTERNAL", "MULTI_KEY", "method_names"]

"""Transactions (MULTI/EXEC/WATCH) whose keys may live on different masters.

The protocol and its safety argument are in ``docs/transactions.md``. In
short:

* **one master** (every key the transaction names, and every WATCHed key,
  has the same master): one script there (``TXN_ONE``) checks the WATCHed
  versions and the locks, runs the commands and gives every written key a
  new version and a repair intent; the backups then get the resulting
  state of each written key (its effect, never a second run);
* **several masters**: two-phase, with the decision on one backend.
  1. *lock*: on each master in turn (the coordinator, the master of the
     first key, first), ``TXN_LOCK`` checks the WATCHed versions, locks the
     keys (``dtriad:locks``, database 1) and returns their states; the
     coordinator's also creates the transaction's record (pending);
  2. *compute*: the commands run over copies of the states in the
     coordinator's scratch database (``TXN_SCRATCH``);
  3. *commit point*: ``TXN_COMMIT`` writes the resulting states into the
     record and marks it committed, only if it is still pending;
  4. *apply*: ``TXN_APPLY`` on each master installs its keys' states with
     new versions and unlocks them; the backups then get the states.

A write (any DTServer, any front end) to a locked key waits for the lock
(``DTLOCKED``). A lock older than :data:`STALE_LOCK_S` is resolved by
whoever meets it, its own DTServer being presumed dead: ``TXN_RESOLVE`` on
the coordinator aborts a pending transaction (its commit can then never
happen) or hands over a committed one's states to finish it. So once the
commit point is passed every part is applied, and before it none is.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from dtriad.backends.outcome import DOWN_ERRORS, Execute, Pause, Steps, describe
from dtriad.config import WriteQuorum
from dtriad.core import expiry, redis62, steps
from dtriad.core.commands import Kind, RedisCommand, keys_of
from dtriad.core.scripts import (
    TXN_APPLY,
    TXN_COMMIT,
    TXN_DROP,
    TXN_LOCK,
    TXN_LOCKS,
    TXN_ONE,
    TXN_RESOLVE,
    TXN_SCRATCH,
    TXN_UNLOCK,
    UNPACK,
    VERSIONS,
)
from dtriad.exceptions import (
    CommandError,
    DtriadError,
    InDoubtError,
    QuorumError,
    RingChangingError,
    UnavailableError,
    printable,
)

if TYPE_CHECKING:
    from dtriad.core.requests import Requests
    from dtriad.placement.ringstate import View

LOCK_WAIT_S = 5.0     # a write waits this long at most for a transaction's lock
STALE_LOCK_S = 2.0    # a lock this old is resolved by whoever meets it
ATTEMPTS = 8          # a transaction meeting locks or ring changes tries this often
_LOCAL = {"ping", "echo", "unwatch"}  # answered inside a transaction without a backend
# Run without waiting inside MULTI, as in Redis (scripts.py's call()).
_BLOCKING = {"blpop", "brpop", "bzpopmin", "bzpopmax", "brpoplpush", "blmove"}
_SCRIPTS = {"eval", "evalsha"}  # run one after another with the rest: _sequential


class Locked(Exception):
    """A transaction holds one of a write's keys on ``node``; ``owner`` is the
    lock's value, "txid coordinator started-ms"."""

    def __init__(self, node: str, owner: str, key: Any = None):
        super().__init__(owner)
        self.node, self.owner, self.key = node, owner, key

    @classmethod
    def from_error(cls, node: str, error: BaseException, key: Any = None) -> Locked:
        """From a backend's ``DTLOCKED <owner>`` error."""
        return cls(node, str(error).split(" ", 1)[1], key)

    @property
    def age_s(self) -> float:
        return _age_s(self.owner)


def _age_s(owner: str) -> float:
    try:
        started = int(owner.split()[2])
    except (IndexError, ValueError):
        return float("inf")
    return time.time() - started / 1000


def is_locked(error: BaseException) -> bool:
    return str(error).startswith("DTLOCKED ")


def _stale(error: BaseException) -> bool:
    return isinstance(error, ResponseError) and str(error).startswith("STALERING")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Queued:
    """One command of a transaction, as it will run."""

    spec: RedisCommand
    argv: list            # as the client sent it (replies are encoded by it)
    run: list             # as the backends run it (absolute expiries, SORT_RO as SORT)
    keys: list
    early: Any = None     # Redis 6.2's answer without a backend, or its error

    @property
    def local(self) -> bool:
        return self.spec.name in _LOCAL or self.early is not None

    @property
    def writes(self) -> bool:
        return "write" in self.spec.flags  # BLPOP... too, which are not Kind.WRITE


class Aborted(Exception):
    """A WATCHed key changed: EXEC answers nil."""


class Transactions:
    def __init__(self, requests: Requests):
        self.requests = requests

    # ------------------------------------------------------------ queueing
    def queued(self, argv: Sequence[Any]) -> Queued:
        """Check one command for MULTI (what Redis checks at queue time, plus
        what dtriad cannot run inside a transaction); raise
        :class:`CommandError` (EXEC then aborts) or return it ready to run."""
        spec = self.requests.checked(argv)
        if spec.kind is Kind.LOCAL and spec.name not in _LOCAL:
            raise CommandError(f"ERR {spec.name.upper()} inside MULTI is not served by "
                               f"dtriad: send it before MULTI or after EXEC")
        if spec.kind is Kind.CLUSTER:
            raise CommandError(f"ERR {spec.name.upper()} inside MULTI is not served: it asks "
                               f"every node, a transaction runs on its keys' masters; "
                               f"send it outside the transaction")
        if spec.kind in (Kind.SESSION, Kind.SCRIPT) and spec.name not in _LOCAL \
                and spec.name not in _BLOCKING and spec.name not in _SCRIPTS:
            raise CommandError(f"ERR {spec.name.upper()} inside MULTI is not served by dtriad "
                               f"yet; send it outside the transaction")
        if len(argv) > UNPACK:
            raise CommandError(f"ERR {spec.name.upper()} with {len(argv)} arguments inside "
                               f"MULTI: at most {UNPACK} there")
        run = list(argv)
        if spec.name in ("expire", "pexpire", "setex", "psetex", "set", "getex", "restore"):
            run = expiry.absolute(run, int(time.time() * 1000))
        if spec.name == "sort_ro":
            if any(_text(a).upper() == "STORE" for a in run[2:]):
                raise CommandError("ERR syntax error")
            run = ["SORT", *run[1:]]
        local = spec.name in _LOCAL
        keys = [] if local else keys_of(spec, argv)
        if not local and not keys and spec.name not in _SCRIPTS:
            raise CommandError(f"ERR {spec.name.upper()} without a key inside MULTI is not "
                               f"served: send it outside the transaction")
        try:  # 7.0-only arguments, or a reply 6.2 gives without the key: at EXEC, in place
            early = redis62.refused(spec, argv)
        except CommandError as e:
            early = e
        return Queued(spec, list(argv), run, keys, early)

    def atomic(self, argv: Sequence[Any], level: WriteQuorum) -> Steps:
        """One command whose keys have several masters (MSET, MSETNX), all
        or nothing, as a transaction of one command. -> its reply."""
        (reply,) = yield from self.execute([self.queued(argv)], {}, level)
        if isinstance(reply, CommandError):
            raise reply
        return reply

    # ------------------------------------------------------------ WATCH
    def versions(self, keys: Sequence[Any]) -> Steps:
        """{key: version} of ``keys`` on their masters (WATCH)."""
        view = yield from self.requests.follower.follow()
        by_master: dict[str, list[Any]] = {}
        for key in keys:
            by_master.setdefault(view.route(key).direct[0], []).append(key)
        found: dict[Any, str] = {}
        for master, group in by_master.items():
            try:
                reply = yield Execute(master, ("EVAL", VERSIONS, len(group), *group))
            except DOWN_ERRORS as e:
                raise UnavailableError(printable(group[0]), {
                    view.names.get(master, master): describe(e)},
                    needed="the key's master, to WATCH it") from e
            found.update(zip(group, (_text(v) for v in reply), strict=True))
        return found

    # ------------------------------------------------------------ EXEC
    def execute(self, queued: Sequence[Queued], watched: dict[Any, str],
                level: WriteQuorum | None = None) -> Steps:
        """Run a transaction: a list with one reply (or :class:`CommandError`)
        per command, or None if a WATCHed key changed (nothing ran)."""
        level = level or self.requests.config.write_quorum
        data = [q for q in queued if not q.local]
        since, attempt = time.monotonic(), 0
        while True:
            view = yield from self.requests.follower.follow()
            keys = _unique(k for q in data for k in q.keys)
            masters = {view.route(k).direct[0] for k in [*keys, *watched]}
            try:
                if not data:
                    values = []
                    if watched and (yield from self.versions(list(watched))) != watched:
                        return None
                elif any(q.spec.name in _SCRIPTS for q in data):
                    values = yield from self._sequential(view, data, watched, level)
                elif len(masters) == 1:
                    values = yield from self._one(view, data, watched, level)
                else:
                    values = yield from self._across(view, data, watched, level)
            except Aborted:
                return None
            except Locked as e:
                yield from self.wait(e, since)
                continue
            except Retry:
                attempt += 1
                if attempt >= ATTEMPTS:
                    raise RingChangingError("the ring changed or other transactions held "
                                            "its keys during the whole transaction; "
                                            "retry") from None
                if not (yield from self.requests.follower.refresh()):
                    yield Pause(min(0.2, 0.005 * 2 ** attempt * (1 + random.random())))
                continue
            break
        out, replies = [], iter(values)
        for q in queued:
            if q.early is not None:  # answered without a backend (redis62.refused)
                out.append(q.early)
                continue
            if q.local:  # PING, ECHO, UNWATCH (a no-op once EXEC runs, as in Redis)
                out.append(b"OK" if q.spec.name == "unwatch" else
                           b"PONG" if q.spec.name == "ping" and len(q.argv) == 1 else q.argv[-1])
                continue
            value = next(replies)
            if isinstance(value, ResponseError):
                value = CommandError.from_redis(value)
            elif not isinstance(value, CommandError):
                value = redis62.as_62(q.spec, q.run, value)
            out.append(value)
        return out

    def _one(self, view: View, data: Sequence[Queued], watched: dict[Any, str],
             level: WriteQuorum) -> Steps:
        """Every key on one master: one TXN_ONE there, then the backups."""
        written = _unique(k for q in data if q.writes for k in q.keys)
        keys = written + [k for k in _unique(k for q in data for k in q.keys)
                          if k not in written]
        master = view.route((keys or list(watched))[0]).direct[0]
        args = [view.token, len(written), *_watch_args(watched), *_command_args(data)]
        try:
            reply = yield Execute(master, ("EVAL", TXN_ONE, len(keys), *keys, *args))
        except ResponseError as e:
            if _stale(e):
                raise Retry from e
            if is_locked(e):
                raise Locked.from_error(master, e, keys[0]) from e
            raise CommandError.from_redis(e) from e
        except DOWN_ERRORS as e:
            self.requests.suspects.suspect(master)
            raise InDoubtError(f"the transaction's master {view.names.get(master, master)} "
                               f"did not answer ({describe(e)}); it may or may not have run "
                               f"it") from e
        if reply[0] == b"watch":
            raise Aborted
        version, values = reply[1], _exact(reply[2], reply[3])
        if written:
            yield from self._replicate(view, master, written, version, level)
        return values

    def _replicate(self, view: View, source: str, keys: Sequence[Any], version: Any,
                   level: WriteQuorum) -> Steps:
        """Every copy of ``keys`` by the ring in force gets ``source``'s
        state of them (which holds the transaction's effect)."""
        requests = self.requests
        view = yield from requests.follower.follow()
        groups: dict[tuple[str, ...], list[Any]] = {}  # keys by the copies they go to
        for key in keys:
            route = view.route(key)
            groups.setdefault(tuple(n for n in route.direct + route.copy_to if n != source),
                              []).append(key)
        missed: dict[Any, dict[str, str]] = {}  # key -> {copy that missed it: why}
        for targets, group in groups.items():
            try:
                failed = yield from steps.sync_keys(source, list(targets), group, view.token)
            except (*DOWN_ERRORS, ResponseError) as e:  # the source: every copy missed it
                failed = {t: describe(e) for t in targets}
            missed.update(dict.fromkeys(group, failed))
        all_held = True
        for key in keys:
            route = view.route(key)
            failures = {view.names.get(n, n): f"missed the write and was not repaired yet: "
                        f"{why}" for n, why in missed[key].items()}
            held = {source, *(n for n in route.direct + route.copy_to
                              if n not in missed[key])}
            all_held = requests._check_quorum([key], route, held, failures, level) and all_held
        if all_held and view.route(keys[0]).direct[0] == source:
            requests.repairs.settle(source, keys, version)

    # ------------------------------------------------------ across masters
    def _across(self, view: View, data: Sequence[Queued], watched: dict[Any, str],
                level: WriteQuorum) -> Steps:
        written = _unique(k for q in data if q.writes for k in q.keys)
        keys = written + [k for k in _unique(k for q in data for k in q.keys)
                          if k not in written]

        def compute(coordinator: str, states: dict[Any, tuple]) -> Steps:
            """The commands over copies of the keys, in the coordinator's
            scratch database. -> (replies, {written key: (value, expiry)})."""
            values, results, texts = yield Execute(coordinator, (
                "EVAL", TXN_SCRATCH, 0, len(keys), *scratch_states(keys, states),
                len(written), *_command_args(data)))
            return _exact(values, texts), dict(zip(written, results, strict=True))

        return (yield from self.across(view, keys, watched, compute, level))

    def _sequential(self, view: View, data: Sequence[Queued], watched: dict[Any, str],
                    level: WriteQuorum) -> Steps:
        """A transaction with EVAL or EVALSHA: under the cross-node protocol
        (even on one master: a script cannot run inside another), its
        commands run in order over copies of the keys' states that this
        process carries from one step to the next: each run of plain
        commands in one TXN_SCRATCH, each script in the scripts' wrapper."""
        keys = _unique(k for q in data for k in q.keys)
        if not keys:  # only scripts that touch no key: nothing to lock
            if watched and (yield from self.versions(list(watched))) != watched:
                raise Aborted
            replies = []
            for q in data:
                try:
                    replies.append((yield from self.requests.userscripts.command(
                        q.spec, q.run, level)))
                except CommandError as e:
                    replies.append(e)
            return replies

        def compute(coordinator: str, states: dict[Any, tuple]) -> Steps:
            triples = scratch_states(keys, states)
            current = {triples[i]: tuple(triples[i + 1:i + 3])
                       for i in range(0, len(triples), 3)}
            replies: list[Any] = []
            written: list[Any] = []
            segment: list[Queued] = []

            def flush() -> Steps:
                if not segment:
                    return
                wrote = _unique(k for q in segment if q.writes for k in q.keys)
                here = wrote + [k for k in _unique(k for q in segment for k in q.keys)
                                if k not in wrote]
                values, results, texts = yield Execute(coordinator, (
                    "EVAL", TXN_SCRATCH, 0, len(here),
                    *(x for k in here for x in (k, *current[k])), len(wrote),
                    *_command_args(segment)))
                replies.extend(_exact(values, texts))
                current.update(zip(wrote, (tuple(r) for r in results), strict=True))
                written.extend(wrote)
                segment.clear()

            for q in data:
                if q.spec.name not in _SCRIPTS:
                    segment.append(q)
                    continue
                yield from flush()
                value, wrote = yield from self.requests.userscripts.in_transaction(
                    view, coordinator, q.run, current)
                replies.append(value)
                written.extend(wrote)
            yield from flush()
            return replies, {k: current[k] for k in _unique(written)}

        return (yield from self.across(view, keys, watched, compute, level))

    def across(self, view: View, keys: Sequence[Any], watched: dict[Any, str], compute,
               level: WriteQuorum) -> Steps:
        """Lock ``keys`` (and the WATCHed ones) on their masters, run
        ``compute(coordinator, states)`` (steps returning the reply and the
        written keys' new states), commit, apply: the protocol of
        ``docs/transactions.md``, for a transaction or a script. -> the reply."""
        parts: dict[str, list[Any]] = {}  # master -> the keys it locks (WATCHed ones too)
        for key in [*keys, *(k for k in watched if k not in keys)]:
            parts.setdefault(view.route(key).direct[0], []).append(key)
        coordinator = view.route(keys[0]).direct[0]
        order = [coordinator, *sorted(n for n in parts if n != coordinator)]
        txid = secrets.token_hex(8)
        owner = f"{txid} {coordinator} {int(time.time() * 1000)}"
        states: dict[Any, tuple] = {}
        locked: list[str] = []
        try:
            for node in order:
                here = parts[node]
                mine = {k: v for k, v in watched.items() if view.route(k).direct[0] == node}
                reply = yield Execute(node, ("EVAL", TXN_LOCK, len(here), *here, view.token,
                                             owner, "1" if node == coordinator else "0",
                                             *_watch_args(mine)))
                if reply[0] == b"busy":
                    raise Locked(node, _text(reply[1]), here[0])
                if reply[0] == b"watch":
                    raise Aborted
                locked.append(node)
                states.update(zip(here, reply[1:], strict=True))
        except Exception as e:
            yield from self._unlock(parts, locked, owner)
            if isinstance(e, ResponseError) and _stale(e):
                raise Retry from e
            if isinstance(e, DOWN_ERRORS):
                self.requests.suspects.suspect(node)
                raise UnavailableError(printable(parts[node][0] if parts[node] else txid), {
                    view.names.get(node, node): describe(e)},
                    needed="every master of the transaction's keys") from e
            raise
        try:
            values, after = yield from compute(coordinator, states)
        except Exception:
            yield from self._unlock(parts, locked, owner, txid)
            raise
        try:
            decided = yield Execute(coordinator, (
                "EVAL", TXN_COMMIT, 0, txid,
                *(x for key, (value, at) in after.items() for x in (key, value, at))))
        except ResponseError:  # the script did not run (BUSY, LOADING...): still pending
            yield from self._unlock(parts, locked, owner, txid)
            raise Retry from None
        except DOWN_ERRORS:
            # It may have committed: the locks stay until the decision is known
            # (only TXN_APPLY, under them, can apply a committed record).
            decided = yield from self._decision(view, coordinator, txid)
        if decided != b"commit":  # a resolver presumed us dead and aborted it
            yield from self._unlock(parts, locked, owner)
            raise Retry
        replies = []  # every master's part first, then the copies
        for node in order:
            here = parts[node]
            changed = [k for k in here if k in after]
            try:
                reply = yield Execute(node, (
                    "EVAL", TXN_APPLY, len(here), *changed,
                    *(k for k in here if k not in after), owner, view.token, len(changed),
                    *(x for k in changed for x in after[k])))
            except (*DOWN_ERRORS, ResponseError) as e:
                raise InDoubtError(f"the transaction committed, but "
                                   f"{view.names.get(node, node)} did not take its part "
                                   f"({describe(e)}); the first DTServer to meet its locks "
                                   f"after {STALE_LOCK_S:.0f} s applies it") from e
            replies.append((node, changed, reply[0]))
        missed: list[QuorumError] = []
        for node, changed, version in replies:
            if changed:
                try:
                    yield from self._replicate(view, node, changed, version, level)
                except QuorumError as e:
                    missed.append(e)
        if missed:  # in force on every master; some copies are repaired later
            raise missed[0]
        return values

    def _decision(self, view: View, coordinator: str, txid: str) -> Steps:
        """The commit's reply was lost: ask the coordinator (aborting the
        transaction if it is still pending, so the answer is final). If it
        does not answer within :data:`LOCK_WAIT_S`, the locks stay for the
        resolvers and the client is told."""
        since = time.monotonic()
        while time.monotonic() - since < LOCK_WAIT_S:
            try:
                decision = yield Execute(coordinator, ("EVAL", TXN_RESOLVE, 0, txid))
                return decision[0]
            except (*DOWN_ERRORS, ResponseError):
                yield Pause(0.1)
        raise InDoubtError(f"the transaction's coordinator "
                           f"{view.names.get(coordinator, coordinator)} did not answer at its "
                           f"commit point; whichever way it decided, the first DTServer to "
                           f"meet its locks after {STALE_LOCK_S:.0f} s finishes it")

    def _unlock(self, parts: dict[str, list[Any]], nodes: Sequence[str], owner: str,
                txid: str | None = None) -> Steps:
        """Release the locks (before the commit point, or after an abort);
        with ``txid``, also forget the pending record on the coordinator."""
        if txid and nodes:
            try:
                yield Execute(nodes[0], ("EVAL", TXN_DROP, 0, txid))
            except (*DOWN_ERRORS, ResponseError):
                pass  # it expires within the hour
        for node in nodes:
            if parts[node]:
                try:
                    yield Execute(node, ("EVAL", TXN_UNLOCK, len(parts[node]), *parts[node],
                                         owner))
                except (*DOWN_ERRORS, ResponseError):
                    pass  # its locks go stale and are resolved (aborted) by whoever meets them

    # ---------------------------------------------------- locks met by others
    def wait(self, locked: Locked, since: float) -> Steps:
        """Wait for ``locked``'s transaction to finish: a short backoff, or
        its resolution when the lock is older than :data:`STALE_LOCK_S` (its
        DTServer may have died). After :data:`LOCK_WAIT_S` in all,
        :class:`RingChangingError` (TRYAGAIN)."""
        if time.monotonic() - since > LOCK_WAIT_S:
            raise RingChangingError(f"{printable(locked.key)!r} stayed locked by a transaction "
                                    f"for {LOCK_WAIT_S:.0f} s; retry")
        if locked.age_s > STALE_LOCK_S:
            try:
                yield from self.resolve(locked.node, locked.owner)
                return
            except (*DOWN_ERRORS, ResponseError):
                pass  # its coordinator does not answer yet: wait
        yield Pause(0.002 + 0.01 * random.random())

    def resolve(self, node: str, owner: str) -> Steps:
        """Finish (committed) or roll back (not) the transaction ``owner``
        names, for its keys locked on ``node``."""
        locks = yield Execute(node, ("EVAL", TXN_LOCKS, 0))
        keys = [locks[i] for i in range(0, len(locks), 2) if _text(locks[i + 1]) == owner]
        if not keys:
            return
        txid, coordinator = owner.split()[:2]
        view = yield from self.requests.follower.follow()
        if coordinator not in view.state.members():
            # Its backend left the ring (failed for good): the record went
            # with it, so the transaction is rolled back here (see
            # docs/transactions.md, what is not covered).
            decision = [b"abort"]
        else:
            decision = yield Execute(coordinator, ("EVAL", TXN_RESOLVE, 0, txid, *keys))
        if decision[0] != b"commit":
            yield Execute(node, ("EVAL", TXN_UNLOCK, len(keys), *keys, owner))
            return
        changed = [k for k, d in zip(keys, decision[1], strict=True) if int(d[0]) == 1]
        after = {k: d[1:] for k, d in zip(keys, decision[1], strict=True) if int(d[0]) == 1}
        reply = yield Execute(node, ("EVAL", TXN_APPLY, len(keys), *changed,
                                     *(k for k in keys if k not in after), owner, view.token,
                                     len(changed), *(x for k in changed for x in after[k])))
        if changed and int(reply[1]):
            view = yield from self.requests.follower.follow()
            yield from self._replicate(view, node, changed, reply[0], WriteQuorum.ONE)

    def sweep(self, node: str) -> Steps:
        """Resolve every lock on ``node`` older than :data:`STALE_LOCK_S`
        (the repair thread runs this on every member). -> how many owners."""
        locks = yield Execute(node, ("EVAL", TXN_LOCKS, 0))
        owners = {_text(locks[i + 1]) for i in range(0, len(locks), 2)}
        stale = [o for o in owners if _age_s(o) > STALE_LOCK_S]
        for owner in stale:
            try:
                yield from self.resolve(node, owner)
            except (*DOWN_ERRORS, ResponseError, DtriadError):
                continue  # its coordinator does not answer yet; the others go on
        return len(stale)


class Retry(Exception):
    """Nothing was applied; run the transaction again (the ring moved, or a
    resolver aborted it)."""


def scratch_states(keys: Sequence[Any], states: dict[Any, tuple]) -> list:
    """``keys``' states as read under their locks (version, value, ms to
    live) as (key, value or '', absolute expiry in ms or 0) triples."""
    now_ms = int(time.time() * 1000)
    out: list[Any] = []
    for key in keys:
        _, value, ttl = states[key]
        out += [key, value or b"", now_ms + int(ttl) if int(ttl) > 0 else 0]
    return out


def _exact(values: list, texts: Sequence[int]) -> list:
    """Replies with the integers a script sent as text (beyond 2^53) made integers."""
    for i in texts:
        try:
            values[int(i) - 1] = int(values[int(i) - 1])
        except (TypeError, ValueError):
            pass  # not a counter's text: the script's rounded number is all there is
    return values


def _unique(items) -> list:
    return list(dict.fromkeys(items))


def _watch_args(watched: dict[Any, str]) -> list:
    return [len(watched), *(x for key, version in watched.items() for x in (key, version))]


def _command_args(data: Sequence[Queued]) -> list:
    out: list[Any] = [len(data)]
    for q in data:
        out += [len(q.run), *q.run]
    return out


"""The replication protocol: every read and write of a key's copies.

The rules (the protocol and its argument are in ``docs/consistency.md``):

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

Every method that touches a backend is a generator of effects
(:mod:`dtriad.backends.outcome`), driven by :func:`dtriad.core.steps.run`
(threads) or :func:`~dtriad.core.steps.arun` (asyncio). Replies are raw Redis
replies (bytes, int, list, None); front ends encode them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from dtriad.backends.outcome import (
    DOWN_ERRORS,
    Execute,
    Fanout,
    Outcome,
    Pause,
    Steps,
    Suspects,
    describe,
)
from dtriad.config import ClusterConfig, ReadQuorum, WriteQuorum, required_copies
from dtriad.core import expiry, redis62, steps
from dtriad.core.commands import (
    API,
    METHODS,
    REDIS,
    Kind,
    RedisCommand,
    Routing,
    arity_error,
    keys_of,
    lookup,
    method_names,
)
from dtriad.core.follower import RingFollower
from dtriad.core.keyspace import Keyspace
from dtriad.core.repair import Repairs
from dtriad.core.scripts import (
    READ_VERSIONED,
    UNPACK,
    WRITE_BACKUP,
    WRITE_MASTER,
    WRITE_MASTER_IF,
)
from dtriad.core.spanning import Changed, Spanning, sort_patterns
from dtriad.core.transactions import Locked, Transactions, is_locked
from dtriad.core.userscripts import UserScripts
from dtriad.exceptions import (
    ArgumentError,
    CommandError,
    DtriadError,
    MasterMovedError,
    PartialWriteError,
    QuorumError,
    RingChangingError,
    UnavailableError,
    UnknownMethodError,
    ValueTooLargeError,
    command_name,
    printable,
)
from dtriad.placement.ringstate import Route, View


def read_first(suspects: Suspects, nodes: Sequence[str], command: tuple, key: Any) -> Steps:
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
    raise UnavailableError(printable(key), {n: failures[n] for n in nodes})


def _stale(error: BaseException | None) -> bool:
    """A backend refused a write: its fence says our ring is old."""
    return isinstance(error, ResponseError) and str(error).startswith("STALERING")


def _newest(outcomes: Sequence[Outcome]) -> Outcome:
    """The READ_VERSIONED answer with the highest version; max() keeps the
    first of equals, so ties go to ring order (the master first)."""
    return max(outcomes, key=lambda o: int(o.value[0]))


def _upper(value: Any) -> str:
    return printable(value).upper()


_RELATIVE_EXPIRY = {"expire", "pexpire", "setex", "psetex", "set", "getex", "restore"}


class _Stale(Exception):
    """The ring moved under a write that no copy applied: route it again."""



class Requests:
    """Checks, routes and replicates commands by the ring ``follower`` follows.

    ``suspects`` orders reads (a backend that failed moments ago is asked
    last) and lets a write fail fast when its master just failed; ``repairs``
    queues the keys a write left behind on some copy.
    """

    def __init__(self, config: ClusterConfig, follower: RingFollower, suspects: Suspects,
                 repairs: Repairs):
        self.config = config
        self.follower = follower
        self.suspects = suspects
        self.repairs = repairs
        self.spanning = Spanning(self)  # multi-key commands whose keys span nodes
        self.keyspace = Keyspace(self)  # SCAN, KEYS, FLUSHALL...: every member
        self.transactions = Transactions(self)  # MULTI/EXEC across masters
        self.userscripts = UserScripts(self)  # EVAL, EVALSHA, SCRIPT

    def first(self, nodes: Sequence[str], command: Sequence[Any], key: Any) -> Steps:
        """``(reply, node)`` of the first of ``nodes`` to answer (:func:`read_first`)."""
        return (yield from read_first(self.suspects, nodes, tuple(command), key))

    def argv_of(self, method: str, **args: Any) -> list[Any]:
        """The Redis argv of one of the HTTP API's methods
        (:data:`dtriad.core.commands.API`), from its named arguments."""
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
                    raise ArgumentError(f"{name} must be an integer, got {printable(value)!r}; "
                                        f"usage: {spec.usage}") from None
            argv.append(value)
        return argv

    def mget_argv(self, keys: Sequence[Any]) -> list[Any]:
        """The HTTP API's ``mget`` (its keys as one list) as a Redis argv."""
        if not keys:
            raise ArgumentError(f"missing argument 'key'; usage: {METHODS['mget'].usage}")
        return ["MGET", *keys]

    def mset_argv(self, keys: Sequence[Any], values: Sequence[Any]) -> list[Any]:
        """The HTTP API's ``mset`` (keys and values as two lists) as a Redis argv."""
        if not keys:
            raise ArgumentError(f"missing argument 'key'; usage: {METHODS['mset'].usage}")
        if len(keys) != len(values):
            raise ArgumentError(
                f"mset needs one value per key, got {len(keys)} keys and {len(values)} values")
        for key, value in zip(keys, values, strict=True):
            self.check_size("key", key)
            self.check_size("value", value)
        return ["MSET", *(x for pair in zip(keys, values, strict=True) for x in pair)]

    def command(self, argv: Sequence[Any], write_quorum: str | None = None,
                read_quorum: str | None = None) -> Steps:
        """Check, route and replicate one Redis command of :data:`dtriad.core.commands.REDIS`
        (not the front end's own, such as PING): the one request path of every
        front end. Replies are raw Redis replies."""
        spec = self.checked(argv)
        if spec.kind is Kind.LOCAL:
            raise CommandError(f"ERR '{spec.name}' is answered by the front end, not the ring")
        if spec.kind is Kind.SESSION:  # never on a pooled backend connection
            raise CommandError(f"ERR {spec.name.upper()} needs a connection of its own "
                               f"(transactions, blocking commands, pub/sub): send it to a "
                               f"DTServer's RESP port")
        early = redis62.refused(spec, argv)
        if early is not None:
            return early
        if spec.name == "xgroup" and redis62.xgroup_error(argv, True):
            exists = len(argv) >= 4 and bool((yield from self._routed(
                REDIS["EXISTS"], ["EXISTS", argv[2]], write_quorum, read_quorum)))
            raise CommandError(redis62.xgroup_error(argv, exists))
        reply = yield from self._routed(spec, argv, write_quorum, read_quorum)
        return redis62.as_62(spec, argv, reply)

    def _routed(self, spec: RedisCommand, argv: Sequence[Any], write_quorum: str | None,
                read_quorum: str | None) -> Steps:
        if spec.kind is Kind.SCRIPT:
            return (yield from self.userscripts.command(
                spec, argv, self.level("write_quorum", write_quorum)))
        if spec.kind is Kind.CLUSTER:
            return (yield from self.keyspace.command(spec, argv))
        if spec.name == "sort_ro":  # Redis 7's read-only SORT, sent to 6.2 backends as SORT
            if any(_upper(a) == "STORE" for a in argv[2:]):
                raise CommandError("ERR syntax error")
            argv = ["SORT", *argv[1:]]
        keys = keys_of(spec, argv)
        if not keys:  # a subcommand that names no key (OBJECT HELP, XINFO HELP...)
            view = yield from self.follower.follow()
            value, _ = yield from read_first(self.suspects, view.ring.nodes, tuple(argv),
                                             argv[0])
            return value
        if spec.name == "pfcount" and len(keys) == 1:  # it caches the count in the key
            level = self.level("write_quorum", write_quorum)
            return (yield from self.write(keys, argv, level))
        reads = spec.kind is Kind.READ or (spec.route is Routing.MULTI and len(keys) == 1
                                           and spec.name in ("sort", "georadius",
                                                             "georadiusbymember"))
        if reads:
            level = self.level("read_quorum", read_quorum)
            if spec.route is Routing.SINGLE or (spec.route is Routing.MULTI and len(keys) == 1
                                                and not sort_patterns(spec, argv)):
                return (yield from self.read(keys[0], argv, level))
            if spec.route is Routing.MGET:
                return (yield from self.mget(argv[1:], level))
            if spec.route is Routing.EACH:
                return sum((yield from self.each(spec, argv[1:], level)))
            return (yield from self.spanning.read(spec, keys, argv))
        level = self.level("write_quorum", write_quorum)
        if spec.name in _RELATIVE_EXPIRY:  # every copy gets the same absolute expiry
            argv = expiry.absolute(argv, int(time.time() * 1000))
        if spec.route is Routing.SINGLE:
            return (yield from self.write(keys[:1], argv, level, replay=not spec.random))
        if spec.route is Routing.PAIRS:
            return (yield from self.mset(argv[1::2], argv[2::2], level))
        if spec.route is Routing.EACH:
            return sum((yield from self.each(spec, argv[1:], level)))
        return (yield from self.spanning.write(spec, keys, argv, level))

    def checked(self, argv: Sequence[Any]) -> RedisCommand:
        """The command's spec, once its name, arity and sizes are acceptable;
        errors read as Redis's own (``ERR wrong number of arguments ...``)."""
        if not argv:
            raise CommandError("ERR empty command")
        spec = lookup(argv[0])
        if spec is None:
            raise CommandError(f"ERR unknown or unsupported command '{command_name(argv[0])}'")
        problem = arity_error(spec, len(argv))
        if problem:
            raise CommandError(problem)
        for value in argv[1:]:
            self.check_size("an argument" if spec.route is Routing.NONE else "value", value)
        if spec.name == "copy":  # the only data command that names another database
            for i in range(3, len(argv) - 1):
                try:
                    index = int(argv[i + 1]) if _upper(argv[i]) == "DB" else 0
                except ValueError:
                    continue  # Redis answers: not an integer
                if index != 0:
                    raise CommandError("ERR COPY ... DB is not allowed: dtriad serves "
                                       "database 0 only")
        if spec.name == "setrange":
            try:
                end = int(argv[2]) + len(argv[3])
            except ValueError:
                end = 0  # Redis itself answers: not an integer
            if end > self.config.max_value_bytes:
                raise ValueTooLargeError("the value SETRANGE would make", end,
                                         self.config.max_value_bytes)
        return spec

    def level(self, name: str, value: str | None) -> ReadQuorum | WriteQuorum:
        """A request's ``read_quorum`` or ``write_quorum``, or the cluster's
        when it gives none."""
        if value is None or value == "":
            return getattr(self.config, name)
        kind = WriteQuorum if name == "write_quorum" else ReadQuorum
        try:
            return kind(value)
        except ValueError:
            raise ArgumentError(f"{name} must be one of {', '.join(kind)}, "
                                f"got {value!r}") from None

    def check_size(self, what: str, value: str | bytes | int) -> None:
        limit = self.config.max_value_bytes
        if isinstance(value, int):
            return
        size = len(value.encode("utf-8")) if isinstance(value, str) else len(value)
        if size > limit:
            raise ValueTooLargeError(what, size, limit)

    def read(self, key: Any, command: Sequence[Any], level: ReadQuorum) -> Steps:
        """``read_quorum`` one: master first, then backups in ring order, the
        first answer wins (suspected backends last). quorum: see
        :meth:`_quorum_read`."""
        route = (yield from self.follower.follow()).route(key)
        if level == ReadQuorum.QUORUM:
            return (yield from self._quorum_read(key, route, command))
        value, _ = yield from read_first(self.suspects, route.read, tuple(command), key)
        return value

    def _quorum_read(self, key: Any, route: Route, command: Sequence[Any]) -> Steps:
        """Ask every full copy at once; a majority must answer. The newest
        version answers (ties: ring order) and older or differing copies are
        repaired from it before returning."""
        copies = route.direct
        required = required_copies(len(copies), ReadQuorum.QUORUM)
        outcomes = yield Fanout(copies, ("EVAL", READ_VERSIONED, 1, key, *command))
        answered = [o for o in outcomes if o.ok]
        if len(answered) < required:
            names = self.follower.view.names
            raise UnavailableError(printable(key), {
                names.get(o.node, o.node): describe(o.error) for o in outcomes if not o.ok},
                needed=f"{required} of {len(copies)} copies for a quorum read")
        newest = _newest(answered)
        stale = [o.node for o in answered if o.value != newest.value]
        if stale:
            failures: dict[str, str] = {}
            token = self.follower.view.token
            for node in stale:
                yield from self._sync([key], newest.node, node, token, failures)
        _, ok, reply = newest.value
        if not ok:
            raise CommandError.from_redis(ResponseError(printable(reply)))
        return reply

    def write(self, keys: Sequence[Any], command: Sequence[Any], level: WriteQuorum,
              attempts: int = 8, replay: bool = True, expect: str | None = None) -> Steps:
        """One replicated write of ``command`` on ``keys`` (keys of one route).

        With ``replay`` false (a command whose effect is not fixed by its
        arguments: SPOP, XADD *...), the backups get the master's resulting
        state instead of the command. With ``expect``, the master applies it
        only if ``keys[0]`` is still at that version, else :class:`Changed`.

        A write refused by a fence is routed again by the newest ring the
        backends hold. If they hold none newer yet (the DTSentinel has fenced
        the members and not yet stored the ring, ``docs/membership.md``), it
        backs off (10 ms, doubling up to 200 ms: 0.7 s in all) rather than
        fail at once."""
        attempt, since = 0, time.monotonic()
        while attempt < attempts:
            view = yield from self.follower.follow()
            try:
                return (yield from self._write_once(view, keys, command, level, replay,
                                                    expect))
            except Locked as e:  # a cross-node transaction holds a key: wait for it
                yield from self.transactions.wait(e, since)
                continue
            except _Stale:
                if not (yield from self.follower.refresh()) and attempt + 1 < attempts:
                    yield Pause(min(0.2, 0.01 * 2 ** attempt))
            attempt += 1
        raise RingChangingError(f"the ring changed {attempts} times during one write to "
                                f"{printable(keys[0])!r}; retry")

    def _write_once(self, view: View, keys: Sequence[Any], command: Sequence[Any],
                    level: WriteQuorum, replay: bool = True,
                    expect: str | None = None) -> Steps:
        route = view.route(keys[0])
        master, names = route.direct[0], view.names
        failures: dict[str, str] = {}
        if self.suspects.suspected(master):
            failures[names.get(master, master)] = ("the key's master failed moments ago; "
                                                   "writes resume once it answers or the "
                                                   "ring replaces it")
            self._check_quorum(keys, route, set(), failures, level, sent=False)
        try:
            script, check = (WRITE_MASTER, ()) if expect is None else (WRITE_MASTER_IF, (expect,))
            reply = yield Execute(master, ("EVAL", script, len(keys), *keys,
                                           view.token, *check, *command))
        except ResponseError as e:
            if _stale(e):
                raise _Stale from e
            if str(e).startswith("DTCHANGED"):
                raise Changed(printable(keys[0])) from e
            if is_locked(e):
                raise Locked.from_error(master, e, keys[0]) from e
            raise CommandError.from_redis(e) from e
        except DOWN_ERRORS as e:
            self.suspects.suspect(master)
            failures[names.get(master, master)] = (
                f"the key's master: {describe(e)}; it may have applied the write")
            self._check_quorum(keys, route, set(), failures, level)
            raise  # unreachable: no copy holds the write
        raw, version, previous = reply[0], reply[1], reply[2:2 + len(keys)]
        # A reply beyond 2^53 is re-read as text by the script (Lua numbers are doubles)
        result = int(raw) if len(reply) > 2 + len(keys) else raw
        backups = route.direct[1:]
        if not replay:  # the master's effect, not the command again
            outcomes = [Outcome(node, value=(b"state",)) for node in backups]
        else:
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

    def _ring_moved(self, keys: Sequence[Any], master: str, result: Any,
                    level: WriteQuorum, attempts: int = 8) -> Steps:
        """The master applied a write but a backup's fence says the ring moved.

        If the new ring keeps the same master, its history still holds: every
        copy of the new route gets its state. Otherwise the write is *not*
        routed again: the new master may already hold it (a migration copied
        the old master's state), and applying it there again would apply it
        twice (the fault suite caught an INCR counted twice this way). The
        caller gets an ambiguous error, and the key is queued for repair.

        The DTSentinel fences every member before it stores the new ring, so
        the backends may not hold the ring the backup was fenced to yet: the
        copies are then refused again, and it backs off as :meth:`write` does
        (10 ms doubling, 8 attempts) until the ring is stored."""
        for attempt in range(attempts):
            newer = yield from self.follower.refresh()
            view = yield from self.follower.follow()
            route = view.route(keys[0])
            if route.direct[0] != master:
                self.repairs.add(keys)
                raise MasterMovedError(printable(keys[0]))
            failures: dict[str, str] = {}
            held = {master}
            for node in route.direct[1:] + route.copy_to:
                if (yield from self._sync(keys, master, node, view.token, failures)):
                    held.add(node)
            fenced = any("STALERING" in why for why in failures.values())
            if not fenced or attempt + 1 == attempts:
                break
            if not newer:
                yield Pause(min(0.2, 0.01 * 2 ** attempt))
        self._check_quorum(keys, route, held, failures, level)
        return result

    def _check_quorum(self, keys: Sequence[Any], route: Route, held: set[str],
                      failures: dict[str, str], level: WriteQuorum, sent: bool = True) -> bool:
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
            names = self.follower.view.names
            missing = {names.get(n, n): failures.get(names.get(n, n), "did not take it")
                       for n in owners if n not in held}
            total, authority = len(owners), route.direct[0]
            if authority not in owners:  # it is leaving the key; a migration copies it on
                total += 1
                copies += authority in held
            raise QuorumError(printable(keys[0]), copies, required, total, missing)
        return False

    def _sync(self, keys: Sequence[Any], source: str, target: str, token: int,
              failures: dict[str, str], bump_at_most: int | None = None) -> Steps:
        """Give ``target`` ``source``'s state of ``keys`` (:func:`dtriad.core.steps.sync_key`)."""
        settled, why = True, "kept changing under concurrent writes"
        try:
            for key in keys:
                settled = (yield from steps.sync_key(source, target, key, token,
                                                     bump_at_most=bump_at_most)) and settled
        except (*DOWN_ERRORS, ResponseError) as e:
            settled, why = False, describe(e)
        if not settled:
            name = self.follower.view.names.get(target, target)
            failures[name] = f"missed the write and was not repaired yet: {why}"
        return settled

    def reconcile(self, key: Any) -> Steps:
        """Make every full copy of ``key`` equal the newest one (highest
        version; ties go to ring order, so the master). True when all agree."""
        view = yield from self.follower.follow()
        route = view.route(key)
        outcomes = yield Fanout(route.direct, ("EVAL", READ_VERSIONED, 1, key, "EXISTS", key))
        if not all(o.ok for o in outcomes):
            return False
        newest = _newest(outcomes).node
        seen = {o.node: int(o.value[0]) for o in outcomes}
        failures: dict[str, str] = {}
        agreed = True
        for node in route.direct + route.copy_to:
            if node != newest:
                # A copy past the version read here took a write since (the
                # fault suite lost an acknowledged SADD when this bumped the
                # older "newest" over it): not settled now, read again later.
                agreed = (yield from self._sync([key], newest, node, view.token, failures,
                                                bump_at_most=seen.get(node))) and agreed
        return agreed

    def each(self, spec: RedisCommand, keys: Sequence[Any],
             level: ReadQuorum | WriteQuorum) -> Steps:
        """A command whose every argument is a key (DEL, UNLINK, EXISTS), run
        once per group of keys sharing copies; one reply per group."""
        view = yield from self.follower.follow()
        if spec.kind is Kind.READ and level == ReadQuorum.QUORUM:
            return (yield from self._quorum_reads(view, keys, spec.name))
        groups: dict[Route, list[Any]] = {}
        for key in keys:
            groups.setdefault(view.route(key), []).append(key)
        replies = []
        for route, group in groups.items():
            if spec.kind is Kind.READ:
                value, _ = yield from read_first(self.suspects, route.read,
                                                 (spec.name, *group), group[0])
            else:
                value = yield from self.write(group, (spec.name, *group), level)
            replies.append(value)
        return replies

    def _quorum_reads(self, view: View, keys: Sequence[Any], command: str) -> Steps:
        replies = []
        for key in keys:
            replies.append((yield from self._quorum_read(key, view.route(key), (command, key))))
        return replies

    def mget(self, keys: Sequence[Any], level: ReadQuorum) -> Steps:
        """Values of ``keys`` in order; one MGET per group of keys sharing copies
        (with ``read_quorum`` quorum, one quorum read per key)."""
        view = yield from self.follower.follow()
        if level == ReadQuorum.QUORUM:
            return (yield from self._quorum_reads(view, keys, "GET"))
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(view.route(key).read, []).append(i)
        result: list[Any] = [None] * len(keys)
        for nodes, indexes in groups.items():
            group_keys = [keys[i] for i in indexes]
            values, _ = yield from read_first(self.suspects, nodes, ("MGET", *group_keys),
                                              group_keys[0])
            for i, value in zip(indexes, values, strict=True):
                result[i] = value
        return result

    def mset(self, keys: Sequence[Any], values: Sequence[Any], level: WriteQuorum) -> Steps:
        """All or nothing, as Redis's MSET: keys sharing copies are one
        replicated MSET; keys on several masters run under the transaction
        protocol (``docs/transactions.md``). An MSET too large for one
        transaction (over ``UNPACK`` arguments) goes group by group, and if a
        node fails midway the error says exactly which groups were written."""
        view = yield from self.follower.follow()
        groups: dict[Route, dict[Any, Any]] = {}
        for key, value in zip(keys, values, strict=True):
            groups.setdefault(view.route(key), {})[key] = value  # the last of a repeated key
        flat = [item for pair in zip(keys, values, strict=True) for item in pair]
        if len(groups) > 1 and len(flat) < UNPACK:
            return (yield from self.transactions.atomic(["MSET", *flat], level))
        written: list[str] = []
        for route, pairs in groups.items():
            flat = [item for pair in pairs.items() for item in pair]
            try:
                yield from self.write(list(pairs), ("MSET", *flat), level)
            except DtriadError as e:
                if not written:
                    raise
                node = view.names.get(route.direct[0], route.direct[0])
                raise PartialWriteError(
                    f"MSET wrote the keys mastered by {', '.join(written)} and then failed "
                    f"on the keys mastered by {node} ({e.line}); the keys of the nodes after "
                    f"it were not written (an MSET of over {UNPACK // 2} keys is split by "
                    f"node)") from e
            written.append(view.names.get(route.direct[0], route.direct[0]))
        return b"OK"

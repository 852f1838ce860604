"""DTSentinel: turns Redis Sentinel's view of the backends into ring changes.

Redis Sentinel monitors every backend (each registered as its own "master").
The DTSentinel subscribes to its pub/sub (``+monitor``, ``+sdown``/``-sdown``,
``+odown``/``-odown``), but events are only a trigger: each step re-reads the
monitored set from every reachable Sentinel (``SENTINEL MASTERS``), keeps only
backends named in the cluster file at the address the file gives, and probes
each itself (its ``run_id`` and stored ring). A step acts only if this
DTSentinel holds the lease (:mod:`dtriad.membership.leader`) and no backend holds a
newer ring than its own; it then moves the ring towards the live set, one
migration at a time:

1. copy out arcs whose only copy is on a returning node, then wipe joiners;
2. put the pending ring in force: fence every member at its token, then
   store it in the backends, then push it to every DTServer;
3. copy the arcs of the plan, server to server (:class:`Executor`), each
   key's newest surviving copy first where a master was lost;
4. commit: persist the new ring and put it in force the same way;
5. clean up copies that no longer belong anywhere.

Why this order keeps one master per key, whatever step it stops at, is in
``docs/membership.md``. Progress is persisted after every step and batch
group, so a DTSentinel killed at any point finishes the job when restarted.
A membership change during a copy interrupts it; the next step plans again
from the committed ring to the new live set (the abandoned ring's nodes are
cleaned too).

A backend seen down while in the ring, or answering as another incarnation
than the ring admitted (it restarted), is *tainted*: it leaves the ring, and
when it comes back it joins afresh (wiped), never served with stale data.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from dtriad import logs
from dtriad.backends.client import DTClient
from dtriad.backends.outcome import DOWN_ERRORS, describe, run_id_of
from dtriad.config import ClusterConfig, parse_address
from dtriad.core.follower import RingCheck, read_rings
from dtriad.core.scripts import READ_META, VERSION_DB
from dtriad.core.steps import run
from dtriad.membership.executor import Executor, Interrupted, Rate, push
from dtriad.membership.leader import Lease, holder_id
from dtriad.membership.metrics import SentinelMetrics
from dtriad.placement.planner import Cleanup, Plan, Transfer, plan, strays
from dtriad.placement.ring import Ring
from dtriad.placement.ringstate import Member, RingState

log = logging.getLogger("dtriad.membership.dtsentinel")
EVENTS = ("+monitor", "+sdown", "-sdown", "+odown", "-odown", "+reset-master")


class Phase(enum.Enum):
    IDLE = "idle"
    COPYING = "copying"
    CLEANUP = "cleanup"


class Step(enum.Enum):
    """What one :meth:`DTSentinel.run_once` did; the value is how logs say it."""

    STANDBY = "standby"
    BOOTSTRAPPED = "bootstrapped"
    TOOK_OVER = "took over"
    ADOPTED = "adopted the cluster's newer ring"
    NO_SENTINEL = "no Sentinel reachable"
    WAITING = "waiting before declaring arcs lost"
    IDLE = "idle"
    NO_LIVE_NODE = "no live node to build a ring from"
    READMITTED = "readmitted"
    INTERRUPTED = "interrupted"
    COPY_FAILED = "copy failed"
    CLEANUP_FAILED = "cleanup failed"
    COMMITTED = "committed"
    ANNOUNCE_FAILED = "announce failed"
    UNVERIFIED = "no ring it can verify or build"

    @property
    def waits(self) -> bool:
        """Nothing more to do now: ``run_forever`` waits for a Sentinel event
        (or ``idle_wait``) before the next step."""
        return self in _WAITS


_WAITS = {Step.IDLE, Step.NO_SENTINEL, Step.NO_LIVE_NODE, Step.COPY_FAILED, Step.CLEANUP_FAILED,
          Step.ANNOUNCE_FAILED, Step.STANDBY, Step.WAITING, Step.UNVERIFIED}


class Unfenced(Exception):
    """A ring member could not be fenced at a new ring's token: the ring is
    not published until it is (or until it is known down and leaves)."""


def transfer_id(t: Transfer) -> str:
    return f"{t.source}>{t.destination}:{t.start:x}-{t.end:x}"


@dataclass
class Progress:
    """What the DTSentinel persists (``state.json``) to resume after a crash."""

    ring: RingState
    phase: Phase = Phase.IDLE
    done: set[str] = field(default_factory=set)
    cleanups: list[list] = field(default_factory=list)
    history: list[list[str]] = field(default_factory=list)
    tainted: set[str] = field(default_factory=set)
    lost: list[dict] = field(default_factory=list)
    last: dict | None = None

    def to_dict(self) -> dict:
        return {"ring": self.ring.to_dict(), "phase": self.phase.value,
                "done": sorted(self.done), "cleanups": self.cleanups, "history": self.history,
                "tainted": sorted(self.tainted), "lost": self.lost, "last": self.last}

    @classmethod
    def from_dict(cls, data: dict) -> Progress:
        return cls(RingState.from_dict(data["ring"]), Phase(data["phase"]), set(data["done"]),
                   data["cleanups"], data["history"], set(data["tainted"]), data["lost"],
                   data.get("last"))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
        os.replace(tmp, path)


class SentinelView:
    """Every configured Redis Sentinel: the monitored backends, and their events."""

    def __init__(self, addresses: list[str], password: str | None, timeout: float = 1.0):
        self.clients = []
        for address in addresses:
            host, port = parse_address(address)
            self.clients.append(redis.Redis(host=host, port=port, password=password,
                                            socket_timeout=timeout,
                                            socket_connect_timeout=timeout))
        self.quorum_mode = len(addresses) > 1
        self._pubsubs: dict[int, redis.client.PubSub] = {}

    def down_flags(self) -> dict[str, tuple[str, bool]] | None:
        """``name -> ("ip:port", down)`` merged over the reachable Sentinels.

        With one Sentinel, down means subjectively down; with several, down
        means objectively down (a quorum agreed). None if none answers.
        """
        merged: dict[str, tuple[str, bool]] = {}
        answered = False
        for client in self.clients:
            try:
                masters = client.sentinel_masters()
            except DOWN_ERRORS:
                continue
            answered = True
            for name, info in masters.items():
                address = f"{info['ip']}:{info['port']}"
                down = bool(info.get("is_odown") if self.quorum_mode else info.get("is_sdown"))
                before = merged.get(name)
                merged[name] = (address, down or bool(before and before[1]))
        return merged if answered else None

    def wait_event(self, timeout: float) -> list[str]:
        """Events received within ``timeout`` (subscribing to Sentinels as needed)."""
        events: list[str] = []
        deadline = time.monotonic() + timeout
        for i, client in enumerate(self.clients):
            if i not in self._pubsubs:
                try:
                    pubsub = client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(*EVENTS)
                    self._pubsubs[i] = pubsub
                except DOWN_ERRORS:
                    continue
        while True:
            for i, pubsub in list(self._pubsubs.items()):
                try:
                    while (message := pubsub.get_message(timeout=0)) is not None:
                        channel = message["channel"]
                        data = message["data"]
                        events.append(f"{channel.decode()} {data.decode(errors='replace')}")
                except DOWN_ERRORS:
                    self._pubsubs.pop(i).close()
            left = deadline - time.monotonic()
            if events or left <= 0:
                return events
            time.sleep(min(0.05, left))

    def close(self) -> None:
        for pubsub in self._pubsubs.values():
            pubsub.close()
        for client in self.clients:
            client.close()


class DTSentinel:
    """The membership and migration loop. ``run_once`` does one step."""

    def __init__(self, cluster_file: str | os.PathLike, state_path: str | os.PathLike,
                 sentinels: SentinelView | None = None, push_timeout: float = 3.0,
                 settle: float = 1.5, sleep: Callable[[float], None] = time.sleep,
                 check_every: float = 0.3, lease_s: float = 4.0):
        self.cluster_file = Path(cluster_file)
        self.state_path = Path(state_path)
        self.config = ClusterConfig.load(self.cluster_file)
        self.check = RingCheck(self.config)  # which stored rings it may adopt
        self._unverified: str | None = None  # why it last would not bootstrap, as logged
        self.sentinels = sentinels if sentinels is not None else SentinelView(
            list(self.config.sentinels), self.config.sentinel_secret)
        auth = self.config.internal.kwargs()
        self.client = DTClient(**auth, timeout=10.0, cooldown=0)
        self.versions = DTClient(**auth, timeout=10.0, cooldown=0, db=VERSION_DB)
        self.executor = Executor(self.client, **auth, versions=self.versions)
        self.push_timeout = push_timeout
        self.settle = settle
        self.sleep = sleep
        self.check_every = check_every
        self.stopping = False
        self.restarted: dict[str, str] = {}  # ring members answering as another incarnation
        self.lease = Lease(self.client, holder_id(), duration=lease_s)
        self.executor.holder = self.lease.holder
        self.leading: bool | None = None  # None: not asked yet
        self._lost_since: float | None = None  # when arcs were first found with no copy
        self._kept: list[str] = []  # members kept as sole holders, for the log
        self.progress: Progress | None = None
        self.metrics = SentinelMetrics(probe=self._node_keys)
        self._seen = (0, 0)  # keys moved and transfers done, as last counted
        self._stored_token: int | None = None  # the newest ring token the backends hold
        if self.state_path.exists():
            self.progress = Progress.from_dict(json.loads(self.state_path.read_text()))
            log.info("resuming at epoch %d (phase %s)", self.progress.ring.epoch,
                     self.progress.phase.value)
        log.info("DTSentinel %s started", self.lease.holder)

    def _bootstrap(self) -> Step:
        """The first step as leader without a state file: take the newest
        ring the backends hold that verifies (else, in an upgrade, an unsigned
        one naming only the cluster file's nodes), or, if none holds a ring
        and none is fenced above it, publish the cluster file's. Otherwise
        wait: never bootstrap below the fences (docs/membership.md)."""
        stored = run(read_rings(list(self._catalog()), self.check), self.client)
        newest = stored.state
        if newest is None and stored.legacy is not None:
            newest = stored.legacy
            log.warning("taking over an unsigned ring (epoch %d), stored before rings were "
                        "signed: it names only the cluster file's nodes; it is signed when "
                        "announced", newest.epoch)
        if newest is not None:
            self.progress = Progress(newest)
            self._take_over(newest)
            log.info("took over the cluster's ring at epoch %d", newest.epoch)
            return Step.TOOK_OVER
        initial = RingState.initial(self.config)
        if stored.rejected or stored.fence > initial.token:
            why = (f"fenced at token {stored.fence}, above the cluster file's ring (token "
                   f"{initial.token}), and no ring it can verify is stored"
                   if not stored.rejected else
                   "they hold only rings it cannot verify: " + "; ".join(
                       f"{node}: {reason}" for node, reason in sorted(stored.rejected.items())))
            if why != self._unverified:
                self._unverified = why
                log.error("not bootstrapping from the cluster file: %s. Waiting for a ring "
                          "that verifies (run the DTSentinel that has its state file)", why)
            return Step.UNVERIFIED
        nodes = tuple(Member.of(n, (self._probe(n.redis) or (None, False))[0])
                      for n in self.config.nodes)
        self.progress = Progress(RingState(initial.epoch, initial.replicas, initial.vnodes,
                                           nodes))
        self.executor.publish(self._catalog(), self.progress.ring, self.config.secret)
        self._save()
        log.info("bootstrapped ring epoch %d with %d nodes", self.progress.ring.epoch,
                 len(self.progress.ring.nodes))
        return Step.BOOTSTRAPPED

    def _lead(self) -> bool:
        """Renew the lease; log when leadership changes hands."""
        leading = self.lease.renew(list(self._catalog()))
        self.metrics.leading.set(1 if leading else 0)
        if leading != self.leading:
            self.leading = leading
            if leading:
                log.info("leading: this DTSentinel holds the lease")
            else:
                log.info("standby: %s holds the lease", self.lease.other or "another DTSentinel")
        return leading

    def _still_leading(self) -> bool:
        """A stop check for long work: renew when due; False once the lease is lost."""
        if self.lease.due():
            self._lead()
        return self.lease.held()

    # ------------------------------------------------------------- the world
    def _catalog(self) -> dict[str, Member]:
        self.config = self.check.config = ClusterConfig.load(self.cluster_file)
        return {n.redis: Member.of(n) for n in self.config.nodes}

    def live(self) -> dict[str, Member] | None:
        """Backends Sentinel monitors and finds up, at the address the cluster file
        gives, each with its current incarnation. One that is not in the ring
        must also answer our own probe before it may join. One in the ring is
        down only when Sentinel says so (a probe lost between us and it must not
        evict it), or when it answers as another incarnation than the ring
        admitted, or without the ring's metadata: it restarted (or was flushed)
        and holds nothing the ring can trust (``self.restarted``). None if no
        Sentinel answers."""
        flags = self.sentinels.down_flags()
        if flags is None:
            return None
        catalog = {m.name: m for m in self._catalog().values()}
        admitted = self.progress.ring.members()
        committed = {m.redis for m in self.progress.ring.nodes}  # they hold a ring
        live, restarted = {}, {}
        for name, (address, down) in flags.items():
            member = catalog.get(name)
            if member is None or member.redis != address:
                log.warning("ignoring Sentinel's %s at %s: not in %s at that address",
                            name, address, self.cluster_file)
                continue
            if down:
                continue
            probe = self._probe(address)
            ours = admitted.get(address)
            if ours is None:
                if probe is not None:
                    live[address] = Member.of(member, probe[0])
                continue
            if probe is None:  # Sentinel finds it up: our probe was lost
                live[address] = Member(member.name, address, member.http, ours.run_id)
                continue
            run_id, has_ring = probe
            if ((ours.run_id is not None and run_id != ours.run_id)
                    or (address in committed and not has_ring)):
                if address not in self.restarted:
                    log.warning("%s restarted or lost its data (run_id %s, admitted as %s): "
                                "it leaves the ring and rejoins afresh", name, run_id,
                                ours.run_id)
                restarted[address] = run_id
                continue
            live[address] = Member(member.name, address, member.http, ours.run_id or run_id)
        self.restarted = restarted
        return live

    def _probe(self, address: str) -> tuple[str, bool] | None:
        """``(run_id, holds a ring)`` of a backend, or None if it does not answer."""
        try:
            info = self.client.execute(address, "INFO", "server")
            meta = self.client.execute(address, "EVAL", READ_META, 0)
        except (*DOWN_ERRORS, redis.ResponseError):
            return None
        return run_id_of(info), bool(meta[1])

    def _members(self) -> set[str]:
        ring = self.progress.ring
        return {m.redis for m in ring.nodes} | {m.redis for m in ring.pending or ()}

    def _save(self) -> None:
        self.progress.save(self.state_path)
        ring = self.progress.ring
        logs.context["epoch"] = ring.epoch
        self.metrics.epoch.set(ring.epoch)
        self.metrics.pending_epoch.set(ring.pending_epoch or 0)
        self.metrics.members.set(len(ring.nodes))

    def _node_keys(self) -> dict[str, int | None]:
        """Each ring member's key copies (DBSIZE), None if it does not answer."""
        out: dict[str, int | None] = {}
        for member in (self.progress.ring.nodes if self.progress else ()):
            try:
                out[member.name] = self.client.execute(member.redis, "DBSIZE")
            except DOWN_ERRORS:
                out[member.name] = None
        return out

    # ------------------------------------------------------------------ steps
    def run_once(self) -> Step:
        """One step towards the live set; returns what it did (for logs/tests).
        A ring that could not be put in force (:class:`Unfenced`) is announced
        again by a later step: every step that announces resumes from state."""
        try:
            return self._step()
        except Unfenced as e:
            log.warning("%s", e)
            return Step.ANNOUNCE_FAILED

    def _step(self) -> Step:
        if not self._lead():
            return Step.STANDBY
        if self.progress is None:
            return self._bootstrap()
        if self._behind():
            return Step.ADOPTED
        live = self.live()
        if live is None:
            return Step.NO_SENTINEL
        p = self.progress
        ring = p.ring
        members = self._members()
        newly = {n for n in members if n not in live} - p.tainted
        if newly:
            log.info("down: %s", ", ".join(sorted(newly)))
            p.tainted |= newly
            self._save()
        if p.phase is Phase.CLEANUP:  # resumed: make sure every DTServer has the commit
            self._announce(p.ring)
            return self._cleanup()
        # A node out of the ring holds nothing we trust: when back, it joins afresh.
        p.tainted = {n for n in p.tainted if n in members}
        target = {n: live[n] for n in live if n not in p.tainted}
        if not target:
            return self._readmit(live)
        target = self._keep_sole_holders(target)
        if target is None:
            return Step.WAITING
        if ring.pending is not None and {m.redis for m in ring.pending} == set(target):
            return self._migrate(resume=True)
        if ring.pending is None and {m.redis for m in ring.nodes} == set(target):
            if self._stored_token is None or self._stored_token < ring.token:
                # Our ring is not in force: its announce was refused (Unfenced,
                # e.g. a backend still held a stale lease); announce it again.
                log.info("epoch %d is not in force yet: announcing it again", ring.epoch)
                self._announce(ring)
                return Step.COMMITTED
            return Step.IDLE
        return self._migrate(target=target)

    def _keep_sole_holders(self, target: dict[str, Member]) -> dict[str, Member] | None:
        """Never declare live data lost. If the ring towards ``target`` would
        lose every copy of some arc, its old holders that still answer our own
        probe (as the incarnation the ring admitted) stay in the ring, whatever
        Sentinel says. If none answers, the arcs are committed as lost only
        after ``lost_after_ms`` (cluster file; 10 s by default) of silence;
        until then this returns None and the ring does not change: writes to
        those arcs fail with a clear error, and reads are served by any copy
        that answers."""
        p = self.progress
        new = Ring(list(target), p.ring.replicas, p.ring.vnodes)
        lost = plan(p.ring.ring(), new).lost
        if not lost:
            self._lost_since, self._kept = None, []
            return target
        admitted = p.ring.members()
        holders = {n for change in lost for n in change.old_owners}
        answering = {}
        for node in sorted(holders - set(target) - set(self.restarted)):
            probe = self._probe(node)
            member = admitted.get(node)
            if probe is not None and member is not None and probe[0] == member.run_id:
                answering[node] = member
        if answering:
            kept = sorted(m.name for m in answering.values())
            if kept != self._kept:
                log.warning("keeping %s in the ring: called down, but answering, and holding "
                            "the only copies of %d arcs", ", ".join(kept), len(lost))
                self._kept = kept
            p.tainted -= set(answering)
            return self._keep_sole_holders({**target, **answering})
        now = time.monotonic()
        if self._lost_since is None:
            self._lost_since = now
            log.error("%d arcs have no copy that answers; they are declared lost after "
                      "%.0f s unless a holder answers", len(lost), self._lost_after())
        if now - self._lost_since < self._lost_after():
            return None
        return target

    def _lost_after(self) -> float:
        return self.config.lost_after_ms / 1000

    def _behind(self) -> bool:
        """If the backends hold a newer ring than ours (another DTSentinel acted,
        or our state file is old), adopt it instead of acting on our own. Only
        a ring that verifies counts; an unsigned one naming only the cluster
        file's nodes counts too while no backend holds one that verifies (an
        upgrade: it is signed when announced)."""
        stored = run(read_rings(list(self._catalog()), self.check), self.client)
        newest = stored.state
        p = self.progress
        self._stored_token = newest.token if newest is not None else None
        if newest is None and stored.legacy is not None:
            newest = stored.legacy
        if newest is None or newest.token <= p.ring.token:
            return False
        log.warning("the cluster's ring (token %d) is newer than this DTSentinel's (token %d): "
                    "adopting it", newest.token, p.ring.token)
        p.ring, p.done, p.history = newest, set(), []
        p.tainted &= {m.redis for m in newest.nodes} | {m.redis for m in newest.pending or ()}
        self._take_over(newest)
        return True

    def _take_over(self, state: RingState) -> None:
        """Continue from a ring another DTSentinel put in force: a pending one
        is copied again (copies are idempotent); after a committed one, every
        copy it does not want is cleaned up (we do not know the ring before)."""
        p = self.progress
        if state.pending is not None:
            p.phase, p.cleanups = Phase.COPYING, []
        else:
            p.phase = Phase.CLEANUP
            p.cleanups = [[c.node, c.start, c.end] for c in strays(state.ring())]
        self._save()

    def _readmit(self, live: dict[str, Member]) -> Step:
        """Every member was seen down or restarted: none holds better data
        than another. Once every node of the committed ring answers again,
        they are admitted as they are (their current incarnations) in a new
        epoch, so the DTSentinel never stalls for good; until then it waits."""
        p = self.progress
        nodes = p.ring.nodes
        current = {**self.restarted, **{n: m.run_id for n, m in live.items()}}
        if not nodes or any(m.redis not in current for m in nodes):
            return Step.NO_LIVE_NODE
        epoch = (p.ring.pending_epoch or p.ring.epoch) + 1
        state = RingState(epoch, p.ring.replicas, p.ring.vnodes,
                          tuple(Member(m.name, m.redis, m.http, current[m.redis])
                                for m in nodes))
        if p.ring.pending is not None:
            p.history.append([m.redis for m in p.ring.pending])
        p.ring, p.phase, p.done, p.tainted = state, Phase.IDLE, set(), set()
        self._save()
        log.error("every member was down or restarted at once: epoch %d admits %s with the "
                  "data they hold now (run 'dtriad check --repair' to reconcile copies)",
                  epoch, _names(nodes))
        self._announce(state)
        return Step.READMITTED

    def _migrate(self, target: dict[str, Member] | None = None, resume: bool = False) -> Step:
        p = self.progress
        state = p.ring
        old = state.ring()
        self.executor.scan_count = self.config.migration_batch
        rate = self.config.migration_max_keys_per_s
        self.executor.max_keys_per_s = float(rate) if rate else None
        if not resume:
            if state.pending is not None:  # abandoned: its nodes may hold copies
                p.history.append([m.redis for m in state.pending])
                log.info("membership changed during epoch %d: planning again",
                         state.pending_epoch)
            epoch = (state.pending_epoch or state.epoch) + 1
            joiners = [n for n in target if n not in old.nodes]
            for node in joiners:
                self._prepare_joiner(node, old)
            new_members = tuple(sorted(target.values(), key=lambda m: m.name))
            state = RingState(state.epoch, state.replicas, state.vnodes, state.nodes,
                              new_members, epoch, {"epoch": epoch, "phase": "copying"})
            p.ring, p.phase, p.done = state, Phase.COPYING, set()
            self._save()
            log.info("epoch %d: %s -> %s", epoch, _names(state.nodes), _names(new_members))
        new = state.pending_ring()
        the_plan = plan(old, new, previous=[Ring(h, old.replicas, old.vnodes)
                                            for h in p.history])
        for change in the_plan.lost:
            log.error("arc (%040x, %040x] lost every copy (%s); it comes back if one of "
                      "them returns", change.start, change.end, ", ".join(change.old_owners))
        self._announce(state)
        try:
            moved = self._copy(the_plan, state)
        except Interrupted as e:
            log.info("%s", e)
            return Step.INTERRUPTED
        except (*DOWN_ERRORS, redis.ResponseError) as e:
            log.warning("copy failed (%s); will plan again", describe(e))
            self.sleep(0.2)
            return Step.COPY_FAILED
        return self._commit(the_plan, state, moved)

    def _prepare_joiner(self, node: str, old: Ring) -> None:
        p = self.progress
        for entry in list(p.lost):
            if node in entry["holders"]:
                count = self.executor.recover(node, [(entry["start"], entry["end"])], old)
                log.info("recovered %d keys of a lost arc from returning %s", count, node)
                p.lost.remove(entry)
                self._save()
        log.info("wiping %s: it joins afresh", node)
        self.executor.wipe(node)

    def _announce(self, state: RingState) -> dict[str, str]:
        """Put ``state`` in force (docs/membership.md): first fence every
        backend at its token, and only when every untainted member confirmed,
        store the ring in the backends and push it to every DTServer. So no
        DTServer can route by ``state`` while a backend still takes writes by
        an older ring. Raises :class:`Unfenced` if a member did not confirm."""
        catalog = self._catalog()
        tainted = self.progress.tainted
        reachable = [n for n in catalog if n not in tainted]
        required = (set(state.members()) | self._members()) - tainted
        failed = self.executor.fence(reachable, state.token)
        blocking = {n: why for n, why in failed.items() if n in required}
        if blocking:
            raise Unfenced(f"epoch token {state.token} not published: could not fence " +
                           ", ".join(f"{n} ({why})" for n, why in sorted(blocking.items())))
        self.executor.publish(reachable, state, self.config.secret)
        unconfirmed = push(catalog.values(), self.config.secret or "", state, self.push_timeout)
        for name, why in unconfirmed.items():
            log.warning("DTServer %s did not confirm epoch token %d: %s", name, state.token,
                        why)
        return unconfirmed

    def _copy(self, the_plan: Plan, state: RingState) -> int:
        p = self.progress
        rate = Rate()
        total = len(the_plan.transfers)
        moved = 0
        self._seen = (0, len(p.done))
        last_report = [time.monotonic()]
        stop = self._changed(set(m.redis for m in state.pending))
        for survivors, arcs in _masterless(the_plan).items():
            fixed = self.executor.newest_first(list(survivors), arcs, state.token, stop)
            if fixed:
                log.info("%d keys were newer on another surviving copy than on %s", fixed,
                         survivors[0])
        for source, transfers in the_plan.by_source().items():
            todo = [t for t in transfers if transfer_id(t) not in p.done]
            if not todo:
                continue
            base = moved

            def progress(n, base=base):
                if time.monotonic() - last_report[0] >= 1.0:
                    last_report[0] = time.monotonic()
                    self._report(state, base + n, total, rate, push_too=True)
            moved += self.executor.copy(source, todo, progress, stop)
            p.done |= {transfer_id(t) for t in todo}
            self._report(state, moved, total, rate)
        return moved

    def _report(self, state: RingState, moved: int, total: int, rate: Rate,
                push_too: bool = False) -> None:
        """Persist copy progress; with ``push_too``, log it and show it in every
        DTServer's ``ring`` (same token: only the progress changes)."""
        p = self.progress
        seen_keys, seen_done = self._seen
        self.metrics.keys_moved.inc(max(0, moved - seen_keys))
        self.metrics.transfers.inc(max(0, len(p.done) - seen_done))
        self.metrics.rate.set(round(rate(moved)))
        self._seen = (moved, len(p.done))
        p.ring = RingState(state.epoch, state.replicas, state.vnodes, state.nodes,
                           state.pending, state.pending_epoch, {
                               "epoch": state.pending_epoch, "phase": "copying",
                               "transfers_done": len(p.done), "transfers": total,
                               "keys_moved": moved, "keys_per_s": round(rate(moved))})
        self._save()
        if push_too:
            log.info("epoch %d: %d keys copied, %.0f keys/s, %d of %d transfers done",
                     state.pending_epoch, moved, rate(moved), len(p.done), total)
            push(self._catalog().values(), self.config.secret or "", p.ring, self.push_timeout)

    def _changed(self, target: set[str]) -> Callable[[], bool]:
        """A stop check for the copy loop: has the live set left ``target``?"""
        next_check = [time.monotonic() + self.check_every]

        def stop() -> bool:
            if self.stopping:
                raise Interrupted("stopping")
            if not self._still_leading():
                raise Interrupted("lost the lease: another DTSentinel leads")
            if time.monotonic() < next_check[0]:
                return False
            next_check[0] = time.monotonic() + self.check_every
            live = self.live()
            if live is None:
                return False
            current = {n for n in live if n not in self.progress.tainted}
            gone = target - set(live)
            if gone:
                self.progress.tainted |= gone
            return current != target
        return stop

    def _commit(self, the_plan: Plan, state: RingState, moved: int) -> Step:
        p = self.progress
        summary = {"epoch": state.pending_epoch, "phase": "done", "keys_moved": moved,
                   "transfers": len(the_plan.transfers), "finished": time.time()}
        committed = RingState(state.pending_epoch, state.replicas, state.vnodes,
                              state.pending, migration=summary)
        self.metrics.migrations.inc()
        self.metrics.lost_arcs.inc(len(the_plan.lost))
        self.metrics.rate.set(0)
        for change in the_plan.lost:
            p.lost.append({"start": change.start, "end": change.end,
                           "holders": list(change.old_owners)})
        p.ring, p.phase, p.last = committed, Phase.CLEANUP, summary
        p.cleanups = [[c.node, c.start, c.end] for c in the_plan.cleanups]
        p.history = []
        self._save()
        unconfirmed = self._announce(committed)  # if Unfenced: again next step (CLEANUP)
        log.info("epoch %d committed: %d keys copied in %d transfers", committed.epoch, moved,
                 len(the_plan.transfers))
        if unconfirmed:  # they learn it within their poll interval; then clean up
            self.sleep(self.settle)
        return self._cleanup()

    def _cleanup(self) -> Step:
        p = self.progress
        items = [Cleanup(node, start, end) for node, start, end in p.cleanups
                 if node not in p.tainted]
        try:
            deleted = self.executor.cleanup(items, stop=lambda: not self._still_leading(),
                                            token=p.ring.token)
        except Interrupted as e:
            log.info("cleanup stopped: %s", e)
            return Step.CLEANUP_FAILED
        except (*DOWN_ERRORS, redis.ResponseError) as e:
            log.warning("cleanup failed (%s); will retry", describe(e))
            return Step.CLEANUP_FAILED
        p.phase, p.cleanups = Phase.IDLE, []
        self._save()
        log.info("epoch %d clean: %d stale copies deleted", p.ring.epoch, deleted)
        return Step.COMMITTED

    # ------------------------------------------------------------------- loop
    def run_forever(self, idle_wait: float = 0.5) -> None:
        def stop(*_):
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not self.stopping:
            try:
                result = self.run_once()
            except Interrupted:
                continue
            except (*DOWN_ERRORS, redis.ResponseError) as e:  # a backend failed mid-step
                log.warning("step failed (%s); will try again", describe(e))
                result = Step.COPY_FAILED
            if result.waits:
                for event in self.sentinels.wait_event(idle_wait):
                    log.info("sentinel event: %s", event)
        if self.leading:  # a clean stop hands over at once
            try:
                self.lease.release(list(self._catalog()))
            except (*DOWN_ERRORS, redis.ResponseError):
                pass
        self.sentinels.close()
        self.client.close()
        self.versions.close()


def _masterless(the_plan: Plan) -> dict[tuple[str, ...], list[tuple[int, int]]]:
    """Arcs whose master is not in the new ring, grouped by their surviving
    copies (in ring order; the first is the arc's copy source), where more
    than one survives: they may differ, and the newest must win."""
    live = set(the_plan.new.nodes)
    groups: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for arc in the_plan.old.arcs():
        if arc.owners[0] in live:
            continue
        survivors = tuple(n for n in arc.owners if n in live)
        if len(survivors) > 1:
            groups.setdefault(survivors, []).append((arc.start, arc.end))
    return groups


def _names(members) -> str:
    return ",".join(m.name for m in members)


def main(cluster_file: str, state_path: str, metrics: str | None = None) -> None:
    """Run a DTSentinel until SIGTERM; with ``metrics`` ("host:port"), serve
    its Prometheus metrics there."""
    config = ClusterConfig.load(cluster_file)
    logs.setup("dtsentinel", fmt=config.log_format, secrets=logs.secrets_of(config),
               text_format="%(asctime)s %(levelname)s %(message)s")
    sentinel = DTSentinel(cluster_file, state_path)
    if metrics and config.metrics:
        sentinel.metrics.serve(metrics, [c for c in (config.secret, config.viewer_token) if c])
    sentinel.run_forever()


__all__ = ["DTSentinel", "Phase", "Progress", "SentinelView", "Step", "main"]

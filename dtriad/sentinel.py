"""DTSentinel: turns Redis Sentinel's view of the backends into ring changes.

Redis Sentinel monitors every backend (each registered as its own "master").
The DTSentinel subscribes to its pub/sub (``+monitor``, ``+sdown``/``-sdown``,
``+odown``/``-odown``), but events are only a trigger: each step re-reads the
monitored set from every reachable Sentinel (``SENTINEL MASTERS``), keeps only
backends named in the cluster file at the address the file gives, and checks
them with its own PING before letting one join. A step then moves the ring
towards the live set, one migration at a time:

1. copy out arcs whose only copy is on a returning node, then wipe joiners;
2. persist and push the pending ring to every DTServer, then fence every
   backend at its token (writes by an older ring are refused from then on);
3. copy the arcs of the plan, server to server (:class:`Executor`);
4. commit: persist and push the new ring, fence it;
5. clean up copies that no longer belong anywhere.

Progress is persisted after every step and batch group, so a DTSentinel
killed at any point finishes the job when restarted. A membership change
during a copy interrupts it; the next step plans again from the committed
ring to the new live set (the abandoned ring's nodes are cleaned too).

A backend seen down while in the ring is *tainted*: it leaves the ring, and
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

from .client import DOWN_ERRORS, DTClient, describe
from .config import ClusterConfig, parse_address
from .executor import Executor, Interrupted, Rate, push
from .migration import Cleanup, Plan, Transfer, plan
from .ring import Ring
from .ringstate import Member, RingState
from .scripts import VERSION_DB

log = logging.getLogger("dtriad.sentinel")
EVENTS = ("+monitor", "+sdown", "-sdown", "+odown", "-odown", "+reset-master")


class Phase(enum.Enum):
    IDLE = "idle"
    COPYING = "copying"
    CLEANUP = "cleanup"


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
                 check_every: float = 0.3):
        self.cluster_file = Path(cluster_file)
        self.state_path = Path(state_path)
        self.config = ClusterConfig.load(self.cluster_file)
        self.sentinels = sentinels or SentinelView(
            self.config.extra.get("sentinels", []), self.config.password)
        auth = {"password": self.config.password, "username": self.config.username}
        self.client = DTClient(**auth, timeout=10.0, cooldown=0)
        self.versions = DTClient(**auth, timeout=10.0, cooldown=0, db=VERSION_DB)
        self.executor = Executor(self.client, **auth, versions=self.versions)
        self.push_timeout = push_timeout
        self.settle = settle
        self.sleep = sleep
        self.check_every = check_every
        self.stopping = False
        if self.state_path.exists():
            self.progress = Progress.from_dict(json.loads(self.state_path.read_text()))
            log.info("resuming at epoch %d (phase %s)", self.progress.ring.epoch,
                     self.progress.phase.value)
        else:
            self.progress = Progress(RingState.initial(self.config))
            self.executor.publish(self._catalog(), self.progress.ring)
            self._save()
            log.info("bootstrapped ring epoch %d with %d nodes", self.progress.ring.epoch,
                     len(self.progress.ring.nodes))

    # ------------------------------------------------------------- the world
    def _catalog(self) -> dict[str, Member]:
        self.config = ClusterConfig.load(self.cluster_file)
        return {n.redis: Member.of(n) for n in self.config.nodes}

    def live(self) -> dict[str, Member] | None:
        """Backends Sentinel monitors and finds up, at the address the cluster file
        gives. One that is not in the ring must also answer our own PING before
        it may join; one in the ring is down only when Sentinel says so (a PING
        lost between us and it must not evict it). None if no Sentinel answers."""
        flags = self.sentinels.down_flags()
        if flags is None:
            return None
        catalog = {m.name: m for m in self._catalog().values()}
        members = self._members()
        live = {}
        for name, (address, down) in flags.items():
            member = catalog.get(name)
            if member is None or member.redis != address:
                log.warning("ignoring Sentinel's %s at %s: not in %s at that address",
                            name, address, self.cluster_file)
                continue
            if down:
                continue
            if address in members:
                live[address] = member
                continue
            try:
                self.client.execute(address, "PING")
            except (*DOWN_ERRORS, redis.ResponseError):
                continue
            live[address] = member
        return live

    def _members(self) -> set[str]:
        ring = self.progress.ring
        return {m.redis for m in ring.nodes} | {m.redis for m in ring.pending or ()}

    def _save(self) -> None:
        self.progress.save(self.state_path)

    # ------------------------------------------------------------------ steps
    def run_once(self) -> str:
        """One step towards the live set; returns what it did (for logs/tests)."""
        live = self.live()
        if live is None:
            return "no Sentinel reachable"
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
            return "no live node to build a ring from"
        if ring.pending is not None and {m.redis for m in ring.pending} == set(target):
            return self._migrate(resume=True)
        if ring.pending is None and {m.redis for m in ring.nodes} == set(target):
            return "idle"
        return self._migrate(target=target)

    def _migrate(self, target: dict[str, Member] | None = None, resume: bool = False) -> str:
        p = self.progress
        state = p.ring
        old = state.ring()
        self.executor.scan_count = int(self.config.extra.get("migration_batch", 1000))
        rate = self.config.extra.get("migration_max_keys_per_s")
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
            return "interrupted"
        except (*DOWN_ERRORS, redis.ResponseError) as e:
            log.warning("copy failed (%s); will plan again", describe(e))
            self.sleep(0.2)
            return "copy failed"
        return self._commit(the_plan, state, moved)

    def _prepare_joiner(self, node: str, old: Ring) -> None:
        p = self.progress
        for entry in list(p.lost):
            if node in entry["holders"]:
                count = self.executor.recover(node, [(entry["start"], entry["end"])], old)
                log.info("recovered %d keys of a lost arc from returning %s", count, node)
                p.lost.remove(entry)
                self._save()
        self.executor.wipe(node)

    def _announce(self, state: RingState) -> dict[str, str]:
        """Push ``state`` to every DTServer, then fence every live backend at it."""
        catalog = self._catalog()
        unconfirmed = push(catalog.values(), self.config.secret or "", state, self.push_timeout)
        for name, why in unconfirmed.items():
            log.warning("DTServer %s did not confirm epoch token %d: %s", name, state.token,
                        why)
        self.executor.publish([n for n in catalog if n not in self.progress.tainted], state)
        return unconfirmed

    def _copy(self, the_plan: Plan, state: RingState) -> int:
        p = self.progress
        rate = Rate()
        total = len(the_plan.transfers)
        moved = 0
        last_report = [time.monotonic()]
        stop = self._changed(set(m.redis for m in state.pending))
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

    def _commit(self, the_plan: Plan, state: RingState, moved: int) -> str:
        p = self.progress
        summary = {"epoch": state.pending_epoch, "phase": "done", "keys_moved": moved,
                   "transfers": len(the_plan.transfers), "finished": time.time()}
        committed = RingState(state.pending_epoch, state.replicas, state.vnodes,
                              state.pending, migration=summary)
        for change in the_plan.lost:
            p.lost.append({"start": change.start, "end": change.end,
                           "holders": list(change.old_owners)})
        p.ring, p.phase, p.last = committed, Phase.CLEANUP, summary
        p.cleanups = [[c.node, c.start, c.end] for c in the_plan.cleanups]
        p.history = []
        self._save()
        unconfirmed = self._announce(committed)
        log.info("epoch %d committed: %d keys copied in %d transfers", committed.epoch, moved,
                 len(the_plan.transfers))
        if unconfirmed:  # they learn it within their poll interval; then clean up
            self.sleep(self.settle)
        return self._cleanup()

    def _cleanup(self) -> str:
        p = self.progress
        items = [Cleanup(node, start, end) for node, start, end in p.cleanups
                 if node not in p.tainted]
        try:
            deleted = self.executor.cleanup(items)
        except (*DOWN_ERRORS, redis.ResponseError) as e:
            log.warning("cleanup failed (%s); will retry", describe(e))
            return "cleanup failed"
        p.phase, p.cleanups = Phase.IDLE, []
        self._save()
        log.info("epoch %d clean: %d stale copies deleted", p.ring.epoch, deleted)
        return "committed"

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
            if result in ("idle", "no Sentinel reachable", "no live node to build a ring from",
                          "copy failed", "cleanup failed"):
                for event in self.sentinels.wait_event(idle_wait):
                    log.info("sentinel event: %s", event)
        self.sentinels.close()
        self.client.close()
        self.versions.close()


def _names(members) -> str:
    return ",".join(m.name for m in members)


def main(cluster_file: str, state_path: str) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    DTSentinel(cluster_file, state_path).run_forever()


__all__ = ["DTSentinel", "Phase", "Progress", "SentinelView", "main"]

"""A fault-injection suite in the spirit of Jepsen, on a real local cluster.

Clients write through the RESP ports and record every operation: counters
(INCR), appends of unique tokens (APPEND) and set additions of unique members
(SADD). Each operation ends *acknowledged* (the reply came), *failed* (an
error that says nothing was applied) or *ambiguous* (anything else: a
timeout, a lost connection, a write held by only some copies). Meanwhile a
seeded nemesis injects one fault at a time:

* ``restart``: SIGKILL a backend and start it again at once, with its AOF;
* ``restart_empty``: the same, its AOF deleted first (a restart without
  persistence);
* ``aof_cut``: SIGKILL a backend, cut its AOF back to an earlier size, start it;
* ``pause_backend``: SIGSTOP a backend for up to 3 s;
* ``kill_dtserver`` / ``pause_dtserver``: a DTServer (HTTP workers and RESP
  front end) SIGKILLed and started again, or stopped for up to 3 s;
* ``kill_dtsentinel`` / ``pause_dtsentinel``: the leading DTSentinel (there
  are two) SIGKILLed and started again, or stopped for up to 6 s, longer than
  its lease;
* ``node_kill_start``: ``dtriad node kill``, wait for the ring to drop it,
  ``dtriad node start``;
* ``node_add``: ``dtriad node add`` (up to ``max_nodes``).

Faults that destroy a backend's data wait until the ring is whole again, so
at most one node's data is being restored at a time (r >= 1 survives that;
losing every copy at once is outside the guarantee). Pauses, DTServer and
DTSentinel faults strike at any moment, migrations included.

At the end every fault is healed, the cluster converges (``dtriad check``
clean), and every copy of every key is read straight from its backend:

* every acknowledged token and member is present exactly once, on every copy;
* no token or member appears that was never sent, none twice;
* each counter equals its acknowledged increments plus at most its
  ambiguous ones.

Run it alone with ``python -m tests.faults --seed 7 --duration 600``.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dtriad.backends.client import DTClient
from dtriad.config import ClusterConfig, parse_address
from dtriad.core.follower import RingCheck, newest_ring
from dtriad.core.steps import run as run_steps
from dtriad.membership.check import check
from dtriad.ops import cluster as local
from dtriad.ops.procs import pid_alive, stop_pid, wait_until

FAULTS = ("restart", "restart_empty", "aof_cut", "pause_backend", "kill_dtserver",
          "pause_dtserver", "kill_dtsentinel", "pause_dtsentinel", "node_kill_start",
          "node_add")
DESTRUCTIVE = {"restart", "restart_empty", "aof_cut", "node_kill_start"}


def definite(error: Exception) -> bool:
    """Does the error say that nothing was applied anywhere? Only a refusal
    by the master's own script. Anything else (a timeout, a lost connection,
    a ring that kept changing, any QUORUM: a retry after a ring change may
    have been applied by the key's previous master) counts as ambiguous."""
    return str(error).startswith(("NOTADMITTED", "WRONGTYPE"))


@dataclass
class History:
    """Every operation the clients sent, and how it ended."""

    acked_incr: Counter = field(default_factory=Counter)
    ambiguous_incr: Counter = field(default_factory=Counter)
    acked_tokens: dict[str, set[str]] = field(default_factory=dict)
    ambiguous_tokens: dict[str, set[str]] = field(default_factory=dict)
    acked_members: dict[str, set[str]] = field(default_factory=dict)
    ambiguous_members: dict[str, set[str]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, key: str, item: str | None, outcome: str) -> None:
        with self.lock:
            self.counts["operations"] += 1
            self.counts[outcome] += 1
            if outcome == "failed":
                return
            if kind == "incr":
                (self.acked_incr if outcome == "acknowledged" else self.ambiguous_incr)[key] += 1
                return
            table = {("append", "acknowledged"): self.acked_tokens,
                     ("append", "ambiguous"): self.ambiguous_tokens,
                     ("sadd", "acknowledged"): self.acked_members,
                     ("sadd", "ambiguous"): self.ambiguous_members}[(kind, outcome)]
            table.setdefault(key, set()).add(item)


class Clients:
    """``threads`` clients, each on a random RESP port, until stopped."""

    def __init__(self, config: ClusterConfig, history: History, seed: int, threads: int = 4,
                 keys: int = 20):
        self.config = config
        self.history = history
        self.seed = seed
        self.keys = keys
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True,
                                         name=f"client-{i}") for i in range(threads)]

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(30)

    def _connect(self, rng: random.Random) -> redis.Redis:
        nodes = [n for n in ClusterConfig.load(local.cluster_file(self.config.directory)).nodes
                 if n.resp]
        host, port = parse_address(rng.choice(nodes).resp)
        # no retries: redis-py 6+ resends a command after a connection error or a
        # timeout (10 times by default), which applies an APPEND or INCR twice
        # while the suite counts it once
        return redis.Redis(host=host, port=port, password=self.config.password, protocol=2,
                           socket_timeout=10, socket_connect_timeout=2,
                           retry=Retry(NoBackoff(), 0))

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        client, seq = self._connect(rng), 0
        while not self.stopping.is_set():
            seq += 1
            kind = rng.choice(("incr", "append", "sadd"))
            key = f"{kind[0]}{rng.randrange(self.keys)}"
            item = f"{index}-{seq}"
            try:
                if kind == "incr":
                    client.incr(key)
                elif kind == "append":
                    client.append(key, f"{item}|")
                else:
                    client.sadd(key, item)
                outcome = "acknowledged"
            except redis.RedisError as e:
                outcome = "failed" if definite(e) else "ambiguous"
                if isinstance(e, (redis.ConnectionError, redis.TimeoutError)):
                    client.close()
                    client = self._connect(rng)
                    time.sleep(0.05)
            self.history.record(kind, key, item, outcome)
        client.close()


class Nemesis:
    """Injects one fault at a time, chosen by a seeded generator."""

    def __init__(self, config: ClusterConfig, seed: int, faults: tuple[str, ...] = FAULTS,
                 max_nodes: int = 5, log: Callable[[str], None] = print):
        self.directory = Path(config.directory)
        self.rng = random.Random(seed)
        self.faults = faults
        self.max_nodes = max_nodes
        self.injected: Counter = Counter()
        self.log = log

    def config(self) -> ClusterConfig:
        config = ClusterConfig.load(local.cluster_file(self.directory))
        return config

    def run(self, duration: float) -> None:
        """Every fault kind once (in a seeded order), then random faults until
        ``duration`` seconds have passed since the start."""
        deadline = time.monotonic() + duration
        first = list(self.faults)
        self.rng.shuffle(first)
        while first or time.monotonic() < deadline:
            fault = first.pop() if first else self.rng.choice(self.faults)
            if fault == "node_add" and len(self.config().nodes) >= self.max_nodes:
                continue
            if fault in DESTRUCTIVE:
                wait_until(lambda: whole(self.config()), 180, "the ring to be whole again",
                           interval=0.2)
            self.log(f"fault: {fault}")
            getattr(self, fault)()
            self.injected[fault] += 1
            time.sleep(self.rng.uniform(0.5, 2.0))

    # ------------------------------------------------------------ the faults
    def _node(self):
        return self.rng.choice(self.config().nodes)

    def restart(self, wipe: bool = False, cut: bool = False) -> None:
        node = self._node()
        local.kill_node(self.directory, node.name)
        home = self.directory / node.name
        files = sorted(home.glob("appendonly*")) + sorted(home.glob("appendonlydir/*"))
        if wipe:
            for path in files:
                if path.is_file():
                    path.unlink()
        elif cut:
            tails = [p for p in files if p.is_file() and (".incr." in p.name or
                                                          p.name == "appendonly.aof")]
            for path in tails:
                size = path.stat().st_size
                os.truncate(path, int(size * self.rng.uniform(0.3, 0.9)))
        local.start_node(self.directory, node.name)

    def restart_empty(self) -> None:
        self.restart(wipe=True)

    def aof_cut(self) -> None:
        self.restart(cut=True)

    def pause_backend(self) -> None:
        pid = local.Pids.load(self.directory).node(self._node().name).redis
        _pause(pid, self.rng.uniform(0.3, 3.0), group=False)

    def kill_dtserver(self) -> None:
        node = self._node()
        pid = local.Pids.load(self.directory).node(node.name).server
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stop_pid(pid)
        local.start_node(self.directory, node.name)

    def pause_dtserver(self) -> None:
        _pause(local.Pids.load(self.directory).node(self._node().name).server,
               self.rng.uniform(0.3, 3.0), group=True)

    def kill_dtsentinel(self) -> None:
        index, pid = local.leading_dtsentinel(self.directory)
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 5, "the DTSentinel to die")
        stop_pid(pid)
        local.restart_dtsentinel(self.directory, index)

    def pause_dtsentinel(self) -> None:
        _, pid = local.leading_dtsentinel(self.directory)
        if pid is not None:
            _pause(pid, self.rng.uniform(1.0, 6.0), group=False)

    def node_kill_start(self) -> None:
        node = self._node()
        local.kill_node(self.directory, node.name)
        wait_until(lambda: node.name not in members(self.directory), 60,
                   f"the ring to drop {node.name}", interval=0.1)
        local.start_node(self.directory, node.name)

    def node_add(self) -> None:
        local.add_node(self.directory, log=lambda *_: None)


def _pause(pid: int, seconds: float, group: bool) -> None:
    send = os.killpg if group else os.kill
    try:
        send(pid, signal.SIGSTOP)
        time.sleep(seconds)
    finally:
        try:
            send(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def members(directory: Path) -> set[str]:
    ring = (local.sentinel_progress(directory) or {}).get("ring") or {}
    return {m["name"] for m in ring.get("nodes", [])}


def whole(config: ClusterConfig) -> bool:
    """Every node of the cluster file serves in the committed ring, as the
    incarnation the ring admitted, and no migration runs."""
    return local.admitted(config) and members(config.directory) == {
        n.name for n in config.nodes}


@dataclass
class Summary:
    operations: int
    acknowledged: int
    ambiguous: int
    failed: int
    lost: int
    duplicated: int
    unknown: int
    divergent_keys: int
    faults: dict[str, int]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unknown or self.divergent_keys
                    or self.problems)

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return [f"operations {self.operations}, acknowledged {self.acknowledged}, "
                f"ambiguous {self.ambiguous}, failed {self.failed}",
                f"lost {self.lost}, duplicated {self.duplicated}, never sent {self.unknown}, "
                f"divergent keys {self.divergent_keys}",
                f"faults injected ({sum(self.faults.values())}): {faults}",
                *self.problems[:20]]


def verify(config: ClusterConfig, history: History, faults: Counter) -> Summary:
    """Converge, then read every copy of every key straight from its backend."""
    config = ClusterConfig.load(local.cluster_file(config.directory))
    report = {}

    def clean() -> bool:
        report["last"] = check(config)
        return report["last"].clean

    problems: list[str] = []
    try:
        wait_until(clean, 180, "a clean dtriad check", interval=1.0)
    except TimeoutError:
        problems += ["never converged:"] + report["last"].lines({})[:20] if "last" in report \
            else ["never converged"]
    divergent = len(report["last"].differing) + len(report["last"].missing) \
        if "last" in report else 0
    client = DTClient(**config.internal.kwargs(), timeout=5.0)
    lost = duplicated = unknown = 0
    try:
        state, _ = run_steps(newest_ring([n.redis for n in config.nodes], RingCheck(config)),
                             client)
        ring = state.ring()
        keys = (set(history.acked_incr) | set(history.ambiguous_incr)
                | set(history.acked_tokens) | set(history.ambiguous_tokens)
                | set(history.acked_members) | set(history.ambiguous_members))
        for key in sorted(keys):
            copies = {}
            for owner in ring.preference_list(key):
                r = client.redis(owner)
                copies[owner] = (r.smembers(key) if key.startswith("s") else r.get(key))
            values = list(copies.values())
            if any(v != values[0] for v in values[1:]):
                divergent += 1
                problems.append(f"{key}: copies differ")
            for owner, value in copies.items():
                if key.startswith("i"):
                    n = int(value or 0)
                    low = history.acked_incr[key]
                    high = low + history.ambiguous_incr[key]
                    if n < low:
                        lost += low - n
                        problems.append(f"{key} on {owner}: {n}, acknowledged {low}")
                    elif n > high:
                        duplicated += n - high
                        problems.append(f"{key} on {owner}: {n}, at most {high} sent")
                    continue
                if key.startswith("a"):
                    items = [t for t in (value or b"").decode().split("|") if t]
                    acked = history.acked_tokens.get(key, set())
                    maybe = history.ambiguous_tokens.get(key, set())
                else:
                    items = [m.decode() for m in value]
                    acked = history.acked_members.get(key, set())
                    maybe = history.ambiguous_members.get(key, set())
                seen = Counter(items)
                missing = acked - set(seen)
                twice = [t for t, c in seen.items() if c > 1]
                stray = set(seen) - acked - maybe
                lost += len(missing)
                duplicated += len(twice)
                unknown += len(stray)
                if missing or twice or stray:
                    problems.append(f"{key} on {owner}: {len(missing)} acknowledged missing "
                                    f"(e.g. {sorted(missing)[:3]}), {len(twice)} twice, "
                                    f"{len(stray)} never sent")
    finally:
        client.close()
    c = history.counts
    return Summary(c["operations"], c["acknowledged"], c["ambiguous"], c["failed"], lost,
                   duplicated, unknown, divergent, dict(faults), problems)


def heal(directory: Path) -> None:
    """Resume everything paused, start whatever is stopped, until the ring is whole."""
    config = ClusterConfig.load(local.cluster_file(directory))
    for node in config.nodes:
        for role, pid in local.Pids.load(directory).node(node.name).items():
            if pid and pid_alive(pid):
                try:
                    (os.killpg if role == "server" else os.kill)(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        local.start_node(directory, node.name)
    for pid in local.Pids.load(directory).dtsentinels:
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGCONT)
    config = ClusterConfig.load(local.cluster_file(directory))
    wait_until(lambda: whole(config), 180, "the ring to be whole after the faults",
               interval=0.5)


def run(directory: Path, seed: int, duration: float, nodes: int = 4, replicas: int = 1,
        threads: int = 4, faults: tuple[str, ...] = FAULTS,
        log: Callable[[str], None] = print) -> Summary:
    """Start a cluster in ``directory``, run clients and the nemesis for
    ``duration`` seconds, heal, verify, and stop the cluster."""
    config = local.up(directory, local.UpOptions(nodes=nodes, replicas=replicas, workers=1,
                                                 dtsentinels=2, down_after_ms=1000),
                      log=lambda *_: None)
    try:
        history = History()
        nemesis = Nemesis(config, seed, faults, log=log)
        with Clients(config, history, seed, threads):
            wait_until(lambda: history.counts["acknowledged"] >= 20, 60,
                       "the clients' first acknowledged writes")
            nemesis.run(duration)
        heal(directory)
        summary = verify(config, history, nemesis.injected)
    finally:
        local.down(directory)
    for line in summary.lines():
        log(line)
    return summary


__all__ = ["FAULTS", "History", "Nemesis", "Summary", "run", "verify"]

"""The DTSentinel stepped by hand against real redis-server backends.

No Redis Sentinel and no DTServer: the test is Sentinel (``FakeSentinels``
says who is up), keys are seeded straight into the backends where the ring
puts them, and after every ``run_once`` the backends themselves are read: the
stored ring and fence (database 1), each key's copies (database 0) and
versions (database 2). The DTServers of the cluster file listen nowhere, so
every push goes unconfirmed, and ``sleep`` is recorded, never slept.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import redis

from dtriad.core.scripts import FENCE_KEY, META_DB, RING_KEY, VERSION_DB
from dtriad.membership.dtsentinel import DTSentinel, Step
from dtriad.ops.procs import free_port, start_redis, stop_pid
from dtriad.placement.planner import plan
from dtriad.placement.ring import Ring
from dtriad.placement.ringstate import RingState

from ..conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

def step(dts: DTSentinel) -> Step:
    return dts.run_once()


class FakeSentinels:
    """Redis Sentinel's view, as the DTSentinel reads it (``down_flags``):
    every node of the cluster file monitored, up unless named in ``down``."""

    def __init__(self, nodes: dict[str, str]):
        self.nodes = nodes  # name -> "host:port"
        self.down: set[str] = set()

    def down_flags(self) -> dict[str, tuple[str, bool]]:
        return {name: (address, name in self.down) for name, address in self.nodes.items()}

    def wait_event(self, timeout: float) -> list[str]:
        return []

    def close(self) -> None:
        pass


class Crash(BaseException):
    """The DTSentinel process dies here (nothing in it catches this)."""


class World:
    """Real backends n1..nN (restartable on their port), a cluster file whose
    DTServers listen nowhere, a fake Sentinel, and the DTSentinels made."""

    def __init__(self, tmp: Path, count: int, replicas: int = 2, **extra):
        self.tmp = tmp
        self.procs: dict[str, object] = {}
        self.nodes: list[str] = []
        ports: set[int] = set()
        for _ in range(count):
            port = free_port(avoid=ports)
            ports.add(port)
            self.nodes.append(f"127.0.0.1:{port}")
        http = []
        for _ in range(count):
            port = free_port(avoid=ports)
            ports.add(port)
            http.append(f"http://127.0.0.1:{port}")
        for node in self.nodes:
            self.start(node)
        self.names = {node: f"n{i}" for i, node in enumerate(self.nodes, 1)}
        self.cluster_file = tmp / "cluster.json"
        self.cluster_file.write_text(json.dumps({
            "replicas": replicas, "vnodes": 1, "password": PASSWORD, "secret": "s3cret",
            "epoch": 0, **extra,
            "nodes": [{"name": self.names[n], "redis": n, "http": h}
                      for n, h in zip(self.nodes, http, strict=True)]}))
        self.sentinels = FakeSentinels({name: node for node, name in self.names.items()})
        self.sleeps: list[float] = []
        self.made: list[DTSentinel] = []
        self.clients: dict[tuple[str, int], redis.Redis] = {}

    # ------------------------------------------------------------ processes
    def start(self, node: str) -> None:
        port = int(node.rsplit(":", 1)[1])
        self.procs[node] = start_redis(port, self.tmp / f"redis-{port}", PASSWORD,
                                       persist=False)

    def kill(self, node: str) -> None:
        """SIGKILL, as a crash: no chance to answer anything more."""
        proc = self.procs.pop(node)
        assert stop_pid(proc.pid, needle=node.rsplit(":", 1)[1], sig=signal.SIGKILL)
        for (n, db), client in list(self.clients.items()):
            if n == node:
                client.close()
                del self.clients[(n, db)]

    def close(self) -> None:
        for dts in self.made:
            dts.client.close()
            dts.versions.close()
        for client in self.clients.values():
            client.close()
        for node, proc in self.procs.items():
            stop_pid(proc.pid, needle=node.rsplit(":", 1)[1])

    # ----------------------------------------------------------- DTSentinels
    def dtsentinel(self, state: str = "a", **options) -> DTSentinel:
        options = {"push_timeout": 0.5, "check_every": 0.0, **options}
        dts = DTSentinel(self.cluster_file, self.tmp / f"state-{state}.json",
                         sentinels=self.sentinels, sleep=self.sleeps.append, **options)
        self.made.append(dts)
        return dts

    # ------------------------------------------------------ reading backends
    def db(self, node: str, db: int = 0) -> redis.Redis:
        client = self.clients.get((node, db))
        if client is None:
            host, port = node.rsplit(":", 1)
            client = self.clients[(node, db)] = redis.Redis(
                host=host, port=int(port), password=PASSWORD, db=db, socket_timeout=5,
                decode_responses=True)
        return client

    def stored(self, node: str) -> tuple[int, RingState | None]:
        """(fence, stored ring) of a backend."""
        meta = self.db(node, META_DB)
        text = meta.get(RING_KEY)
        return int(meta.get(FENCE_KEY) or 0), None if text is None else RingState.from_json(text)

    def run_id(self, node: str) -> str:
        return self.db(node).info("server")["run_id"]

    def contents(self, node: str) -> dict[str, tuple[str, str | None]]:
        """key -> (value, version) in a backend."""
        keys = sorted(self.db(node).keys("*"))
        if not keys:
            return {}
        values = self.db(node).mget(keys)
        versions = self.db(node, VERSION_DB).mget(keys)
        return {k: (v, ver) for k, v, ver in zip(keys, values, versions, strict=True)}

    # ----------------------------------------------------------------- keys
    def seed(self, state: RingState, count: int, prefix: str = "k") -> dict[str, str]:
        """Keys written where ``state``'s ring puts them (every copy, version 100)."""
        ring = state.ring()
        values = {f"{prefix}{i}": f"v{i}" for i in range(count)}
        for key, value in values.items():
            for owner in ring.preference_list(key):
                self.db(owner).set(key, value)
                self.db(owner, VERSION_DB).set(key, "100")
        return values

    def assert_placed(self, state: RingState, values: dict[str, str],
                      nodes: list[str] | None = None) -> None:
        """Every key on exactly its owners by ``state`` (r+1 copies, among the
        ``nodes`` read), each with its value and one version; nothing else."""
        ring = state.ring()
        nodes = [m.redis for m in state.nodes] if nodes is None else nodes
        held = {n: self.contents(n) for n in nodes}
        for key, value in values.items():
            holders = {n for n in nodes if key in held[n]}
            assert holders == set(ring.preference_list(key)), key
            assert len(holders) == ring.copies
            assert {held[n][key][0] for n in holders} == {value}, key
            versions = {held[n][key][1] for n in holders}
            assert len(versions) == 1 and None not in versions, (key, versions)
        for n in nodes:
            assert set(held[n]) <= set(values), f"{n} holds keys nobody wrote"

    def assert_in_force(self, state: RingState, nodes: list[str] | None = None) -> None:
        """Every one of ``nodes`` (default: the ring's) stores ``state``, fenced at its token."""
        for node in nodes or [m.redis for m in state.members().values()]:
            fence, stored = self.stored(node)
            assert (fence, stored) == (state.token, state), node


@pytest.fixture
def world(tmp_path):
    made: list[World] = []

    def build(count: int = 5, **options) -> World:
        made.append(World(tmp_path / f"world{len(made)}", count, **options))
        return made[-1]

    yield build
    for w in made:
        w.close()


def bootstrapped(w: World, dts: DTSentinel, keys: int = 200) -> tuple[RingState, dict[str, str]]:
    assert step(dts) == Step.BOOTSTRAPPED
    _, state = w.stored(w.nodes[0])
    return state, w.seed(state, keys)


def spy_migrate(dts: DTSentinel, before=None) -> list[tuple[str, str, int]]:
    """Record the executor's MIGRATE batches (source, destination, keys);
    ``before(source, destination, calls)`` runs ahead of each."""
    calls: list[tuple[str, str, int]] = []
    real = dts.executor.migrate

    def migrate(source, dest, keys, replace=True):
        if before is not None:
            before(source, dest, calls)
        real(source, dest, keys, replace=replace)
        calls.append((source, dest, len(keys)))

    dts.executor.migrate = migrate
    return calls


def wait_for(what: str, check, timeout: float = 20.0):
    """Poll ``check`` until it returns something true (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# ---------------------------------------------------------------------- tests
def test_bootstrap_publishes_the_cluster_files_ring_with_every_incarnation(world):
    w = world(3)
    dts = w.dtsentinel()
    assert step(dts) == Step.BOOTSTRAPPED
    fence, state = w.stored(w.nodes[0])
    assert state.epoch == 0 and state.pending is None and fence == state.token == 0
    assert [m.redis for m in state.nodes] == w.nodes
    assert {m.redis: m.run_id for m in state.nodes} == {n: w.run_id(n) for n in w.nodes}
    w.assert_in_force(state)
    for node in w.nodes:  # this DTSentinel holds the lease on every backend
        assert w.db(node, META_DB).get("dtriad:leader") == dts.lease.holder
    saved = json.loads((w.tmp / "state-a.json").read_text())
    assert RingState.from_dict(saved["ring"]) == state and saved["phase"] == "idle"
    assert step(dts) == Step.IDLE
    w.assert_in_force(state)


def test_a_node_called_down_leaves_in_a_new_epoch_and_its_keys_get_r_plus_1_copies(world):
    w = world(5)
    dts = w.dtsentinel()
    before, values = bootstrapped(w, dts)
    n3 = w.nodes[2]
    # Ports, so ring positions, are random: n3's arc may hold none of the 200
    # keys (seen once on 7.0). A few keys it is master of, found by name.
    ring = before.ring()
    for key in [k for k in (f"on-n3-{i}" for i in range(100_000)) if ring.master(k) == n3][:5]:
        values[key] = "v"
        for owner in ring.preference_list(key):
            w.db(owner).set(key, "v")
            w.db(owner, VERSION_DB).set(key, "100")
    w.assert_placed(before, values)
    # Rule 5: where n3 was master, the surviving backups disagree; the newest wins.
    diverged = {}
    for key in values:
        owners = before.ring().preference_list(key)
        if owners[0] == n3:
            w.db(owners[2]).set(key, "newer")
            w.db(owners[2], VERSION_DB).set(key, "200")
            diverged[key] = "newer"
    assert diverged
    n3_before = w.contents(n3)

    w.sentinels.down.add("n3")  # still running: Sentinel's view decides
    assert step(dts) == Step.COMMITTED
    fence, after = w.stored(w.nodes[0])
    assert after.epoch == 1 and after.pending is None
    assert [m.redis for m in after.nodes] == [n for n in w.nodes if n != n3]
    assert {m.redis: m.run_id for m in after.nodes} == {
        m.redis: m.run_id for m in before.nodes if m.redis != n3}
    w.assert_in_force(after)
    w.assert_placed(after, {**values, **diverged})
    # n3 left tainted: not fenced, not told the ring, its data untouched
    assert w.stored(n3) == (0, before)
    assert w.contents(n3) == n3_before
    assert (w.tmp / "state-a.json").exists()
    assert step(dts) == Step.IDLE
    w.assert_in_force(after)


def test_a_returning_node_is_wiped_and_rejoins_with_its_arcs(world):
    w = world(5)
    dts = w.dtsentinel()
    _, values = bootstrapped(w, dts)
    n3 = w.nodes[2]
    w.sentinels.down.add("n3")
    assert step(dts) == Step.COMMITTED
    _, without = w.stored(w.nodes[0])
    # while n3 is out, the ring's copies change; n3 keeps what it had, plus junk
    updated = {key: f"{value}'" for key, value in values.items()}
    for key, value in updated.items():
        for owner in without.ring().preference_list(key):
            w.db(owner).set(key, value)
            w.db(owner, VERSION_DB).set(key, "300")
    w.db(n3).set("junk", "from before")
    run_id = w.run_id(n3)

    w.sentinels.down.discard("n3")
    assert step(dts) == Step.COMMITTED
    _, back = w.stored(w.nodes[0])
    assert back.epoch == 2 and back.pending is None
    assert [m.redis for m in back.nodes] == w.nodes
    assert back.members()[n3].run_id == run_id
    w.assert_in_force(back)
    w.assert_placed(back, updated)  # n3 holds the new values, and no junk
    assert step(dts) == Step.IDLE


def test_a_dtsentinel_without_the_lease_changes_nothing_until_it_is_handed_over(world):
    w = world(5)
    a, b = w.dtsentinel("a"), w.dtsentinel("b")
    initial, values = bootstrapped(w, a)
    assert step(b) == Step.STANDBY
    assert b.progress is None and not (w.tmp / "state-b.json").exists()

    w.sentinels.down.add("n2")  # both see it; only the leader acts
    for _ in range(3):
        assert step(b) == Step.STANDBY
    w.assert_in_force(initial)
    w.assert_placed(initial, values)
    for node in w.nodes:
        assert w.db(node, META_DB).get("dtriad:leader") == a.lease.holder

    assert step(a) == Step.COMMITTED
    _, after = w.stored(w.nodes[0])
    assert after.epoch == 1 and step(b) == Step.STANDBY

    a.lease.release(w.nodes)  # a clean stop hands over at once
    assert step(b) == Step.TOOK_OVER
    assert b.progress.ring == after
    assert step(b) == Step.COMMITTED  # it cleans what the ring does not want (nothing here)
    assert step(b) == Step.IDLE
    assert step(a) == Step.STANDBY
    live = [n for n in w.nodes if n != w.nodes[1]]
    w.assert_in_force(after)
    w.assert_placed(after, values, live)


@pytest.mark.parametrize("how", ["connection lost", "dtsentinel killed"])
def test_a_copy_stopped_mid_way_is_resumed_without_redoing_finished_transfers(world, how):
    """The copy stops at the first batch of its second source: a lost
    connection (the same DTSentinel's next step resumes), or the DTSentinel
    process dying (a new one resumes from the state file once the lease
    expires). Same pending epoch; the first source's transfers not redone."""
    w = world(5, migration_batch=10)
    dts = w.dtsentinel()
    before, values = bootstrapped(w, dts)
    survivors = w.nodes[:4]
    struck: list[str] = []

    def strike(source, dest, calls):
        if calls and source != calls[0][0] and not struck:
            struck.append(source)
            if how == "connection lost":
                raise redis.ConnectionError("simulated: connection lost")
            raise Crash()

    first = spy_migrate(dts, strike)
    w.sentinels.down.add("n5")
    if how == "connection lost":
        assert step(dts) == Step.COPY_FAILED
        assert 0.2 in w.sleeps  # it backed off through the injected sleep
    else:
        with pytest.raises(Crash):
            dts.run_once()
    assert struck
    source_struck = struck[0]
    saved = json.loads((w.tmp / "state-a.json").read_text())
    assert saved["phase"] == "copying" and saved["done"]
    pending = RingState.from_dict(saved["ring"])
    assert pending.pending_epoch == 1 and [m.redis for m in pending.pending] == survivors
    _, stored = w.stored(survivors[0])
    assert stored.pending_epoch == 1 and stored.token == 1
    for node in survivors:
        assert w.stored(node)[0] == 1  # fenced at the pending ring's token
    the_plan = plan(before.ring(), pending.pending_ring())
    done_sources = {t.source for t in the_plan.transfers
                    if f"{t.source}>{t.destination}:{t.start:x}-{t.end:x}" in saved["done"]}
    assert first[0][0] in done_sources  # (with any source whose arcs hold no key)
    assert source_struck not in done_sources
    assert len(saved["done"]) < len(the_plan.transfers)

    if how == "connection lost":
        resumer, second = dts, first
        second.clear()
        assert step(resumer) == Step.COMMITTED
    else:
        resumer = w.dtsentinel("a")  # a new process on the same state file
        second = spy_migrate(resumer)
        # standby until the dead one's lease expires; the step that leads resumes
        assert wait_for("the dead DTSentinel's lease to expire",
                        lambda: (r := step(resumer)) != Step.STANDBY and r) == Step.COMMITTED
    _, after = w.stored(survivors[0])
    assert after.epoch == 1 and after.pending is None, "resumed, not planned again"
    assert second and {source for source, _, _ in second}.isdisjoint(done_sources)
    w.assert_in_force(after)
    w.assert_placed(after, values)
    assert step(resumer) == Step.IDLE


def test_a_backend_killed_mid_copy_blocks_the_ring_until_sentinel_calls_it_down(world):
    """A backend the copy still needs is killed mid-copy: the step fails;
    while Sentinel still calls it up, the pending ring cannot be fenced on it,
    so nothing is published; once called down, the next step plans again
    without it."""
    w = world(5, migration_batch=10)
    dts = w.dtsentinel()
    before, values = bootstrapped(w, dts)
    n5 = w.nodes[4]
    victim: list[str] = []

    def strike(source, dest, calls):
        if calls and not victim:  # after the first batch: kill a node the copy still needs
            rest = Ring([n for n in w.nodes if n != n5], before.replicas, before.vnodes)
            order = list(plan(before.ring(), rest).by_source())  # the copy's order
            later = order[order.index(source) + 1:]  # groups not started yet
            victim.append(later[-1] if later else dest)
            w.kill(victim[0])

    spy_migrate(dts, strike)
    w.sentinels.down.add("n5")
    assert step(dts) == Step.COPY_FAILED
    assert victim
    survivors = [n for n in w.nodes if n not in (n5, victim[0])]
    _, pending = w.stored(survivors[0])
    assert pending.pending_epoch == 1
    w.assert_in_force(pending, survivors)

    for _ in range(2):  # Sentinel has not noticed: the victim cannot be fenced
        assert step(dts) == Step.ANNOUNCE_FAILED
        w.assert_in_force(pending, survivors)

    w.sentinels.down.add(w.names[victim[0]])
    assert step(dts) == Step.COMMITTED
    _, after = w.stored(survivors[0])
    assert after.epoch == 2 and after.pending is None  # epoch 1 abandoned
    assert [m.redis for m in after.nodes] == survivors
    w.assert_in_force(after)
    w.assert_placed(after, values)
    assert step(dts) == Step.IDLE


def test_a_membership_change_during_the_copy_interrupts_it_and_the_next_step_replans(world):
    w = world(5, migration_batch=10)
    dts = w.dtsentinel()
    _, values = bootstrapped(w, dts)
    n2, n5 = w.nodes[1], w.nodes[4]

    def strike(source, dest, calls):
        if calls:
            w.sentinels.down.add("n2")

    spy_migrate(dts, strike)
    w.sentinels.down.add("n5")
    assert step(dts) == Step.INTERRUPTED
    _, pending = w.stored(w.nodes[0])
    assert pending.pending_epoch == 1 and n2 in {m.redis for m in pending.pending}

    assert step(dts) == Step.COMMITTED
    _, after = w.stored(w.nodes[0])
    survivors = [n for n in w.nodes if n not in (n2, n5)]
    assert after.epoch == 2 and [m.redis for m in after.nodes] == survivors
    w.assert_in_force(after)
    w.assert_placed(after, values)
    assert w.stored(n2) == (pending.token, pending)  # tainted: told nothing newer
    assert step(dts) == Step.IDLE


def test_a_backend_restarted_behind_sentinels_back_leaves_and_rejoins_afresh(world):
    """Sentinel never calls it down, but it answers as another incarnation
    (and without a ring): it leaves the ring, then joins afresh."""
    w = world(5)
    dts = w.dtsentinel()
    _, values = bootstrapped(w, dts)
    n2 = w.nodes[1]
    old_run_id = w.run_id(n2)
    w.kill(n2)
    w.start(n2)  # same port, empty, new run_id
    assert w.run_id(n2) != old_run_id

    assert step(dts) == Step.COMMITTED
    _, without = w.stored(w.nodes[0])
    assert without.epoch == 1 and n2 not in {m.redis for m in without.nodes}
    w.assert_in_force(without)
    w.assert_placed(without, values)
    assert w.stored(n2) == (0, None)  # tainted: nothing published to it

    assert step(dts) == Step.COMMITTED
    _, back = w.stored(w.nodes[0])
    assert back.epoch == 2 and back.members()[n2].run_id == w.run_id(n2)
    w.assert_in_force(back)
    w.assert_placed(back, values)
    assert step(dts) == Step.IDLE


def test_a_readmission_refused_by_a_stale_lease_is_announced_again(world):
    """Every backend restarted at once, and one still holds the previous
    DTSentinel's lease (kept by its AOF: it was SIGKILLed holding it), so the
    new epoch cannot be fenced there. The next step announced it again only
    by chance: with AOF the backends still held the old ring, the step saw
    its own ring and idled for good ('dtriad up' of such a cluster timed out
    once in the suite). Now the same epoch is announced again once that
    lease expires."""
    w = world(3)
    dts = w.dtsentinel()
    bootstrapped(w, dts)
    for node in w.nodes:  # restarted with what they held (the AOF's part)
        dump = {(db, k): (w.db(node, db).dump(k), w.db(node, db).pttl(k))
                for db in (0, 1, 2) for k in w.db(node, db).keys()}
        w.kill(node)
        w.start(node)
        for (db, k), (payload, ttl) in dump.items():
            w.db(node, db).restore(k, max(ttl, 0), payload, replace=True)
    w.db(w.nodes[1], 1).set("dtriad:leader", "a-previous-dtsentinel", px=1500)
    assert step(dts) == Step.ANNOUNCE_FAILED
    _, stale = w.stored(w.nodes[0])
    assert stale.epoch == 0  # the old ring, as the AOF kept it
    wait_for("the stale lease to expire", lambda: not w.db(w.nodes[1], 1).exists("dtriad:leader")
             or w.db(w.nodes[1], 1).get("dtriad:leader") != "a-previous-dtsentinel")
    assert step(dts) == Step.COMMITTED
    _, readmitted = w.stored(w.nodes[0])
    assert readmitted.epoch == 1
    assert {m.run_id for m in readmitted.nodes} == {w.run_id(n) for n in w.nodes}
    w.assert_in_force(readmitted)
    assert step(dts) == Step.IDLE

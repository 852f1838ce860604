"""The replication protocol over fakeredis: ordered, exactly-once application
on backups, state transfer for copies that are behind or ahead, fenced
writes while the ring moves, quorum reads, the repair queue."""

from __future__ import annotations

import pytest
import redis

from dtriad.core.repair import Repairs
from dtriad.core.scripts import PUBLISH_META, STATE, VERSION_DB, WRITE_BACKUP, WRITE_MASTER
from dtriad.exceptions import ArgumentError, QuorumError
from dtriad.placement.ringstate import RingState


def write(core, key, *command, quorum=None):
    """One replicated write of ``command`` on ``key`` (the cluster's level unless ``quorum``)."""
    return core.run(core.requests.write([key], command,
                                        core.requests.level("write_quorum", quorum)))


def read(core, key, *command, quorum=None):
    return core.run(core.requests.read(key, command, core.requests.level("read_quorum", quorum)))


def call(core, method, write_quorum=None, read_quorum=None, **args):
    """One HTTP API method, by name, as the HTTP front end runs it."""
    argv = core.requests.argv_of(method, **args)
    return core.run(core.requests.command(argv, write_quorum, read_quorum))



def version(backends, node, key) -> int:
    db2 = redis.Redis(connection_pool=backends.pool(node))
    db2.execute_command("SELECT", VERSION_DB)
    return int(db2.get(key) or 0)


def copies(core, backends, key, command="GET") -> list:
    return [backends.direct(n).execute_command(command, key) for n in
            core.ring.preference_list(key)]


def test_a_backup_applies_each_write_once_and_in_the_masters_order(fake_cluster):
    core, backends = fake_cluster()
    master, b1, b2 = core.ring.preference_list("k")
    m, b = backends.direct(master), backends.direct(b1)
    first = m.eval(WRITE_MASTER, 1, "k", 0, "APPEND", "k", "a")
    second = m.eval(WRITE_MASTER, 1, "k", 0, "APPEND", "k", "b")
    # The second write arrives first: the backup is not at its previous version.
    assert b.eval(WRITE_BACKUP, 1, "k", 0, second[1], *second[2:], "APPEND", "k", "b") == [
        b"behind"]
    assert b.eval(WRITE_BACKUP, 1, "k", 0, first[1], *first[2:], "APPEND", "k", "a") == [
        b"applied", 1]
    assert b.eval(WRITE_BACKUP, 1, "k", 0, second[1], *second[2:], "APPEND", "k", "b") == [
        b"applied", 2]
    # Sent again (a retry): recognised, not applied twice.
    assert b.eval(WRITE_BACKUP, 1, "k", 0, second[1], *second[2:], "APPEND", "k", "b") == [
        b"ahead"]
    assert b.get("k") == m.get("k") == b"ab"
    assert int(second[1]) > int(first[1]) and int(second[2]) == int(first[1])


def test_versions_are_invisible_in_the_users_database(fake_cluster):
    core, backends = fake_cluster()
    write(core, "k", "SET", "k", "v")
    write(core, "l", "LPUSH", "l", "x")
    for node in core.ring.nodes:
        assert set(backends.direct(node).keys()) <= {b"k", b"l"}
    assert all(version(backends, n, "k") > 0 for n in core.ring.preference_list("k"))
    assert sum(d["total"] for d in core.reports.key_dist().values()) == 6


def test_a_copy_behind_or_diverged_gets_the_masters_state(fake_cluster):
    core, backends = fake_cluster()
    write(core, "k", "SET", "k", "v1")
    master, b1, b2 = core.ring.preference_list("k")
    backends.direct(b1).set("k", "tampered")  # same version, other value
    backends.direct(b2).delete("k")
    assert write(core, "k", "APPEND", "k", "!") == 3
    assert copies(core, backends, "k") == [b"v1!"] * 3
    versions = {version(backends, n, "k") for n in (master, b1, b2)}
    assert len(versions) == 1


def test_a_copy_ahead_with_other_data_loses_to_the_master(fake_cluster):
    """A copy with a newer version of different data (another history) is
    overwritten: the master is bumped past it, never silently skipped."""
    core, backends = fake_cluster()
    write(core, "k", "SET", "k", "v1")
    master, b1, _ = core.ring.preference_list("k")
    other = backends.direct(b1).eval(WRITE_MASTER, 1, "k", 0, "SET", "k", "elsewhere")
    assert int(other[1]) > version(backends, master, "k")
    assert write(core, "k", "APPEND", "k", "2") == 3
    assert copies(core, backends, "k") == [b"v12"] * 3
    assert version(backends, master, "k") > int(other[1])


def test_a_master_rejection_reaches_no_backup(fake_cluster):
    core, backends = fake_cluster()
    write(core, "s", "SET", "s", "text")
    before = [version(backends, n, "s") for n in core.ring.preference_list("s")]
    with pytest.raises(Exception, match="WRONGTYPE"):
        write(core, "s", "LPUSH", "s", "x")
    assert [version(backends, n, "s") for n in core.ring.preference_list("s")] == before


def publish(backends, nodes, state: RingState) -> None:
    for node in nodes:
        backends.direct(node).eval(PUBLISH_META, 0, state.token, state.to_json())


def test_a_ring_change_between_master_and_backups_applies_the_write_once(fake_cluster):
    """Backups fenced at a newer ring refuse the write after the master took
    it: the DTServer fetches the ring and gives the copies the master's state."""
    core, backends = fake_cluster()
    write(core, "k", "APPEND", "k", "a")
    master, b1, b2 = core.ring.preference_list("k")
    newer = RingState(1, core.view.state.replicas, 1, core.view.state.nodes)
    publish(backends, [b1, b2], newer)
    assert write(core, "k", "APPEND", "k", "b") == 2
    assert core.view.state.epoch == 1
    assert copies(core, backends, "k") == [b"ab"] * 3


def test_a_write_whose_master_moves_after_applying_it_is_never_sent_again(fake_cluster):
    """The master applies an INCR; before the backups take it, a migration
    copies the master's state to the key's owners in a new ring, in which
    the key has another master, and fences the backups. Routing the INCR
    again would count it twice there (the fault suite caught exactly that):
    the writer gets an ambiguous error instead, and the count stays right."""
    from dtriad.backends.outcome import Execute
    from dtriad.core.scripts import INSTALL
    from dtriad.exceptions import MasterMovedError

    core, backends = fake_cluster()
    write(core, "k", "SET", "k", "10")
    master = core.ring.preference_list("k")[0]
    newer = RingState(1, core.view.state.replicas, 1,
                      tuple(m for m in core.view.state.nodes if m.redis != master))
    owners = newer.ring().preference_list("k")
    work = core.requests.command(["INCR", "k"])
    effect = work.send(None)
    while not (isinstance(effect, Execute) and WRITE_MASTER in effect.args):
        effect = work.send(core.client.perform(effect))
    reply = core.client.perform(effect)  # the master applies it: 11
    publish(backends, [n for n in core.ring.nodes if n != master], newer)
    state = backends.direct(master).eval(STATE, 1, "k")
    for node in owners:  # the migration's copy of the master's state
        backends.direct(node).eval(INSTALL, 1, "k", newer.token, state[0], state[1], state[2])
    with pytest.raises(MasterMovedError, match="not sent again"):
        effect = work.send(reply)
        while True:
            effect = work.send(core.client.perform(effect))
    assert {backends.direct(n).get("k") for n in owners} == {b"11"}


def test_a_write_refused_by_the_master_is_routed_again_without_applying_twice(fake_cluster):
    core, backends = fake_cluster()
    write(core, "k", "LPUSH", "k", "a")
    newer = RingState(1, core.view.state.replicas, 1, core.view.state.nodes)
    publish(backends, core.ring.nodes, newer)
    assert write(core, "k", "LPUSH", "k", "b") == 2
    assert copies(core, backends, "k", "LLEN") == [2, 2, 2]


def test_a_backup_down_is_queued_and_repaired_when_it_returns(fake_cluster):
    core, backends = fake_cluster(write_quorum="quorum")
    write(core, "k", "SET", "k", "v1")
    master, b1, b2 = core.ring.preference_list("k")
    backends.down(b2)
    assert write(core, "k", "APPEND", "k", "+") == 3
    assert len(core.repairs) == 1
    assert core.repairs.run_once(core.reconcile) == 0  # still down: kept
    backends.servers[b2].connected = True
    core.suspects.clear()
    assert core.repairs.run_once(core.reconcile) == 1
    assert len(core.repairs) == 0
    assert copies(core, backends, "k") == [b"v1+"] * 3


def test_without_its_master_a_write_is_refused_everywhere(fake_cluster):
    core, backends = fake_cluster(write_quorum="one")
    master = core.ring.preference_list("k")[0]
    backends.down(master)
    with pytest.raises(QuorumError, match="held by 0 of 3 copies") as e:
        write(core, "k", "SET", "k", "v")
    assert e.value.copies == 0
    assert all(backends.servers[n].connected is False or not backends.direct(n).exists("k")
               for n in core.ring.preference_list("k"))


def test_a_quorum_read_answers_the_newest_copy_and_repairs_the_others(fake_cluster):
    core, backends = fake_cluster()
    write(core, "k", "SET", "k", "old")
    master = core.ring.preference_list("k")[0]
    stale = backends.direct(master).eval(STATE, 1, "k")
    write(core, "k", "SET", "k", "new")
    # The master rolls back to the older state (as after a restore from an old file).
    m = backends.direct(master)
    m.restore("k", 0, stale[1], replace=True)
    db2 = redis.Redis(connection_pool=backends.pool(master))
    db2.execute_command("SELECT", VERSION_DB)
    db2.set("k", stale[0])
    assert read(core, "k", "GET", "k") == b"old"  # read_quorum one: the master answers
    assert read(core, "k", "GET", "k", quorum="quorum") == b"new"
    assert copies(core, backends, "k") == [b"new"] * 3


def test_consistency_levels_are_checked_per_request(fake_cluster):
    core, _ = fake_cluster()
    with pytest.raises(ArgumentError, match="write_quorum must be one of all, quorum, one"):
        call(core, "set", key="k", value="v", write_quorum="most")
    with pytest.raises(ArgumentError, match="read_quorum must be one of one, quorum"):
        call(core, "get", key="k", read_quorum="all")
    assert call(core, "set", key="k", value="v", write_quorum="one") == b"OK"
    assert call(core, "get", key="k", read_quorum="quorum") == b"v"
    info = core.reports.ring()
    assert (info["write_quorum"], info["read_quorum"]) == ("all", "one")


def test_the_repair_queue_is_bounded_and_keeps_what_it_cannot_repair():
    queue = Repairs(limit=3)
    queue.add(["a", "b"])
    queue.add(["c", "d", "a"])  # "a" moves to the back; "b", the oldest, is dropped
    assert len(queue) == 3 and queue.dropped == 1
    assert queue.run_once(lambda key: key != "c") == 2
    assert len(queue) == 1
    assert queue.snapshot() == {"pending": 1, "repaired": 2, "dropped": 1}


def intents(backends, node) -> dict:
    db1 = redis.Redis(connection_pool=backends.pool(node))
    db1.execute_command("SELECT", 1)
    return {k: int(v) for k, v in db1.zrange("dtriad:dirty", 0, -1, withscores=True)}


def test_a_write_leaves_its_repair_intent_until_every_copy_holds_it(fake_cluster):
    """The master records the intent with the write; a write every copy took
    clears it in the next batch, one a copy missed keeps it for the sweep."""
    core, backends = fake_cluster()
    write(core, "k", "SET", "k", "v")
    master, b1, _ = core.ring.preference_list("k")
    assert set(intents(backends, master)) == {b"k"}
    assert not intents(backends, b1)  # only the master records it
    core.intents()
    assert not intents(backends, master)
    backends.down(b1)
    with pytest.raises(QuorumError):
        write(core, "k", "SET", "k", "w")
    core.intents()
    assert set(intents(backends, master)) == {b"k"}
    assert core.repairs.take_settled() == {}


def test_a_newer_writes_intent_survives_the_clearing_of_an_older_one(fake_cluster):
    from dtriad.core.scripts import CLEAN

    core, backends = fake_cluster()
    master = core.ring.preference_list("k")[0]
    m = backends.direct(master)
    first = m.eval(WRITE_MASTER, 1, "k", 0, "SET", "k", "a")
    second = m.eval(WRITE_MASTER, 1, "k", 0, "SET", "k", "b")
    assert m.eval(CLEAN, 0, "k", first[1]) == 0
    assert intents(backends, master) == {b"k": int(second[1])}
    assert m.eval(CLEAN, 0, "k", second[1]) == 1
    assert not intents(backends, master)


def test_a_reconcile_never_undoes_a_write_that_reached_a_copy_after_it_read_versions(
        fake_cluster):
    """A reconcile picks the newest copy from versions it read, then gives the
    others its state. A write that reaches a copy in between (its master step
    done, its backups not yet) must survive: the reconcile is not settled
    and reads again later. It used to bump its older "newest" past that copy
    and install over it, and the write's backups then took the master's
    state without it: the fault suite lost an acknowledged SADD this way."""
    from dtriad.backends.outcome import Fanout
    from dtriad.core.scripts import READ_VERSIONED
    core, backends = fake_cluster()
    write(core, "k", "SADD", "k", "a")
    write(core, "k", "SADD", "k", "b")
    master, b1, _ = core.ring.preference_list("k")
    old = redis.Redis(connection_pool=backends.pool(master))
    old.srem("k", "b")  # the master lost its last write (an AOF cut): b1 is newest
    old.execute_command("SELECT", VERSION_DB)
    old.set("k", version(backends, b1, "k") - 1)
    steps, reply = core.requests.reconcile("k"), None
    while True:
        try:
            effect = steps.send(reply)
        except StopIteration as done:
            settled = done.value
            break
        reply = core.client.perform(effect)
        if isinstance(effect, Fanout) and effect.args[1] == READ_VERSIONED:
            # a write's master step lands now, between the read and the repair
            backends.direct(master).eval(WRITE_MASTER, 1, "k", core.view.token,
                                         "SADD", "k", "c")
    assert not settled
    assert b"c" in backends.direct(master).smembers("k")

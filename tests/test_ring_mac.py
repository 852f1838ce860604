"""The ring's MAC (docs/membership.md, "Authenticated rings"): signing and
verifying, and what a DTServer does with a ring that does not verify."""

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtriad.backends.client import DTClient
from dtriad.config import ClusterConfig
from dtriad.core.dtcore import DTCore
from dtriad.core.follower import RejectedRing, RingCheck, read_rings
from dtriad.core.scripts import PUBLISH_META
from dtriad.core.steps import run
from dtriad.exceptions import ArgumentError
from dtriad.placement.ringmac import CONTEXT, Unsigned, ring_mac, signed_json, verify_json
from dtriad.placement.ringstate import Member, RingState

from .conftest import FakeBackends, make_nodes

SECRET = "s3cret"
KEY = SECRET.encode()
NODES = make_nodes(5)
PENDING = RingState(3, 2, 4, tuple(Member.of(n, f"run{i}") for i, n in enumerate(NODES[:4])),
                    tuple(Member.of(n) for n in NODES), 4,
                    {"epoch": 4, "phase": "copying", "keys_moved": 12, "keys_per_s": 3.5})


def test_a_signed_ring_verifies_as_itself():
    for state in (PENDING, RingState.initial(ClusterConfig(nodes=NODES, replicas=2))):
        text = signed_json(state, KEY)
        got = verify_json(text, KEY)
        assert got == state and got.migration == state.migration
        data = json.loads(text)
        assert data["mac"] == ring_mac(state, KEY) and len(data["mac"]) == 64
        # the MAC is of the canonical JSON, prefixed by the protocol's context
        import hashlib
        import hmac
        assert data["mac"] == hmac.new(KEY, CONTEXT + state.to_json().encode(),
                                       hashlib.sha256).hexdigest()


def test_layout_does_not_matter_meaning_does():
    data = json.loads(signed_json(PENDING, KEY))
    spaced = json.dumps(dict(reversed(list(data.items()))), indent=2)
    assert verify_json(spaced, KEY) == PENDING
    assert verify_json(spaced.encode(), KEY) == PENDING


def _tampered():
    """Every field of a signed pending ring, changed one at a time."""
    base = json.loads(signed_json(PENDING, KEY))

    def changed(path, value):
        data = json.loads(json.dumps(base))
        target = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return data

    other = NODES[4]
    yield "epoch", changed(["epoch"], 2) | {"token": PENDING.token}
    yield "replicas", changed(["replicas"], 1)
    yield "vnodes", changed(["vnodes"], 5)
    yield "member name", changed(["nodes", 0, "name"], "evil")
    yield "member redis", changed(["nodes", 0, "redis"], "10.6.6.6:6379")
    yield "member http", changed(["nodes", 0, "http"], "http://10.6.6.6:80")
    yield "member run_id", changed(["nodes", 0, "run_id"], "other")
    yield "run_id dropped", {**base, "nodes": [
        {k: v for k, v in m.items() if k != "run_id"} for m in base["nodes"]]}
    yield "member dropped", changed(["nodes"], base["nodes"][:3])
    yield "member added", changed(["nodes"], base["nodes"] + [
        {"name": other.name, "redis": other.redis, "http": other.http}])
    yield "pending member", changed(["pending", 4, "redis"], "10.6.6.6:6379")
    yield "pending dropped", {**changed(["pending"], None), "pending_epoch": None,
                              "token": 2 * PENDING.epoch}
    yield "pending epoch", changed(["pending_epoch"], 9) | {"token": 17}
    yield "migration", changed(["migration", "keys_moved"], 13)
    yield "migration dropped", changed(["migration"], None)
    yield "mac", changed(["mac"], ("0" if base["mac"][0] != "0" else "1") + base["mac"][1:])


@pytest.mark.parametrize("what,data", list(_tampered()), ids=[w for w, _ in _tampered()])
def test_changing_any_field_breaks_the_mac(what, data):
    with pytest.raises(ArgumentError, match="does not verify") as caught:
        verify_json(json.dumps(data), KEY)
    assert not isinstance(caught.value, Unsigned)


def test_the_token_must_match_the_epoch():
    data = json.loads(signed_json(PENDING, KEY))
    data["token"] = 99
    with pytest.raises(ArgumentError, match="token 99 does not match"):
        verify_json(json.dumps(data), KEY)


def test_another_secret_does_not_verify():
    with pytest.raises(ArgumentError, match="another cluster secret"):
        verify_json(signed_json(PENDING, KEY), b"other-secret")


def test_unsigned_is_its_own_error_and_keeps_the_state():
    for text, key in ((PENDING.to_json(), KEY), (signed_json(PENDING, KEY), None)):
        with pytest.raises(Unsigned) as caught:
            verify_json(text, key)
        assert caught.value.state == PENDING
    assert signed_json(PENDING, None) == PENDING.to_json()  # a cluster with no secret


@pytest.mark.parametrize("text,match", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "list, not an object"),
    ('{"epoch": 1}', "replicas must be"),
    (json.dumps({**json.loads(PENDING.to_json()), "mac": 5}), "64 lowercase hex"),
    (json.dumps({**json.loads(PENDING.to_json()), "mac": "AB" * 32}), "64 lowercase hex"),
    (json.dumps({**json.loads(PENDING.to_json()), "mac": "ab" * 31}), "64 lowercase hex"),
    ("[" * 100_000, "not valid JSON"),
    (" " * (4 * 1024 * 1024 + 1), "at most"),
])
def test_malformed(text, match):
    with pytest.raises(ArgumentError, match=match) as caught:
        verify_json(text, KEY)
    assert not isinstance(caught.value, Unsigned)


@given(st.binary(max_size=300))
def test_no_input_gets_past_verification_unsigned(data):
    with pytest.raises(ArgumentError):
        verify_json(data, KEY)


# ----------------------------------------------------------- what is adopted
def test_with_a_secret_only_a_verified_ring_is_adopted(caplog):
    check = RingCheck(ClusterConfig(nodes=NODES, replicas=2, secret=SECRET))
    assert check.parse(signed_json(PENDING, KEY), "here") == PENDING
    with pytest.raises(RejectedRing, match="carries no MAC") as caught:
        check.parse(PENDING.to_json(), "here")
    assert caught.value.legacy == PENDING  # what an upgrading DTSentinel may take over
    forged = RingState(9, 2, 1, (Member("n1", "10.6.6.6:6379", "http://10.6.6.6:80"),))
    with pytest.raises(RejectedRing, match="not nodes of the cluster file") as caught:
        check.parse(forged.to_json(), "here")
    assert caught.value.legacy is None
    with pytest.raises(RejectedRing, match="does not verify") as caught:
        check.parse(signed_json(forged, b"guess"), "here")
    assert caught.value.legacy is None


def test_a_rejected_ring_is_logged_once(caplog):
    check = RingCheck(ClusterConfig(nodes=NODES, replicas=2, secret=SECRET))
    forged = signed_json(PENDING, b"guess")
    with caplog.at_level(logging.WARNING, logger="dtriad.ring"):
        for _ in range(5):
            with pytest.raises(RejectedRing):
                check.parse(forged, "stored on n1")
        with pytest.raises(RejectedRing):
            check.parse(PENDING.to_json(), "stored on n2")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "stored on n1" in lines[0] and "does not verify" in lines[0]
    assert "changes nothing" in lines[0]


def test_without_a_secret_only_cluster_file_nodes_are_adopted():
    check = RingCheck(ClusterConfig(nodes=NODES, replicas=2))
    assert check.parse(PENDING.to_json(), "here") == PENDING
    assert check.sign(PENDING) == PENDING.to_json()
    moved = RingState(9, 2, 1, (Member("n1", "10.6.6.6:6379", NODES[0].http),))
    with pytest.raises(RejectedRing, match="with no cluster secret"):
        check.parse(moved.to_json(), "here")
    renamed = RingState(9, 2, 1, (Member("x1", NODES[0].redis, NODES[0].http),))
    with pytest.raises(RejectedRing, match="not nodes of the cluster file"):
        check.parse(renamed.to_json(), "here")


def build(tmp_path):
    config = ClusterConfig(nodes=NODES, replicas=2, secret=SECRET)
    backends = FakeBackends(config)
    core = DTCore(config, DTClient(pool_factory=backends.pool), state_file=tmp_path / "ring")
    return config, core, backends


def test_a_forged_stored_ring_changes_nothing(tmp_path, caplog):
    """A higher-token ring planted on one backend, naming an address outside
    the cluster: not adopted, no pool opened to that address, logged once."""
    config, core, backends = build(tmp_path)
    real = RingState(1, 2, 1, tuple(Member.of(n) for n in NODES[:4]))
    for node in backends.servers:
        backends.direct(node).eval(PUBLISH_META, 0, real.token, signed_json(real, KEY))
    evil = RingState(50, 2, 1, (Member("n1", "10.6.6.6:6379", "http://10.6.6.6:80"),))
    target = NODES[2].redis
    opened = []
    core.follower._pools = opened.append
    with caplog.at_level(logging.WARNING, logger="dtriad.ring"):
        for text in (evil.to_json(), signed_json(evil, b"guess")):
            backends.direct(target).eval(  # the ring only: its fence stays
                "redis.call('SELECT', 1); redis.call('SET', 'dtriad:ring', ARGV[1])", 0, text)
            for _ in range(3):
                assert run(core.follower.refresh(), core.client) in (True, False)
                assert core.view.token == real.token
    assert "10.6.6.6:6379" not in opened
    assert set(opened) <= {n.redis for n in NODES}
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 2, rejected
    stored = run(read_rings([n.redis for n in NODES], core.follower.check), core.client)
    assert stored.state == real and set(stored.rejected) == {target}


def test_an_unverified_push_or_state_file_changes_nothing(tmp_path):
    config, core, backends = build(tmp_path)
    four = RingState(1, 2, 1, tuple(Member.of(n) for n in NODES[:4]))
    for text in (four.to_json(), signed_json(four, b"guess")):
        with pytest.raises(ArgumentError):
            core.install(SECRET, text)
        assert core.view.token == 0
    core.install(SECRET, signed_json(four, KEY))
    assert core.view.token == four.token
    assert verify_json((tmp_path / "ring").read_text(), KEY) == four  # saved signed
    # another worker reads the state file: a forged one is not adopted
    other = DTCore(config, DTClient(pool_factory=backends.pool), state_file=tmp_path / "x")
    (tmp_path / "x").write_text(RingState(5, 2, 1, four.nodes).to_json())
    other.follower._next_file_check = 0
    assert other.view.token == 0

"""Properties of the pure ring (hypothesis) and its exact hashing rules."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtriad.exceptions import ConfigurationError
from dtriad.placement.ring import RING_SIZE, Arc, Ring, diff, hash_tag, sha1_position, transfers

node_ids = st.builds(lambda a, p: f"10.0.{a // 250}.{a % 250}:{p}",
                     st.integers(0, 5000), st.integers(1024, 65535))
node_sets = st.sets(node_ids, min_size=1, max_size=24)
replica_counts = st.integers(0, 4)
keys = st.binary(min_size=0, max_size=40)


def sha1_int(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest(), 16)


def test_positions_follow_the_design_exactly():
    ring = Ring(["127.0.0.1:30001", "127.0.0.1:30002"], replicas=1)
    assert ring.node_tokens("127.0.0.1:30001") == [sha1_int("127.0.0.1:30001")]
    assert ring.position("foo") == sha1_int("foo")
    vring = Ring(["127.0.0.1:30001"], replicas=0, vnodes=3)
    assert vring.node_tokens("127.0.0.1:30001") == sorted(
        sha1_int(f"127.0.0.1:30001#{i}") for i in range(3))


def test_master_is_first_token_at_or_after_the_key():
    nodes = [f"127.0.0.1:{30000 + i}" for i in range(6)]
    ring = Ring(nodes, replicas=2)
    tokens = sorted((sha1_int(n), n) for n in nodes)
    for key in ["a", "b", "user:1", "x" * 100]:
        pos = sha1_int(key)
        expected = next((n for t, n in tokens if t >= pos), tokens[0][1])
        assert ring.master(key) == expected
    # A key placed exactly on a token belongs to that token's node.
    t, n = tokens[3]
    assert ring.owners_at(t)[0] == n
    assert ring.owners_at(t + 1)[0] == tokens[4][1]
    # Past the last token the ring wraps to the first.
    assert ring.owners_at(tokens[-1][0] + 1)[0] == tokens[0][1]


@pytest.mark.parametrize("key,tag", [
    (b"{user1}.name", b"user1"), (b"foo{bar}baz", b"bar"), (b"{}x", b"{}x"),
    (b"{x", b"{x"), (b"a}{b}", b"b"), (b"{a}{b}", b"a"), (b"plain", b"plain"),
])
def test_hash_tags_follow_redis_cluster(key, tag):
    assert hash_tag(key) == tag


def test_keys_sharing_a_tag_share_a_preference_list():
    ring = Ring([f"n{i}:1" for i in range(10)], replicas=2)
    assert ring.preference_list("{u42}:a") == ring.preference_list("{u42}:bb") \
        == ring.preference_list("u42")


def test_bad_configuration_is_refused():
    with pytest.raises(ConfigurationError):
        Ring(["a:1", "a:1"], replicas=1)
    with pytest.raises(ConfigurationError):
        Ring(["a:1"], replicas=-1)
    with pytest.raises(ConfigurationError):
        Ring(["a:1"], replicas=1, vnodes=0)


@given(node_sets, replica_counts, st.integers(1, 8), keys)
def test_preference_list_is_distinct_and_sized(nodes, r, vnodes, key):
    prefs = Ring(nodes, r, vnodes).preference_list(key)
    assert len(prefs) == len(set(prefs)) == min(r + 1, len(nodes))
    assert set(prefs) <= nodes


@given(node_sets, replica_counts, st.integers(1, 8), keys)
def test_preference_list_agrees_with_the_walk_and_the_arcs(nodes, r, vnodes, key):
    ring = Ring(nodes, r, vnodes)
    pos = ring.position(key)
    assert ring.preference_list(key) == tuple(ring.walk(pos))[:ring.copies]
    containing = [arc for arc in ring.arcs() if pos in arc]
    assert len(containing) == 1
    assert containing[0].owners == ring.preference_list(key)


@given(node_sets, replica_counts, st.integers(1, 8))
def test_arcs_cover_the_ring_once(nodes, r, vnodes):
    ring = Ring(nodes, r, vnodes)
    assert sum(arc.size for arc in ring.arcs()) == RING_SIZE
    share = ring.share()
    assert abs(sum(s["master"] for s in share.values()) - 1.0) < 1e-9
    roles = ring.roles()
    arcs = len(ring.arcs())
    assert sum(r["master"] for r in roles.values()) == arcs
    assert sum(r["backup"] for r in roles.values()) == arcs * (ring.copies - 1)
    assert all(roles[n]["master"] <= vnodes for n in ring.nodes)


def _check_single_node_change(small: Ring, big: Ring, node: str, joined: bool):
    old, new = (small, big) if joined else (big, small)
    changes = diff(old, new)
    for change in changes:
        # Every changed arc changes because of `node`, and only by swapping it
        # with at most one other node.
        assert node in change.old_owners + change.new_owners
        moved = set(change.old_owners) ^ set(change.new_owners)
        assert node in moved and len(moved) <= 2
    return changes


@settings(max_examples=200)
@given(node_sets, node_ids, replica_counts, st.integers(1, 8), st.lists(keys, max_size=20))
def test_join_and_leave_change_only_arcs_next_to_the_node(nodes, extra, r, vnodes, sample):
    nodes = nodes - {extra}
    if not nodes:
        return
    small = Ring(nodes, r, vnodes)
    big = small.with_node(extra)
    for joined in (True, False):
        changes = _check_single_node_change(small, big, extra, joined)
        # The diff is exact: a key's preference list changes iff it lies in a changed arc.
        for key in sample:
            pos = small.position(key)
            changed = small.preference_list(key) != big.preference_list(key)
            assert changed == any(pos in Arc(c.start, c.end, ()) for c in changes)


@settings(max_examples=200)
@given(st.sets(node_ids, min_size=1, max_size=30), node_ids, replica_counts)
def test_one_token_per_node_join_or_leave_moves_exactly_r_plus_one(nodes, extra, r):
    nodes = nodes - {extra}
    if len(nodes) < r + 1:
        return  # with fewer nodes than copies, every node already holds everything
    small = Ring(nodes, r)
    big = small.with_node(extra)
    join = transfers(diff(small, big))
    leave = transfers(diff(big, small))
    assert len(join) == r + 1
    assert all(dest == extra for _, dest in join)
    assert len(leave) == r + 1
    assert extra not in [dest for _, dest in leave]


@given(st.integers(0, 4))
def test_changed_arcs_of_a_join_sit_just_before_the_node(r):
    nodes = [f"127.0.0.1:{30000 + i}" for i in range(12)]
    small = Ring(nodes, r)
    big = small.with_node("127.0.0.1:40000")
    token = big.node_tokens("127.0.0.1:40000")[0]
    # The r + 1 arcs that end at the new node and at its r predecessors.
    ordered = [pos for pos, _ in big.tokens]
    idx = ordered.index(token)
    expected_ends = {ordered[(idx - k) % len(ordered)] for k in range(r + 1)}
    assert {c.end for c in diff(small, big)} == expected_ends


def test_virtual_nodes_even_out_the_load():
    nodes = [f"127.0.0.1:{30000 + i}" for i in range(10)]

    def spread(vnodes):
        share = Ring(nodes, 0, vnodes).share()
        masters = [s["master"] for s in share.values()]
        return max(masters) / (sum(masters) / len(masters))

    assert spread(64) < 1.5
    assert spread(64) < spread(1)


def test_empty_ring_has_no_owners():
    ring = Ring([], replicas=2)
    assert ring.preference_list("k") == ()
    assert diff(ring, ring) == []
    assert len(transfers(diff(ring, ring.with_node("a:1")))) == 1


def test_sha1_position_range():
    assert 0 <= sha1_position(b"") < RING_SIZE

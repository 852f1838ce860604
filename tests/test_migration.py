"""Properties of the pure migration planner (hypothesis)."""

from hypothesis import assume, given
from hypothesis import strategies as st

from dtriad.placement.planner import plan, strays
from dtriad.placement.ring import Ring

node_ids = st.builds(lambda a, p: f"10.0.{a // 250}.{a % 250}:{p}",
                     st.integers(0, 5000), st.integers(1024, 65535))
positions = st.integers(0, (1 << 160) - 1)


def holders(ring: Ring, position: int) -> set[str]:
    return set(ring.owners_at(position))


def after(p, position: int) -> set[str]:
    """Who holds ``position`` once ``p`` is executed: old owners still in the new
    ring, plus the destinations of transfers covering it, minus the cleaned."""
    from dtriad.placement.ring import Arc

    held = {n for n in p.old.owners_at(position) if n in p.new.nodes}
    for t in p.transfers:
        if position in Arc(t.start, t.end, ()):
            assert t.source in held, "a source must hold the arc completely"
            held.add(t.destination)
    for c in p.cleanups:
        if position in Arc(c.start, c.end, ()):
            held.discard(c.node)
    return held


@given(st.sets(node_ids, min_size=1, max_size=20), node_ids, st.integers(0, 3))
def test_join_or_failure_with_one_token_moves_exactly_r_plus_one_arcs(nodes, extra, r):
    assume(extra not in nodes)
    assume(len(nodes) > r + 1)
    small, big = Ring(nodes, r), Ring(nodes | {extra}, r)
    join, failure = plan(small, big), plan(big, small)
    assert len(join.transfers) == r + 1
    assert {t.destination for t in join.transfers} == {extra}
    assert not join.lost
    if r == 0:  # the only copy died with the node: reported, nothing to copy from
        assert len(failure.lost) == 1 and not failure.transfers
    else:
        assert len(failure.transfers) == r + 1 and not failure.lost
        assert extra not in {t.source for t in failure.transfers}


@given(st.sets(node_ids, min_size=2, max_size=16), st.data(), st.integers(0, 3),
       st.sampled_from([1, 4]), st.lists(positions, min_size=1, max_size=20))
def test_executing_the_plan_restores_both_invariants(nodes, data, r, vnodes, sample):
    """After transfers and cleanups, every position is held by exactly its new
    preference list, unless every old copy was lost."""
    nodes = sorted(nodes)
    old_members = data.draw(st.sets(st.sampled_from(nodes), min_size=1))
    new_members = data.draw(st.sets(st.sampled_from(nodes), min_size=1))
    old, new = Ring(old_members, r, vnodes), Ring(new_members, r, vnodes)
    p = plan(old, new)
    for position in sample:
        survivors = {n for n in old.owners_at(position) if n in new.nodes}
        if not survivors and set(old.owners_at(position)) != holders(new, position):
            assert any(position in _arc(c) for c in p.lost)
            continue
        assert after(p, position) == holders(new, position)


@given(st.sets(node_ids, min_size=3, max_size=16), st.data(), st.integers(0, 2))
def test_only_keys_whose_replica_set_changed_move(nodes, data, r):
    nodes = sorted(nodes)
    old = Ring(nodes, r)
    new = Ring(data.draw(st.sets(st.sampled_from(nodes), min_size=1)), r)
    for position in data.draw(st.lists(positions, min_size=1, max_size=20)):
        moving = [t for t in plan(old, new).transfers if position in _arc(t)]
        if not holders(old, position) & set(new.nodes):
            assert not moving  # lost: nothing to copy from
        elif holders(old, position) == holders(new, position):
            assert not moving
        else:
            assert {t.destination for t in moving} == holders(new, position) - holders(
                old, position)


@given(st.sets(node_ids, min_size=4, max_size=12), st.data(), st.integers(1, 2))
def test_abandoned_pending_rings_are_cleaned_too(nodes, data, r):
    nodes = sorted(nodes)
    old = Ring(nodes, r)
    pending = Ring(nodes[:-1], r)
    new = Ring(nodes[1:], r)
    p = plan(old, new, previous=[pending])
    for position in data.draw(st.lists(positions, min_size=1, max_size=20)):
        stale = (holders(old, position) | holders(pending, position)) - holders(new, position)
        cleaned = {c.node for c in p.cleanups if position in _arc(c)}
        assert cleaned == stale & set(new.nodes)


def test_losing_every_copy_is_reported_not_planned():
    nodes = [f"127.0.0.1:{30000 + i}" for i in range(5)]
    old = Ring(nodes, 1)
    arc = old.arcs()[0]
    new = Ring([n for n in nodes if n not in arc.owners], 1)
    p = plan(old, new)
    assert any(arc.end in _arc(lost) for lost in p.lost)
    assert all(arc.end not in _arc(t) for t in p.transfers)


def _arc(item):
    from dtriad.placement.ring import Arc

    return Arc(item.start, item.end, ())


@given(st.sets(node_ids, min_size=1, max_size=12), st.integers(0, 3), st.sampled_from([1, 4]),
       st.lists(positions, min_size=1, max_size=20))
def test_strays_clean_exactly_what_a_node_does_not_own(nodes, r, vnodes, sample):
    """A DTSentinel taking over a committed ring cleans, on every node, every
    position the node does not own, and never one it owns."""
    from dtriad.placement.ring import Arc

    ring = Ring(nodes, r, vnodes)
    cleanups = strays(ring)
    for position in sample:
        cleaned = {c.node for c in cleanups if position in Arc(c.start, c.end, ())}
        assert cleaned == set(ring.nodes) - holders(ring, position)

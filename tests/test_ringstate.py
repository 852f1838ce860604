"""Ring distribution and routing over fakeredis: pushes, fences, dual writes."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from dtriad.backends.client import DTClient
from dtriad.config import ClusterConfig
from dtriad.core.dtcore import DTCore
from dtriad.core.follower import FILE_CHECK_S
from dtriad.core.scripts import PUBLISH_META
from dtriad.exceptions import ArgumentError
from dtriad.frontends.http import make_wsgi_app
from dtriad.placement.ringmac import signed_json
from dtriad.placement.ringstate import Member, RingState, View, route_between

from .conftest import FakeBackends, make_nodes

SECRET = "s3cret"


def signed(state: RingState) -> str:
    """``state`` as the DTSentinel stores and pushes it: MACed under the secret."""
    return signed_json(state, SECRET.encode())


def call(core, method, **args):
    """One HTTP API method, by name, as the HTTP front end runs it."""
    return core.run(core.requests.command(core.requests.argv_of(method, **args)))



def build(tmp_path=None, nodes=5, replicas=2):
    config = ClusterConfig(nodes=make_nodes(nodes), replicas=replicas, secret=SECRET)
    backends = FakeBackends(config)
    state_file = tmp_path / "ring.json" if tmp_path else None
    core = DTCore(config, DTClient(pool_factory=backends.pool), state_file=state_file)
    return config, core, backends


def members(config, names):
    return tuple(Member.of(n) for n in config.nodes if n.name in names)


def push(client, secret, state):
    reply = client.post("/ringUpdate", data={"secret": secret, "state": state})
    return reply.status_code, json.loads(reply.data)


def test_pushes_need_the_secret_and_never_go_back(tmp_path):
    config, core, _ = build(tmp_path)
    client = Client(make_wsgi_app(core))
    four = RingState(1, 2, 1, members(config, {"n1", "n2", "n3", "n4"}))
    assert push(client, "wrong", signed(four))[0] == 401
    assert push(client, "", signed(four))[0] == 401
    assert core.reports.ring()["epoch"] == 0
    assert push(client, SECRET, signed(four)) == (200, {"epoch": 1, "token": 2})
    assert core.reports.ring()["epoch"] == 1 and len(core.ring.nodes) == 4
    older = RingState(0, 2, 1, members(config, {"n1", "n2"}))
    status, body = push(client, SECRET, signed(older))
    assert (status, body["code"]) == (409, "STALE")
    assert "never go back" in body["error"]
    assert push(client, SECRET, signed(four))[0] == 200  # the same one again is fine
    status, body = push(client, SECRET, '{"epoch": 9}')
    assert (status, body["code"]) == (400, "BADARG")
    status, body = push(client, SECRET, "not json")
    assert (status, body["code"]) == (400, "BADARG")
    assert core.reports.ring()["epoch"] == 1


def test_a_pushed_ring_reaches_every_worker_through_the_state_file(tmp_path):
    config, core, backends = build(tmp_path)
    now = [0.0]
    other = DTCore(config, DTClient(pool_factory=backends.pool),
                   state_file=tmp_path / "ring.json",  # a second worker process
                   clock=lambda: now[0])
    four = RingState(1, 2, 1, members(config, {"n1", "n2", "n3", "n4"}))
    core.install(SECRET, signed(four))
    assert other.reports.ring()["epoch"] == 0  # looked at the file moments ago
    now[0] += FILE_CHECK_S
    assert other.reports.ring()["epoch"] == 1


def test_a_write_by_an_old_ring_is_fenced_then_retried_by_the_new_one(tmp_path):
    """A DTServer that missed a push: the backends refuse its token, it fetches
    the ring they hold and writes by it."""
    config, core, backends = build()
    four = RingState(1, 2, 1, members(config, {"n1", "n2", "n3", "n4"}))
    for node in backends.servers:
        backends.direct(node).eval(PUBLISH_META, 0, four.token, signed(four))
    assert core.view.token == 0
    key = next(k for k in (f"k{i}" for i in range(1000))
               if "127.0.0.1:30005" in config.ring().preference_list(k))
    assert call(core, "set", key=key, value="v") == b"OK"
    assert core.view.token == four.token
    holders = {n for n in backends.servers if backends.direct(n).get(key) == b"v"}
    assert holders == set(four.ring().preference_list(key))


def test_publish_never_lowers_a_backends_fence():
    config, _, backends = build()
    node = config.nodes[0].redis
    r = backends.direct(node)
    assert r.eval(PUBLISH_META, 0, 6, "{}") == 6
    assert r.eval(PUBLISH_META, 0, 4, "{}") == 6


@pytest.mark.integration
def test_during_a_migration_writes_reach_old_and_new_owners(redis_backends):
    """Real Redis (MIGRATE): nodes gaining a key get the authority's state, so a
    non-idempotent command is never applied twice on them."""
    import redis

    from dtriad.config import NodeSpec

    from .conftest import PASSWORD

    addresses = redis_backends(5)
    config = ClusterConfig(nodes=tuple(NodeSpec(f"n{i}", a, f"http://127.0.0.1:{40000 + i}")
                                       for i, a in enumerate(addresses, 1)),
                           replicas=2, secret=SECRET, password=PASSWORD)
    core = DTCore(config)
    old = members(config, {"n1", "n2", "n3", "n4"})
    new = members(config, {"n1", "n2", "n3", "n4", "n5"})
    pending = RingState(1, 2, 1, old, new, 2)
    direct = {a: redis.Redis.from_url(f"redis://:{PASSWORD}@{a}") for a in addresses}
    for r in direct.values():  # as the DTSentinel does: fenced and stored, then pushed
        r.eval(PUBLISH_META, 0, pending.token, signed(pending))
    core.install(SECRET, signed(pending))
    view = View(pending)
    joining = addresses[4]
    keys = [k for k in (f"k{i}" for i in range(2000))
            if joining in view.pending.preference_list(k)]
    assert keys
    for key in keys[:20]:
        call(core, "set", key=key, value="x")
        assert call(core, "append", key=key, value="y") == 2
        for n in set(view.ring.preference_list(key)) | set(view.pending.preference_list(key)):
            assert direct[n].get(key) == b"xy", (key, n)
        call(core, "delete", key=key)
        assert not any(r.exists(key) for r in direct.values())
    info = core.reports.ring()
    assert info["pending_epoch"] == 2
    assert {n["name"]: n["state"] for n in info["nodes"]}["n5"] == "joining"
    core.close()


@given(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True),
       st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True))
def test_dual_write_routes_cover_both_lists(old, new):
    route = route_between(tuple(old), tuple(new))
    assert set(route.direct) | set(route.copy_to) == set(old) | set(new)
    assert not set(route.direct) & set(route.copy_to)
    assert set(route.copy_to) == set(new) - set(old)  # gaining nodes get state, never replays
    assert route.read[:len(old)] == tuple(old)  # complete copies are read first
    assert route.owners == tuple(new)


def test_malformed_states_are_refused():
    with pytest.raises(Exception, match="pending"):
        RingState(1, 2, 1, (Member("n1", "127.0.0.1:1", "http://127.0.0.1:2"),),
                  pending=(), pending_epoch=None)
    with pytest.raises(Exception, match="newer"):
        RingState(3, 2, 1, (Member("n1", "127.0.0.1:1", "http://127.0.0.1:2"),),
                  pending=(), pending_epoch=3)


def test_a_write_fenced_before_the_ring_is_stored_backs_off_until_it_is(tmp_path):
    """The DTSentinel fences every member, then stores the ring: a write in
    between is refused everywhere and finds no newer ring, so it waits (a
    Pause step) instead of failing, and goes through once the ring is stored;
    if it never is, it fails with RINGCHANGING having applied nothing."""
    from dtriad.backends.outcome import Pause
    from dtriad.core.scripts import FENCE_ONLY
    from dtriad.exceptions import RingChangingError

    config, core, backends = build()
    four = RingState(1, 2, 1, members(config, {"n1", "n2", "n3", "n4"}))
    for node in backends.servers:
        backends.direct(node).eval(FENCE_ONLY, 0, four.token, "")

    def drive(work, on_pause):
        reply, error, pauses = None, None, []
        while True:
            try:
                effect = work.throw(error) if error is not None else work.send(reply)
            except StopIteration as done:
                return done.value, pauses
            reply, error = None, None
            if isinstance(effect, Pause):
                pauses.append(effect.seconds)
                on_pause(len(pauses))
                continue
            try:
                reply = core.client.perform(effect)
            except Exception as e:  # noqa: BLE001 - handed back, as the drivers do
                error = e

    def store_on_second_pause(n):
        if n == 2:
            for node in backends.servers:
                backends.direct(node).eval(PUBLISH_META, 0, four.token, signed(four))

    reply, pauses = drive(core.requests.command(["SET", "k", "v"]), store_on_second_pause)
    assert reply == b"OK" and pauses == [0.01, 0.02]
    assert core.view.token == four.token
    five = RingState(2, 2, 1, members(config, {"n1", "n2", "n3", "n4", "n5"}))
    for node in backends.servers:
        backends.direct(node).eval(FENCE_ONLY, 0, five.token, "")
    with pytest.raises(RingChangingError):
        drive(core.requests.command(["SET", "k", "w"]), lambda n: None)
    assert {backends.direct(n).get("k") for n in core.ring.preference_list("k")} == {b"v"}


def test_a_write_whose_backup_is_fenced_first_waits_for_the_ring():
    """The DTSentinel raises the fences of all members in parallel, so a write
    can reach its master before the fence and a backup after it: the backup
    refuses (STALERING) a write the master applied. The write waits for the
    ring to be stored and gives the backup the master's state; it used to
    fail at once with QUORUM (seen during a join: 'n5: missed the write and
    was not repaired yet: STALERING')."""
    from dtriad.backends.outcome import Pause
    from dtriad.core.scripts import FENCE_ONLY

    config, core, backends = build()
    master, backup = core.ring.preference_list("k")[:2]
    same = RingState(1, 2, 1, members(config, {n.name for n in config.nodes}))
    backends.direct(backup).eval(FENCE_ONLY, 0, same.token, "")
    pauses = []
    work, reply, error = core.requests.command(["SET", "k", "v"]), None, None
    while True:
        try:
            effect = work.throw(error) if error is not None else work.send(reply)
        except StopIteration as done:
            reply = done.value
            break
        reply, error = None, None
        if isinstance(effect, Pause):
            pauses.append(effect.seconds)
            if len(pauses) == 2:  # the DTSentinel stores the ring
                for node in backends.servers:
                    backends.direct(node).eval(PUBLISH_META, 0, same.token, signed(same))
            continue
        try:
            reply = core.client.perform(effect)
        except Exception as e:  # noqa: BLE001 - handed back, as the drivers do
            error = e
    assert reply == b"OK" and pauses == [0.01, 0.02]
    assert {backends.direct(n).get("k") for n in core.ring.preference_list("k")} == {b"v"}
    assert backends.direct(master).get("k") == backends.direct(backup).get("k") == b"v"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=6),
    max_leaves=30)
well_formed = st.fixed_dictionaries({
    "epoch": st.integers(-2, 2 ** 60) | st.floats() | st.booleans(),
    "replicas": st.integers(-1, 5000) | st.text(max_size=3),
    "vnodes": st.integers(-1, 10 ** 10),
    "nodes": st.lists(st.fixed_dictionaries({
        "name": st.text(max_size=5), "redis": st.sampled_from(["127.0.0.1:1", "x", "h:99999"]),
        "http": st.sampled_from(["http://h", "ftp://h", ""])}), max_size=3) | json_values,
}, optional={"pending": json_values, "pending_epoch": json_values, "token": json_values,
             "migration": json_values})


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, well_formed).map(json.dumps) | st.binary(max_size=200))
def test_any_stored_ring_either_loads_or_is_refused_with_a_reason(text):
    """What a backend holds may have been written by anyone with its
    password: the loader answers a RingState or an ArgumentError, nothing else."""
    try:
        state = RingState.from_json(text)
    except ArgumentError as e:
        assert str(e)
    else:
        assert 0 <= state.vnodes <= 1024 and len(state.nodes) <= 1024
        assert state.ring().nodes  # and a ring can be built from it


@pytest.mark.parametrize("text, why", [
    ('{"epoch": 1e400, "replicas": 1, "vnodes": 1, "nodes": []}', "epoch must be an integer"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ('{"epoch": 1, "replicas": 1, "vnodes": 1000000000, "nodes": '
     '[{"name": "n1", "redis": "127.0.0.1:1", "http": "http://h"}]}', "vnodes must be"),
    ('{"epoch": 1, "replicas": true, "vnodes": 1, "nodes": '
     '[{"name": "n1", "redis": "127.0.0.1:1", "http": "http://h"}]}', "replicas must be"),
    ('{"epoch": 1, "replicas": 1, "vnodes": 1, "nodes": ["n1"]}', "a member is str"),
    ('{"epoch": 1, "replicas": 1, "vnodes": 1, "nodes": '
     '[{"name": "n1", "redis": "127.0.0.1:1", "http": "http://h"},'
     ' {"name": "n1", "redis": "127.0.0.1:2", "http": "http://h"}]}', "share a name"),
    ("x" * (5 * 1024 * 1024), "at most"),
])
def test_hostile_ring_states_are_refused(text, why):
    with pytest.raises(ArgumentError, match=why):
        RingState.from_json(text)


KEYS = st.one_of(st.binary(max_size=12), st.text(max_size=12),
                 st.tuples(st.text(max_size=4), st.text(max_size=4)).map("{%s}:%s".__mod__))


@given(st.lists(KEYS, min_size=1, max_size=40), st.booleans(), st.integers(1, 8))
def test_a_views_kept_routes_are_the_routes_it_computes(keys, pending, cache):
    """View.route keeps the last keys' routes: asked again, in any order and
    after its store overflows (here at ``cache`` keys), it answers what a
    fresh view computes."""
    members = tuple(Member(f"n{i}", f"127.0.0.1:{7000 + i}", f"http://127.0.0.1:{8000 + i}")
                    for i in range(5))
    state = (RingState(3, 2, 1, members[:4], pending=members, pending_epoch=4) if pending
             else RingState(3, 2, 1, members[:4]))
    view = View(state)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("dtriad.placement.ringstate.ROUTE_CACHE", cache)
        for key in keys + keys[::-1] + keys:
            assert view.route(key) == View(state).route(key), key
            assert len(view._by_key) <= cache


def test_a_view_keeps_no_route_of_a_long_key():
    """Keys may be up to max_value_bytes: only short ones are kept, so a
    stream of big distinct keys cannot pin memory in every front end."""
    members = tuple(Member(f"n{i}", f"127.0.0.1:{7000 + i}", f"http://127.0.0.1:{8000 + i}")
                    for i in range(3))
    view = View(RingState(1, 1, 1, members))
    view.route(b"x" * 257)
    view.route("short")
    assert list(view._by_key) == ["short"]

"""Leadership among DTSentinels on real redis-server processes (fakeredis
expires a key SET with PX inside a script at once): a lease on a majority of
backends, and the backend-side check that refuses a non-leader's changes."""

from __future__ import annotations

import os
import signal

import pytest
import redis

from dtriad.backends.client import DTClient
from dtriad.core.scripts import FENCE_ONLY, PUBLISH_META, SCAN_ARCS, WIPE
from dtriad.membership.leader import Lease

from ..conftest import PASSWORD

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def three(redis_backends):
    nodes = redis_backends(3)
    client = DTClient(password=PASSWORD, cooldown=0, timeout=0.5)
    yield redis_backends, nodes, client
    client.close()


def direct(node: str, db: int = 0) -> redis.Redis:
    host, port = node.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), password=PASSWORD, db=db)


def test_one_holder_at_a_time_and_a_release_hands_over(three):
    backends, nodes, client = three
    clock = Clock()
    a, b = Lease(client, "a", clock=clock), Lease(client, "b", clock=clock)
    assert a.renew(nodes) and a.held()
    assert not b.renew(nodes) and not b.held()
    assert b.other == "a"
    assert a.renew(nodes)  # renewing is granted to the holder
    a.release(nodes)
    assert not a.held()
    assert b.renew(nodes) and b.held()
    assert not a.renew(nodes)


def test_a_minority_grant_is_given_back(three):
    """A standby that got the lease only on a backend that had none (one that
    just restarted) gives it back, so the leader's scripts are not refused there."""
    _, nodes, client = three
    clock = Clock()
    a, b = Lease(client, "a", clock=clock), Lease(client, "b", clock=clock)
    assert a.renew(nodes)
    direct(nodes[0]).execute_command("FLUSHALL")  # as if it restarted empty
    assert not b.renew(nodes)
    assert a.renew(nodes)
    assert direct(nodes[0], db=1).get("dtriad:leader") == b"a"


def test_a_majority_is_enough_and_less_is_not(three):
    backends, nodes, client = three
    lease = Lease(client, "a", clock=Clock())
    os.kill(backends.pids[nodes[0]], signal.SIGSTOP)  # the fixture resumes it
    assert lease.renew(nodes)
    os.kill(backends.pids[nodes[1]], signal.SIGSTOP)
    assert not lease.renew(nodes) and not lease.held()


def test_the_lease_is_trusted_for_less_than_it_lasts_from_when_it_was_asked(three):
    _, nodes, client = three
    clock = Clock()
    lease = Lease(client, "a", duration=4.0, margin=0.75, clock=clock)
    assert lease.renew(nodes)
    clock.now += 2.9
    assert lease.held() and lease.due()
    clock.now += 0.2
    assert not lease.held()


def test_backends_refuse_a_non_leaders_wipe_fence_publish_and_cleanup(three):
    backends, nodes, client = three
    assert Lease(client, "a", clock=Clock()).renew(nodes)
    r = direct(nodes[0])
    r.set("k", "v")
    for script, args in ((WIPE, ("b",)), (FENCE_ONLY, (5, "b")), (PUBLISH_META, (5, "{}", "b")),
                         (SCAN_ARCS, ("0", 100, "delete", "b", 0, "", "f" * 40, "x"))):
        with pytest.raises(redis.ResponseError, match="NOTLEADER"):
            r.eval(script, 0, *args)
    assert r.get("k") == b"v"
    assert r.eval(FENCE_ONLY, 0, 5, "a") == 5  # the holder may
    with pytest.raises(redis.ResponseError, match="STALERING 5"):  # deletion judged by token 4
        r.eval(SCAN_ARCS, 0, "0", 100, "delete", "a", 4, "", "f" * 40, "x")
    assert r.eval(SCAN_ARCS, 0, "0", 100, "delete", "a", 5, "", "f" * 40, "x")[1] == 1
    assert r.get("k") is None

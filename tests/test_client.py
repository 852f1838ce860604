"""DTClient over fakeredis: ordering, fan-out outcomes and the suspect cooldown."""

import threading

import fakeredis
import pytest
import redis

from dtriad.backends.client import DTClient
from dtriad.core.requests import read_first
from dtriad.core.steps import run
from dtriad.exceptions import CommandError, UnavailableError


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def setup():
    servers = {f"127.0.0.1:{p}": fakeredis.FakeServer() for p in (1, 2, 3)}
    clock = Clock()
    client = DTClient(
        pool_factory=lambda node: redis.ConnectionPool(
            connection_class=fakeredis.FakeRedisConnection, server=servers[node]),
        cooldown=5.0, clock=clock)
    return client, servers, clock, list(servers)


def test_fanout_reports_each_copy(setup):
    client, servers, _, nodes = setup
    servers[nodes[1]].connected = False
    outcomes = client.fanout(nodes, "SET", "k", "v")
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].down and not outcomes[1].rejected
    client.execute(nodes[0], "RPUSH", "l", "x")
    outcomes = client.fanout([nodes[0]], "SET", "l", "v", "GET")
    assert outcomes[0].rejected and "WRONGTYPE" in str(outcomes[0].error)


def read(client, nodes, *command):
    return run(read_first(client.suspects, nodes, command, command[1]), client)


def test_read_returns_first_answer_and_raises_data_errors(setup):
    client, servers, _, nodes = setup
    client.fanout(nodes, "RPUSH", "l", "x")
    with pytest.raises(CommandError) as info:
        read(client, nodes, "GET", "l")
    assert info.value.code == "WRONGTYPE"
    for node in nodes:
        servers[node].connected = False
    with pytest.raises(UnavailableError, match="no copy of key 'l' is reachable"):
        read(client, nodes, "GET", "l")


def test_a_failed_backend_is_skipped_until_its_cooldown_ends(setup):
    client, servers, clock, nodes = setup
    client.fanout(nodes, "SET", "k", "v")
    servers[nodes[0]].connected = False
    assert read(client, nodes, "GET", "k") == (b"v", nodes[1])
    assert client.suspects.suspected(nodes[0])
    servers[nodes[0]].connected = True  # back, but still in its cooldown
    outcomes = client.fanout(nodes, "SET", "k", "w")
    assert [o.ok for o in outcomes] == [False, True, True]
    assert "skipped until its cooldown ends" in str(outcomes[0].error)
    assert read(client, nodes, "GET", "k") == (b"w", nodes[1])  # suspects asked last
    clock.now += 5.0
    assert not client.suspects.suspected(nodes[0])
    assert read(client, nodes, "GET", "k") == (b"v", nodes[0])  # probed again: master first


def test_each_thread_keeps_its_own_connection_per_backend(setup):
    client, _, _, nodes = setup
    mine = client.connection(nodes[0])
    assert client.connection(nodes[0]) is mine and client.connection(nodes[1]) is not mine
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(client.connection(nodes[0])))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
    client.execute(nodes[0], "SET", "k", "v")
    client.close()  # every thread's connections go; the next use makes a new one
    assert client.connection(nodes[0]) is not mine
    assert client.execute(nodes[0], "GET", "k") == b"v"


class Interrupted(BaseException):
    pass


def test_a_fanout_cut_short_leaves_no_reply_for_a_later_command(setup, monkeypatch):
    """Kept connections must stay in step: a fan-out interrupted after it
    sent its command (here while reading the first reply) drops the
    connections whose replies were not read, so no later command on this
    thread reads a reply meant for another."""
    client, _, _, nodes = setup
    client.fanout(nodes, "SET", "k", "old")
    first = client.connection(nodes[0])
    read = first.read_response

    def interrupted(*args, **kwargs):
        monkeypatch.setattr(first, "read_response", read)
        raise Interrupted
    monkeypatch.setattr(first, "read_response", interrupted)
    with pytest.raises(Interrupted):
        client.fanout(nodes, "SET", "k", "new", "GET")  # each answers "old", unread
    for node in nodes:
        assert client.execute(node, "GET", "k") == b"new"


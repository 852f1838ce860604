"""AsyncClient against real redis-server processes: pipelining, script
loading, refused and hung backends."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dtriad.backends.aclient import AsyncClient
from dtriad.backends.client import DTClient
from dtriad.backends.outcome import Execute, Fanout, Suspects
from dtriad.ops.procs import free_port
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_many_requests_share_one_pipelined_connection(redis_backends):
    (node,) = redis_backends(1)

    async def scenario():
        client = AsyncClient(Suspects(), password=PASSWORD, timeout=2)
        replies = await asyncio.gather(*(client.execute(node, ("INCR", "n"))
                                         for _ in range(500)))
        assert sorted(replies) == list(range(1, 501))
        assert len(client._links) == 1
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await client.execute(node, ("LPUSH", "n", "x"))
        # a script unknown to the server is sent as EVALSHA, then loaded by EVAL
        script = "return redis.call('GET', KEYS[1])"
        assert await client.perform(Execute(node, ("EVAL", script, 1, "n"))) == b"500"
        client.close()

    asyncio.run(scenario())


def test_a_refused_backend_is_suspected_and_a_hung_one_times_out(redis_backends):
    live, hung = redis_backends(2)
    refused = f"127.0.0.1:{free_port()}"
    suspects = Suspects(cooldown=60)

    async def scenario():
        client = AsyncClient(suspects, password=PASSWORD, timeout=0.5)
        outcomes = await client.perform(Fanout((live, refused), ("SET", "k", "v")))
        assert outcomes[0].ok and outcomes[1].down
        assert isinstance(outcomes[1].error, RedisConnectionError)
        assert suspects.suspected(refused) and not suspects.suspected(live)
        outcomes = await client.fanout([refused], ("GET", "k"))
        assert "skipped until its cooldown ends" in str(outcomes[0].error)
        await client.execute(hung, ("SET", "k", "v"))
        pid = redis_backends.pids[hung]
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(RedisTimeoutError):
                await client.execute(hung, ("GET", "k"))
            assert await client.execute(live, ("GET", "k")) == b"v"  # unaffected
        finally:
            os.kill(pid, signal.SIGCONT)
        assert await client.execute(hung, ("GET", "k")) == b"v"  # a new connection
        client.close()

    asyncio.run(scenario())


def test_a_threads_kept_connection_closed_by_the_server_is_made_again(redis_backends):
    """DTClient keeps one connection per thread per backend. One the server
    closed while it sat idle (CLIENT KILL here; its timeout, a restart) is
    made again before the next command, as a pool's checkout does: the
    backend is not failed, not suspected, and a write is not reported as
    possibly lost."""
    (node,) = redis_backends(1)
    client = DTClient(password=PASSWORD, timeout=2)
    try:
        client.execute(node, "SET", "k", "v")
        killer = DTClient(password=PASSWORD, timeout=2)
        assert killer.execute(node, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes") >= 1
        killer.close()
        assert client.execute(node, "GET", "k") == b"v"
        killer = DTClient(password=PASSWORD, timeout=2)
        killer.execute(node, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        killer.close()
        assert [o.ok for o in client.fanout([node], "SET", "k", "w")] == [True]
        assert not client.suspects.suspected(node)
    finally:
        client.close()

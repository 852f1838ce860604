"""Registering backends with Redis Sentinel.

Every backend is its own monitored "master" (named after its node). Sentinel
only tells who is up; it must never fail over: the backends have no replicas,
so a failover finds no candidate and changes nothing, and its timeout is set
to a day so it is not even retried often.
"""

from __future__ import annotations

import time

import redis

from dtriad.config import Login, parse_address
from dtriad.exceptions import ConfigurationError

FAILOVER_TIMEOUT_MS = 24 * 3600 * 1000


def sentinel_client(address: str, password: str | None, timeout: float = 2.0) -> redis.Redis:
    host, port = parse_address(address)
    return redis.Redis(host=host, port=port, password=password, socket_timeout=timeout)


def register(sentinels: list[str], name: str, backend: str, password: str | None,
             down_after_ms: int = 1000, timeout: float = 15.0,
             auth: Login | None = None) -> None:
    """Make every Sentinel monitor ``backend`` as master ``name`` (idempotent).

    ``password`` opens the Sentinels; ``auth`` is how they log in to the
    backend (a cluster's :attr:`~dtriad.config.ClusterConfig.sentinel_login`;
    None: no user name, ``password``).

    A new master is first monitored with a long down-after period, and the
    short one is set only once Sentinel has had a valid PING reply on a link
    made after ``auth-pass`` was set: its first link is made before, so its
    PINGs get NOAUTH, and with a 1 s down-after it called a just-added backend
    down a second after registering it.
    """
    host, port = parse_address(backend)
    auth = auth or Login(None, password)
    quorum = len(sentinels) // 2 + 1
    for address in sentinels:
        client = sentinel_client(address, password)
        try:
            known = client.sentinel_masters().get(name)
            if known and f"{known['ip']}:{known['port']}" != backend:
                client.sentinel_remove(name)
                known = None
            if not known:
                client.sentinel_monitor(name, host, port, quorum)
                client.sentinel_set(name, "down-after-milliseconds", 60_000)
            if auth.username:
                client.sentinel_set(name, "auth-user", auth.username)
            if auth.password:
                client.sentinel_set(name, "auth-pass", auth.password)
            client.sentinel_set(name, "failover-timeout", FAILOVER_TIMEOUT_MS)
            if not known:
                client.execute_command("SENTINEL", "RESET", name)
                _wait_linked(client, name, timeout)
            client.sentinel_set(name, "down-after-milliseconds", down_after_ms)
        finally:
            client.close()


def _wait_linked(client: redis.Redis, name: str, timeout: float) -> None:
    """Until Sentinel has had a valid PING reply on its current link: its
    ``last-ping-sent`` is 0 only when no PING awaits an answer, and a new link
    starts with one counted as pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.sentinel_master(name)
        if not info.get("is_disconnected") and int(info.get("last-ping-sent", 1)) == 0:
            return
        time.sleep(0.05)
    raise ConfigurationError(f"Sentinel could not reach backend {name} within {timeout:.0f}s "
                             f"(does its sentinel_password match the backends'?)")


def unregister(sentinels: list[str], name: str, password: str | None) -> None:
    for address in sentinels:
        client = sentinel_client(address, password)
        try:
            if name in client.sentinel_masters():
                client.sentinel_remove(name)
        finally:
            client.close()

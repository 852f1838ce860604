"""Registering backends with Redis Sentinel.

Every backend is its own monitored "master" (named after its node). Sentinel
only tells who is up; it must never fail over: the backends have no replicas,
so a failover finds no candidate and changes nothing, and its timeout is set
to a day so it is not even retried often.
"""

from __future__ import annotations

import redis

from .config import parse_address

FAILOVER_TIMEOUT_MS = 24 * 3600 * 1000


def sentinel_client(address: str, password: str | None, timeout: float = 2.0) -> redis.Redis:
    host, port = parse_address(address)
    return redis.Redis(host=host, port=port, password=password, socket_timeout=timeout)


def register(sentinels: list[str], name: str, backend: str, password: str | None,
             down_after_ms: int = 1000) -> None:
    """Make every Sentinel monitor ``backend`` as master ``name`` (idempotent)."""
    host, port = parse_address(backend)
    quorum = len(sentinels) // 2 + 1
    for address in sentinels:
        client = sentinel_client(address, password)
        try:
            masters = client.sentinel_masters()
            known = masters.get(name)
            if known and f"{known['ip']}:{known['port']}" != backend:
                client.sentinel_remove(name)
                known = None
            fresh = not known
            if fresh:
                client.sentinel_monitor(name, host, port, quorum)
            settings = {"down-after-milliseconds": down_after_ms,
                        "failover-timeout": FAILOVER_TIMEOUT_MS}
            if password:
                settings["auth-pass"] = password
            for option, value in settings.items():
                client.sentinel_set(name, option, value)
            if fresh:  # its first link had no password: reconnect, or it is called down
                client.execute_command("SENTINEL", "RESET", name)
        finally:
            client.close()


def unregister(sentinels: list[str], name: str, password: str | None) -> None:
    for address in sentinels:
        client = sentinel_client(address, password)
        try:
            if name in client.sentinel_masters():
                client.sentinel_remove(name)
        finally:
            client.close()

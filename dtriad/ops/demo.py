"""``dtriad demo``: the whole story in under a minute, on a throw-away cluster."""

from __future__ import annotations

import shutil
import tempfile

import redis
import requests

from dtriad.membership.check import check
from dtriad.ops import cluster as local
from dtriad.ops.procs import wait_until


def _ring(entry: str, headers: dict[str, str]) -> dict:
    return requests.get(f"{entry}/ring", headers=headers, timeout=5).json()


def _show_check(config, echo, within: float = 30) -> None:
    """``dtriad check`` once it is clean: the DTSentinel puts a new ring in
    force before it deletes the copies the ring no longer places (cleanup),
    so a check right after a join can still find those for a moment."""
    reports = []

    def clean() -> bool:
        reports.append(check(config))
        return reports[-1].clean

    try:
        wait_until(clean, within, "a clean check", interval=0.5)
    except TimeoutError:
        pass  # the last report says why
    for line in reports[-1].lines({n.redis: n.name for n in config.nodes}):
        echo(f"   dtriad check: {line}")
    if not reports[-1].clean:
        raise RuntimeError("the cluster did not converge to a clean check")


def run(nodes: int = 5, replicas: int = 2, keys: int = 8, echo=print) -> None:
    directory = tempfile.mkdtemp(prefix="dtriad-demo-")
    echo(f"== starting {nodes} nodes (Redis backend + DTServer each), replicas={replicas}")
    try:
        config = local.up(directory, local.UpOptions(nodes=nodes, replicas=replicas,
                                                     persist=False, workers=1), log=echo)
        ring = config.ring()
        names = {n.redis: n.name for n in config.nodes}
        entry = config.nodes[0].http
        admin = config.admin_headers()  # 'ring' is an admin method: it needs the secret
        for node in config.nodes:
            echo(f"   {node.name}: redis {node.redis}, http {node.http}")
        backends = {n.redis: redis.Redis(host=n.redis_host, port=n.redis_port,
                                         **config.internal.kwargs(), socket_timeout=2)
                    for n in config.nodes}

        echo(f"\n== writing {keys} keys through {entry} (HTTP GET /set?key=...&value=...)")
        data = {f"user:{i}": f"value-{i}" for i in range(keys)}
        for key, value in data.items():
            reply = requests.get(f"{entry}/set", params={"key": key, "value": value},
                                 headers=config.data_headers(), timeout=5)
            reply.raise_for_status()

        echo("\n== where each copy lives (asking every backend directly)")
        for key in data:
            holders = [names[addr] for addr, r in backends.items() if r.exists(key)]
            prefs = [names[n] for n in ring.preference_list(key)]
            echo(f"   {key:<10} master {prefs[0]}, backups {', '.join(prefs[1:])}; "
                 f"held by {', '.join(sorted(holders))}")

        victim = ring.master(next(iter(data)))
        echo(f"\n== killing the backend of {names[victim]} with SIGKILL "
             f"(master of {next(iter(data))})")
        local.kill_node(directory, names[victim])

        echo("\n== reading every key back through a DTServer (master first, then backups)")
        readable = 0
        for key, value in data.items():
            got = requests.get(f"{entry}/get", params={"key": key},
                               headers=config.data_headers(), timeout=5).json()
            mark = "ok" if got == value else f"WRONG (got {got!r})"
            readable += got == value
            prefs = ring.preference_list(key)
            note = ("   (its master is dead: a backup answered)" if prefs[0] == victim else
                    "   (one of its backups is dead)" if victim in prefs else "")
            echo(f"   {key:<10} -> {got!r:<12} {mark}{note}")
        echo(f"\n{readable} of {len(data)} keys readable with one backend dead.")
        if readable != len(data):
            raise RuntimeError("some keys were not readable")

        echo("\n== Sentinel calls it down; the DTSentinel rebuilds the ring without it")
        wait_until(lambda: _ring(entry, admin)["epoch"] >= 1
                   and not _ring(entry, admin)["pending_epoch"],
                   60, "the ring to be repaired", interval=0.1)
        info = _ring(entry, admin)
        echo(f"   ring epoch {info['epoch']}: "
             f"{', '.join(n['name'] for n in info['nodes'] if n['state'] == 'up')}")
        _show_check(config, echo)
        key = next(iter(data))
        write = requests.get(f"{entry}/set", params={"key": key, "value": "new"},
                             headers=config.data_headers(), timeout=5)
        echo(f"   a write to {key} now reaches all {info['copies']} copies: "
             f"HTTP {write.status_code} {write.json()!r}")

        echo("\n== adding a node: it joins, and its arcs are copied to it")
        spec = local.add_node(directory, log=lambda *_: None)
        wait_until(lambda: any(n["name"] == spec.name and n["state"] == "up"
                               for n in _ring(entry, admin)["nodes"]) and not _ring(entry, admin)[
            "pending_epoch"], 60, f"{spec.name} to join", interval=0.1)
        info = _ring(entry, admin)
        echo(f"   ring epoch {info['epoch']}: "
             f"{', '.join(n['name'] for n in info['nodes'] if n['state'] == 'up')}")
        migration = info.get("last_migration") or {}
        echo(f"   {migration.get('keys_moved', 0)} keys copied in "
             f"{migration.get('transfers', 0)} transfers (r+1 = {replicas + 1})")
        _show_check(config, echo)
    finally:
        echo("\n== shutting down")
        try:
            local.down(directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        echo("done.")

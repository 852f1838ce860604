"""The admin reports of a DTServer: ``ring``, ``health``, ``keyDist``, ``dbsize``.

Blocking calls on the threaded client (admin work, never the request path):
they run in an HTTP worker or, for the RESP port's DBSIZE, in a thread.
"""

from __future__ import annotations

import time
from collections import Counter

from dtriad.backends.client import DTClient
from dtriad.backends.outcome import DOWN_ERRORS, describe
from dtriad.config import ClusterConfig
from dtriad.core import steps
from dtriad.core.follower import RingFollower


class Reports:
    """What this DTServer knows of the ring and the backends, as JSON-ready dicts."""

    def __init__(self, config: ClusterConfig, client: DTClient, follower: RingFollower):
        self.config = config
        self.client = client
        self.follower = follower

    def catalog(self) -> list[tuple[str, str, str]]:
        """(name, redis, http) of every node this DTServer knows, ring members first."""
        members = self.follower.view.state.members()
        out = [(m.name, m.redis, m.http) for m in members.values()]
        out += [(n.name, n.redis, n.http) for n in self.config.nodes if n.redis not in members]
        return out

    def ring(self) -> dict:
        view = steps.run(self.follower.follow(), self.client)
        state, ring, pending = view.state, view.ring, view.pending
        share, roles = (pending or ring).share(), (pending or ring).roles()
        nodes = []
        for name, address, http in self.catalog():
            in_ring, in_pending = address in ring.nodes, pending and address in pending.nodes
            node_state = ("up" if in_ring and (pending is None or in_pending) else
                          "leaving" if in_ring else "joining" if in_pending else "out")
            after = pending or ring
            nodes.append({
                "name": name, "redis": address, "http": http, "state": node_state,
                "tokens": [format(t, "040x") for t in after.node_tokens(address)],
                "share": {k: round(v, 6) for k, v in share.get(
                    address, {"master": 0.0, "backup": 0.0}).items()},
                "arcs": roles.get(address, {"master": 0, "backup": 0}),
            })
        return {
            "epoch": state.epoch,
            "token": state.token,
            "replicas": state.replicas,
            "vnodes": state.vnodes,
            "copies": ring.copies,
            "write_quorum": self.config.write_quorum,
            "read_quorum": self.config.read_quorum,
            "nodes": nodes,
            "pending_epoch": state.pending_epoch,
            # the migration running now (null when none runs), and the last one finished
            "migration": state.migration if pending is not None else None,
            "last_migration": state.migration if pending is None else None,
        }

    def health(self) -> dict:
        backends = {}
        for name, address, _ in self.catalog():
            start = time.perf_counter()
            try:
                self.client.execute(address, "PING")
                backends[name] = {"up": True,
                                  "latency_ms": round((time.perf_counter() - start) * 1e3, 3)}
            except DOWN_ERRORS as e:
                backends[name] = {"up": False, "error": describe(e).replace(address, name)}
            backends[name]["member"] = address in self.follower.view.ring.nodes
        # Open to anyone (load balancers probe it): node names, never addresses.
        members = [b for b in backends.values() if b["member"]]
        up = sum(b["up"] for b in members)
        status = "ok" if up == len(members) else ("down" if up == 0 else "degraded")
        return {"status": status, "epoch": self.follower.view.state.epoch, "backends": backends}

    def key_dist(self, scan_count: int = 1000) -> dict:
        """Keys held by each backend, by role (SCAN; an admin call, not for the hot path)."""
        ring = steps.run(self.follower.follow(), self.client).ring
        result = {}
        for name, address, _ in self.catalog():
            counts = Counter(master=0, backup=0, misplaced=0)
            try:
                for key in self.client.redis(address).scan_iter(count=scan_count):
                    owners = ring.preference_list(key)
                    role = ("master" if owners[0] == address else
                            "backup" if address in owners else "misplaced")
                    counts[role] += 1
                result[name] = dict(counts, total=sum(counts.values()))
            except DOWN_ERRORS as e:
                result[name] = {"error": describe(e)}
        return result

    def dbsize(self) -> int:
        """Keys in the whole cluster, each counted once, on its master."""
        return sum(counts.get("master", 0) for counts in self.key_dist().values())

"""``dtriad check``: verify both invariants on a live cluster.

Like ``redis-cli --cluster check``: it reads the ring in force from the
backends, lists every key each ring member holds, and reports keys missing
from one of their r+1 preference-list backends, copies on a backend that
should not hold them, and copies that differ (type, value, or TTL by more than
a second). It also checks that no migration is running and that every
DTServer routes by the same ring. With ``repair``, differing and missing copies
get the state of the newest copy (highest version; ties go to ring order, so
the master) and misplaced ones are deleted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from redis.exceptions import ResponseError

from dtriad.backends.client import DTClient
from dtriad.backends.outcome import DOWN_ERRORS, describe
from dtriad.config import ClusterConfig, NodeSpec
from dtriad.core.follower import RingCheck, read_rings
from dtriad.core.scripts import DIGEST, DROP
from dtriad.core.steps import run, sync_key
from dtriad.exceptions import printable
from dtriad.placement.ringstate import RingState

TTL_SLACK_MS = 1000


@dataclass
class Report:
    state: RingState | None = None
    keys: int = 0
    missing: list[tuple[bytes, str]] = field(default_factory=list)
    misplaced: list[tuple[bytes, str]] = field(default_factory=list)
    differing: list[tuple[bytes, list[str]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    repaired: int = 0

    @property
    def clean(self) -> bool:
        return not (self.missing or self.misplaced or self.differing or self.problems)

    def as_dict(self, names: dict[str, str]) -> dict:
        """The report as JSON: counts, every finding (keys as text), and its lines."""
        return {
            "clean": self.clean, "epoch": self.state.epoch if self.state else None,
            "keys": self.keys,
            "missing": [[printable(k), names.get(n, n)] for k, n in self.missing],
            "misplaced": [[printable(k), names.get(n, n)] for k, n in self.misplaced],
            "differing": [[printable(k), [names.get(n, n) for n in ns]]
                          for k, ns in self.differing],
            "problems": self.problems, "repaired": self.repaired,
            "lines": self.lines(names),
        }

    def lines(self, names: dict[str, str], limit: int = 10) -> list[str]:
        out = []
        if self.state is not None:
            s = self.state
            out.append(f"[OK] ring epoch {s.epoch}: {len(s.nodes)} nodes, replicas={s.replicas}, "
                       f"vnodes={s.vnodes}")
        for problem in self.problems:
            out.append(f"[ERR] {problem}")

        def show(title, items, fmt):
            if items:
                out.append(f"[ERR] {len(items)} {title}")
                out.extend(f"      {fmt(item)}" for item in items[:limit])
                if len(items) > limit:
                    out.append(f"      ... and {len(items) - limit} more")

        show("missing copies", self.missing,
             lambda i: f"{printable(i[0])!r} missing on {names.get(i[1], i[1])}")
        show("misplaced copies", self.misplaced,
             lambda i: f"{printable(i[0])!r} on {names.get(i[1], i[1])}, not one of its owners")
        show("keys whose copies differ", self.differing,
             lambda i: f"{printable(i[0])!r} differs between "
                       f"{', '.join(names.get(n, n) for n in i[1])}")
        if self.repaired:
            out.append(f"[OK] repaired {self.repaired} copies")
        if self.clean:
            out.append(f"[OK] {self.keys} keys, each on exactly its preference-list backends, "
                       f"all copies identical")
        return out



def http_ring(node: NodeSpec, headers: dict[str, str]) -> dict:
    """A DTServer's ``ring`` answer, over HTTP (an admin method: ``headers``
    carry the cluster secret)."""
    reply = requests.get(f"{node.http}/ring", headers=headers, timeout=3)
    body = reply.json()
    if not reply.ok:
        raise ValueError(body.get("error") if isinstance(body, dict) else reply.reason)
    return body


Progress = Callable[[str, int, int], None]


def check(config: ClusterConfig, repair: bool = False, batch: int = 500,
          ring_of: Callable[[NodeSpec], dict] | None = None,
          progress: Progress | None = None) -> Report:
    """``ring_of(node)`` asks a DTServer which ring it routes by (a DTServer
    running the check answers for itself without a request to itself).
    ``progress(phase, done, total)`` hears how far the scan ("scanning",
    copies) and the comparison ("comparing", copies) have come."""
    if ring_of is None:
        def ring_of(node: NodeSpec) -> dict:
            return http_ring(node, config.admin_headers())
    client = DTClient(**config.internal.kwargs(), timeout=5.0, cooldown=0)
    try:
        return _check(config, client, repair, batch, ring_of, progress or (lambda *_: None))
    finally:
        client.close()


def _check(config: ClusterConfig, client: DTClient, repair: bool, batch: int,
           ring_of: Callable[[NodeSpec], dict], progress: Progress) -> Report:
    report = Report()
    catalog = [n.redis for n in config.nodes]
    # Only a ring that verifies: its members get the internal credentials (scans),
    # so a forged one must name no address this contacts.
    stored = run(read_rings(catalog, RingCheck(config)), client)
    state, down = stored.state, stored.down
    config_names = {n.redis: n.name for n in config.nodes}
    for node, why in sorted(stored.rejected.items()):
        report.problems.append(f"{config_names.get(node, node)} holds a ring that is not "
                               f"adopted: {why}")
    if state is None:
        report.problems.append("no backend holds a ring that verifies; is the DTSentinel "
                               "running?" if stored.rejected else
                               "no backend holds a ring; is the DTSentinel running?")
        return report
    report.state = state
    names = {n.redis: n.name for n in config.nodes} | {
        m.redis: m.name for m in state.members().values()}
    if state.pending is not None:
        report.problems.append(f"migration to epoch {state.pending_epoch} in progress")
    ring = state.ring()
    for node in ring.nodes:
        if node in down:
            report.problems.append(f"{names.get(node, node)} is in the ring but down "
                                   f"({down[node]})")
    for n in config.nodes:
        try:
            info = ring_of(n)
        except (requests.RequestException, ValueError) as e:
            if n.redis in ring.nodes:
                why = str(e) if type(e) is ValueError else type(e).__name__
                report.problems.append(f"DTServer {n.name} at {n.http} did not tell its "
                                       f"ring ({why})")
            continue
        if info.get("token") != state.token:
            report.problems.append(f"DTServer {n.name} routes by epoch {info.get('epoch')}, "
                                   f"the ring in force is epoch {state.epoch}")
    holders: dict[bytes, set[str]] = defaultdict(set)
    live = [n for n in ring.nodes if n not in down]
    total = sum(client.execute(node, "DBSIZE") for node in live)
    scanned = 0
    for node in live:
        for key in client.redis(node).scan_iter(count=1000):
            holders[key].add(node)
            scanned += 1
            if scanned % 1000 == 0:
                progress("scanning", scanned, max(total, scanned))
    progress("scanning", scanned, max(total, scanned))
    report.keys = len(holders)
    to_compare: dict[str, list[bytes]] = defaultdict(list)
    for key, held in holders.items():
        owners = [n for n in ring.preference_list(key) if n not in down]
        report.missing += [(key, n) for n in owners if n not in held]
        report.misplaced += [(key, n) for n in held if n not in owners]
        present = [n for n in owners if n in held]
        if len(present) > 1:
            for n in present:
                to_compare[n].append(key)
    digests: dict[tuple[bytes, str], tuple] = {}
    total = sum(len(keys) for keys in to_compare.values())
    for node, keys in to_compare.items():
        for i in range(0, len(keys), batch):
            chunk = keys[i:i + batch]
            reply = client.execute(node, "EVAL", DIGEST, len(chunk), *chunk)
            for key, (kind, digest, ttl, version) in zip(chunk, reply, strict=True):
                digests[(key, node)] = (kind, digest, int(ttl), int(version))
            progress("comparing", len(digests), total)
    for key in holders:
        present = [n for n in ring.preference_list(key) if (key, n) in digests]
        if len(present) > 1 and not _same([digests[(key, n)] for n in present]):
            report.differing.append((key, present))
    if repair:
        if state.pending is not None:
            report.problems.append("not repaired: a migration is running; the repair would "
                                   "judge copies by the ring it replaces. Run it again "
                                   "once 'dtriad status' shows no migration")
        else:
            report.repaired = _repair(client, state, report, holders, digests)
    return report


def _same(digests: list[tuple]) -> bool:
    kind, digest, ttl, _ = digests[0]
    return all(d[0] == kind and d[1] == digest and (d[2] < 0) == (ttl < 0)
               and abs(d[2] - ttl) <= TTL_SLACK_MS for d in digests[1:])


def _repair(client: DTClient, state: RingState, report: Report,
            holders: dict[bytes, set[str]], digests: dict[tuple[bytes, str], tuple]) -> int:
    ring = state.ring()
    repaired = 0
    for key, node in report.misplaced:
        try:  # fenced: refused if a migration began since the ring was read
            client.execute(node, "EVAL", DROP, 1, key, state.token)
            repaired += 1
        except (*DOWN_ERRORS, ResponseError) as e:
            report.problems.append(f"could not delete {printable(key)!r} on {node}: "
                                   f"{describe(e)}")
    stale: dict[bytes, set[str]] = defaultdict(set)
    for key, node in report.missing:
        stale[key].add(node)
    for key, nodes in report.differing:
        stale[key].update(nodes)
    for key, nodes in stale.items():
        present = [n for n in ring.preference_list(key) if n in holders[key]]
        # The newest copy wins; max() keeps the first of equals, so the master.
        source = max(present, key=lambda n: digests.get((key, n), (0, 0, 0, 0))[3])
        for node in nodes - {source}:
            try:
                if run(sync_key(source, node, key, state.token), client):
                    repaired += 1
                else:
                    report.problems.append(f"{printable(key)!r} on {node} kept changing; "
                                           f"run the repair again")
            except (*DOWN_ERRORS, ResponseError) as e:
                report.problems.append(f"could not repair {printable(key)!r} on {node}: "
                                       f"{describe(e)}")
    return repaired

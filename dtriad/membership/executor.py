"""The migration executor: carries out a :class:`~dtriad.placement.planner.Plan`.

Keys move server to server. On the source, a Lua script (``SCAN_ARCS``) scans
one chunk of the keyspace and keeps only the keys of the moving arcs, so only
their names (not every key, not any value) reach Python; they are then copied
with one ``MIGRATE host port "" 0 timeout COPY REPLACE AUTH pw KEYS ...`` per
destination and batch, and their versions (database 2) with a second MIGRATE
right after. Copies are idempotent, so a batch may be redone after a crash.
Cleanup deletes keys and their versions with the same script, entirely
server side.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from redis.exceptions import ResponseError

from dtriad.backends.client import DTClient
from dtriad.backends.outcome import DOWN_ERRORS, describe
from dtriad.config import parse_address
from dtriad.core.scripts import FENCE_ONLY, PUBLISH_META, SCAN_ARCS, VERSION_DB, WIPE, arc_ranges
from dtriad.core.steps import run, sync_key
from dtriad.placement.planner import Cleanup, Transfer
from dtriad.placement.ring import Ring
from dtriad.placement.ringmac import ring_key, signed_json
from dtriad.placement.ringstate import Member, RingState

OnCopied = Callable[[int], None]  # told how many keys a batch copied


class Interrupted(Exception):
    """The membership changed under a migration: stop and plan again."""


@dataclass
class Executor:
    """``max_keys_per_s`` throttles copies (to spare a busy cluster's latency)."""

    client: DTClient
    password: str | None = None
    username: str | None = None  # an ACL user (MIGRATE ... AUTH2 user password)
    versions: DTClient | None = None  # on database 2; None: versions do not move
    scan_count: int = 1000
    timeout_ms: int = 10_000
    max_keys_per_s: float | None = None
    holder: str = ""  # the leading DTSentinel's id: backends refuse another's (leader.py)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    # ------------------------------------------------------------------- copy
    def _scan(self, node: str, arcs: list[tuple[int, int, str]], mode: str,
              stop: Callable[[], bool] | None = None, token: int = 0):
        """Yield the script's reply for each chunk of ``node``'s keyspace
        (deletions are fenced at ring ``token``)."""
        ranges = arc_ranges(arcs)
        cursor = b"0"
        while True:
            if stop is not None and stop():
                raise Interrupted(f"stopped while scanning {node}")
            reply = self.client.execute(node, "EVAL", SCAN_ARCS, 0, cursor, self.scan_count,
                                        mode, self.holder, token, *ranges)
            yield reply
            cursor = reply[0]
            if cursor in (b"0", 0, "0"):
                return

    def copy(self, source: str, transfers: Iterable[Transfer], progress: OnCopied = lambda n: None,
             stop: Callable[[], bool] | None = None, replace: bool = True) -> int:
        """Copy every key of the transfers' arcs from ``source`` to their destinations."""
        by_arc: dict[tuple[int, int], list[str]] = {}
        for t in transfers:
            if t.source != source:
                raise ValueError(f"transfer {t} does not start at {source}")
            by_arc.setdefault((t.start, t.end), []).append(t.destination)
        labels = {str(i): dests for i, dests in enumerate(by_arc.values())}
        arcs = [(start, end, str(i)) for i, (start, end) in enumerate(by_arc)]
        moved = 0
        started = self.clock()
        for reply in self._scan(source, arcs, "copy", stop):
            batches: dict[str, list[bytes]] = {}
            items = reply[1:]
            for key, label in zip(items[::2], items[1::2], strict=True):
                for dest in labels[label.decode() if isinstance(label, bytes) else label]:
                    batches.setdefault(dest, []).append(key)
            for dest, keys in batches.items():
                self.migrate(source, dest, keys, replace=replace)
                moved += len(keys)
            progress(moved)
            if self.max_keys_per_s:
                ahead = moved / self.max_keys_per_s - (self.clock() - started)
                if ahead > 0:
                    self.sleep(ahead)
        return moved

    def newest_first(self, survivors: list[str], arcs: list[tuple[int, int]], token: int,
                     stop: Callable[[], bool] | None = None) -> int:
        """For arcs whose master was lost: give every surviving copy each
        key's newest version among them (highest version; the first of equals
        in ``survivors``' order), before the arcs are copied from the first.
        A backup that missed an acknowledged write (``write_quorum`` below
        ``all``) so never hands its older version on. -> keys brought up."""
        if self.versions is None or len(survivors) < 2:
            return 0
        ranges = [(start, end, "x") for start, end in arcs]
        keys: set[bytes] = set()
        for node in survivors:
            for reply in self._scan(node, ranges, "copy", stop):
                keys.update(reply[1::2])
        ordered, fixed = sorted(keys), 0
        for i in range(0, len(ordered), 1000):
            chunk = ordered[i:i + 1000]
            versions = {n: [int(v or 0) for v in self.versions.execute(n, "MGET", *chunk)]
                        for n in survivors}
            for j, key in enumerate(chunk):
                best = max(survivors, key=lambda n, j=j: versions[n][j])
                for node in survivors:
                    if versions[node][j] < versions[best][j]:
                        run(sync_key(best, node, key, token), self.client)
                        fixed += 1
        return fixed

    def migrate(self, source: str, dest: str, keys: list[bytes], replace: bool = True) -> None:
        """One batched MIGRATE; without ``replace``, keys the target has are kept."""
        host, port = parse_address(dest)
        auth = (("AUTH2", self.username, self.password) if self.username
                else ("AUTH", self.password) if self.password else ())
        options = ("COPY", "REPLACE") if replace else ("COPY",)
        for client, db in ((self.client, 0), (self.versions, VERSION_DB)):
            if client is None:
                continue
            try:
                client.execute(source, "MIGRATE", host, port, "", db, self.timeout_ms,
                               *options, *auth, "KEYS", *keys)
            except ResponseError as e:
                if replace or "BUSYKEY" not in str(e):
                    raise

    def cleanup(self, cleanups: Iterable[Cleanup], stop: Callable[[], bool] | None = None,
                token: int = 0) -> int:
        """Delete the copies nodes no longer hold; all server side. Refused
        (``STALERING``) on a backend fenced above ``token``: a newer ring
        may need those copies."""
        by_node: dict[str, list[tuple[int, int, str]]] = {}
        for c in cleanups:
            by_node.setdefault(c.node, []).append((c.start, c.end, "x"))
        deleted = 0
        for node, arcs in by_node.items():
            arcs = sorted(set(arcs))
            for reply in self._scan(node, arcs, "delete", stop, token):
                deleted += int(reply[1])
        return deleted

    def recover(self, holder: str, arcs: list[tuple[int, int]], ring: Ring) -> int:
        """Copy what ``holder`` has in ``arcs`` to the keys' owners in ``ring``,
        keeping any copy they already hold (it is newer). For a returning node
        that held the only surviving copy of an arc."""
        recovered = 0
        for reply in self._scan(holder, [(s, e, "x") for s, e in arcs], "copy"):
            groups: dict[str, list[bytes]] = {}
            for key in reply[1::2]:
                for owner in ring.preference_list(key):
                    groups.setdefault(owner, []).append(key)
            for owner, keys in groups.items():
                self.migrate(holder, owner, keys, replace=False)
            recovered += len(reply[1::2])
        return recovered

    def wipe(self, node: str) -> None:
        """Empty a node's keyspace and versions before it joins afresh."""
        self.client.execute(node, "EVAL", WIPE, 0, self.holder)

    # ------------------------------------------------------------ ring state
    def fence(self, nodes: Iterable[str], token: int) -> dict[str, str]:
        """Raise every reachable backend's fence to ``token`` without storing
        the ring: writes by an older ring are refused from then on, and no
        DTServer can learn the new ring from a backend yet (docs/membership.md).

        Returns the nodes that could not be reached, with the reason.
        """
        failed = {}
        for outcome in self.client.fanout(list(nodes), "EVAL", FENCE_ONLY, 0, token,
                                          self.holder):
            if not outcome.ok:
                failed[outcome.node] = describe(outcome.error)
        return failed

    def publish(self, nodes: Iterable[str], state: RingState,
                secret: str | None = None) -> dict[str, str]:
        """Store the ring, MACed under the cluster ``secret`` (if it has one),
        and its fence token in every reachable backend.

        Returns the nodes that could not be reached, with the reason.
        """
        failed = {}
        text = signed_json(state, ring_key(secret))
        for outcome in self.client.fanout(list(nodes), "EVAL", PUBLISH_META, 0, state.token,
                                          text, self.holder):
            if not outcome.ok:
                failed[outcome.node] = describe(outcome.error)
        return failed


def push(members: Iterable[Member], secret: str, state: RingState,
         timeout: float = 3.0) -> dict[str, str]:
    """Push ``state``, MACed under ``secret``, to every DTServer at once;
    -> the ones that did not confirm."""
    members = list(members)
    body = {"secret": secret, "state": signed_json(state, ring_key(secret))}

    def one(member: Member) -> str | None:
        try:
            reply = requests.post(f"{member.http}/ringUpdate", data=body, timeout=timeout)
        except requests.RequestException as e:
            return type(e).__name__
        if reply.ok:
            return None
        try:
            return reply.json().get("error", reply.text)[:200]
        except ValueError:
            return reply.text[:200]

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(members)))) as pool:
        results = list(pool.map(one, members))
    return {m.name: why for m, why in zip(members, results, strict=True) if why}


class Rate:
    """Keys per second over a migration, for progress lines."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.started = clock()

    def __call__(self, keys: int) -> float:
        elapsed = self.clock() - self.started
        return keys / elapsed if elapsed > 0 else 0.0


__all__ = ["DOWN_ERRORS", "Executor", "Interrupted", "Rate", "push"]

"""Migration: keys moved on a join (the paper's Figure 4), copy throughput
against a bare batched MIGRATE, and time from a SIGKILL to a clean check.

Three parts, all in one run, writing CSV + PNG to ``results/``:

1. ``migration_keys``: keys whose master changes when the (N+1)-th node joins,
   N in {10, 20, 30, 40}, for a sweep of key counts, several runs each (new
   random node addresses and keys per run), against K/N; the same for vnodes
   in {1, 8, 64} with the max/mean keys-per-node ratio. Pure ring arithmetic.
2. ``migration_throughput``: 1,000,000 small keys copied between two real
   redis-servers by dtriad's executor (Lua arc filter + batched MIGRATE) and
   by a bare ``SCAN`` + ``MIGRATE ... KEYS`` loop (the limit), same run; plus
   the cost of *finding* a small arc's keys with the Lua filter against
   shipping every key name to Python and hashing there.
3. ``migration_repair``: a 5-node r=2 local cluster with 100,000 keys; a
   backend is SIGKILLed; time until the DTSentinel sees it down (detection),
   until the new ring is committed (copying) and until ``dtriad check`` is clean.

Usage: ``python benchmarks/migration.py [--quick]``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import redis  # noqa: E402

from dtriad.backends.client import DTClient  # noqa: E402
from dtriad.core.scripts import SCAN_ARCS, arc_ranges  # noqa: E402
from dtriad.membership.check import check  # noqa: E402
from dtriad.membership.executor import Executor  # noqa: E402
from dtriad.ops import cluster as local  # noqa: E402
from dtriad.ops.procs import free_port, start_redis, stop_pid, wait_until  # noqa: E402
from dtriad.placement.planner import plan  # noqa: E402
from dtriad.placement.ring import Ring, hash_tag  # noqa: E402

PASSWORD = "bench"


# ------------------------------------------------------------------ part 1
def random_nodes(rng: random.Random, count: int) -> list[str]:
    return [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}:"
            f"{rng.randrange(1024, 65535)}" for _ in range(count)]


def joins(nodes_list, key_counts, runs, vnodes_list, seed=1):
    rng = random.Random(seed)
    rows = []
    for vnodes in vnodes_list:
        for n in nodes_list:
            for k in key_counts:
                for run in range(runs):
                    nodes = random_nodes(rng, n + 1)
                    old, new = Ring(nodes[:n], 0, vnodes), Ring(nodes, 0, vnodes)
                    positions = [int.from_bytes(hashlib.sha1(rng.randbytes(12)).digest(), "big")
                                 for _ in range(k)]
                    moved = sum(1 for p in positions if old.owners_at(p) != new.owners_at(p))
                    load: dict[str, int] = {}
                    for p in positions:
                        owner = new.owners_at(p)[0]
                        load[owner] = load.get(owner, 0) + 1
                    mean = k / (n + 1)
                    rows.append({"vnodes": vnodes, "nodes": n, "keys": k, "run": run,
                                 "moved": moved, "k_over_n": round(k / n, 1),
                                 "max_over_mean": round(max(load.values()) / mean, 3)})
    return rows


def plot_joins(rows, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ones = [r for r in rows if r["vnodes"] == 1]
    nodes_list = sorted({r["nodes"] for r in ones})
    fig, axes = plt.subplots(1, len(nodes_list) + 1, figsize=(5 * (len(nodes_list) + 1), 4))
    for ax, n in zip(axes, nodes_list, strict=False):
        ks = sorted({r["keys"] for r in ones if r["nodes"] == n})
        data = [[r["moved"] for r in ones if r["nodes"] == n and r["keys"] == k] for k in ks]
        ax.boxplot(data, positions=range(len(ks)))
        ax.plot(range(len(ks)), [k / n for k in ks], "k-", label="K/N")
        ax.set_xticks(range(len(ks)), [f"{k:,}" for k in ks], rotation=30)
        ax.set_title(f"({'abcd'[nodes_list.index(n)]}) {n} nodes, one joins")
        ax.set_xlabel("keys in the system (K)")
        ax.set_ylabel("keys migrated")
        ax.legend()
    ax = axes[-1]
    vn = sorted({r["vnodes"] for r in rows})
    n_ref = max(nodes_list)
    k_ref = max(r["keys"] for r in rows)
    ax.boxplot([[r["max_over_mean"] for r in rows if r["vnodes"] == v and r["nodes"] == n_ref
                 and r["keys"] == k_ref] for v in vn], positions=range(len(vn)))
    ax.set_xticks(range(len(vn)), [f"vnodes={v}" for v in vn])
    ax.set_ylabel("max / mean keys per node")
    ax.set_title(f"load spread, {n_ref + 1} nodes, {k_ref:,} keys")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# ------------------------------------------------------------------ part 2
def bare_copy(src: redis.Redis, host: str, port: int, batch: int) -> int:
    moved, cursor = 0, 0
    while True:
        cursor, keys = src.scan(cursor, count=batch)
        if keys:
            src.execute_command("MIGRATE", host, port, "", 0, 10000, "COPY", "REPLACE",
                                "AUTH", PASSWORD, "KEYS", *keys)
            moved += len(keys)
        if cursor == 0:
            return moved


def throughput(keys: int, workdir: Path) -> list[dict]:
    procs = []
    try:
        ports = []
        for name in ("src", "dst"):
            port = free_port(avoid=set(ports))
            ports.append(port)
            procs.append((start_redis(port, workdir / name, PASSWORD, persist=False), port))
        src_addr, dst_addr = (f"127.0.0.1:{p}" for p in ports)
        src = redis.Redis(port=ports[0], password=PASSWORD)
        dst = redis.Redis(port=ports[1], password=PASSWORD)
        src.execute_command("DEBUG", "POPULATE", keys, "key", 10)
        rows = []
        for batch in (100, 1000):
            dst.flushall()
            start = time.perf_counter()
            moved = bare_copy(src, "127.0.0.1", ports[1], batch)
            elapsed = time.perf_counter() - start
            rows.append({"method": f"bare SCAN+MIGRATE batch {batch}", "keys": moved,
                         "seconds": round(elapsed, 3), "keys_per_s": round(moved / elapsed)})
            assert dst.dbsize() == keys
            dst.flushall()
            client = DTClient(password=PASSWORD, timeout=30)
            executor = Executor(client, PASSWORD, scan_count=batch)
            the_plan = plan(Ring([src_addr], 1), Ring([src_addr, dst_addr], 1))
            start = time.perf_counter()
            moved = executor.copy(src_addr, the_plan.transfers)
            elapsed = time.perf_counter() - start
            client.close()
            rows.append({"method": f"dtriad executor batch {batch}", "keys": moved,
                         "seconds": round(elapsed, 3), "keys_per_s": round(moved / elapsed)})
            assert dst.dbsize() == keys, dst.dbsize()
        # Finding the keys of a 5% arc: Lua filter vs shipping names to Python.
        ring = Ring([src_addr], 0)
        start_pos = 0
        end_pos = (1 << 160) // 20
        start = time.perf_counter()
        found, cursor = 0, b"0"
        ranges = arc_ranges([(start_pos, end_pos, "a")])
        while True:
            reply = src.eval(SCAN_ARCS, 0, cursor, 1000, "copy", "", 0, *ranges)
            found += (len(reply) - 1) // 2
            cursor = reply[0]
            if cursor in (b"0", 0):
                break
        lua = time.perf_counter() - start
        start = time.perf_counter()
        found_py = 0
        for key in src.scan_iter(count=1000):
            if start_pos < ring.hash_fn(hash_tag(key)) <= end_pos:
                found_py += 1
        python = time.perf_counter() - start
        assert found == found_py
        rows.append({"method": "find a 5% arc: Lua filter", "keys": found,
                     "seconds": round(lua, 3), "keys_per_s": round(keys / lua)})
        rows.append({"method": "find a 5% arc: SCAN to Python + sha1", "keys": found_py,
                     "seconds": round(python, 3), "keys_per_s": round(keys / python)})
        src.close()
        dst.close()
        return rows
    finally:
        for proc, port in procs:
            stop_pid(proc.pid, needle=str(port))


def plot_throughput(rows, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    copies = [r for r in rows if "find" not in r["method"]]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.barh([r["method"] for r in copies], [r["keys_per_s"] for r in copies])
    ax.set_xlabel("keys copied per second (1,000,000 keys, 10-byte values)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# ------------------------------------------------------------------ part 3
STAMP = re.compile(r"^(\S+ \S+) INFO (.*)$")


def log_times(log: Path) -> list[tuple[float, str]]:
    out = []
    for line in log.read_text().splitlines():
        m = STAMP.match(line)
        if m:
            when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((when, m.group(2)))
    return out


def repair(keys: int, runs: int, workdir: Path) -> list[dict]:
    rows = []
    for run in range(runs):
        directory = workdir / f"repair{run}"
        config = local.up(directory, local.UpOptions(nodes=5, replicas=2, persist=False,
                                                     workers=1), log=lambda *_: None)
        try:
            ring = config.ring()
            by_addr = config.node_by_redis()
            pipes = {n: redis.Redis(host=by_addr[n].redis_host, port=by_addr[n].redis_port,
                                    **config.internal.kwargs()).pipeline(transaction=False)
                     for n in ring.nodes}
            for i in range(keys):
                for n in ring.preference_list(f"k{i}"):
                    pipes[n].set(f"k{i}", "v")
            for p in pipes.values():
                p.execute()
            victim = config.nodes[run % len(config.nodes)].name
            killed = time.time()
            local.kill_node(directory, victim)
            wait_until(lambda c=config: check(c).clean, 120, "a clean check", interval=0.05)
            clean = time.time()
            events = log_times(directory / "dtsentinel" / "dtsentinel.log")
            down = next(t for t, text in events if text.startswith("down:") and t >= killed - 1)
            committed = next(t for t, text in events
                             if "committed" in text and t >= down)
            moved = int(re.search(r"committed: (\d+) keys", next(
                text for t, text in events if "committed" in text and t >= down)).group(1))
            rows.append({"run": run, "keys": keys, "victim": victim, "keys_copied": moved,
                         "detect_s": round(down - killed, 3),
                         "copy_s": round(committed - down, 3),
                         "to_clean_check_s": round(clean - killed, 3)})
        finally:
            local.down(directory)
    return rows


def write_csv(rows, path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sweeps and key counts")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    rows = joins([10, 20, 30, 40], [1000, 10000] if quick else [1000, 10000, 50000, 100000],
                 3 if quick else 8, [1, 8, 64])
    write_csv(rows, args.out / "migration_keys.csv")
    plot_joins(rows, args.out / "migration_keys.png")
    for v in (1, 8, 64):
        sel = [r for r in rows if r["vnodes"] == v]
        print(f"vnodes={v}: moved/(K/N) median "
              f"{statistics.median(r['moved'] / r['k_over_n'] for r in sel):.2f}, "
              f"max/mean load median {statistics.median(r['max_over_mean'] for r in sel):.2f}")
    with tempfile.TemporaryDirectory(prefix="dtriad-bench-") as tmp:
        rows = throughput(100_000 if quick else 1_000_000, Path(tmp))
        write_csv(rows, args.out / "migration_throughput.csv")
        plot_throughput(rows, args.out / "migration_throughput.png")
        for r in rows:
            print(f"{r['method']:<40} {r['keys']:>9} keys {r['keys_per_s']:>9} keys/s")
        rows = repair(20_000 if quick else 100_000, 1 if quick else 3, Path(tmp))
        write_csv(rows, args.out / "migration_repair.csv")
        for r in rows:
            print(r)


if __name__ == "__main__":
    main()

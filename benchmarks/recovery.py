"""Recovery: how long a restarted backend takes to serve again, and how long
a DTSentinel takes to hand over, on real local clusters.

Two parts, writing CSV + PNG to ``results/``:

1. ``recovery_restart``: a 3-node r=1 cluster (AOF off, Sentinel's down-after
   10 s, so Sentinel never notices) holding K keys; a backend is SIGKILLed
   and started again at once. Measured from the restart: until the DTSentinel
   has taken it out of the ring (detected), until its new incarnation is
   admitted (served again, wiped and refilled) and until ``dtriad check`` is
   clean; and, meanwhile, how many of a client's reads of every key failed
   or came back wrong (must be 0 wrong).
2. ``recovery_handover``: two DTSentinels; the leader is SIGKILLed; time
   until the standby leads (its log), for several runs. Its lease is 4 s,
   trusted for 3 s; the standby asks every half second.

Usage: ``python benchmarks/recovery.py [--quick]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import redis  # noqa: E402

from dtriad.config import ClusterConfig, parse_address  # noqa: E402
from dtriad.membership.check import check  # noqa: E402
from dtriad.ops import cluster as local  # noqa: E402
from dtriad.ops.procs import pid_alive, stop_pid, wait_until  # noqa: E402


def members(directory: Path) -> set[str]:
    ring = (local.sentinel_progress(directory) or {}).get("ring") or {}
    return {m["name"] for m in ring.get("nodes", [])} if not ring.get("pending") else set()


def restart(keys: int, directory: Path) -> dict:
    config = local.up(directory, local.UpOptions(nodes=3, replicas=1, persist=False, workers=1,
                                                 down_after_ms=10_000), log=lambda *_: None)
    try:
        host, port = parse_address(config.nodes[0].resp)
        client = redis.Redis(host=host, port=port, password=config.password, protocol=2,
                             socket_timeout=10)
        names = [f"k{i}" for i in range(keys)]
        for i in range(0, keys, 1000):
            pipe = client.pipeline(transaction=False)
            for k in names[i:i + 1000]:
                pipe.set(k, k)
            pipe.execute()
        stats = {"reads": 0, "failed": 0, "wrong": 0}
        stop = threading.Event()

        def reader() -> None:
            i = 0
            while not stop.is_set():
                key = names[i % keys]
                i += 1
                try:
                    value = client.get(key)
                    stats["reads"] += 1
                    stats["wrong"] += value != key.encode()
                except redis.RedisError:
                    stats["failed"] += 1

        local.kill_node(directory, "n2")
        local.start_node(directory, "n2")
        started = time.monotonic()
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        wait_until(lambda: "n2" not in members(directory) and members(directory), 120,
                   "n2 to leave the ring", interval=0.02)
        detected = time.monotonic() - started
        wait_until(lambda: local.admitted(config) and "n2" in members(directory), 300,
                   "n2 to be admitted again", interval=0.05)
        admitted = time.monotonic() - started
        stop.set()
        thread.join()
        wait_until(lambda: check(ClusterConfig.load(local.cluster_file(directory))).clean, 300,
                   "a clean check", interval=0.2)
        clean = time.monotonic() - started
        client.close()
        return {"keys": keys, "detected_s": round(detected, 3), "served_s": round(admitted, 3),
                "clean_s": round(clean, 3), **stats}
    finally:
        local.down(directory)


def handover(runs: int, directory: Path) -> list[dict]:
    local.up(directory, local.UpOptions(nodes=3, replicas=1, persist=False, workers=1,
                                        dtsentinels=2), log=lambda *_: None)
    rows = []
    try:
        for run in range(runs):
            index, pid = local.leading_dtsentinel(directory)
            other = 2 if index == 1 else 1
            log = local.dtsentinel_home(directory, other) / "dtsentinel.log"
            before = log.stat().st_size
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            wait_until(lambda log=log, before=before: b"leading: this" in log.read_bytes()[before:],
                       60, "the standby to lead", interval=0.02)
            rows.append({"run": run, "handover_s": round(time.monotonic() - killed, 3)})
            wait_until(lambda pid=pid: not pid_alive(pid), 5, "the old leader to exit")
            stop_pid(pid)
            local.restart_dtsentinel(directory, index)
    finally:
        local.down(directory)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(restarts: list[dict], handovers: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    keys = [r["keys"] for r in restarts]
    for field, label in (("detected_s", "out of the ring"), ("served_s", "admitted again"),
                         ("clean_s", "check clean")):
        a.plot(keys, [r[field] for r in restarts], marker="o", label=label)
    a.set_xscale("log")
    a.set_xlabel("keys in the cluster")
    a.set_ylabel("seconds after the restart")
    a.set_title("A backend restarted at once (r=1, 3 nodes)")
    a.legend()
    b.bar([str(r["run"]) for r in handovers], [r["handover_s"] for r in handovers])
    b.set_xlabel("run")
    b.set_ylabel("seconds")
    b.set_title("Leader SIGKILLed: standby leads after")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dtriad-bench-") as tmp:
        counts = [1000, 10_000] if args.quick else [1000, 10_000, 100_000]
        restarts = [restart(k, Path(tmp) / f"restart{k}") for k in counts]
        handovers = handover(2 if args.quick else 5, Path(tmp) / "handover")
    write_csv(restarts, args.out / "recovery_restart.csv")
    write_csv(handovers, args.out / "recovery_handover.csv")
    plot(restarts, handovers, args.out / "recovery.png")
    for r in restarts:
        print(r)
    times = [r["handover_s"] for r in handovers]
    print(f"handover: median {statistics.median(times):.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()

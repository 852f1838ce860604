"""The smart client (``dtriad.Redis``) against redis-py, in one run.

A Python application's view: one thread in a closed loop for a fixed time,
GET and SET of 100-byte values over 10,000 keys, with

* ``direct``: redis-py on one plain redis-server (no AOF, the same binary);
* ``via DTServer``: redis-py on a DTServer's RESP port (the hop);
* ``smart``: ``dtriad.Redis`` on the same cluster, straight to the backends.

The cluster is a local 3-node one (no AOF) with r=0 and with r=2. One thread
measures what a request costs end to end (these machines have 2 cores: more
threads would measure the GIL and the scheduler). Writes
``results/smart_client.{csv,png,md}``; ratios are ops/s over direct's in the
same run.

Usage: ``python benchmarks/smart_client.py [--quick]``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from throughput import machine_speed  # noqa: E402

import dtriad  # noqa: E402
from dtriad.config import parse_address  # noqa: E402
from dtriad.ops import cluster as local  # noqa: E402
from dtriad.ops.procs import free_port, start_redis, stop_pid  # noqa: E402

FIELDS = ["target", "replicas", "operation", "seconds", "operations", "ops_per_s", "us_per_op",
          "ratio"]
KEYS = 10_000
VALUE = b"v" * 100
PASSWORD = "benchmark-password"


def loop(r: redis.Redis, operation: str, seconds: float) -> dict:
    keys = [f"key:{i}" for i in range(KEYS)]
    call = r.get if operation == "GET" else (lambda k: r.set(k, VALUE))
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for key in keys[done % KEYS:done % KEYS + 100]:
            call(key)
        done += 100
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - start
    return {"seconds": round(elapsed, 2), "operations": done,
            "ops_per_s": round(done / elapsed), "us_per_op": round(elapsed / done * 1e6, 1)}


def fill(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(KEYS):
        pipe.set(f"key:{i}", VALUE)
    pipe.execute()


def measure(workdir: Path, seconds: float, echo) -> list[dict]:
    rows = []

    def record(target, replicas, client):
        for operation in ("SET", "GET"):
            row = {"target": target, "replicas": replicas, "operation": operation,
                   **loop(client, operation, seconds)}
            rows.append(row)
            echo(f"{target:<13} r={replicas!s:<2} {operation}: {row['ops_per_s']:>7,}/s "
                 f"({row['us_per_op']} us/op)")

    port = free_port()
    proc = start_redis(port, workdir / "direct", PASSWORD, persist=False)
    try:
        direct = redis.Redis(port=port, password=PASSWORD)
        fill(direct)
        record("direct", "", direct)
    finally:
        stop_pid(proc.pid, needle=str(port))
    for replicas in (0, 2):
        directory = workdir / f"r{replicas}"
        config = local.up(directory, local.UpOptions(nodes=3, replicas=replicas, persist=False,
                                                     workers=1, down_after_ms=60_000),
                          log=lambda *_: None)
        try:
            host, resp = parse_address(config.nodes[0].resp)
            hop = redis.Redis(host=host, port=resp, password=config.password)
            fill(hop)
            record("via DTServer", replicas, hop)
            smart = dtriad.Redis(cluster=config.path)
            try:
                record("smart", replicas, smart)
            finally:
                smart.close()
        finally:
            local.down(directory)
    base = {r["operation"]: r["ops_per_s"] for r in rows if r["target"] == "direct"}
    for row in rows:
        row["ratio"] = round(row["ops_per_s"] / base[row["operation"]], 2)
    return rows


def report(rows: list[dict], speed: str) -> str:
    lines = ["| operation | direct redis-py | r=0 via DTServer | r=0 smart | r=2 via DTServer "
             "| r=2 smart |", "|---|---|---|---|---|---|"]
    for operation in ("GET", "SET"):
        cells = {(r["target"], r["replicas"]): r for r in rows if r["operation"] == operation}
        line = f"| {operation} | {cells['direct', '']['ops_per_s']:,}/s |"
        for replicas in (0, 2):
            for target in ("via DTServer", "smart"):
                c = cells[target, replicas]
                line += f" {c['ops_per_s']:,}/s ({c['ratio']:.2f}) |"
        lines.append(line)
    return "\n".join([*lines, "", "One redis-py thread in a closed loop; ratios to direct "
                      f"redis-py in the same run. `python -m timeit \"sum(range(1000))\"`: "
                      f"{speed}."])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    targets = [("direct", ""), ("via DTServer", 0), ("smart", 0), ("via DTServer", 2),
               ("smart", 2)]
    width = 0.16
    for i, (target, replicas) in enumerate(targets):
        values = [next(r["ops_per_s"] for r in rows if (r["target"], r["replicas"],
                                                         r["operation"]) ==
                       (target, replicas, op)) for op in ("GET", "SET")]
        label = target if target == "direct" else f"{target}, r={replicas}"
        ax.bar([g + (i - 2) * width for g in range(2)], values, width, label=label)
    ax.set_xticks(range(2))
    ax.set_xticklabels(["GET", "SET"])
    ax.set_ylabel("operations/s (one redis-py thread)")
    ax.set_title("dtriad.Redis (smart client) vs redis-py via a DTServer and direct")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s per measurement, not 8")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dtriad-smart-") as tmp:
        rows = measure(Path(tmp), 2.0 if args.quick else 8.0, print)
    speed = machine_speed()
    with open(args.out / "smart_client.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    table = report(rows, speed)
    (args.out / "smart_client.md").write_text(table + "\n")
    plot(rows, args.out / "smart_client.png")
    print(table)


if __name__ == "__main__":
    main()

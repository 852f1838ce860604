"""The cost of transactions and scripts, against plain commands, in one run.

Every operation increments four counters; closed loop, 8 client threads with
redis-py, for a fixed time each:

* ``plain``: the four INCRs in one pipeline without MULTI (one round trip);
* ``multi-one``: MULTI, the four INCRs, EXEC, keys under one ``{hash tag}``
  (one master: one script there);
* ``multi-across``: the same with keys on at least two masters (locks,
  scratch run, commit, apply);
* ``eval-one``: one EVAL incrementing the four ``{tag}`` keys.

Against one DTServer's RESP port of a local 3-node r=2 cluster (no AOF), and
the same operations against one plain redis-server (the same binary) for
scale. Writes ``results/transactions.{csv,png,md}``: operations/s, latency
p50/p99, and each dtriad operation's cost relative to ``plain`` on dtriad and
to the same operation on direct Redis.

Usage: ``python benchmarks/transactions.py [--quick]``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from dtriad.config import parse_address  # noqa: E402
from dtriad.core.dtcore import DTCore  # noqa: E402
from dtriad.ops import cluster as local  # noqa: E402
from dtriad.ops.procs import free_port, start_redis, stop_pid  # noqa: E402

FIELDS = ["target", "operation", "clients", "seconds", "operations", "ops_per_s", "p50_ms",
          "p99_ms", "vs_plain", "vs_direct"]
CLIENTS = 8
OPERATIONS = ("plain", "multi-one", "multi-across", "eval-one")
INCR4 = "for i = 1, #KEYS do redis.call('INCR', KEYS[i]) end return #KEYS"


def operation(name: str, r: redis.Redis, tagged: list[str], spread: list[str]):
    script = r.register_script(INCR4)

    def pipelined(keys: list[str], transaction: bool):
        def run() -> None:
            p = r.pipeline(transaction=transaction)
            for k in keys:
                p.incr(k)
            p.execute()
        return run

    return {"plain": pipelined(spread, False), "multi-one": pipelined(tagged, True),
            "multi-across": pipelined(spread, True),
            "eval-one": lambda: script(keys=tagged)}[name]


def closed_loop(port: int, password: str, name: str, tagged: list[str], spread: list[str],
                seconds: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        r = redis.Redis(port=port, password=password, socket_timeout=30)
        run = operation(name, r, [f"{k}:{i}" for k in tagged], [f"{k}:{i}" for k in spread])
        try:
            while time.monotonic() < stop:
                started = time.perf_counter()
                run()
                latencies[i].append(time.perf_counter() - started)
        except redis.RedisError as e:
            errors.append(e)
        finally:
            r.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    if errors:
        raise RuntimeError(f"{name}: {errors[0]!r}")
    every = sorted(x for per in latencies for x in per)
    return {"operation": name, "clients": CLIENTS, "seconds": round(elapsed, 2),
            "operations": len(every), "ops_per_s": round(len(every) / elapsed, 1),
            "p50_ms": round(statistics.median(every) * 1000, 3),
            "p99_ms": round(every[int(len(every) * 0.99) - 1] * 1000, 3)}


def spread_keys(config, count: int) -> list[str]:
    """``count`` keys on at least two masters."""
    core = DTCore(config)
    try:
        for attempt in range(100):
            keys = [f"bench{attempt}:{i}" for i in range(count)]
            if len({core.view.route(k).direct[0] for k in keys}) >= 2:
                return keys
    finally:
        core.close()
    raise RuntimeError("no keys on two masters")


def measure(workdir: Path, seconds: float, echo,
            operations: tuple[str, ...] = OPERATIONS) -> list[dict]:
    rows = []
    password = "benchmark-password"
    tagged = [f"{{bench}}:{i}" for i in range(4)]
    port = free_port()
    proc = start_redis(port, workdir / "direct", password, persist=False)
    try:
        for name in operations:
            row = closed_loop(port, password, name, tagged, [f"d:{i}" for i in range(4)],
                              seconds)
            rows.append({"target": "direct", **row})
            echo(rows[-1])
    finally:
        stop_pid(proc.pid, needle=str(port))
    config = local.up(workdir / "cluster", local.UpOptions(nodes=3, replicas=2, persist=False,
                                                           workers=1, down_after_ms=60_000),
                      log=lambda *_: None)
    try:
        resp = parse_address(config.nodes[0].resp)[1]
        spread = spread_keys(config, 4)
        for name in operations:
            rows.append({"target": "dtriad r=2",
                         **closed_loop(resp, config.password, name, tagged, spread, seconds)})
            echo(rows[-1])
    finally:
        local.down(workdir / "cluster")
    by = {(r["target"], r["operation"]): r for r in rows}
    for r in rows:
        r["vs_plain"] = round(r["ops_per_s"] / by[(r["target"], "plain")]["ops_per_s"], 3)
        r["vs_direct"] = round(r["ops_per_s"] / by[("direct", r["operation"])]["ops_per_s"], 3)
    return rows


def report(rows: list[dict]) -> str:
    lines = ["| operation (4 INCRs) | direct Redis ops/s | dtriad r=2 ops/s | dtriad vs direct "
             "| dtriad vs its plain pipeline | dtriad p50 / p99 ms |",
             "|---|---|---|---|---|---|"]
    by = {(r["target"], r["operation"]): r for r in rows}
    for name in OPERATIONS:
        d, t = by[("direct", name)], by[("dtriad r=2", name)]
        lines.append(f"| {name} | {d['ops_per_s']:,.0f} | {t['ops_per_s']:,.0f} | "
                     f"{t['vs_direct']:.2f} | {t['vs_plain']:.2f} | "
                     f"{t['p50_ms']:.1f} / {t['p99_ms']:.1f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.38
    for i, target in enumerate(("direct", "dtriad r=2")):
        values = [next(r["ops_per_s"] for r in rows
                       if r["target"] == target and r["operation"] == name)
                  for name in OPERATIONS]
        ax.bar([x + (i - 0.5) * width for x in range(len(OPERATIONS))], values, width,
               label="direct Redis" if target == "direct" else "dtriad RESP, 3 nodes, r=2")
    ax.set_xticks(range(len(OPERATIONS)))
    ax.set_xticklabels(OPERATIONS)
    ax.set_yscale("log")
    ax.set_ylabel(f"operations/s ({CLIENTS} clients, 4 INCRs each)")
    ax.set_title("Transactions and scripts vs plain commands (same run)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per operation, not 10")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dtriad-transactions-") as tmp:
        rows = measure(Path(tmp), 3.0 if args.quick else 10.0, print)
    with open(args.out / "transactions.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    table = report(rows)
    (args.out / "transactions.md").write_text(table + "\n")
    plot(rows, args.out / "transactions.png")
    print(table)


if __name__ == "__main__":
    main()

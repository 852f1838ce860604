"""Latency and throughput of get/set through HTTP, against baselines, in one run.

For N in {3, 5} and r in {0, 1, 2} it starts a local cluster (``dtriad up``,
no AOF) and measures, with the load generator in its own process:

* ``dtriad``: a DTServer as dtriad runs it (granian, 2 worker processes);
* ``wsgiref``: the same spyne application on single-threaded ``wsgiref``, the
  original system's serving setup, on the same cluster;
* ``direct``: redis-py (asyncio) straight to one backend, one copy, no HTTP.

Latency is measured with one client (service time, no queueing); throughput
with ``--concurrency`` clients. Writes ``results/latency.csv`` and
``results/latency.png``.

The consistency mechanism's own cost is measured apart, in the request core
without HTTP (N=3, r=2): ``set``, ``append`` and ``lPush`` through
:meth:`DTCore.write` (the master serializes, backups apply in its order)
against a plain fan-out of the same command to the same three copies at once
(the paper's scheme, which does not converge), in the same run. Writes
``results/consistency_cost.{csv,png,md}``.

Usage: ``python benchmarks/latency.py [--quick] [--mechanism-only]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from dtriad.ops import cluster as local  # noqa: E402
from dtriad.ops.procs import free_port, stop_pid, wait_until  # noqa: E402

FIELDS = ["nodes", "replicas", "target", "op", "clients", "requests", "errors",
          "throughput", "p50_ms", "p99_ms"]


def load(target: str, op: str, clients: int, duration: float, password: str,
         loop: str = "asyncio") -> dict:
    """One ``loadgen.py`` run; on asyncio, as ``results/latency.md`` was measured
    (``http_throughput.py`` uses uvloop, which leaves the servers more CPU)."""
    out = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), target, op, "--concurrency", str(clients),
         "--duration", str(duration), "--loop", loop],
        capture_output=True, text=True, check=True,
        env=dict(os.environ, REDIS_PASSWORD=password))
    return json.loads(out.stdout)


def start_wsgiref(cluster_file: Path, log: Path) -> tuple[subprocess.Popen, str]:
    import requests

    port = free_port()
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dtriad", "serve", "--cluster", str(cluster_file),
             "--host", "127.0.0.1", "--port", str(port), "--server", "wsgiref"],
            stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{url}/health", timeout=2).ok, 30, "wsgiref server",
               proc=proc, log=log)
    return proc, url


def measure(nodes: int, replicas: int, duration: float, clients: int, echo) -> list[dict]:
    rows = []
    directory = Path(tempfile.mkdtemp(prefix="dtriad-bench-"))
    config = local.up(directory, local.UpOptions(nodes=nodes, replicas=replicas,
                                                 persist=False, workers=2),
                      log=lambda *_: None)
    wsgiref = None
    try:
        wsgiref, wsgiref_url = start_wsgiref(local.cluster_file(directory),
                                             directory / "wsgiref.log")
        entry = config.nodes[0]
        targets = {"dtriad": entry.http, "wsgiref": wsgiref_url,
                   "direct": f"redis://{entry.redis}"}
        load(entry.http, "set", 8, 1.0, config.password)  # fill the keys, warm up
        for op in ("get", "set"):
            for target, url in targets.items():
                for n_clients in (1, clients):
                    result = load(url, op, n_clients, duration, config.password)
                    row = {"nodes": nodes, "replicas": replicas, "target": target, "op": op,
                           "clients": n_clients, **result}
                    echo(", ".join(f"{k}={row[k]}" for k in FIELDS))
                    rows.append(row)
    finally:
        if wsgiref is not None:
            stop_pid(wsgiref.pid)
        local.down(directory)
    return rows


def ratios(rows: list[dict], clients: int) -> list[str]:
    def pick(n, r, target, op, c, field):
        for row in rows:
            if (row["nodes"], row["replicas"], row["target"], row["op"], row["clients"]) == \
                    (n, r, target, op, c):
                return row[field]
        return float("nan")

    lines = ["| N | r | get req/s: dtriad / wsgiref | get req/s: dtriad / direct "
             "| set p50 / get p50 (1 client) | set req/s: dtriad / wsgiref |",
             "|---|---|---|---|---|---|"]
    for n in sorted({row["nodes"] for row in rows}):
        for r in sorted({row["replicas"] for row in rows}):
            g = pick(n, r, "dtriad", "get", clients, "throughput")
            lines.append(
                f"| {n} | {r} | {g / pick(n, r, 'wsgiref', 'get', clients, 'throughput'):.2f} "
                f"| {g / pick(n, r, 'direct', 'get', clients, 'throughput'):.3f} "
                f"| {pick(n, r, 'dtriad', 'set', 1, 'p50_ms') / pick(n, r, 'dtriad', 'get', 1, 'p50_ms'):.2f} "  # noqa: E501
                f"| {pick(n, r, 'dtriad', 'set', clients, 'throughput') / pick(n, r, 'wsgiref', 'set', clients, 'throughput'):.2f} |")  # noqa: E501
    return lines


def plot(rows: list[dict], clients: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = sorted({(row["nodes"], row["replicas"]) for row in rows})
    labels = [f"N={n} r={r}" for n, r in configs]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    width = 0.13
    series = [(t, op) for op in ("get", "set") for t in ("dtriad", "wsgiref", "direct")]
    for k, (target, op) in enumerate(series):
        thr = [next(r["throughput"] for r in rows if (r["nodes"], r["replicas"]) == c
                    and r["target"] == target and r["op"] == op and r["clients"] == clients)
               for c in configs]
        lat = [next(r["p50_ms"] for r in rows if (r["nodes"], r["replicas"]) == c
                    and r["target"] == target and r["op"] == op and r["clients"] == 1)
               for c in configs]
        xs = [i + (k - 2.5) * width for i in range(len(configs))]
        axes[0].bar(xs, thr, width, label=f"{target} {op}")
        axes[1].bar(xs, lat, width, label=f"{target} {op}")
    axes[0].set_title(f"throughput, {clients} clients (req/s)")
    axes[1].set_title("p50 latency, 1 client (ms)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xticks(range(len(configs)), labels)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


MECH_FIELDS = ["mode", "op", "clients", "requests", "throughput", "p50_ms", "p99_ms"]


def closed_loop(run, make, prefix: str, clients: int, duration: float) -> list[float]:
    """``clients`` threads call ``run(key, make(key))`` back to back over 500
    keys each, for ``duration`` s. -> sorted latencies (s)."""
    import threading
    import time

    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration

    def client(n: int) -> None:
        mine, i = [], 0
        while (start := time.perf_counter()) < stop_at:
            key = f"{prefix}:{n}:{i % 500}"
            run(key, make(key))
            mine.append(time.perf_counter() - start)
            i += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(latencies)


def mechanism_cost(duration: float, clients: int, echo) -> list[dict]:
    """The write path with and without the ordering mechanism, same cluster."""
    from dtriad.core.dtcore import DTCore

    directory = Path(tempfile.mkdtemp(prefix="dtriad-mech-"))
    config = local.up(directory, local.UpOptions(nodes=3, replicas=2, persist=False,
                                                 workers=1), log=lambda *_: None)
    core = DTCore(config)
    commands = {"set": lambda k: ("SET", k, "v" * 100), "append": lambda k: ("APPEND", k, "x"),
                "lPush": lambda k: ("LPUSH", k, "x")}
    modes = {
        "ordered": lambda key, cmd: core.run(core.requests.write([key], cmd, "all")),
        "fanout": lambda key, cmd: core.client.fanout(core.ring.preference_list(key), *cmd),
    }
    rows = []
    try:
        for op, make in commands.items():
            for mode, run in modes.items():
                for n_clients in (1, clients):
                    latencies = closed_loop(run, make, f"{op}:{mode}", n_clients, duration)
                    row = {"mode": mode, "op": op, "clients": n_clients,
                           "requests": len(latencies),
                           "throughput": round(len(latencies) / duration, 1),
                           "p50_ms": round(latencies[len(latencies) // 2] * 1e3, 3),
                           "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 3)}
                    echo(", ".join(f"{k}={row[k]}" for k in MECH_FIELDS))
                    rows.append(row)
    finally:
        core.close()
        local.down(directory)
    return rows


def mechanism_report(rows: list[dict], clients: int, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def pick(mode, op, c, field):
        return next(r[field] for r in rows if (r["mode"], r["op"], r["clients"]) == (mode, op, c))

    ops = ["set", "append", "lPush"]
    lines = ["| op | throughput, ordered / fan-out | p99, ordered / fan-out "
             "| p50 1 client: ordered, fan-out (ms) |", "|---|---|---|---|"]
    for op in ops:
        lines.append(
            f"| {op} | {pick('ordered', op, clients, 'throughput') / pick('fanout', op, clients, 'throughput'):.2f} "  # noqa: E501
            f"| {pick('ordered', op, clients, 'p99_ms') / pick('fanout', op, clients, 'p99_ms'):.2f} "  # noqa: E501
            f"| {pick('ordered', op, 1, 'p50_ms')}, {pick('fanout', op, 1, 'p50_ms')} |")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, mode in enumerate(("fanout", "ordered")):
        xs = [i + (k - 0.5) * 0.35 for i in range(len(ops))]
        axes[0].bar(xs, [pick(mode, op, clients, "throughput") for op in ops], 0.35,
                    label=mode)
        axes[1].bar(xs, [pick(mode, op, clients, "p99_ms") for op in ops], 0.35, label=mode)
    axes[0].set_title(f"writes/s in the core, {clients} threads (N=3, r=2)")
    axes[1].set_title(f"p99 latency (ms), {clients} threads")
    for ax in axes:
        ax.set_xticks(range(len(ops)), ops)
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "consistency_cost.png", dpi=110)
    with open(out / "consistency_cost.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, MECH_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    table = "\n".join(lines)
    (out / "consistency_cost.md").write_text(table + "\n")
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=3, r in {0, 2}, 1 s each")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--mechanism-only", action="store_true",
                        help="only the consistency mechanism's cost")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    mech = mechanism_cost(1.0 if args.quick else args.duration, 4, print)
    print(mechanism_report(mech, 4, args.out))
    if args.mechanism_only:
        return
    grid = [(3, 0), (3, 2)] if args.quick else [(n, r) for n in (3, 5) for r in (0, 1, 2)]
    duration = 1.0 if args.quick else args.duration
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, r in grid:
        rows += measure(n, r, duration, args.clients, print)
    with open(args.out / "latency.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.clients, args.out / "latency.png")
    table = "\n".join(ratios(rows, args.clients))
    (args.out / "latency.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()

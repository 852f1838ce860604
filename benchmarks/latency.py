"""Latency and throughput of get/set through HTTP, against baselines, in one run.

For N in {3, 5} and r in {0, 1, 2} it starts a local cluster (``dtriad up``,
no AOF) and measures, with the load generator in its own process:

* ``dtriad``: a DTServer as dtriad runs it (granian, 2 worker processes);
* ``wsgiref``: the same spyne application on single-threaded ``wsgiref``, the
  original system's serving setup, on the same cluster;
* ``direct``: redis-py (asyncio) straight to one backend, one copy, no HTTP.

Latency is measured with one client (service time, no queueing); throughput
with ``--concurrency`` clients. Writes ``results/latency.csv`` and
``results/latency.png``. Usage: ``python benchmarks/latency.py [--quick]``.
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

from dtriad import cluster as local  # noqa: E402
from dtriad.procs import free_port, stop_pid, wait_until  # noqa: E402

FIELDS = ["nodes", "replicas", "target", "op", "clients", "requests", "errors",
          "throughput", "p50_ms", "p99_ms"]


def load(target: str, op: str, clients: int, duration: float, password: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), target, op, "--concurrency", str(clients),
         "--duration", str(duration)],
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=3, r in {0, 2}, 1 s each")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    grid = [(3, 0), (3, 2)] if args.quick else [(n, r) for n in (3, 5) for r in (0, 1, 2)]
    duration = 1.0 if args.quick else args.duration
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, r in grid:
        rows += measure(n, r, duration, args.clients, print)
    with open(args.out / "latency.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.clients, args.out / "latency.png")
    table = "\n".join(ratios(rows, args.clients))
    (args.out / "latency.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()

"""The DTServer's HTTP throughput and its own CPU per request, against the
original single-threaded spyne/wsgiref setup, in one run.

It starts a local cluster (``dtriad up``, no AOF) and, on it, two HTTP
servers started the same way (``dtriad serve --cluster ... --port ...``):

* ``dtriad``: the DTServer as dtriad runs it (granian, ``--workers`` processes);
* ``wsgiref``: the same spyne application on single-threaded ``wsgiref``
  (``--server wsgiref``), the original system's serving setup.

For ``get`` and ``set`` it loads each in turn with ``--clients`` closed-loop
keep-alive clients (``loadgen.py``, in its own process), alternating which goes
first, ``--repeat`` times, and reports for each run req/s, p50/p99, and the
server's own CPU time per request: utime + stime of the server process and
its children (granian's workers; wsgiref has none) from ``/proc/PID/stat``,
before and after the run, divided by the requests answered in it. The load
generator and the backends run on the same machine, so req/s depend on what
they cost too; CPU µs per request is the server's alone. The load
generator's own CPU per request is reported too: it runs on uvloop when
installed (``--loop``), about half asyncio's cost, which on a 2-core machine
is CPU the multi-process server gets back (the single-threaded one cannot
use it).

Writes ``results/http_throughput.{csv,md,png}`` and prints the machine's
``python -m timeit "sum(range(1000))"`` (CPU speed, for comparing runs).

Usage: ``python benchmarks/http_throughput.py [--duration 5] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from dtriad.ops import cluster as local  # noqa: E402
from dtriad.ops.procs import free_port, stop_pid, wait_until  # noqa: E402

FIELDS = ["round", "target", "op", "clients", "requests", "errors", "throughput",
          "p50_ms", "p99_ms", "cpu_s", "cpu_us_per_req", "processes", "loop",
          "client_us_per_req"]
TICK = os.sysconf("SC_CLK_TCK")


def load(url: str, op: str, clients: int, duration: float, loop: str = "auto") -> dict:
    """One run of ``loadgen.py`` (its own process) -> its JSON line."""
    out = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), url, op, "--concurrency", str(clients),
         "--duration", str(duration), "--loop", loop],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def machine_speed() -> str:
    """``python -m timeit "sum(range(1000))"``'s line, e.g. "50000 loops, best of 5: 8 usec"."""
    out = subprocess.run([sys.executable, "-m", "timeit", "sum(range(1000))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from the 3rd (state) on


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (granian's workers are its children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids``, in seconds."""
    total = 0
    for pid in pids:
        if (fields := _stat(pid)) is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (14th, 15th)
    return total / TICK


def start_server(cluster_file: Path, server: str, workers: int,
                 log: Path) -> tuple[subprocess.Popen, str]:
    import requests

    port = free_port()
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dtriad", "serve", "--cluster", str(cluster_file),
             "--host", "127.0.0.1", "--port", str(port), "--server", server,
             "--workers", str(workers)],
            stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{url}/health", timeout=2).ok, 30, f"{server} server",
               proc=proc, log=log)
    if server == "granian":  # every worker up (health may have reached only one)
        wait_until(lambda: len(tree(proc.pid)) > workers, 30, "granian's workers",
                   proc=proc, log=log)
    return proc, url


def measure(args, echo) -> list[dict]:
    rows = []
    directory = Path(tempfile.mkdtemp(prefix="dtriad-httpbench-"))
    local.up(directory, local.UpOptions(nodes=args.nodes, replicas=args.replicas,
                                                 persist=False, workers=args.workers),
                      log=lambda *_: None)
    servers: dict[str, subprocess.Popen] = {}
    try:
        urls = {}
        for target, server in (("dtriad", "granian"), ("wsgiref", "wsgiref")):
            servers[target], urls[target] = start_server(
                local.cluster_file(directory), server, args.workers,
                directory / f"{target}.log")
        for url in urls.values():  # fill the keys, warm up both
            load(url, "set", 8, 1.0, args.loop)
        for n in range(args.repeat):
            for op in ("get", "set"):
                order = ("dtriad", "wsgiref") if n % 2 == 0 else ("wsgiref", "dtriad")
                for target in order:
                    pids = tree(servers[target].pid)
                    before = cpu_seconds(pids)
                    result = load(urls[target], op, args.clients, args.duration, args.loop)
                    cpu = cpu_seconds(pids) - before
                    answered = max(result["requests"], 1)
                    row = {"round": n, "target": target, "op": op, "clients": args.clients,
                           **result, "cpu_s": round(cpu, 2),
                           "cpu_us_per_req": round(cpu / answered * 1e6, 1),
                           "processes": len(pids),
                           "client_us_per_req": round(result["client_cpu_s"] / answered * 1e6)}
                    echo(", ".join(f"{k}={row[k]}" for k in FIELDS))
                    rows.append(row)
    finally:
        for proc in servers.values():
            stop_pid(proc.pid)
        local.down(directory)
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def summary(rows: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """(target, op) -> the medians over the rounds."""
    out = {}
    for key in {(r["target"], r["op"]) for r in rows}:
        mine = [r for r in rows if (r["target"], r["op"]) == key]
        out[key] = {field: statistics.median(r[field] for r in mine)
                    for field in ("throughput", "cpu_us_per_req", "client_us_per_req")}
    return out


def report(rows: list[dict], args, speed: str) -> str:
    s = summary(rows)
    loop = rows[0]["loop"] if rows else "?"
    lines = [f"N={args.nodes}, r={args.replicas}, {args.clients} clients, "
             f"{args.duration:g} s runs, {args.repeat} rounds (medians; the ratio of each "
             f"round in brackets), dtriad = granian with {args.workers} workers, load "
             f"generator on {loop}; machine: `python -m timeit \"sum(range(1000))\"`: "
             f"{speed}", "",
             "| op | dtriad req/s | wsgiref req/s | dtriad / wsgiref "
             "| dtriad CPU µs/req | wsgiref CPU µs/req | load generator CPU µs/req "
             "(dtriad, wsgiref) |", "|---|---|---|---|---|---|---|"]
    for op in ("get", "set"):
        d, w = s[("dtriad", op)], s[("wsgiref", op)]
        per_round = [f"{d_row['throughput'] / w_row['throughput']:.2f}"
                     if w_row["throughput"] else "wsgiref answered nothing"
                     for d_row, w_row in zip(
                         (r for r in rows if (r["target"], r["op"]) == ("dtriad", op)),
                         (r for r in rows if (r["target"], r["op"]) == ("wsgiref", op)),
                         strict=True)]
        lines.append(f"| {op} | {d['throughput']:.0f} | {w['throughput']:.0f} "
                     f"| {d['throughput'] / w['throughput']:.2f} ({', '.join(per_round)}) "
                     f"| {d['cpu_us_per_req']:.0f} | {w['cpu_us_per_req']:.0f} "
                     f"| {d['client_us_per_req']:.0f}, {w['client_us_per_req']:.0f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k, target in enumerate(("dtriad", "wsgiref")):
        xs = [i + (k - 0.5) * 0.35 for i in range(2)]
        axes[0].bar(xs, [s[(target, op)]["throughput"] for op in ("get", "set")], 0.35,
                    label=target)
        axes[1].bar(xs, [s[(target, op)]["cpu_us_per_req"] for op in ("get", "set")], 0.35,
                    label=target)
    axes[0].set_title("throughput (req/s, median of rounds)")
    axes[1].set_title("server CPU per request (µs, utime+stime)")
    for ax in axes:
        ax.set_xticks(range(2), ["get", "set"])
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="granian's worker processes")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="http_throughput", help="results' file name")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="the load generator's event loop (auto: uvloop if installed)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    speed = machine_speed()
    print(f"machine: python -m timeit \"sum(range(1000))\": {speed}")
    rows = measure(args, print)
    with open(args.out / f"{args.name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / f"{args.name}.png")
    table = report(rows, args, speed)
    (args.out / f"{args.name}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()

"""Throughput through the RESP front end against direct Redis, in one run.

``redis-benchmark`` (Debian's ``redis-tools``; ``apt-get install redis-tools``)
drives, with 50 clients, with and without ``-P 16`` pipelining, 100-byte
values over 100,000 random keys:

* ``direct``: one plain redis-server (no AOF), the same binary the cluster uses;
* ``dtriad r=0`` and ``dtriad r=2``: one DTServer's RESP port of a local
  3-node cluster (``dtriad up``, no AOF) with 0 and 2 backups.

Writes ``results/throughput.{csv,png,md}``; the ratios are dtriad's requests/s
over direct Redis's in the same run.

Usage: ``python benchmarks/throughput.py [--quick]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from dtriad.config import parse_address  # noqa: E402
from dtriad.ops import cluster as local  # noqa: E402
from dtriad.ops.procs import free_port, start_redis, stop_pid  # noqa: E402

FIELDS = ["target", "replicas", "test", "pipeline", "clients", "requests", "rps", "p50_ms",
          "p99_ms", "ratio"]
CLIENTS = 50
# requests per run, sized for a few seconds each on a 2-core machine
REQUESTS = {("direct", 1): 300_000, ("direct", 16): 2_000_000,
            ("dtriad", 1): 100_000, ("dtriad", 16): 300_000}


def benchmark(port: int, password: str, pipeline: int, requests: int) -> dict[str, dict]:
    """redis-benchmark's CSV for GET and SET: {test: {rps, p50_ms, p99_ms}}."""
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-a", password,
         "-c", str(CLIENTS), "-n", str(requests), "-P", str(pipeline), "-d", "100",
         "-r", "100000", "-t", "set,get", "--csv"],
        capture_output=True, text=True, check=True, timeout=600)
    rows = {}
    for row in csv.DictReader(io.StringIO(out.stdout)):
        test = row["test"].split()[0]
        rows[test] = {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]),
                      "p99_ms": float(row["p99_latency_ms"])}
    return rows


def measure(workdir: Path, scale: float, echo) -> list[dict]:
    rows = []
    password = "benchmark-password"
    port = free_port()
    proc = start_redis(port, workdir / "direct", password, persist=False)
    try:
        for pipeline in (1, 16):
            n = int(REQUESTS["direct", pipeline] * scale)
            for test, r in benchmark(port, password, pipeline, n).items():
                rows.append({"target": "direct", "replicas": "", "test": test,
                             "pipeline": pipeline, "clients": CLIENTS, "requests": n, **r})
                echo(f"direct        {test} -P {pipeline:<2}: {r['rps']:>10,.0f}/s")
    finally:
        stop_pid(proc.pid, needle=str(port))
    for replicas in (0, 2):
        directory = workdir / f"r{replicas}"
        config = local.up(directory, local.UpOptions(nodes=3, replicas=replicas, persist=False,
                                                     workers=1, down_after_ms=60_000),
                          log=lambda *_: None)
        try:
            resp = parse_address(config.nodes[0].resp)[1]
            for pipeline in (1, 16):
                n = int(REQUESTS["dtriad", pipeline] * scale)
                for test, r in benchmark(resp, config.password, pipeline, n).items():
                    rows.append({"target": "dtriad", "replicas": replicas, "test": test,
                                 "pipeline": pipeline, "clients": CLIENTS, "requests": n, **r})
                    echo(f"dtriad r={replicas}    {test} -P {pipeline:<2}: {r['rps']:>10,.0f}/s")
        finally:
            local.down(directory)
    direct = {(r["test"], r["pipeline"]): r["rps"] for r in rows if r["target"] == "direct"}
    for row in rows:
        row["ratio"] = round(row["rps"] / direct[row["test"], row["pipeline"]], 3)
    return rows


def report(rows: list[dict]) -> str:
    lines = ["| test | pipeline | direct Redis req/s | dtriad r=0 req/s (ratio) | "
             "dtriad r=2 req/s (ratio) |", "|---|---|---|---|---|"]
    for test in ("GET", "SET"):
        for pipeline in (1, 16):
            cells = {}
            for r in rows:
                if r["test"] == test and r["pipeline"] == pipeline:
                    cells[r["replicas"]] = r
            line = f"| {test} | {'-P 16' if pipeline == 16 else 'none'} | " \
                   f"{cells[''].get('rps'):,.0f} |"
            for replicas in (0, 2):
                c = cells[replicas]
                line += f" {c['rps']:,.0f} ({c['ratio']:.2f}) |"
            lines.append(line)
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(t, p) for t in ("GET", "SET") for p in (1, 16)]
    targets = [("direct", ""), ("dtriad", 0), ("dtriad", 2)]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.27
    for i, (target, replicas) in enumerate(targets):
        values = [next(r["rps"] for r in rows if r["target"] == target and
                       r["replicas"] == replicas and r["test"] == t and r["pipeline"] == p)
                  for t, p in groups]
        label = "direct Redis" if target == "direct" else f"dtriad RESP, r={replicas}"
        ax.bar([g + (i - 1) * width for g in range(len(groups))], values, width, label=label)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{t}\n{'-P 16' if p == 16 else 'no pipeline'}" for t, p in groups])
    ax.set_ylabel("requests/s (redis-benchmark -c 50, 100 B values)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Throughput: dtriad's RESP port vs direct Redis (same run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the requests")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark not found: install Debian's redis-tools "
                 "(apt-get install redis-tools)")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dtriad-throughput-") as tmp:
        rows = measure(Path(tmp), 0.2 if args.quick else 1.0, print)
    with open(args.out / "throughput.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    table = report(rows)
    (args.out / "throughput.md").write_text(table + "\n")
    plot(rows, args.out / "throughput.png")
    print(table)


if __name__ == "__main__":
    main()

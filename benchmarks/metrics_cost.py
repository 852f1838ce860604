"""The cost of Prometheus metrics on the request path, in one run.

``redis-benchmark`` (50 clients, 100-byte values, GET and SET, with and
without ``-P 16``) against one DTServer's RESP port of a local 3-node r=0
cluster, twice with metrics on and twice off, interleaved (on, off, on, off)
so that a drift of the machine hits both alike; direct Redis in the same run
for scale. Besides requests/s, the RESP process's CPU time per command (from
``/proc``), which is steadier than throughput on a noisy machine.

Writes ``results/metrics_cost.{csv,png,md}``.

Usage: ``python benchmarks/metrics_cost.py [--quick]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from throughput import benchmark  # noqa: E402

from dtriad.config import parse_address  # noqa: E402
from dtriad.ops import cluster as local  # noqa: E402
from dtriad.ops.procs import free_port, start_redis, stop_pid  # noqa: E402

FIELDS = ["target", "round", "test", "pipeline", "requests", "rps", "cpu_us_per_command",
          "ratio"]
TICKS = os.sysconf("SC_CLK_TCK")


def resp_pid(directory: Path, node: str) -> int:
    """The PID of ``node``'s RESP front end (read from /proc, never signalled)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"resp" in argv and str(directory).encode() in b" ".join(argv) \
                and node.encode() in argv:
            return int(entry.name)
    raise RuntimeError(f"no RESP process of {node} under {directory}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def run(workdir: Path, scale: float, echo) -> list[dict]:
    rows = []
    password = "benchmark-password"
    port = free_port()
    proc = start_redis(port, workdir / "direct", password, persist=False)
    try:
        for pipeline in (1, 16):
            n = int((300_000 if pipeline == 1 else 1_000_000) * scale)
            for test, r in benchmark(port, password, pipeline, n).items():
                rows.append({"target": "direct", "round": 0, "test": test, "pipeline": pipeline,
                             "requests": n, "rps": r["rps"], "cpu_us_per_command": ""})
    finally:
        stop_pid(proc.pid, needle=str(port))
    for round_, metrics in enumerate((True, False, True, False), start=1):
        directory = workdir / f"c{round_}"
        config = local.up(directory, local.UpOptions(nodes=3, replicas=0, persist=False,
                                                     workers=1, down_after_ms=60_000,
                                                     metrics=metrics), log=lambda *_: None)
        try:
            resp = parse_address(config.nodes[0].resp)[1]
            pid = resp_pid(directory, "n1")
            for pipeline in (1, 16):
                n = int((100_000 if pipeline == 1 else 300_000) * scale)
                before = cpu_seconds(pid)
                result = benchmark(resp, config.password, pipeline, n)
                used = cpu_seconds(pid) - before
                per = round(used / (2 * n) * 1e6, 1)  # GET and SET, n each
                for test, r in result.items():
                    rows.append({"target": "metrics on" if metrics else "metrics off",
                                 "round": round_, "test": test, "pipeline": pipeline,
                                 "requests": n, "rps": r["rps"], "cpu_us_per_command": per})
                    echo(f"round {round_} metrics {'on ' if metrics else 'off'} {test} "
                         f"-P {pipeline:<2}: {r['rps']:>9,.0f}/s, {per} CPU us/command")
        finally:
            local.down(directory)
    direct = {(r["test"], r["pipeline"]): r["rps"] for r in rows if r["target"] == "direct"}
    for row in rows:
        row["ratio"] = round(row["rps"] / direct[row["test"], row["pipeline"]], 3)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for test in ("GET", "SET"):
        for pipeline in (1, 16):
            cell = {"test": test, "pipeline": pipeline}
            for target in ("direct", "metrics on", "metrics off"):
                mine = [r for r in rows if (r["target"], r["test"], r["pipeline"])
                        == (target, test, pipeline)]
                cell[target] = statistics.mean(r["rps"] for r in mine)
                if target != "direct":
                    cell[f"{target} cpu"] = statistics.mean(r["cpu_us_per_command"]
                                                            for r in mine)
            out.append(cell)
    return out


def report(cells: list[dict]) -> str:
    lines = ["| test | pipeline | direct req/s | metrics on req/s (ratio) | metrics off req/s "
             "(ratio) | on / off | CPU µs/command on / off |", "|---|---|---|---|---|---|---|"]
    for c in cells:
        direct = c["direct"]
        lines.append(
            f"| {c['test']} | {'-P 16' if c['pipeline'] == 16 else 'none'} | {direct:,.0f} | "
            f"{c['metrics on']:,.0f} ({c['metrics on'] / direct:.3f}) | "
            f"{c['metrics off']:,.0f} ({c['metrics off'] / direct:.3f}) | "
            f"{c['metrics on'] / c['metrics off']:.2f} | "
            f"{c['metrics on cpu']:.1f} / {c['metrics off cpu']:.1f} |")
    return "\n".join(lines)


def plot(cells: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{c['test']}\n{'-P 16' if c['pipeline'] == 16 else 'no pipeline'}"
              for c in cells]
    for i, target in enumerate(("metrics on", "metrics off")):
        ax.bar([x + (i - 0.5) * 0.38 for x in range(len(cells))],
               [c[target] / c["direct"] for c in cells], 0.38, label=target)
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels(labels)
    ax.set_ylabel("requests/s over direct Redis (same run)")
    ax.set_title("RESP port, r=0: metrics on vs off")
    ax.legend()
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
    with tempfile.TemporaryDirectory(prefix="dtriad-metrics-cost-") as tmp:
        rows = run(Path(tmp), 0.2 if args.quick else 1.0, print)
    with open(args.out / "metrics_cost.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    cells = summary(rows)
    table = report(cells)
    (args.out / "metrics_cost.md").write_text(table + "\n")
    plot(cells, args.out / "metrics_cost.png")
    print(table)


if __name__ == "__main__":
    main()

"""Throughput and CPU per command through the RESP front end, against direct
Redis, in one run.

``redis-benchmark`` (Debian's ``redis-tools``; ``apt-get install redis-tools``)
drives 50 clients, 100-byte values over 100,000 random keys (``-r 100000``),
one test per run: SET, GET and MGET of 10 keys (a custom command,
``MGET key:__rand_int__ ...``: redis-benchmark has no MGET test), then SET and
GET again 16 deep (``-P 16``), against

* ``direct``: one plain redis-server (no AOF), the same binary the cluster uses;
* ``dtriad r=0`` and ``dtriad r=2``: node 0's RESP port of a local 3-node
  cluster (``dtriad up``, one HTTP worker, no AOF) with 0 and 2 backups, its
  RESP front end as configured by default (one process, uvloop if installed).

Then the front end's variants, for GET, GET -P 16 and SET (r=0): asyncio's
event loop or uvloop's, and 1, 2 or 4 RESP processes per node sharing the port
(``resp_workers``; 4 on a 2-core machine shows what oversubscription costs).

Each run measures requests/s (and redis-benchmark's p50/p99 latency) and the
CPU time (utime + stime, from ``/proc/PID/stat``) of the processes that serve
it, read just before and just after redis-benchmark, divided by the requests:

* direct: redis-server's CPU µs per command;
* dtriad: the RESP front end's (the processes listening on the node's RESP
  port, found through ``/proc/net/tcp`` and the processes' sockets, added
  up), and the three backends' added up.

CPU time counts in clock ticks (``SC_CLK_TCK``, usually 100/s); each run
lasts seconds, so one tick is well under 1% of what is measured. ``busy``
(in the CSV) is the CPU time over the run's wall time, in cores: a front end
near 1.0 is bound by its one thread.
The machine's speed (``python -m timeit "sum(range(1000))"``), taken before
and after the run, goes next to the table, so that runs on different machines
compare (and a virtual machine whose speed drifted during the run shows it).

Writes ``results/throughput.{csv,md,png}``; the ratios are dtriad's requests/s
over direct Redis's for the same test in the same run.

Then, unless ``--resp-only``, the same run measures the smart client
(``smart_client.py``) and the DTServer's HTTP against the original
spyne-on-wsgiref setup with its CPU per request (``http_throughput.py``), each
writing its own results, and adds their tables to ``throughput.md``.

Usage: ``python benchmarks/throughput.py [--quick] [--resp-only]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from dtriad.config import parse_address  # noqa: E402
from dtriad.ops import cluster as local  # noqa: E402
from dtriad.ops.procs import free_port, redis_server_binary, start_redis, stop_pid  # noqa: E402

FIELDS = ["target", "replicas", "variant", "test", "pipeline", "clients", "requests", "seconds",
          "rps",
          "p50_ms", "p99_ms", "ratio", "cpu_us_per_command", "busy",
          "backends_cpu_us_per_command", "backends_busy"]
CLIENTS = 50
TICKS = os.sysconf("SC_CLK_TCK")
PASSWORD = "benchmark-password"


@dataclass(frozen=True)
class Test:
    """One redis-benchmark run: ``command`` chooses what it sends; the request
    counts are sized for a few seconds each on a 2-core machine."""

    name: str
    pipeline: int
    command: tuple[str, ...]
    direct: int  # requests against direct Redis
    dtriad: int  # requests against dtriad

    @property
    def label(self) -> str:
        return label(self.name, self.pipeline)


def label(test: str, pipeline: int) -> str:
    return test + (f" -P {pipeline}" if pipeline > 1 else "")


MGET_KEYS = 10
# SET first: the GETs and MGETs then read keys that exist.
TESTS = (
    Test("SET", 1, ("-t", "set"), 300_000, 100_000),
    Test("GET", 1, ("-t", "get"), 300_000, 100_000),
    Test(f"MGET {MGET_KEYS}", 1, ("MGET", *["key:__rand_int__"] * MGET_KEYS), 200_000, 50_000),
    Test("SET", 16, ("-t", "set"), 2_000_000, 300_000),
    Test("GET", 16, ("-t", "get"), 2_000_000, 300_000),
)
TARGETS = (("direct", ""), ("dtriad", 0), ("dtriad", 2))
# The front end's variants (r=0): (event loop, RESP processes per node).
VARIANTS = (("asyncio", 1), ("uvloop", 1), ("uvloop", 2), ("uvloop", 4))
VARIANT_TESTS = tuple(t for t in TESTS if (t.name, t.pipeline) in
                      (("GET", 1), ("GET", 16), ("SET", 1)))


def benchmark(port: int, password: str, pipeline: int, requests: int,
              command: tuple[str, ...] = ("-t", "set,get")) -> dict[str, dict]:
    """redis-benchmark's CSV: {test: {rps, p50_ms, p99_ms}}, a test named by
    its command's first word (GET, SET, MGET...)."""
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-a", password,
         "-c", str(CLIENTS), "-n", str(requests), "-P", str(pipeline), "-d", "100",
         "-r", "100000", "--csv", *command],
        capture_output=True, text=True, check=True, timeout=600)
    rows = {}
    for row in csv.DictReader(io.StringIO(out.stdout)):
        test = row["test"].split()[0]
        rows[test] = {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]),
                      "p99_ms": float(row["p99_latency_ms"])}
    return rows


# ------------------------------------------------------------------ CPU
def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` (every thread) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def listener_pids(port: int) -> tuple[int, ...]:
    """The processes listening on TCP ``port`` on this host: their sockets'
    inodes from ``/proc/net/tcp{,6}``, then the processes holding one among
    their file descriptors. Read only: nothing is signalled."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()  # sl local_address rem_address st ... inode
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                sockets.add(f"socket:[{fields[9]}]")
    owners = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in sockets for fd in (entry / "fd").iterdir()):
                owners.add(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    if not owners:
        raise RuntimeError(f"no process listening on port {port}")
    return tuple(sorted(owners))


def measured(port: int, password: str, test: Test, requests: int, served: tuple[int, ...],
             backends: tuple[int, ...] = ()) -> dict:
    """Run ``test`` against ``port``: redis-benchmark's figures, and the CPU
    per command of ``served`` (the processes the clients talk to) and of
    ``backends`` (each added up), over exactly that run."""
    pids = (*served, *backends)
    before = [cpu_seconds(pid) for pid in pids]
    start = time.monotonic()
    (result,) = benchmark(port, password, test.pipeline, requests, test.command).values()
    seconds = time.monotonic() - start
    used = [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
    front, back = sum(used[:len(served)]), sum(used[len(served):])
    row = {"test": test.name, "pipeline": test.pipeline, "clients": CLIENTS,
           "requests": requests, "seconds": round(seconds, 2), **result,
           "cpu_us_per_command": round(front / requests * 1e6, 2),
           "busy": round(front / seconds, 2)}
    if backends:
        row["backends_cpu_us_per_command"] = round(back / requests * 1e6, 2)
        row["backends_busy"] = round(back / seconds, 2)
    return row


def echo_row(echo, row: dict) -> None:
    who = "direct" if row["target"] == "direct" else f"dtriad r={row['replicas']}"
    if row.get("variant"):
        who = row["variant"]
    line = (f"{who:<11} {label(row['test'], row['pipeline']):<10}: {row['rps']:>10,.0f}/s, "
            f"{row['cpu_us_per_command']:>6.1f} CPU us/cmd ({row['busy']:.2f} cores)")
    if row["target"] != "direct":
        line += (f", backends {row['backends_cpu_us_per_command']:.1f} us/cmd "
                 f"({row['backends_busy']:.2f} cores)")
    echo(line)


# ------------------------------------------------------------------ the run
def measure(workdir: Path, scale: float, echo) -> list[dict]:
    rows = []
    port = free_port()
    proc = start_redis(port, workdir / "direct", PASSWORD, persist=False)
    try:
        for test in TESTS:
            row = measured(port, PASSWORD, test, int(test.direct * scale), (proc.pid,))
            rows.append({"target": "direct", "replicas": "", **row})
            echo_row(echo, rows[-1])
    finally:
        stop_pid(proc.pid, needle=str(port))
    for replicas in (0, 2):
        rows += cluster_rows(workdir / f"r{replicas}", TESTS, scale, echo, replicas=replicas)
    for loop, workers in VARIANTS:
        rows += cluster_rows(workdir / f"{loop}{workers}", VARIANT_TESTS, scale, echo,
                             replicas=0, event_loop=loop, resp_workers=workers)
    direct = {(r["test"], r["pipeline"]): r["rps"] for r in rows if r["target"] == "direct"}
    for row in rows:
        row["ratio"] = round(row["rps"] / direct[row["test"], row["pipeline"]], 3)
    return rows


def cluster_rows(directory: Path, tests: tuple[Test, ...], scale: float, echo,
                 replicas: int, event_loop: str | None = None, resp_workers: int = 1
                 ) -> list[dict]:
    """``tests`` against node 0's RESP port of a new local cluster;
    ``event_loop`` given: a row of the front end's variants."""
    options = local.UpOptions(nodes=3, replicas=replicas, persist=False, workers=1,
                              down_after_ms=60_000, event_loop=event_loop or "auto",
                              resp_workers=resp_workers)
    config = local.up(directory, options, log=lambda *_: None)
    rows = []
    try:  # up() stops what it started if it fails
        resp = parse_address(config.nodes[0].resp)[1]
        front = listener_pids(resp)
        assert len(front) == resp_workers, front
        pids = local.Pids.load(directory)
        backends = tuple(pids.node(n.name).redis for n in config.nodes)
        for test in tests:
            row = measured(resp, config.password, test, int(test.dtriad * scale), front,
                           backends)
            variant = f"{event_loop} x{resp_workers}" if event_loop else ""
            rows.append({"target": "variant" if event_loop else "dtriad",
                         "replicas": replicas, "variant": variant, **row})
            echo_row(echo, rows[-1])
    finally:
        local.down(directory)
    return rows


def machine_speed() -> str:
    """``python -m timeit "sum(range(1000))"``'s line, e.g. "50000 loops, best
    of 5: 6.1 usec per loop"."""
    out = subprocess.run([sys.executable, "-m", "timeit", "sum(range(1000))"],
                         capture_output=True, text=True, check=True, timeout=120)
    return out.stdout.strip()


def versions() -> str:
    def version(*argv: str) -> str:  # "Redis server v=6.2.14 sha=... build=...": 3 words
        return " ".join(subprocess.run(argv, capture_output=True, text=True).stdout.split()[:3])

    return (f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
            f"{version('redis-benchmark', '--version')}, "
            f"{version(redis_server_binary(), '--version')}")


# ------------------------------------------------------------------ output
def report(rows: list[dict], speeds: tuple[str, str], machine: str) -> str:
    cell = {(r["target"], r["replicas"], r["test"], r["pipeline"]): r for r in rows}
    lines = [
        "| test | direct req/s | dtriad r=0 req/s (ratio) | dtriad r=2 req/s (ratio) "
        "| CPU µs/cmd: direct redis-server | r=0: front end + backends "
        "| r=2: front end + backends |",
        "|---|---|---|---|---|---|---|"]
    variants = {(r["variant"], r["test"], r["pipeline"]): r for r in rows
                if r["target"] == "variant"}
    for test in TESTS:
        direct = cell["direct", "", test.name, test.pipeline]
        line = f"| {test.label} | {direct['rps']:,.0f} |"
        for replicas in (0, 2):
            c = cell["dtriad", replicas, test.name, test.pipeline]
            line += f" {c['rps']:,.0f} ({c['ratio']:.2f}) |"
        line += f" {direct['cpu_us_per_command']:.1f} |"
        for replicas in (0, 2):
            c = cell["dtriad", replicas, test.name, test.pipeline]
            line += f" {c['cpu_us_per_command']:.1f} + {c['backends_cpu_us_per_command']:.1f} |"
        lines.append(line)
    names = [f"{loop} x{workers}" for loop, workers in VARIANTS]
    lines += ["", "The front end's variants, r=0 (event loop x RESP processes per node): "
              "requests/s (ratio to direct), front end's CPU µs/cmd", "",
              "| test | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for test in VARIANT_TESTS:
        line = f"| {test.label} |"
        for name in names:
            c = variants[name, test.name, test.pipeline]
            line += f" {c['rps']:,.0f} ({c['ratio']:.2f}), {c['cpu_us_per_command']:.1f} µs |"
        lines.append(line)
    return "\n".join([
        *lines, "",
        f"redis-benchmark -c {CLIENTS}, 100-byte values, 100,000 random keys; MGET {MGET_KEYS} "
        f"is `MGET key:__rand_int__` x {MGET_KEYS}. CPU µs/cmd: utime + stime over the "
        f"run / requests; the front end is node 0's RESP process, the backends its "
        f"cluster's 3 redis-servers added up.", "",
        f"Machine ({machine}): `python -m timeit \"sum(range(1000))\"`: {speeds[0]} "
        f"before the run, {speeds[1]} after."])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate, cpu) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.27
    for i, (target, replicas) in enumerate(TARGETS):
        mine = [next(r for r in rows if (r["target"], r["replicas"], r["test"], r["pipeline"])
                     == (target, replicas, t.name, t.pipeline)) for t in TESTS]
        at = [g + (i - 1) * width for g in range(len(TESTS))]
        name = "direct Redis" if target == "direct" else f"dtriad RESP, r={replicas}"
        rate.bar(at, [r["rps"] for r in mine], width, label=name, color=f"C{i}")
        served = [r["cpu_us_per_command"] for r in mine]
        cpu.bar(at, served, width, color=f"C{i}",
                label="redis-server" if target == "direct" else f"r={replicas}: front end")
        if target == "dtriad":
            cpu.bar(at, [r["backends_cpu_us_per_command"] for r in mine], width, bottom=served,
                    color=f"C{i}", alpha=0.45, hatch="//", label=f"r={replicas}: backends")
    for ax in (rate, cpu):
        ax.set_xticks(range(len(TESTS)))
        ax.set_xticklabels([t.label.replace(" -P", "\n-P") for t in TESTS])
        ax.legend(fontsize=8)
    rate.set_ylabel(f"requests/s (redis-benchmark -c {CLIENTS})")
    rate.set_yscale("log")
    rate.set_title("Throughput: dtriad's RESP port vs direct Redis")
    cpu.set_ylabel("CPU µs per command")
    cpu.set_title("CPU per command (same runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the requests")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--resp-only", action="store_true",
                        help="the RESP port only: not the smart client's and HTTP's runs after it")
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark not found: install Debian's redis-tools "
                 "(apt-get install redis-tools)")
    args.out.mkdir(parents=True, exist_ok=True)
    before = machine_speed()
    print(f"machine: python -m timeit \"sum(range(1000))\": {before}")
    with tempfile.TemporaryDirectory(prefix="dtriad-throughput-") as tmp:
        rows = measure(Path(tmp), 0.2 if args.quick else 1.0, print)
    with open(args.out / "throughput.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    after = machine_speed()
    text = report(rows, (before, after), versions())
    if not args.resp_only:
        text += "\n\n" + the_other_front_ends(args.out, args.quick)
    (args.out / "throughput.md").write_text(text + "\n")
    plot(rows, args.out / "throughput.png")
    print(text)


def the_other_front_ends(out: Path, quick: bool) -> str:
    """The same run's other two measurements, each by its own script (its
    CSV, PNG and md beside this one's): the smart client, and the DTServer's
    HTTP against the original spyne-on-wsgiref setup with its CPU per
    request. -> their tables, for throughput.md."""
    runs = [("The smart client (`smart_client.py`)", "smart_client",
             ["--quick"] if quick else []),
            ("HTTP: the DTServer against the original spyne/wsgiref setup "
             "(`http_throughput.py`)", "http_throughput",
             ["--repeat", "1" if quick else "5"] + (["--duration", "2"] if quick else []))]
    parts = []
    for title, name, options in runs:
        print(f"{name}.py ...", flush=True)
        subprocess.run([sys.executable, str(HERE / f"{name}.py"), "--out", str(out), *options],
                       check=True)
        parts.append(f"## {title}\n\n" + (out / f"{name}.md").read_text().strip())
    return "\n\n".join(parts)


if __name__ == "__main__":
    main()

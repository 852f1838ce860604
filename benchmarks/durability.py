"""Durability: the probability of losing data when nodes fail, three ways.

The paper's section 5.1 done right (see the README's "Durability" section):

1. **exact**: for N nodes, r backups and f nodes failing at once (chosen
   uniformly), the probability that some key loses every copy: closed forms
   for dtriad with one token per node and for a Redis primary/replica layout
   with the same number of copies, and counting every failure set over the
   project's own ring with vnodes. Also against p, each node failing
   independently with probability p.
2. **simulated**: Monte Carlo over random failure sets with the project's own
   ring code (95% Wilson intervals).
3. **measured**: real local clusters (backends without AOF): write keys through
   the RESP port, SIGKILL f backends at once, count the keys that no surviving
   backend holds (and check that they are exactly the keys whose preference
   list the failure set covers), then let the cluster readmit the restarted
   backends and refill them, rewrite what was lost, and go again. Then the
   same with the failures spaced: one backend at a time, each after the
   previous failure's repair, until one node is left, timing each repair.

Writes ``results/durability.csv`` (layout, N, r, f, method, p_loss, ci_low,
ci_high), ``results/durability_p.csv`` (against p), ``results/durability_spaced.csv``
and ``results/durability.png``.

Usage: ``python benchmarks/durability.py [--quick] [--seed S]``. ``--quick``
measures N = 5 only, with fewer trials (a few minutes).
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import random
import signal
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
from dtriad.ops.progress import Progress  # noqa: E402
from dtriad.placement.durability import (  # noqa: E402
    copy_sets,
    dt_loss,
    loss_by_enumeration,
    loss_given_p,
    paper_dt,
    paper_redis,
    redis_copy_sets,
    redis_loss,
    simulate,
    wilson,
)
from dtriad.placement.ring import Ring  # noqa: E402
from dtriad.placement.ringstate import RingState  # noqa: E402

FIELDS = ["layout", "N", "r", "f", "method", "p_loss", "ci_low", "ci_high"]
P_FIELDS = ["layout", "N", "r", "p", "method", "p_loss", "ci_low", "ci_high"]
SPACED_FIELDS = ["N", "r", "operator", "failures", "nodes_left", "keys", "lost", "repaired",
                 "repair_s"]
PS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7]
VNODES = 8


def names(count: int) -> list[str]:
    """Stand-in node addresses for the model (a real cluster's are its ports)."""
    return [f"10.0.0.{i + 1}:6379" for i in range(count)]


def layouts(count: int, replicas: int) -> dict[str, tuple[list, object]]:
    """Each layout's copy sets and closed form (None: count the failure sets)."""
    nodes = names(count)
    return {
        "dt": (copy_sets(Ring(nodes, replicas)), lambda f: dt_loss(count, replicas, f)),
        f"dt-vnodes-{VNODES}": (copy_sets(Ring(nodes, replicas, vnodes=VNODES)), None),
        "redis": (redis_copy_sets(nodes, replicas), lambda f: redis_loss(count, replicas, f)),
    }


def model_rows(counts: list[int], trials: int, rng: random.Random) -> tuple[list, list]:
    """Exact and simulated rows, against f and against p."""
    rows, p_rows = [], []
    for count in counts:
        nodes = names(count)
        for replicas in (0, 1, 2):
            for layout, (sets, closed) in layouts(count, replicas).items():
                exact = {f: closed(f) if closed else loss_by_enumeration(nodes, sets, f)
                         for f in range(count + 1)}
                for f in range(1, count + 1):
                    rows.append(_row(layout, count, replicas, f, "exact", float(exact[f])))
                    lost, n = simulate(nodes, sets, trials, rng, failed=f)
                    rows.append(_row(layout, count, replicas, f, "simulated", lost / n,
                                     wilson(lost, n)))
                for p in PS:
                    p_rows.append(_prow(layout, count, replicas, p, "exact",
                                        loss_given_p(count, p, exact.__getitem__)))
                    lost, n = simulate(nodes, sets, trials, rng, p=p)
                    p_rows.append(_prow(layout, count, replicas, p, "simulated", lost / n,
                                        wilson(lost, n)))
    return rows, p_rows


def _row(layout, count, replicas, f, method, p_loss, ci=None) -> dict:
    low, high = ci if ci else ("", "")
    return {"layout": layout, "N": count, "r": replicas, "f": f, "method": method,
            "p_loss": round(p_loss, 6), "ci_low": low if low == "" else round(low, 6),
            "ci_high": high if high == "" else round(high, 6)}


def _prow(layout, count, replicas, p, method, p_loss, ci=None) -> dict:
    row = _row(layout, count, replicas, 0, method, p_loss, ci)
    del row["f"]
    return {**row, "p": p}


# ---------------------------------------------------------------- measured


def quiet(*_args) -> None:
    pass


def backend(node, config: ClusterConfig) -> redis.Redis:
    host, port = parse_address(node.redis)
    return redis.Redis(host=host, port=port, **config.internal.kwargs(), socket_timeout=10)


def held(config: ClusterConfig, nodes) -> dict[str, set[bytes]]:
    """Every data key each of ``nodes``' backends holds (database 0), read directly."""
    out = {}
    for node in nodes:
        client = backend(node, config)
        try:
            out[node.name] = set(client.scan_iter(count=1000))
        finally:
            client.close()
    return out


def clean(config: ClusterConfig) -> bool:
    return check(config).clean


def write(client: redis.Redis, keys: list[bytes]) -> None:
    for i in range(0, len(keys), 500):
        pipe = client.pipeline(transaction=False)
        for key in keys[i:i + 500]:
            pipe.set(key, key)
        pipe.execute()


def kill_at_once(directory: Path, nodes) -> None:
    """SIGKILL the backends of ``nodes`` back to back, then reap them."""
    pids = local.Pids.load(directory)
    victims = [pids.node(node.name).redis for node in nodes]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    for pid in victims:
        wait_until(lambda pid=pid: not pid_alive(pid), 10, f"backend pid {pid} to exit")
        stop_pid(pid)


def whole(directory: Path, config: ClusterConfig) -> None:
    """Wait until every backend is a ring member by its current incarnation,
    with no migration pending, and every copy agrees."""
    wait_until(lambda: local.admitted(config), 300, "every backend to be admitted",
               interval=0.1)
    wait_until(lambda: clean(config), 300, "a clean check", interval=0.2)


def measured(count: int, replicas: int, trials: int, keys: int, directory: Path,
             rng: random.Random, log) -> tuple[list[dict], dict]:
    """Simultaneous failures on a real cluster: rows per f, and a summary.

    Sentinel's down-after is 10 s, so the restarted backends are found by their
    new incarnation, not by Sentinel; an arc whose every holder was killed is
    declared lost after 1 s (``lost_after_ms``, 10 s by default: the grace for
    a holder that is only slow), since here nobody comes back with its data."""
    config = local.up(directory, local.UpOptions(
        nodes=count, replicas=replicas, persist=False, workers=1, down_after_ms=10_000,
        lost_after_ms=1000),
        log=quiet)
    summary = {"trials": 0, "matched": 0, "recover_s": []}
    rows = []
    try:
        host, port = parse_address(config.nodes[0].resp)
        client = redis.Redis(host=host, port=port, password=config.password, socket_timeout=30)
        names_ = [f"dur:{i}".encode() for i in range(keys)]
        write(client, names_)
        whole(directory, config)
        state = RingState.from_dict(local.sentinel_progress(directory)["ring"])
        ring = state.ring()
        where = held(config, config.nodes)
        expected = {n.name: {k for k in names_ if n.redis in ring.preference_list(k)}
                    for n in config.nodes}
        if where != expected:
            raise AssertionError("the backends do not hold what the ring says")
        arcs_with_keys = {frozenset(ring.preference_list(k)) for k in names_}
        if arcs_with_keys != set(copy_sets(ring)):
            log(f"  note: {len(set(copy_sets(ring)) - arcs_with_keys)} copy sets hold no key")
        show = Progress("durability")
        for f in range(1, count + 1):
            losses = 0
            for _ in range(trials):
                failed = rng.sample(config.nodes, f)
                down = {node.redis for node in failed}
                kill_at_once(directory, failed)
                survivors = [n for n in config.nodes if n.redis not in down]
                left = set().union(*held(config, survivors).values()) if survivors else set()
                lost = set(names_) - left
                predicted = {k for k in names_ if set(ring.preference_list(k)) <= down}
                summary["trials"] += 1
                summary["matched"] += lost == predicted
                losses += bool(lost)
                started = time.monotonic()
                for node in failed:
                    local.start_node(directory, node.name)
                whole(directory, config)
                write(client, sorted(lost))
                wait_until(lambda: clean(config), 120, "a clean check", interval=0.2)
                summary["recover_s"].append(time.monotonic() - started)
                show(f"simultaneous failures, N={count} r={replicas}", summary["trials"],
                     count * trials, f"f={f}: {len(lost)} of {keys} keys lost "
                     f"({len(predicted)} predicted)")
            rows.append(_row("dt", count, replicas, f, "measured", losses / trials,
                             wilson(losses, trials)))
        show.close()
        client.close()
    finally:
        local.down(directory)
    return rows, summary


def spaced(count: int, replicas: int, keys: int, directory: Path, rng: random.Random,
           log, forget: bool) -> list[dict]:
    """One backend SIGKILLed at a time, each once the last failure is repaired
    (Sentinel's down-after is 1 s), until one node is left. The DTSentinel
    leads only on a majority of the cluster file's backends: with ``forget``
    an operator runs ``dtriad node forget`` on each dead node, else nobody
    does and repairs stop once half the backends are dead."""
    config = local.up(directory, local.UpOptions(
        nodes=count, replicas=replicas, persist=False, workers=1, down_after_ms=1000),
        log=quiet)
    rows = []
    try:
        keeper = config.nodes[0]  # its DTServer took the writes; the others fail in random order
        host, port = parse_address(keeper.resp)
        client = redis.Redis(host=host, port=port, password=config.password, socket_timeout=30)
        names_ = {f"dur:{i}".encode() for i in range(keys)}
        write(client, sorted(names_))
        client.close()
        wait_until(lambda: clean(config), 300, "a clean check", interval=0.2)
        alive = list(config.nodes)
        for failures in range(1, count):
            victim = rng.choice(alive[1:])
            alive.remove(victim)
            local.kill_node(directory, victim.name)
            started = time.monotonic()
            operator = None
            if forget:  # beside the wait: stopping the dead node's DTServer takes seconds
                operator = threading.Thread(target=local.forget_node,
                                            args=(directory, victim.name))
                operator.start()
                wait_until(lambda victim=victim: victim.name not in {
                    n.name for n in ClusterConfig.load(local.cluster_file(directory)).nodes},
                    30, f"{victim.name} to leave the cluster file", interval=0.01)
            voters = ClusterConfig.load(local.cluster_file(directory)).nodes
            leads = len(alive) >= len(voters) // 2 + 1

            def repaired(victim=victim) -> bool:
                ring = (local.sentinel_progress(directory) or {}).get("ring") or {}
                members = {m["redis"] for m in ring.get("nodes", [])}
                return (not ring.get("pending") and victim.redis not in members
                        and clean(ClusterConfig.load(local.cluster_file(directory))))

            repair_s = ""
            if leads:
                wait_until(repaired, 300, f"the repair after {victim.name} failed",
                           interval=0.1)
                repair_s = round(time.monotonic() - started, 3)
            if operator is not None:
                operator.join()
            lost = len(names_ - set().union(*held(config, alive).values()))
            rows.append({"N": count, "r": replicas, "operator": "forget" if forget else "none",
                         "failures": failures, "nodes_left": len(alive), "keys": keys,
                         "lost": lost, "repaired": "yes" if leads else "no",
                         "repair_s": repair_s})
            log(f"  spaced N={count} r={replicas} {'forget' if forget else 'no operator'}: "
                f"failure {failures}, {len(alive)} left, {lost} lost, "
                + (f"repaired in {repair_s:.2f} s" if leads else "no lease, no repair"))
    finally:
        local.down(directory)
    return rows


# ---------------------------------------------------------------- output


def write_csv(rows: list[dict], fields: list[str], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict], p_rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({r["N"] for r in rows})
    fig, axes = plt.subplots(len(counts) + 1, 3, figsize=(14, 4 * (len(counts) + 1)),
                             squeeze=False)
    colours = {"dt": "tab:blue", f"dt-vnodes-{VNODES}": "tab:green", "redis": "tab:red"}

    def pick(source, **match):
        return [r for r in source if all(r[k] == v for k, v in match.items())]

    for row_index, count in enumerate(counts):
        for replicas in (0, 1, 2):
            ax = axes[row_index][replicas]
            for layout, colour in colours.items():
                exact = pick(rows, layout=layout, N=count, r=replicas, method="exact")
                ax.plot([r["f"] for r in exact], [r["p_loss"] for r in exact], color=colour,
                        label=f"{layout} exact")
                sim = pick(rows, layout=layout, N=count, r=replicas, method="simulated")
                ax.plot([r["f"] for r in sim], [r["p_loss"] for r in sim], "x", color=colour,
                        label=f"{layout} simulated")
            meas = pick(rows, layout="dt", N=count, r=replicas, method="measured")
            if meas:
                ax.errorbar([r["f"] for r in meas], [r["p_loss"] for r in meas],
                            yerr=[[r["p_loss"] - r["ci_low"] for r in meas],
                                  [r["ci_high"] - r["p_loss"] for r in meas]],
                            fmt="o", color="black", capsize=3, label="dt measured (95% CI)")
            ax.set_title(f"N={count}, r={replicas}: f nodes fail at once")
            ax.set_xlabel("f, nodes failed at once")
            ax.set_ylabel("P(some key loses every copy)")
            ax.set_ylim(-0.03, 1.03)
            if row_index == 0 and replicas == 2:
                ax.legend(fontsize=7)
    count = max(counts)
    for replicas in (0, 1, 2):
        ax = axes[-1][replicas]
        for layout, colour in colours.items():
            exact = pick(p_rows, layout=layout, N=count, r=replicas, method="exact")
            ax.plot([r["p"] for r in exact], [r["p_loss"] for r in exact], color=colour,
                    label=f"{layout} exact")
            sim = pick(p_rows, layout=layout, N=count, r=replicas, method="simulated")
            ax.plot([r["p"] for r in sim], [r["p_loss"] for r in sim], "x", color=colour)
        ax.plot(PS, [paper_dt(count, replicas, p) for p in PS], "--", color="tab:blue",
                alpha=0.6, label="paper eq. 2 (DT)")
        ax.plot(PS, [paper_redis(count, replicas, p) for p in PS], "--", color="tab:red",
                alpha=0.6, label="paper eq. 1 (Redis, k=r+1)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-12, 2)
        ax.set_title(f"N={count}, r={replicas}: each node fails with probability p")
        ax.set_xlabel("p")
        ax.set_ylabel("P(some key loses every copy)")
        if replicas == 2:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="measure N=5 only, with fewer trials (a few minutes)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    log = functools.partial(print, flush=True)

    rows, p_rows = model_rows([5, 10], 2000 if args.quick else 20_000, rng)
    log(f"exact and simulated: {len(rows)} rows against f, {len(p_rows)} against p")

    measured_counts = [5] if args.quick else [5, 10]
    # Each trial restarts the killed backends and waits for the cluster to
    # readmit and refill them: seconds each, more with N and f.
    trials = {5: 3 if args.quick else 8, 10: 3}
    spaced_rows = []
    summaries = []
    with tempfile.TemporaryDirectory(prefix="dtriad-durability-") as tmp:
        for count in measured_counts:
            for replicas in (0, 1, 2):
                got, summary = measured(count, replicas, trials[count], 1000,
                                        Path(tmp) / f"m{count}-{replicas}", rng, log)
                rows += got
                summaries.append((count, replicas, summary))
        for count in measured_counts:
            for replicas in (1, 2):
                for forget in (False, True):
                    spaced_rows += spaced(count, replicas, 2000,
                                          Path(tmp) / f"s{count}-{replicas}-{forget}",
                                          rng, log, forget)

    order = {"exact": 0, "simulated": 1, "measured": 2}
    rows.sort(key=lambda r: (r["layout"], r["N"], r["r"], r["f"], order[r["method"]]))
    write_csv(rows, FIELDS, args.out / "durability.csv")
    write_csv(p_rows, P_FIELDS, args.out / "durability_p.csv")
    write_csv(spaced_rows, SPACED_FIELDS, args.out / "durability_spaced.csv")
    plot(rows, p_rows, args.out / "durability.png")

    for count, replicas, s in summaries:
        times = sorted(s["recover_s"])
        log(f"measured N={count} r={replicas}: the lost keys were exactly the predicted ones "
            f"in {s['matched']} of {s['trials']} trials; recovery median "
            f"{times[len(times) // 2]:.2f} s")
    outside = [r for r in rows if r["method"] != "exact" and r["layout"] == "dt"
               and not _within(r, rows)]
    log(f"dt points outside their 95% interval of the exact value: {len(outside)} of "
        f"{sum(1 for r in rows if r['method'] != 'exact' and r['layout'] == 'dt')}")
    for r in spaced_rows:
        log(f"spaced: {r}")


def _within(point: dict, rows: list[dict]) -> bool:
    exact = next(r for r in rows if r["method"] == "exact" and r["layout"] == point["layout"]
                 and (r["N"], r["r"], r["f"]) == (point["N"], point["r"], point["f"]))
    return point["ci_low"] - 1e-9 <= exact["p_loss"] <= point["ci_high"] + 1e-9


if __name__ == "__main__":
    main()

"""``python -m tests.faults [--seed N] [--duration S | --long S]``: run the
fault-injection suite (tests/faults/suite.py) on a fresh local cluster in a
temporary directory and print its summary; exit status 1 if anything
acknowledged was lost, duplicated or left divergent."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .suite import FAULTS, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of faults (default 60)")
    parser.add_argument("--long", type=float, metavar="SECONDS",
                        help="soak: as many seconds of faults as asked")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--dir", type=Path,
                        help="keep the cluster's files and logs here (default: a "
                             "temporary directory, removed afterwards)")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help="comma-separated subset of: " + ", ".join(FAULTS))
    args = parser.parse_args()
    faults = tuple(f for f in args.faults.split(",") if f)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        parser.error(f"unknown faults {unknown}; choose from {', '.join(FAULTS)}")
    def go(directory: Path):
        return run(directory, args.seed, args.long or args.duration, nodes=args.nodes,
                   replicas=args.replicas, faults=faults,
                   log=lambda line: print(line, flush=True))

    if args.dir is not None:
        summary = go(args.dir)
    else:
        with tempfile.TemporaryDirectory(prefix="dtriad-faults-") as tmp:
            summary = go(Path(tmp) / "cluster")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())

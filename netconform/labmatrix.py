"""The cross-CNI page from the lab, as the nightly workflow makes it from kind: ``./run matrix``.

Runs the conformance suite on the lab once per lab CNI (and once more with kube-proxy in nftables
mode for the first real CNI), one after the other, each into ``reports/matrix/<column>/``, then
writes ``reports/matrix/index.html`` from their results.json (netconform.report.matrix). A run's
verdict is the page's to show, not this command's: it goes on to the next CNI whatever a run
decided, and exits 0 once the page is written. A run that could not start (exit 4, or no
results.json) stops nothing either: it is listed at the end, and the command exits 3.

    python -m netconform.labmatrix [--only COLUMN ...] [pytest options for every run]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from netconform.report import matrix

REPO = Path(__file__).resolve().parents[1]
# column -> the options of its run: every lab profile, and flannel once more in nftables mode
COLUMNS: dict[str, tuple[str, ...]] = {
    "bridge": ("--cni=bridge",),
    "ptp": ("--cni=ptp",),
    "vxlan": ("--cni=vxlan",),
    "flannel": ("--cni=flannel",),
    "flannel-nftables": ("--cni=flannel", "--lab-proxy=nftables"),
    "kube-router": ("--cni=kube-router",),
}
RUN_TIMEOUT = 1800  # s for one run; a run that outlives it is stopped and listed as not run
NOT_RUN = 3


def run_one(column: str, options: tuple[str, ...], out: Path, extra: list[str]) -> tuple[float, int]:
    """One conformance run on the lab, its output streamed; (seconds, exit code)."""
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider",
               "--report-dir", str(out / column), *options, *extra]
    print(f"matrix: {column}: {' '.join(options)}", flush=True)
    try:
        code = subprocess.run(command, cwd=REPO, timeout=RUN_TIMEOUT).returncode
    except subprocess.TimeoutExpired:
        code = -1
    return time.monotonic() - started, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run matrix", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(COLUMNS), metavar="COLUMN",
                        help=f"the columns to run (default: all: {', '.join(COLUMNS)})")
    parser.add_argument("--output", type=Path, default=REPO / "reports" / "matrix",
                        help="where each run's report and the page go (default reports/matrix/)")
    args, extra = parser.parse_known_args(argv)
    columns = args.only or list(COLUMNS)
    args.output.mkdir(parents=True, exist_ok=True)
    found, missing, started = [], [], time.monotonic()
    for column in columns:
        seconds, code = run_one(column, COLUMNS[column], args.output, extra)
        results = args.output / column / "results.json"
        if code in (0, 1, 2) and results.is_file():
            found.append(results)
            print(f"matrix: {column}: done in {seconds:.0f} s (exit {code})", flush=True)
        else:
            missing.append(f"{column} (exit {code})")
            print(f"matrix: {column}: NOT RUN (exit {code}, after {seconds:.0f} s)", flush=True)
    if found:
        matrix.write(found, args.output / "index.html")
        print(f"matrix: {len(found)} run(s) in {time.monotonic() - started:.0f} s: "
              f"{args.output / 'index.html'}")
    if missing:
        print(f"matrix: not run: {', '.join(missing)}")
        return NOT_RUN
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Flake measurement: the whole suite N times on a healthy lab; every failure and every flaky pass
(a connection that needed a retry) is counted. Not a test: run it as root, it takes minutes.

    sudo .tox/netconform/bin/python bench/flakes.py --runs 20 [pytest options, e.g. --cni=ptp]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from netconform.report import results  # noqa: E402 - reads a results file whole


def one_run(report_dir: Path, extra: list[str]) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider",
                           "--report-dir", str(report_dir), *extra], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    return done.returncode, results.read(report_dir / "results.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args, extra = parser.parse_known_args()
    failed, flaky, items, started = Counter(), Counter(), 0, time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(1, args.runs + 1):
            code, document = one_run(Path(tmp) / str(number), extra)
            bad = [i["id"] for i in document["items"] if i["outcome"] in ("failed", "error")]
            retried = [i["id"] for i in document["items"] if i["flaky"]]
            failed.update(bad)
            flaky.update(retried)
            items += len(document["items"])
            print(f"run {number:>2}: exit {code}, {len(document['items'])} items, {len(bad)} failed, "
                  f"{len(retried)} flaky", flush=True)
    minutes = (time.monotonic() - started) / 60
    print(f"\n{args.runs} runs, {items} items in {minutes:.1f} min: {sum(failed.values())} failed, "
          f"{sum(flaky.values())} flaky")
    for item, count in (failed + flaky).most_common(10):
        print(f"  {count} x {item}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

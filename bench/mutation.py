"""The full mutation table: the whole suite once per lab fault, through the command line as a user
runs it (`--lab-fault NAME`), each on a lab of its own; prints, per fault, the requirements that
failed with their failed items, and whether that matches what the fault declares. Not a test (the
tests inject every fault into one running lab, tests/lab/test_faults.py): run it as root, it takes
minutes.

    sudo .tox/netconform/bin/python bench/mutation.py [--faults a b …] [--lab-proxy nftables] \
        [pytest options, e.g. --cni=ptp]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from netconform.backends.lab.faults import FAULTS  # noqa: E402


def one_run(report_dir: Path, fault: str, extra: list[str]) -> dict:
    subprocess.run([sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider",
                    "--report-dir", str(report_dir), f"--lab-fault={fault}", "--probe-timeout=1",
                    *extra], cwd=REPO, capture_output=True, text=True, timeout=900)
    return json.loads((report_dir / "results.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", nargs="+", default=list(FAULTS), choices=list(FAULTS))
    parser.add_argument("--lab-proxy", default="iptables", choices=("iptables", "nftables"),
                        help="kube-proxy's mode on the lab (a fault without a mechanism for it is listed, not run)")
    args, extra = parser.parse_known_args()
    extra = [f"--lab-proxy={args.lab_proxy}", *extra]
    mismatches = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.faults:
            if args.lab_proxy not in FAULTS[name].modes:
                print(f"| `{name}` | | no mechanism in {args.lab_proxy} mode | |", flush=True)
                continue
            began = time.monotonic()
            # a fault of IPv6 alone runs on a dual-stack lab
            document = one_run(Path(tmp) / name, name, [*extra, *(["--ip-family=dual"] if FAULTS[name].ipv6 else [])])
            red = {row["id"]: row["failed"] for row in document["summary"] if row.get("failed")}
            fault = FAULTS[name]
            ok = set(fault.breaks) <= set(red) <= set(fault.breaks + fault.also)
            mismatches += not ok
            listed = ", ".join(f"{req} ({count})" for req, count in red.items())
            print(f"| `{name}` | {listed} | {'as declared' if ok else 'NOT as declared'} "
                  f"| {time.monotonic() - began:.0f} s |", flush=True)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

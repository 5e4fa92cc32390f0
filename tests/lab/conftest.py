"""Helpers for tests that run the real suite on a real lab, as a user would, in a subprocess."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from netconform.report import results

from ..results_schema import assert_valid_file

REPO = Path(__file__).resolve().parents[2]
PREFIX = re.compile(r"netconform-[0-9a-f]{6}")
OWN_PREFIX = re.compile(r"lab: (netconform-[0-9a-f]{6}): world and")  # not a stale run's, swept first

_VALIDATED: set[tuple[Path, int]] = set()
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


@dataclass
class SuiteRun:
    returncode: int
    output: str
    report_dir: Path

    @property
    def results(self) -> dict:
        path = self.report_dir / "results.json"
        written = (path, path.stat().st_mtime_ns)
        if written not in _VALIDATED:  # the file as written holds to the schema (once per file written)
            assert_valid_file(path)
            _VALIDATED.add(written)
        return results.read(path)  # its items whole

    @property
    def summary(self) -> dict[str, dict]:
        return {row["id"]: row for row in self.results["summary"]}

    @property
    def prefix(self) -> str | None:
        found = OWN_PREFIX.search(self.output)
        return found.group(1) if found else None


def suite_command(report_dir: Path, *args: str) -> list[str]:
    """A run of the suites; on IPv4 unless the test chooses (the lab's default, dual-stack where
    it can, doubles the items; tests/lab/test_dual_stack.py runs the other families)."""
    family = [] if any(a.startswith("--ip-family") for a in args) else ["--ip-family=ipv4"]
    return [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider",
            "--report-dir", str(report_dir), *family, *args]


ONE_FAMILY = "needs a cluster of both IP families; this one has ipv4 alone"


def passes(row: dict) -> bool:
    """A row with items passed, or is DUAL-STACK skipped on an IPv4 lab (the tests' default): it
    applies only to a cluster of both families."""
    return row["verdict"] == "pass" or (row["id"] == "DUAL-STACK" and row["verdict"] == "skipped"
                                        and row["note"] == ONE_FAMILY)


def run_suite(report_dir: Path, *args: str, timeout: float = 300, env: dict | None = None) -> SuiteRun:
    done = subprocess.run(suite_command(report_dir, *args), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)
    return SuiteRun(done.returncode, done.stdout + done.stderr, report_dir)


def lab_namespaces(prefix: str = "netconform-") -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def made_since(before: set[str]) -> set[str]:
    """The lab namespaces that exist now, did not before, and belong to no run going on: the
    tests run in parallel (pytest-xdist), so a test that asks whether it made or left a namespace
    must not count another test's lab, which is alive (a crashed run's leftovers still count)."""
    from netconform.backends.lab import cleanup
    new = set(lab_namespaces()) - before
    live = cleanup.live_runs()
    return {name for name in new & set(lab_namespaces())
            if not any(name.startswith(f"{prefix}-") for prefix in live)}


def leftovers(prefix: str) -> list[str]:
    """Everything a run with this prefix could have left: namespaces, state, processes."""
    found = lab_namespaces(prefix)
    if Path(f"/run/netconform/{prefix}").exists():
        found.append(f"/run/netconform/{prefix}")
    procs = subprocess.run(["pgrep", "-af", prefix], capture_output=True, text=True).stdout
    found += [line for line in procs.splitlines() if "pgrep" not in line]
    return found


IPMASQ = REPO / "manifests" / "lab" / "examples" / "bridge-ipmasq.conflist"
# The tests that read the shared full runs below run on one pytest-xdist worker (`--dist
# loadgroup`, tests/conftest.py), so each run is made once, not once per worker.
SHARED_RUNS = pytest.mark.xdist_group("shared-lab-runs")


@pytest.fixture(scope="session")
def bridge_run(tmp_path_factory) -> SuiteRun:
    """One healthy lab run with the default profile, shared by the tests that read its output."""
    return run_suite(tmp_path_factory.mktemp("bridge"), "--cni=bridge")


@pytest.fixture(scope="session")
def ptp_run(tmp_path_factory) -> SuiteRun:
    """A run of every MUST row (and SVC-SOURCE-IP, which the matrix shows) with the ptp profile:
    healthy too. The SHOULD rows are the lab's, not the CNI's: the bridge run has them all."""
    return run_suite(tmp_path_factory.mktemp("ptp"), "--cni=ptp", "-m", "MUST or SVC-SOURCE-IP")


@pytest.fixture(scope="session")
def ipmasq_run(tmp_path_factory) -> SuiteRun:
    """A run of the pod rows with a bridge conflist that masquerades pod traffic (ipMasq): not
    conformant (a MUST row fails, whatever is deselected)."""
    return run_suite(tmp_path_factory.mktemp("ipmasq"), f"--lab-cni-conf={IPMASQ}", "-m",
                     "POD-POD-CROSS or POD-POD-SAME or NODE-POD or HOSTNET-POD or LOCALHOST")


def start_and_wait_for(tmp_path, line: str, *args: str, cni: str | None = "bridge"):
    """Start a lab run; return the process and its prefix once `line` appears in its output."""
    profile = (f"--cni={cni}",) if cni else ()
    proc = subprocess.Popen(suite_command(tmp_path, *profile, *args), cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    seen, deadline, prefix = [], time.monotonic() + 120, None
    while time.monotonic() < deadline:
        out = proc.stdout.readline()
        if not out:
            break
        seen.append(out)
        prefix = prefix or (OWN_PREFIX.search(out).group(1) if OWN_PREFIX.search(out) else None)
        if line in out:
            return proc, prefix
    proc.kill()
    pytest.fail(f"never saw {line!r}:\n{''.join(seen)}")


def built_lab(spec):
    """A lab of ``spec`` built for a module's tests (yield from it in a fixture): (cluster, live);
    torn down at the end, with nothing left behind."""
    from netconform.backends.lab.cluster import LabCluster
    cluster = LabCluster(spec)
    try:
        live = cluster.build(lambda message: None)
    except BaseException:
        cluster.teardown()
        raise
    try:
        yield cluster, live
    finally:
        assert cluster.teardown() == []
        assert leftovers(cluster.names.prefix) == []


"""Runs that did not check everything never say CONFORMANT: interrupted by Ctrl-C or SIGTERM,
a subset chosen with -m, -k or node ids, a topology that lacks what a check needs. Each says
INCOMPLETE everywhere (terminal, results.json, report.html), names what is missing, exits 2."""
import os
import subprocess
import sys
import time

import pytest

from . import signal_self
from .conftest import REPO, SuiteRun, leftovers, needs_root, run_suite

pytestmark = needs_root


def assert_incomplete_everywhere(run, *named: str) -> dict:
    assert run.returncode == 2, run.output[-3000:]
    results = run.results
    assert results["verdict"] == "INCOMPLETE" and results["conformant"] is False
    assert "bridge on lab: INCOMPLETE" in run.output and "CONFORMANT" not in run.output.replace(
        "NOT CONFORMANT", "")
    page = (run.report_dir / "report.html").read_text()
    assert 'data-verdict="INCOMPLETE"' in page
    reasons = " ".join(results["verdict_reasons"])
    for name in named:
        assert name in reasons, results["verdict_reasons"]
    return results


@pytest.mark.parametrize("sig, before", [("SIGINT", "POD-POD-CROSS"), ("SIGTERM", "SVC-CLUSTERIP")])
def test_an_interrupted_run_is_incomplete_stops_within_seconds_and_leaves_nothing(tmp_path, sig, before):
    stamp = tmp_path / "stamp"
    env = {**os.environ, signal_self.SIGNAL: sig, signal_self.BEFORE: before,
           signal_self.STAMP: str(stamp)}
    run = run_suite(tmp_path / "report", "-p", "tests.adversarial.signal_self", env=env, timeout=180)
    ended = time.time()
    results = assert_incomplete_everywhere(run, "interrupted", sig)
    # the rest of the run would take a minute; stopping includes the lab's teardown, which takes
    # 4 to 8 s alone and up to 17 s beside another worker's lab on 2 loaded cores
    assert ended - float(stamp.read_text()) < 25, "an interrupted run must stop within seconds"
    assert f"during {before}[" in results["interrupted"]
    assert results["summary"][0]["verdict"] == "pass"  # what ran before the signal is kept
    assert leftovers(run.prefix) == []


@pytest.mark.parametrize("selection", [["suites", "-m", "POD-POD-CROSS"], ["suites", "-k", "pod_pod_cross"],
                                       ["suites/test_pod_network.py::test_pod_pod_cross"],
                                       ["suites", "-k", "pod_pod_cross or no_such_check"]])
def test_a_subset_names_the_must_requirements_that_did_not_run(tmp_path, selection):
    done = subprocess.run([sys.executable, "-m", "pytest", *selection, "-p", "no:cacheprovider",
                           f"--report-dir={tmp_path}", "--lab-nodes=2", "--ip-family=ipv4"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    run = SuiteRun(done.returncode, done.stdout + done.stderr, tmp_path)
    results = assert_incomplete_everywhere(run, "POD-POD-SAME", "NODE-POD", "LOCALHOST")
    assert {row["id"]: row["verdict"] for row in results["summary"]}["POD-POD-CROSS"] == "pass"


def test_a_one_node_lab_skips_what_needs_a_second_node_with_that_reason(tmp_path):
    run = run_suite(tmp_path, "--lab-nodes=1")
    results = assert_incomplete_everywhere(run, "POD-POD-CROSS (needs a second node; this cluster has 1)")
    rows = {row["id"]: row for row in results["summary"]}
    for needs_two in ("POD-POD-CROSS", "SVC-SOURCE-IP", "MTU", "SVC-AFFINITY-TIMEOUT"):
        assert rows[needs_two]["verdict"] == "skipped", rows[needs_two]
        assert rows[needs_two]["note"] == "needs a second node; this cluster has 1"
    assert not any(row["failed"] or row["error"] for row in rows.values()), rows
    assert leftovers(run.prefix) == []


def test_a_requirement_declared_not_applicable_is_named_and_the_rest_decides(tmp_path):
    run = run_suite(tmp_path, "--lab-nodes=1", "--not-applicable=POD-POD-CROSS=a single-node cluster")
    reasons = " ".join(run.results["verdict_reasons"])
    assert "declared not applicable: POD-POD-CROSS (a single-node cluster)" in reasons
    assert "needs a second node" not in reasons.split("declared not applicable")[0].replace(
        "POD-POD-CROSS", "")  # the declared row is not also listed as skipped
    row = {r["id"]: r for r in run.results["summary"]}["POD-POD-CROSS"]
    assert row["verdict"] == "not applicable"


def test_a_harness_error_is_an_error_not_a_failure(tmp_path):
    """A probe killed mid-run cannot be asked to connect: its items are errors and the run is
    INCOMPLETE; the CNI is not blamed for what the harness could not do."""
    from tests.lab import kill_probe
    env = {**os.environ, kill_probe.VICTIM: "node-2/probe-b", kill_probe.BEFORE: "SVC-CLUSTERIP"}
    run = run_suite(tmp_path, "-m", "POD-POD-CROSS or SVC-CLUSTERIP", "-p", "tests.lab.kill_probe",
                    env=env, timeout=180)
    assert run.returncode == 2, run.output[-3000:]
    item = next(i for i in run.results["items"] if i["id"] == "SVC-CLUSTERIP[tcp/ipv4:node-2/probe-b->svc/web]")
    assert item["outcome"] == "error" and item["kind"] == "probe unavailable"
    row = {r["id"]: r for r in run.results["summary"]}["SVC-CLUSTERIP"]
    assert row["verdict"] == "error" and row["failed"] == 0 and row["error"] > 0
    assert "MUST requirements in error: SVC-CLUSTERIP" in " ".join(run.results["verdict_reasons"])
    assert "ERROR" in run.output and "harness error, the network was not judged" in run.output
    assert (tmp_path / "logs" / "node-1_probe-a.log").is_file()  # evidence that outlives the run
    assert leftovers(run.prefix) == []


def test_an_interrupted_run_does_not_print_a_report_per_failure(tmp_path):
    """SIGTERM on a big failing run once went on printing failure reports for minutes."""
    env = {**os.environ, signal_self.SIGNAL: "SIGTERM", signal_self.BEFORE: "SVC-CLUSTERIP",
           signal_self.STAMP: str(tmp_path / "stamp")}
    run = run_suite(tmp_path / "report", "-p", "tests.adversarial.signal_self",
                    "--lab-fault=no-route-to-last-node", "--probe-timeout=0.5", "--probe-attempts=1",
                    env=env, timeout=180)
    assert run.returncode == 1, run.output[-3000:]  # MUST items failed before the signal
    assert run.results["verdict"] == "NOT CONFORMANT" and run.results["interrupted"]
    assert "= FAILURES =" not in run.output and "short test summary" not in run.output
    assert len(run.output) < 20_000


def test_the_verdict_is_a_property_of_the_junit_test_suite(tmp_path):
    run = run_suite(tmp_path, "-m", "LOCALHOST", f"--junitxml={tmp_path / 'junit.xml'}")
    assert run.returncode == 2, run.output[-2000:]
    junit = (tmp_path / "junit.xml").read_text()
    assert '<property name="netconform_verdict" value="INCOMPLETE"' in junit


def test_selecting_nothing_is_incomplete_not_a_silent_success(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pytest", "suites", "-k", "no_such_check",
                           f"--report-dir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    run = SuiteRun(done.returncode, done.stdout + done.stderr, tmp_path)
    assert_incomplete_everywhere(run, "MUST requirements deselected: POD-POD-SAME")


@pytest.mark.parametrize("selection", [
    ["suites/test_localhost.py::test_localhost[tcp/ipv4:node-1/duo/c1->node-1/duo/c2]"],
    ["suites/test_localhost.py::test_localhost_shared_namespace"]])
def test_items_chosen_by_node_id_never_pass_a_requirement_they_are_only_part_of(tmp_path, selection):
    """A node id drops the other items before any hook sees them: the row still counts them."""
    done = subprocess.run([sys.executable, "-m", "pytest", *selection, "-p", "no:cacheprovider",
                           f"--report-dir={tmp_path}", "--lab-nodes=1", "--ip-family=ipv4"], cwd=REPO,
                          capture_output=True, text=True, timeout=180)
    run = SuiteRun(done.returncode, done.stdout + done.stderr, tmp_path)
    results = assert_incomplete_everywhere(run, "LOCALHOST")
    row = {row["id"]: row for row in results["summary"]}["LOCALHOST"]
    assert row["verdict"] == "incomplete" and row["note"] == "1 of 5 item(s) selected", row

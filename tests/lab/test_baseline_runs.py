"""--baseline on the lab: a fault introduced between two runs of the same cluster shows as new
failures, item by item, in the terminal, results.json and the report; nothing else is called new."""
from __future__ import annotations

from .conftest import needs_root, run_suite

pytestmark = needs_root

SMALL = ("--lab-nodes=3", "--ip-family=ipv4", "-m", "POD-POD-CROSS", "--probe-timeout=0.5", "--probe-attempts=1")


def test_a_fault_introduced_between_two_runs_is_named_as_new_failures(tmp_path):
    before = run_suite(tmp_path / "before", *SMALL)
    assert before.returncode == 2, before.output[-3000:]  # a selection: INCOMPLETE, and no failure
    assert not [i for i in before.results["items"] if i["outcome"] != "passed"]
    after = run_suite(tmp_path / "after", *SMALL, "--lab-fault=no-route-to-last-node",
                      f"--baseline={tmp_path / 'before' / 'results.json'}")
    assert after.returncode == 1, after.output[-3000:]
    failed = sorted(i["id"] for i in after.results["items"] if i["outcome"] == "failed")
    found = after.results["baseline"]
    assert failed and found["new_failures"] == failed, found
    assert found["fixed"] == found["unchanged"] == found["failing_not_in_baseline"] == found["new_errors"] == []
    assert found["compared"] == len(after.results["items"]) == len(before.results["items"])
    assert f"{len(failed)} new failure(s), 0 fixed, 0 still failing" in after.output
    assert f"  new failure: {failed[0]}" in after.output
    page = (tmp_path / "after" / "report.html").read_text()
    assert f"New failures: passed in the earlier run, fail now ({len(failed)})" in page

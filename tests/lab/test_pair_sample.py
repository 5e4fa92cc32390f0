"""A sampled run (--pairs=sample) still finds a fault of one node, names every failing pod pair,
and states its coverage: the sample keeps every ordered node pair, so no node's fault hides."""
from __future__ import annotations

from .conftest import needs_root, run_suite

pytestmark = needs_root


def test_a_sample_of_the_pairs_still_turns_one_nodes_fault_red_pair_by_pair(tmp_path):
    run = run_suite(tmp_path, "--lab-nodes=4", "--pairs=sample", "--lab-fault=no-route-to-last-node",
                    "-m", "POD-POD-CROSS or POD-POD-SAME", "--probe-timeout=0.5", "--probe-attempts=1")
    assert run.returncode == 1, run.output[-3000:]
    items = [i for i in run.results["items"] if i["requirement"] == "POD-POD-CROSS"]
    # one pod pair per ordered pair of the 4 nodes, over TCP, UDP and ICMP
    node_pairs = {(i["source"]["node"], i["destination"]["node"]) for i in items}
    assert len(node_pairs) == 12 and len(items) == 12 * 3, sorted(node_pairs)
    # the fault: the first node has no route to the last node's pods, so both ways between them
    # fail (a reply cannot return either), and only those: one pod pair each, every protocol
    failed = [(i["source"]["node"], i["destination"]["node"]) for i in items if i["outcome"] == "failed"]
    assert sorted(failed) == sorted([("node-1", "node-4"), ("node-4", "node-1")] * 3), failed
    assert "sample" in run.output and "pairs tested" in run.output
    coverage = run.results["coverage"]
    assert coverage["pairs"] == "sample"
    assert coverage["requirements"]["POD-POD-CROSS"] == {"tested": 12, "exist": 4 * 3 * 4}
    assert run.summary["POD-POD-SAME"]["verdict"] == "pass"  # every same-node pair, all of them kept
    assert run.summary["POD-POD-SAME"]["total"] == 4 * 2 * 3

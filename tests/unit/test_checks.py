"""Pair builders and ids: one item per (requirement, source, destination, protocol)."""
from netconform.checks import (Case, check, containers_of_one_pod, each_pod, host_to_pods,
                               pod_pairs)
from netconform.probing.verdicts import reached

from .fakes import topology


def test_pairs_split_same_node_and_cross_node():
    topo = topology(nodes=3, pods=2)
    same, cross = pod_pairs(True)(topo), pod_pairs(False)(topo)
    assert len(same) == 3 * 2 * 1 and len(cross) == 6 * 4
    assert all(a.node == b.node for a, b in same) and all(a.node != b.node for a, b in cross)
    assert len(host_to_pods(True)(topo)) == 6 and len(host_to_pods(False)(topo)) == 18
    assert len(each_pod(topo)) == 6
    assert len(containers_of_one_pod(True)(topo)) == 6 and len(containers_of_one_pod(False)(topo)) == 3


def test_ids_name_protocol_and_exact_pair():
    case = Case("POD-POD-CROSS", "tcp", "node-1/probe-a", "node-2/probe-b")
    assert case.full_id == "POD-POD-CROSS[tcp/ipv4:node-1/probe-a->node-2/probe-b]"
    assert Case("POD-IP-SELF", "self", "node-1/probe-a", None).full_id == "POD-IP-SELF[ipv4:node-1/probe-a]"


def test_check_marks_the_test_with_its_requirement_and_level():
    test = check("NODE-POD", host_to_pods(True), ("tcp", "udp"), reached)
    names = {mark.name for mark in test.pytestmark}
    assert names == {"NODE-POD", "MUST"}
    assert [c.id for c in test.netconform_check.cases(topology(1, 1))] == [
        "tcp/ipv4:node-1/host->node-1/probe-a", "udp/ipv4:node-1/host->node-1/probe-a"]


def test_an_unknown_requirement_fails_at_declaration():
    import pytest
    with pytest.raises(KeyError, match="NOT-A-REQ"):
        check("NOT-A-REQ", each_pod, ("self",), reached)

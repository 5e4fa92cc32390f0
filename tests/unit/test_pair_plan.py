"""The pair plan: a deterministic sample of the pairs between nodes that keeps what the
specification promises (every ordered node pair or K peers per node, every pod in each role,
every same-node pair), and the coverage it states."""
from collections import Counter
from dataclasses import replace

import pytest

from netconform.checks import host_to_pods, nodeports, pod_pairs, pods_to_service
from netconform.pair_plan import ALL, AUTO, SAMPLE, SAMPLE_ABOVE, PairPlan
from netconform.plan import probe_plan


def cluster(nodes: int, pods: int, plan: PairPlan = PairPlan()):
    return replace(probe_plan([f"node-{i}" for i in range(1, nodes + 1)], pods, outside=True), pairs=plan)


def chosen(topo, builder) -> list[tuple[str, str]]:
    return [(a.name, b.name) for a, b in topo.pairs.choose(builder(topo), [n.name for n in topo.nodes])]


def node_of(name: str) -> str:
    return name.split("/", 1)[0]


@pytest.mark.parametrize("nodes, pods", [(11, 2), (20, 3), (6, 5)])
def test_the_sample_keeps_every_ordered_node_pair_and_every_pod_in_each_role(nodes, pods):
    topo = cluster(nodes, pods, PairPlan(SAMPLE))
    pairs = chosen(topo, pod_pairs(False))
    assert {(node_of(a), node_of(b)) for a, b in pairs} == {
        (f"node-{i}", f"node-{j}") for i in range(1, nodes + 1) for j in range(1, nodes + 1) if i != j}
    assert len(pairs) == nodes * (nodes - 1)  # one pod pair per ordered node pair
    everyone = {e.name for e in topo.of_kind("pod")}
    assert {a for a, _ in pairs} == everyone and {b for _, b in pairs} == everyone


def test_same_node_pairs_and_pairs_to_services_and_the_outside_are_always_kept():
    topo = cluster(12, 2, PairPlan(SAMPLE))
    for builder in (pod_pairs(True), pods_to_service("web"), host_to_pods(True)):
        assert chosen(topo, builder) == [(a.name, b.name) for a, b in builder(topo)]
    outside = [p for p in chosen(topo, nodeports("web")) if p[0] == "outside/client"]
    assert len(outside) == 12


def test_a_node_to_pods_check_keeps_its_own_node_and_one_pod_per_other_node():
    topo = cluster(12, 2, PairPlan(SAMPLE))
    pairs = chosen(topo, host_to_pods(False))
    per_host = Counter(a for a, _ in pairs)
    assert set(per_host.values()) == {2 + 11}  # its own node's 2 pods, one pod on each other node
    assert {b for _, b in pairs} == {e.name for e in topo.of_kind("pod")}


def test_peers_per_node_bound_each_node_as_source_and_as_destination():
    topo = cluster(30, 2, PairPlan(SAMPLE, peers=4))
    pairs = chosen(topo, pod_pairs(False))
    assert set(Counter(node_of(a) for a, _ in pairs).values()) == {4}
    assert set(Counter(node_of(b) for _, b in pairs).values()) == {4}
    everyone = {e.name for e in topo.of_kind("pod")}
    assert {a for a, _ in pairs} == everyone and {b for _, b in pairs} == everyone


def test_too_few_peers_for_the_pods_are_raised_to_the_pods_per_node():
    topo = cluster(20, 5, PairPlan(SAMPLE, peers=1))
    pairs = chosen(topo, pod_pairs(False))
    assert set(Counter(node_of(a) for a, _ in pairs).values()) == {5}
    everyone = {e.name for e in topo.of_kind("pod")}
    assert {a for a, _ in pairs} == everyone and {b for _, b in pairs} == everyone


def test_the_same_seed_gives_the_same_sample_and_another_seed_another():
    first = chosen(cluster(15, 2, PairPlan(SAMPLE, seed=7)), pod_pairs(False))
    again = chosen(cluster(15, 2, PairPlan(SAMPLE, seed=7)), pod_pairs(False))
    other = chosen(cluster(15, 2, PairPlan(SAMPLE, seed=8)), pod_pairs(False))
    assert first == again and first != other


def test_the_sample_depends_on_names_not_on_addresses():
    """The plan made before collection and the runner's on the started cluster choose alike."""
    planned = cluster(12, 2, PairPlan(SAMPLE))
    pods = sorted({e.pod for e in planned.endpoints if e.pod})
    live = planned.with_addresses({pod: f"10.244.0.{i + 5}" for i, pod in enumerate(pods)},
                                  {n.name: f"172.18.0.{i + 2}" for i, n in enumerate(planned.nodes)},
                                  {name: f"10.96.0.{i + 10}" for i, name in enumerate(planned.services)},
                                  {"outside/client": "172.18.0.250"})
    assert live.pairs == planned.pairs
    assert chosen(planned, pod_pairs(False)) == chosen(live, pod_pairs(False))


def test_too_few_nodes_to_cover_every_pod_keep_every_pair():
    topo = cluster(3, 4, PairPlan(SAMPLE))
    assert len(chosen(topo, pod_pairs(False))) == len(pod_pairs(False)(topo))


def test_all_keeps_every_pair_and_auto_samples_above_the_threshold():
    topo = cluster(12, 2, PairPlan(ALL))
    assert len(chosen(topo, pod_pairs(False))) == 12 * 11 * 4
    assert PairPlan.for_cluster(AUTO, SAMPLE_ABOVE).mode == ALL
    assert PairPlan.for_cluster(AUTO, SAMPLE_ABOVE + 1).mode == SAMPLE
    assert PairPlan.for_cluster(AUTO, 3, peers=2).mode == SAMPLE  # asking for peers asks for a sample
    assert PairPlan.for_cluster(ALL, 500).mode == ALL
    assert PairPlan.for_cluster(AUTO, 50).peers is None  # every ordered node pair up to 50 nodes
    assert PairPlan.for_cluster(AUTO, 100).peers == 24  # then about 2,450 node pairs in all
    assert PairPlan.for_cluster(AUTO, 100, peers=60).peers == 60
    assert PairPlan.for_cluster(SAMPLE, 100).peers is None  # a sample as asked: every node pair


def test_a_check_states_its_coverage():
    from suites.test_pod_network import test_pod_pod_cross
    spec = test_pod_pod_cross.netconform_check
    assert spec.coverage(cluster(12, 2, PairPlan(SAMPLE))) == (12 * 11, 12 * 11 * 4)
    assert spec.coverage(cluster(12, 2)) == (12 * 11 * 4, 12 * 11 * 4)
    assert len(spec.cases(cluster(12, 2, PairPlan(SAMPLE)))) == 12 * 11 * len(spec.protocols)


def test_checks_that_already_grow_with_the_pods_keep_every_pod():
    """DNS-POD-A asks each pod about the next one and DNS-POD-HOSTNAME every pod about one pod:
    a sample of them dropped half the pods while the coverage line said every pod was tested."""
    from suites.test_dns import test_dns_pod_a, test_dns_pod_hostname
    topo = cluster(20, 2, PairPlan(SAMPLE, peers=3))
    for test in (test_dns_pod_a, test_dns_pod_hostname):
        spec = test.netconform_check
        tested, exist = spec.coverage(topo)
        assert tested == exist == len(spec.pairs(topo)) > 0


# checks of such builders whose pairs are same-node or from the outside client alone: kept whole
WHOLE = ("NODE-POD", "POD-POD-SAME", "SVC-ETP-LOCAL")


def test_every_quadratic_check_of_the_suites_is_sampled_and_keeps_every_pod():
    import importlib
    from suites import test_mtu, test_node_network, test_pod_network, test_services
    from netconform.probing.verdicts import PEERS
    topo = cluster(15, 2, PairPlan(SAMPLE, peers=4))
    sampled = [PEERS]
    for module in (test_mtu, test_node_network, test_pod_network, test_services):
        module = importlib.import_module(module.__name__)
        sampled += [f.netconform_check for f in vars(module).values()
                    if hasattr(f, "netconform_check") and getattr(f.netconform_check.pairs, "between_nodes", False)]
    names = {c.requirement for c in sampled}
    assert {"POD-POD-CROSS", "HOSTNET-POD", "MTU", "UDP-LARGE", "SVC-NODEPORT", "POD-NODEPORT", "HOSTPORT"} <= names
    for spec in sampled:
        everyone = {a.name for a, _ in spec.pairs(topo)}
        assert {case.source for case in spec.cases(topo)} == everyone, spec.requirement
        tested, exist = spec.coverage(topo)
        assert tested <= exist and (tested < exist or spec.requirement in WHOLE), spec.requirement


def test_the_size_estimate_does_not_assume_a_sample_the_plan_cannot_make():
    """With more pods per node than other nodes the plan keeps every pair: an estimate that
    assumed the sample let 255,677 items past the 150,000 limit."""
    from netconform.pytest_run import estimated_items
    assert estimated_items(cluster(11, 20, PairPlan(SAMPLE))) == estimated_items(cluster(11, 20))
    assert estimated_items(cluster(11, 20)) > 150_000


def test_a_lab_the_machine_cannot_hold_is_refused_before_anything_is_built():
    """A sampled plan lets 200 nodes be collected (111,707 items); their 1,005 probe processes
    would need about 29 GiB, so the lab refuses them in one line instead of exhausting memory."""
    from netconform.backends.base import BackendError
    from netconform.backends.lab.preflight import check_memory
    with pytest.raises(BackendError, match=r"200 nodes with 1005 probe processes need about 28.9 GiB.*8.0 GiB available"):
        check_memory(1005, 200, free=8 * 2**30)
    check_memory(20, 3, free=8 * 2**30)  # the default lab fits

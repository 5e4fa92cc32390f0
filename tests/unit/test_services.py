"""Service planning, kube-proxy rule rendering and the Service verdicts, without a lab."""
import re

import pytest

from netconform.backends.lab import faults, kubeproxy
from netconform.checks import Case, Check, pods_to_service
from netconform.probing import service_verdicts as sv
from netconform.probing.runner import Observation
from netconform.services import add_services, minimum_connections
from netconform.topology import OUTSIDE

from .fakes import FakeRunner, result, topology

_PLAIN = topology(3, 2)
TOPO = add_services(_PLAIN, outside=True).with_addresses(
    {e.pod: e.ip for e in _PLAIN.endpoints if e.kind != "host"}, {n.name: n.ip for n in _PLAIN.nodes},
    {"web": "10.96.0.10", "web-affinity": "10.96.0.11", "web-local": "10.96.0.12",
             "empty": "10.96.0.13"}, {"outside/client": "172.18.0.250"})
BACKENDS = ["node-1/probe-a", "node-2/probe-a", "node-3/probe-a"]


def rules(node="node-1", **knobs) -> str:
    return kubeproxy.render(TOPO, node, "10.244.0.0/16", kubeproxy.ProxyOptions(**knobs))


def test_every_service_but_empty_has_one_backend_per_node():
    assert list(TOPO.services["web"].backends) == BACKENDS
    assert TOPO.services["empty"].backends == ()


def miss_chance(backends: int, connections: int) -> float:
    return backends * (1 - 1 / backends) ** connections


@pytest.mark.parametrize("backends, connections", [(1, 1), (2, 21), (3, 37), (6, 86)])
def test_connections_make_missing_a_backend_by_chance_rarer_than_one_in_a_million(backends,
                                                                                     connections):
    assert minimum_connections(backends) == connections
    if backends > 1:  # the fewest that do: one less is not enough
        assert miss_chance(backends, connections) < 1e-6 <= miss_chance(backends, connections - 1)


def test_clusterip_balances_uniformly_like_kube_proxy():
    web = [line for line in rules().splitlines() if "netconform/web:80/tcp -> endpoint" in line]
    probabilities = [re.search(r"--probability (\S+)", line) for line in web]
    assert [float(p.group(1)) if p else None for p in probabilities] == \
        [pytest.approx(1 / 3), pytest.approx(1 / 2), None]


def test_each_knob_removes_exactly_its_behaviour():
    healthy = rules()
    assert "-j REJECT" in healthy and "-j REJECT" not in rules(reject_without_endpoints=False)
    hairpin = "-s 10.244.1.2/32"
    assert hairpin in healthy and hairpin not in rules(hairpin_masquerade=False)
    assert "--rcheck" in healthy and "--rcheck" not in rules(session_affinity=False)
    assert "-j KUBE-NODEPORTS" in healthy and "-j KUBE-NODEPORTS" not in rules(nodeports=False)
    assert "! -s 10.244.0.0/16" in healthy and "! -s 10.244.0.0/16" not in rules(masquerade_all=True)
    assert len(rules(drop_last_endpoint=True)) < len(healthy)
    assert "KUBE-SVL-" in healthy and "KUBE-SVL-" not in rules(local_traffic_policy=False)


def test_local_traffic_policy_uses_only_the_nodes_own_endpoint():
    svl = [line for line in rules("node-2").splitlines()
           if line.startswith("-A KUBE-SVL-") and "/tcp" in line]
    assert len(svl) == 1  # one local endpoint: no random choice
    sep = svl[0].split("-j ")[-1]
    assert f"-A {sep} " in rules("node-2") and "10.244.2.2:8080" in rules("node-2")


def test_rules_are_one_iptables_restore_document_per_table():
    text = rules()
    assert text.count("COMMIT") == 2 and text.startswith("*nat") and "*filter" in text
    declared = set(re.findall(r"^:(\S+)", text, re.M))
    jumped = set(re.findall(r"-j (KUBE-\S+)", text))
    assert jumped <= declared


def test_every_fault_names_known_requirements_and_lists_itself():
    from netconform.requirements import CATALOG
    listing = faults.listing()
    for fault in faults.FAULTS.values():
        assert set(fault.breaks) <= set(CATALOG) and fault.name in listing
        kubeproxy.ProxyOptions(**fault.proxy)  # every knob exists
    with pytest.raises(faults.UnknownFault, match="unknown --lab-fault 'nope'"):
        faults.fault("nope")


def observe(verdict, source, destination, results):
    check = Check("SVC-CLUSTERIP", pods_to_service("web"), ("tcp",), verdict)
    case = Case(check.requirement, "tcp", source, destination)
    return verdict(Observation(case, check, TOPO.endpoint(source),
                               TOPO.endpoint(destination), results, FakeRunner(TOPO)))


def answers(client_ip, *responders):
    return [result(ok=True, responder=r, seen=client_ip) for r in responders]


def test_clusterip_names_the_backend_never_reached():
    verdict = observe(sv.every_backend_reached, "node-1/probe-b", "svc/web",
                      answers("10.244.1.3", *BACKENDS[:2] * 18))
    assert not verdict.ok and verdict.kind == "unbalanced" and "never node-3/probe-a" in verdict.reason
    assert observe(sv.every_backend_reached, "node-1/probe-b", "svc/web",
                   answers("10.244.1.3", *BACKENDS * 12)).ok


def test_clusterip_counts_failed_connections():
    results = answers("10.244.1.3", *BACKENDS) + [result(ok=False, error="timeout")]
    verdict = observe(sv.every_backend_reached, "node-1/probe-b", "svc/web", results)
    assert not verdict.ok and verdict.reason.startswith("1 of 4 connection(s) failed")


def test_source_ip_through_a_service_must_be_the_pod_ip():
    nat = observe(sv.client_ip_kept, "node-1/probe-b", "svc/web", answers("172.18.0.2", *BACKENDS))
    assert not nat.ok and nat.kind == "nat" and "172.18.0.2 (node node-1)" in nat.reason
    assert observe(sv.client_ip_kept, "node-1/probe-b", "svc/web",
                   answers("10.244.1.3", *BACKENDS)).ok


def test_hairpin_needs_some_connection_to_land_on_the_sender():
    src = "node-2/probe-a"
    assert not observe(sv.lands_on_itself, src, "svc/web", answers("10.96.0.10", BACKENDS[0])).ok
    assert observe(sv.lands_on_itself, src, "svc/web", answers("10.244.2.2", src, BACKENDS[0])).ok


def test_affinity_fails_when_one_client_lands_on_two_backends():
    verdict = observe(sv.same_backend_every_time, "node-1/probe-b", "svc/web-affinity",
                      answers("10.244.1.3", BACKENDS[0], BACKENDS[0], BACKENDS[1]))
    assert not verdict.ok and verdict.kind == "affinity"
    assert observe(sv.same_backend_every_time, "node-1/probe-b", "svc/web-affinity",
                   answers("10.244.1.3", *[BACKENDS[2]] * 10)).ok


@pytest.mark.parametrize("record, kind", [
    (result(ok=False, error="refused"), "pass"),
    (result(ok=False, error="timeout"), "timeout"),
    (result(ok=True, responder="node-1/probe-a", seen="10.244.1.3"), "answered"),
    ({**result(ok=False, error="refused"), "latency_ms": 1500.0}, "slow"),
])
def test_no_endpoints_must_be_refused_promptly(record, kind):
    verdict = observe(sv.refused_promptly, "node-1/probe-b", "svc/empty", [record])
    assert verdict.kind == kind and verdict.ok == (kind == "pass")


def test_etp_local_requires_the_local_backend_and_the_clients_own_address():
    client = next(e for e in TOPO.endpoints if e.kind == OUTSIDE)
    target = "node-2/nodeport/web-local"
    ok = observe(sv.real_client_ip_on_local_backend, client.name, target,
                 answers(client.ip, "node-2/probe-a"))
    assert ok.ok
    remote = observe(sv.real_client_ip_on_local_backend, client.name, target,
                     answers(client.ip, "node-3/probe-a"))
    assert remote.kind == "not-local"
    nat = observe(sv.real_client_ip_on_local_backend, client.name, target,
                  answers("172.18.0.3", "node-2/probe-a"))
    assert nat.kind == "nat" and "expected the client's own address 172.18.0.250" in nat.reason

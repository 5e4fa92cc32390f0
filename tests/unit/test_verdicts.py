"""The verdict rules of the specification, on hand-made observations."""
import pytest

from netconform.checks import Case, Check, loopback, pod_pairs
from netconform.probing import verdicts

from .fakes import FakeRunner, observation, result, self_report, topology

TOPO = topology()
A, B = TOPO.endpoint("node-1/probe-a"), TOPO.endpoint("node-2/probe-a")
HOST1 = TOPO.endpoint("node-1/host")


def observe(source, destination, outcome, protocol="tcp", runner=None, verdict=None, address=None,
            evidence=()):
    check = Check("POD-POD-CROSS", pod_pairs(False), (protocol,), verdict or verdicts.reached,
                  evidence=evidence, **({"address": address} if address else {}))
    case = Case(check.requirement, protocol, source.name, destination.name if destination else None)
    return observation(case, check, source, destination, [outcome] if outcome else [],
                       runner or FakeRunner(TOPO))


def test_pod_ip_seen_is_a_pass():
    v = verdicts.reached_from_pod_ip(observe(A, B, result(seen=A.ip, local=A.ip, responder=B.name)))
    assert (v.ok, v.kind) == (True, "pass")


def test_node_address_seen_is_nat_and_names_the_node():
    v = verdicts.reached_from_pod_ip(
        observe(A, B, result(seen="172.18.0.2", local=A.ip, responder=B.name)))
    assert (v.ok, v.kind) == (False, "nat")
    assert "172.18.0.2 (node node-1)" in v.reason and A.ip in v.reason


@pytest.mark.parametrize("error", ["timeout", "refused", "unreachable"])
def test_connection_errors_keep_their_kind(error):
    v = verdicts.reached_from_pod_ip(observe(A, B, result(ok=False, error=error, attempts=2,
                                                          errors=[error, error])))
    assert (v.ok, v.kind) == (False, error)
    assert f"{B.ip}:8080" in v.reason and "2 attempt(s)" in v.reason


def test_an_answer_from_another_probe_is_a_failure():
    v = verdicts.reached(observe(A, B, result(seen=A.ip, local=A.ip, responder="node-2/probe-b")))
    assert (v.ok, v.kind) == (False, "wrong-responder")


def test_a_pass_after_a_retry_is_flaky_not_plain():
    v = verdicts.reached(observe(A, B, result(responder=B.name, attempts=2, errors=["timeout"])))
    assert (v.ok, v.kind) == (True, "flaky")


def test_sender_whose_own_address_differs_from_the_reported_pod_ip_fails():
    runner = FakeRunner(TOPO, reports={A.name: self_report(A.name, ["10.244.1.99"])})
    v = verdicts.reached_from_pod_ip(
        observe(A, B, result(seen=A.ip, local=A.ip, responder=B.name), runner=runner))
    assert (v.ok, v.kind) == (False, "mismatch")
    assert "10.244.1.99" in v.reason and A.ip in v.reason


def test_icmp_without_a_capture_is_unobserved_not_passed():
    v = verdicts.reached_from_pod_ip(observe(A, B, result(seen=None, local=A.ip), protocol="icmp"))
    assert (v.ok, v.kind) == (False, "unobserved")


def test_hostnet_source_must_be_an_address_of_the_sending_node():
    ok = verdicts.reached_from_node_address(
        observe(HOST1, B, result(seen="172.18.0.2", responder=B.name)))
    assert ok.ok
    other_node = verdicts.reached_from_node_address(
        observe(HOST1, B, result(seen="172.18.0.3", responder=B.name)))
    assert (other_node.ok, other_node.kind) == (False, "nat")
    assert "node node-2" in other_node.reason


def test_loopback_target_is_reported():
    c1, c2 = TOPO.endpoint("node-1/duo/c1"), TOPO.endpoint("node-1/duo/c2")
    v = verdicts.reached_on_loopback(observe(c1, c2, result(ok=False, error="refused"),
                                             address=loopback))
    assert not v.ok and "127.0.0.1:8081" in v.reason


def test_containers_in_two_namespaces_fail_the_shared_namespace_rule():
    c1, c2 = TOPO.endpoint("node-1/duo/c1"), TOPO.endpoint("node-1/duo/c2")
    same = FakeRunner(TOPO)
    assert verdicts.same_network_namespace(observe(c1, c2, None, "self", runner=same)).ok
    split = FakeRunner(TOPO, reports={c2.name: self_report(c2.name, [c2.ip], mac="02:00:00:00:00:02")})
    v = verdicts.same_network_namespace(observe(c1, c2, None, "self", runner=split))
    assert (v.ok, v.kind) == (False, "mismatch")


PEERS = ((verdicts.PEERS, "tcp"),)  # POD-IP-SELF's evidence: what its peers saw


def _peers(seen_by_b: str) -> dict:
    return {"tcp": {f"tcp/ipv4:{A.name}->{B.name}": result(seen=seen_by_b, responder=B.name),
                    f"tcp/ipv4:{A.name}->node-2/probe-b": result(seen=A.ip, responder="node-2/probe-b")}}


def test_pod_ip_self_passes_when_interface_report_and_peers_agree():
    v = verdicts.pod_ip_is_own_and_seen(observe(A, None, None, "self", evidence=PEERS,
                                                runner=FakeRunner(TOPO, batches=_peers(A.ip))))
    assert v.ok


def test_pod_ip_self_names_the_peer_that_saw_another_address():
    v = verdicts.pod_ip_is_own_and_seen(observe(A, None, None, "self", evidence=PEERS,
                                                runner=FakeRunner(TOPO, batches=_peers("172.18.0.2"))))
    assert (v.ok, v.kind) == (False, "nat")
    assert f"172.18.0.2 (at {B.name})" in v.reason


def test_pod_ip_self_fails_when_the_interface_lacks_the_reported_ip():
    runner = FakeRunner(TOPO, reports={A.name: self_report(A.name, ["10.244.1.77"])},
                        batches=_peers(A.ip))
    v = verdicts.pod_ip_is_own_and_seen(observe(A, None, None, "self", runner=runner, evidence=PEERS))
    assert (v.ok, v.kind) == (False, "mismatch")


LARGE = Check("UDP-LARGE", pod_pairs(same_node=False), ("udp",), verdicts.arrived_whole, payload=2000)


def large_observation(**fields):
    topo = topology(nodes=2)
    src, dst = topo.endpoint("node-1/probe-a"), topo.endpoint("node-2/probe-a")
    r = {**result(responder=dst.name, seen=src.ip, local=src.ip), **fields}
    return observation(Case("UDP-LARGE", "udp", src.name, dst.name), LARGE, src, dst, [r], FakeRunner(topo))


def test_a_large_datagram_that_arrives_whole_passes():
    assert verdicts.arrived_whole(large_observation(sent=2000, received=2000)).ok


def test_a_large_datagram_read_short_is_truncated():
    verdict = verdicts.arrived_whole(large_observation(sent=2000, received=1472))
    assert (verdict.ok, verdict.kind) == (False, "truncated") and "received 1472 of the 2000 bytes" in verdict.reason


def test_a_large_datagram_lost_says_its_fragments_were():
    verdict = verdicts.arrived_whole(large_observation(ok=False, error="timeout", errors=["timeout"], responder=None))
    assert verdict.kind == "timeout" and "fragments were lost or not reassembled" in verdict.reason


def test_a_failure_under_a_policy_is_an_error_naming_it_and_a_pass_stands():
    from netconform.probing.verdicts import Verdict, not_judged_under_policy
    said = "NetworkPolicy ns/default-deny may block this traffic"
    failed = not_judged_under_policy(Verdict(False, "timeout", "tcp from a to b: timeout", {"x": 1}), said)
    assert (failed.ok, failed.harness, failed.kind) == (False, True, "policy")
    assert failed.reason == f"tcp from a to b: timeout; not judged: {said}"
    assert failed.observed == {"x": 1, "failure": "timeout"}
    passed = Verdict(True, "pass")
    assert not_judged_under_policy(passed, said) is passed
    harness = Verdict(False, "probe unavailable", "x", harness=True)
    assert not_judged_under_policy(harness, said) is harness
    plain = Verdict(False, "timeout", "y")
    assert not_judged_under_policy(plain, None) is plain
    for kind in ("nat", "wrong-responder", "still-answered"):  # traffic went through: a drop cannot do that
        seen = Verdict(False, kind, "z")
        assert not_judged_under_policy(seen, said) is seen


def test_the_run_judges_every_item_under_the_backends_policies(monkeypatch):
    """The wiring: Conformance.judge asks the backend which policies may block the run's traffic
    (KubeBackend: read before probing) and a failure under them is an error, as the verdict says."""
    from types import SimpleNamespace

    from netconform.backends.base import Backend
    from netconform.checks import Case
    from netconform.probing.runner import ProbeSettings
    from netconform.probing.verdicts import Verdict
    from netconform.session import Conformance

    class Policed(Backend):
        name = "policed"
        plan = start = channel = close = lambda self, *a: None

        def blocking_policies(self):
            return "NetworkPolicy ns/default-deny may block this traffic"

    conformance = Conformance(Policed(), ProbeSettings(), lambda message: None)
    endpoint = SimpleNamespace(node="node-1")
    conformance.topology = SimpleNamespace(endpoint=lambda name: endpoint, nodes=[SimpleNamespace(name="node-1")])
    conformance.runners = {"ipv4": SimpleNamespace(observe=lambda spec, case: None,
                                                   node_evidence=lambda node: {})}
    spec = SimpleNamespace(verdict=lambda obs: Verdict(False, "timeout", "tcp: timeout"))
    judged = conformance.judge(spec, Case("POD-POD-CROSS", "tcp", "node-1/probe-a", "node-2/probe-a"))
    assert judged.verdict.harness and judged.verdict.kind == "policy"
    assert "not judged: NetworkPolicy ns/default-deny may block this traffic" in judged.verdict.reason

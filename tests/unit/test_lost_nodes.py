"""A node that goes not Ready during the run: the failures involving it are errors naming it, not
network failures (session.Conformance, probing/verdicts.not_judged_on_lost_nodes, kube/nodes.lost)."""
from types import SimpleNamespace

from netconform.backends.base import Backend
from netconform.backends.kube.nodes import lost
from netconform.checks import Case
from netconform.probing.runner import ProbeSettings
from netconform.probing.verdicts import Verdict, not_judged_on_lost_nodes
from netconform.report.results import ItemRecord
from netconform.services import add_services
from netconform.session import Conformance

from .fakes import topology

LOST = {"node-2": "not Ready (NodeStatusUnknown)"}


def test_a_failure_involving_a_lost_node_is_an_error_naming_it():
    failed = Verdict(False, "timeout", "tcp from node-1/probe-a to 10.244.2.2:8080: timeout")
    judged = not_judged_on_lost_nodes(failed, {"node-1", "node-2"}, LOST)
    assert judged.harness and judged.kind == "node lost"
    assert judged.reason.endswith("; not judged: node node-2 (not Ready (NodeStatusUnknown)) went not Ready "
                                  "during the run")
    assert judged.observed == {"failure": "timeout", "lost_nodes": ["node-2"]}
    assert not_judged_on_lost_nodes(failed, {"node-1", "node-3"}, LOST) is failed  # not involved
    assert not_judged_on_lost_nodes(Verdict(True, "pass"), {"node-2"}, LOST).ok
    nat = Verdict(False, "nat", "source rewritten")  # no lost node rewrites a source
    assert not_judged_on_lost_nodes(nat, {"node-2"}, LOST) is nat


def _node(name, ready="True", reason="KubeletReady", message=""):
    return SimpleNamespace(metadata=SimpleNamespace(name=name), status=SimpleNamespace(
        conditions=[SimpleNamespace(type="Ready", status=ready, reason=reason, message=message)]))


def test_lost_names_the_chosen_nodes_not_ready_now_or_deleted():
    items = [_node("node-1"), _node("node-2", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."),
             _node("other", "False")]
    assert lost(items, {"node-1", "node-2", "node-3"}) == {
        "node-2": "not Ready (NodeStatusUnknown Kubelet stopped posting node status.)",
        "node-3": "deleted from the cluster"}


def test_a_node_its_network_plugin_made_not_ready_is_not_lost():
    """The CNI under test broke the node (kubelet: NetworkPluginNotReady): its failures are the
    network's, and stay failures."""
    cni_down = _node("node-2", "False", "KubeletNotReady", "container runtime network not ready: "
                     "NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: "
                     "cni plugin not initialized")
    assert lost([_node("node-1"), cni_down], {"node-1", "node-2"}) == {}


class _Losing(Backend):
    """A backend whose node-2 the cluster marks not Ready only after the run judged its items."""
    name = "losing"
    plan = start = channel = close = lambda self, *a: None

    def __init__(self):
        self.found = {}
        self.seen_ready = {}  # node -> when a look last saw it Ready (default: the start, 0)

    def lost_nodes(self, final=False):
        return dict(self.found) if final else {}

    def last_seen_ready(self, node):
        return self.seen_ready.get(node, 0.0)


def _conformance(backend):
    conformance = Conformance(backend, ProbeSettings(), lambda message: None)
    conformance.topology = add_services(topology(3), outside=False)
    return conformance


def _record(case, outcome, kind):
    return ItemRecord(case.full_id, f"suites/x.py::t[{case.id}]", case.requirement, "MUST", case.protocol,
                      {"name": case.source}, {"name": case.destination}, outcome, kind=kind,
                      reason=f"{kind}!", observed={})


def test_at_the_end_failures_on_a_node_marked_lost_late_become_errors():
    backend = _Losing()
    conformance = _conformance(backend)
    cases = {"a": Case("POD-POD-CROSS", "tcp", "node-1/probe-a", "node-2/probe-a"),
             "b": Case("POD-POD-CROSS", "tcp", "node-1/probe-a", "node-3/probe-a"),
             "c": Case("SVC-CLUSTERIP", "tcp", "node-1/probe-a", "svc/web"),  # web has a backend on node-2
             "d": Case("POD-POD-CROSS", "tcp", "node-3/probe-b", "node-2/probe-b")}
    records = {"a": _record(cases["a"], "failed", "timeout"), "b": _record(cases["b"], "failed", "timeout"),
               "c": _record(cases["c"], "failed", "unreached"), "d": _record(cases["d"], "passed", "pass")}
    assert conformance.judged_again_for_lost_nodes(records, cases) == {}  # nothing lost: nothing changes
    assert [r.outcome for r in records.values()] == ["failed", "failed", "failed", "passed"]
    backend.found = LOST
    assert conformance.judged_again_for_lost_nodes(records, cases) == LOST
    assert {k: (r.outcome, r.kind) for k, r in records.items()} == {
        "a": ("error", "node lost"), "b": ("failed", "timeout"), "c": ("error", "node lost"), "d": ("passed", "pass")}
    assert records["a"].reason == "timeout!; not judged: node node-2 (not Ready (NodeStatusUnknown)) went not " \
                                  "Ready during the run"


def test_judge_makes_a_failure_on_a_node_known_lost_an_error_at_once():
    class Known(_Losing):
        def lost_nodes(self, final=False):
            return LOST
    conformance = _conformance(Known())
    conformance.runners = {"ipv4": SimpleNamespace(observe=lambda spec, case: None, node_evidence=lambda node: {})}
    spec = SimpleNamespace(verdict=lambda obs: Verdict(False, "timeout", "tcp: timeout"))
    judged = conformance.judge(spec, Case("POD-POD-CROSS", "tcp", "node-1/probe-a", "node-2/probe-a"))
    assert judged.verdict.harness and judged.verdict.kind == "node lost"
    healthy = conformance.judge(spec, Case("POD-POD-CROSS", "tcp", "node-1/probe-a", "node-3/probe-a"))
    assert not healthy.verdict.harness and healthy.verdict.kind == "timeout"


def test_a_failure_judged_well_before_the_node_was_last_seen_ready_stays_a_failure():
    """node-2 was seen Ready at t=200 and lost by the end: a failure judged at t=100 happened
    while it was up (more than the 50 s grace before), so it is the network's; one at t=160 may
    already have been the node's going (its heartbeats stop up to 50 s before it is marked)."""
    backend = _Losing()
    conformance = _conformance(backend)
    early, late = (Case("POD-POD-CROSS", "tcp", f"node-1/probe-{p}", f"node-2/probe-{p}") for p in "ab")
    records = {"early": _record(early, "failed", "timeout"), "late": _record(late, "failed", "timeout")}
    conformance.judged_at = {early.full_id: 100.0, late.full_id: 160.0}
    backend.found, backend.seen_ready = LOST, {"node-2": 200.0}
    conformance.judged_again_for_lost_nodes(records, {"early": early, "late": late})
    assert (records["early"].outcome, records["late"].outcome) == ("failed", "error")

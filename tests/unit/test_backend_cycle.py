"""SVC-UDP-BACKEND-CHANGE on a stand-in cluster: the cycle's steps, its timeline and its verdict.

The stand-in models what the row is about: each client's datagrams are one flow, and a flow keeps
the backend it was first sent to (a conntrack entry) until the proxy clears it. A healthy proxy
clears an entry once its backend is gone; a ``stale`` one never does (the datagrams then go to an
address that is gone: timeouts); a ``frozen`` one never programs a new backend at all.
"""
import threading

import pytest

from netconform.checks import BackendCycle, Check
from netconform.probing.cycle import PodControl
from netconform.probing.runner import Runner
from netconform.probing.service_verdicts import backend_followed
from netconform.services import CYCLED_ROLE, CYCLED_SERVICE
from netconform.topology import SERVICE, Endpoint, Service, Topology

from .fakes import StandInChannel, result, topology

FAST = BackendCycle(CYCLED_SERVICE, CYCLED_ROLE, interval=0.05, quiet=0.1, within=2.0)  # s: room for a loaded machine


class StandInCluster:
    def __init__(self, proxy: str = "healthy", fail_start: bool = False) -> None:
        self.proxy, self.fail_start = proxy, fail_start
        self.up: list[str] = []  # the responders of the pods that serve, in creation order
        self.made: list[tuple[str, str, str]] = []
        self.deleted: list[str] = []
        self.flows: dict[str, str] = {}  # source -> the backend its flow is bound to
        self.ports: set[int] = set()
        self.lock = threading.Lock()

    def start(self, name: str, node: str, role: str) -> str:
        if self.fail_start:
            raise RuntimeError("pod udp-cycle-x not Ready after 60s (phase Pending)")
        self.made.append((name, node, role))
        if self.proxy != "frozen":
            self.up.append(f"{node}/{name}")
        return f"10.244.9.{len(self.made)}"

    def delete(self, name: str) -> None:
        self.deleted.append(name)
        self.up = [r for r in self.up if not r.endswith(f"/{name}")]

    def probe(self, endpoint: Endpoint, body: dict) -> dict:
        (target,) = body["targets"]
        self.ports.add(target["source_port"])
        with self.lock:
            bound = self.flows.get(endpoint.name)
            if bound and bound not in self.up and self.proxy == "healthy":
                del self.flows[endpoint.name]  # the proxy cleared the entry of a removed backend
                bound = None
            if bound is None and self.up:
                bound = self.flows[endpoint.name] = self.up[0]
        if bound is None:
            return {"results": [result(target["id"], ok=False, error="refused")]}
        if bound not in self.up:
            return {"results": [result(target["id"], ok=False, error="timeout")]}
        return {"results": [result(target["id"], responder=bound)]}


def cycle_topology() -> Topology:
    topo = topology(nodes=3, pods=1)
    topo.endpoints.append(Endpoint("svc", CYCLED_SERVICE, SERVICE, 80, ip="10.96.0.50", serves=CYCLED_SERVICE))
    topo.services[CYCLED_SERVICE] = Service(CYCLED_SERVICE, cycled=True, cluster_ip="10.96.0.50")
    return topo


def judge(cluster: StandInCluster, cycle: BackendCycle = FAST):
    from netconform.checks import pods_to_service
    topo = cycle_topology()
    check = Check("SVC-UDP-BACKEND-CHANGE", pods_to_service(CYCLED_SERVICE), ("udp",), backend_followed,
                  cycle=cycle)
    runner = Runner(topo, lambda e: StandInChannel(e, cluster.probe), pods=PodControl(cluster.start, cluster.delete))
    return {case.source: check.verdict(runner.observe(check, case)) for case in check.cases(topo)}


def test_a_proxy_that_clears_stale_entries_passes_and_both_pods_go_at_the_end():
    cluster = StandInCluster()
    verdicts = judge(cluster)
    assert all(v.ok for v in verdicts.values()), verdicts
    first, second = cluster.made
    assert (first[1], second[1]) == ("node-1", "node-3") and {first[2], second[2]} == {CYCLED_ROLE}
    assert cluster.deleted == [first[0], second[0]]  # the first by the check, the second at the end
    assert cluster.ports == {12345}
    observed = verdicts["node-2/probe-a"].observed
    assert set(observed["answered_by"]) == {f"node-1/{first[0]}", f"node-3/{second[0]}"}
    assert observed["pods"]["first"]["deleted_at"] >= observed["pods"]["second"]["ready_at"]


def test_a_flow_left_with_the_deleted_pod_fails_as_a_stale_entry():
    verdicts = judge(StandInCluster(proxy="stale"))
    for verdict in verdicts.values():
        assert (verdict.ok, verdict.kind, verdict.harness) == (False, "stale-entry", False)
        assert "was deleted at" in verdict.reason and "conntrack entry from before the backend was deleted" in verdict.reason
        assert "timeout" in verdict.reason
        # sent before the first backend was there: refused (how many, a loaded machine decides; one
        # stamped just before its readiness was stamped may have reached it)
        first = verdict.observed["pods"]["first"]
        early = [d for d in verdict.observed["datagrams"] if d["at"] < first["ready_at"]]
        assert all(d["error"] == "refused" or d["responder"] == f"{first['node']}/{first['name']}"
                   for d in early), early


def test_a_backend_never_reached_fails_the_first_step_and_the_second_is_not_made():
    cluster = StandInCluster(proxy="frozen")
    verdicts = judge(cluster)
    assert all(not v.ok and v.kind == "not-programmed" and "was Ready at" in v.reason for v in verdicts.values())
    assert "kept rejecting them" in next(iter(verdicts.values())).reason
    assert len(cluster.made) == 1 and cluster.deleted == [cluster.made[0][0]]


def test_a_pod_the_backend_cannot_start_is_a_harness_error_never_a_failure():
    verdicts = judge(StandInCluster(fail_start=True))
    assert all(v.harness and not v.ok for v in verdicts.values())
    assert "not Ready after 60s" in next(iter(verdicts.values())).reason


def test_a_backend_that_cannot_make_pods_makes_the_items_errors():
    from netconform.checks import pods_to_service
    topo = cycle_topology()
    check = Check("SVC-UDP-BACKEND-CHANGE", pods_to_service(CYCLED_SERVICE), ("udp",), backend_followed, cycle=FAST)
    runner = Runner(topo, lambda e: StandInChannel(e, StandInCluster().probe))
    verdict = check.verdict(runner.observe(check, check.cases(topo)[0]))
    assert verdict.harness and "cannot create pods" in verdict.reason


@pytest.mark.parametrize("proxy", ["healthy", "stale"])
def test_the_verdict_is_a_pure_function_of_the_timeline(proxy):
    """Judged again from the same observation, the verdict is the same."""
    cluster = StandInCluster(proxy=proxy)
    from netconform.checks import pods_to_service
    topo = cycle_topology()
    check = Check("SVC-UDP-BACKEND-CHANGE", pods_to_service(CYCLED_SERVICE), ("udp",), backend_followed, cycle=FAST)
    runner = Runner(topo, lambda e: StandInChannel(e, cluster.probe), pods=PodControl(cluster.start, cluster.delete))
    case = check.cases(topo)[0]
    observation = runner.observe(check, case)
    assert backend_followed(observation) == backend_followed(observation)
    assert backend_followed(observation).ok == (proxy == "healthy")


def _stale_timeline():
    """One stale observation, with a way to judge it again with its datagrams edited."""
    import copy
    import dataclasses
    cluster = StandInCluster(proxy="stale")
    from netconform.checks import pods_to_service
    topo = cycle_topology()
    check = Check("SVC-UDP-BACKEND-CHANGE", pods_to_service(CYCLED_SERVICE), ("udp",), backend_followed, cycle=FAST)
    runner = Runner(topo, lambda e: StandInChannel(e, cluster.probe), pods=PodControl(cluster.start, cluster.delete))
    observation = runner.observe(check, check.cases(topo)[0])

    def judged(edit):
        results = copy.deepcopy(observation.results)
        cycle = results[0]["cycle"]
        cycle["datagrams"] = edit(cycle["datagrams"], cycle["pods"])
        return backend_followed(dataclasses.replace(observation, results=results))
    return judged


def test_a_datagram_sent_as_the_deletion_ended_and_answered_by_the_old_pod_is_still_a_stale_entry():
    """The CI flake of 2026-11-28: a datagram stamped at the deletion's own millisecond reached the
    old pod; the flow was still stuck, so the verdict is the same."""
    judged = _stale_timeline()
    first = lambda pods: f"{pods['first']['node']}/{pods['first']['name']}"  # noqa: E731
    verdict = judged(lambda sent, pods: sent + [{"at": pods["first"]["deleted_at"], "responder": first(pods),
                                                 "error": None}])
    assert (verdict.ok, verdict.kind, verdict.harness) == (False, "stale-entry", False), verdict.reason
    assert "answered by the deleted backend" in verdict.reason
    elsewhere = judged(lambda sent, pods: sent + [{"at": pods["first"]["deleted_at"] + 0.1,
                                                   "responder": "node-2/somebody", "error": None}])
    assert (elsewhere.ok, elsewhere.kind) == (False, "not-reached")


@pytest.mark.parametrize("window", ["first", "second"])
def test_a_client_that_sent_nothing_in_a_window_is_a_harness_error_never_a_failure(window):
    judged = _stale_timeline()

    def starve(sent, pods):
        start = pods["first"]["ready_at" if window == "first" else "deleted_at"]
        return [d for d in sent if not start <= d["at"] <= start + FAST.within]
    verdict = judged(starve)
    assert verdict.harness and not verdict.ok and "sent no datagram" in verdict.reason, verdict.reason

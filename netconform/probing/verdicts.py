"""Verdict rules of shared/docs/network-model.md, as functions of one Observation.

Each returns a Verdict whose reason a reader can act on without re-running anything: what was
tried, what came back, and what was expected instead (timeout, refused and NAT read differently).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..checks import Check, between_nodes, pod_pairs
from ..topology import POD, Topology
from .runner import Observation


@dataclass
class Verdict:
    ok: bool
    kind: str  # "pass", "flaky" or the failure: timeout, refused, unreachable, nat, mismatch, ...
    reason: str = ""
    observed: dict = field(default_factory=dict)
    harness: bool = False  # not evidence about the network: the harness could not do its part


# Failures a policy cannot cause: traffic went through and showed something the model forbids (a
# rewritten source, the wrong backend or answer, a port that should be gone). A policy only drops
# or rejects, so these are judged whatever policies are in place.
DESPITE_POLICY = frozenset({"nat", "wrong-responder", "still-sticky", "wrong-answer", "truncated",
                            "still-answered", "answered", "mismatch"})


def not_judged_under_policy(verdict: Verdict, policies: str | None) -> Verdict:
    """A failure that a policy in place may have caused (a timeout, a refusal, a backend never
    reached) is not evidence about the network (the model holds "barring intentional network
    segmentation"): an error naming the policies. A pass stands (the traffic went through), and so
    does a failure no drop could cause (DESPITE_POLICY)."""
    if verdict.ok or verdict.harness or not policies or verdict.kind in DESPITE_POLICY:
        return verdict
    return Verdict(False, "policy", f"{verdict.reason}; not judged: {policies}",
                   {**verdict.observed, "failure": verdict.kind}, harness=True)


def not_judged_on_lost_nodes(verdict: Verdict, involved: set[str], lost: dict[str, str]) -> Verdict:
    """A failure involving a node that went not Ready during the run (its kubelet stopped, the
    node went down: the node lifecycle controller's word) is not evidence about the network model:
    an error naming the node. A pass stands, and so does a failure no drop could cause."""
    gone = sorted(involved & set(lost))
    if verdict.ok or verdict.harness or not gone or verdict.kind in DESPITE_POLICY:
        return verdict
    said = "; ".join(f"{node} ({lost[node]})" for node in gone)
    return Verdict(False, "node lost", f"{verdict.reason}; not judged: node {said} went not Ready "
                   f"during the run", {**verdict.observed, "failure": verdict.kind, "lost_nodes": gone},
                   harness=True)


def harness_error(obs: Observation, r: dict) -> Verdict | None:
    """A connection the harness could not make or could not judge: its probe could not be asked,
    or a limit of the host (not of the cluster) was hit while it ran. Such an item is an error."""
    if r.get("harness_error"):
        return Verdict(False, "host limit", f"{obs.case.protocol} from {obs.source.name} to "
                       f"{obs.destination.name}: {r['error']} while {r['harness_error']}; the "
                       "network was not judged", {"error": r.get("error")}, harness=True)
    if r.get("error") == "probe unavailable":
        return Verdict(False, "probe unavailable", f"the probe {obs.source.name} could not be asked "
                       f"to connect: {r.get('detail')}", {"error": r["error"]}, harness=True)
    return None


def target_text(obs: Observation) -> str:
    dst = obs.destination
    return f"{obs.check.address(dst)}" + ("" if obs.case.protocol == "icmp" else f":{dst.port}")


def connection_failed(obs: Observation, r: dict, may_answer: set[str]) -> Verdict | None:
    """The common part of every connection verdict: did it connect, and to a probe that may answer?"""
    dst, target = obs.destination, target_text(obs)
    observed = {"seen": r.get("seen"), "local": r.get("local"), "responder": r.get("responder"),
                "attempts": r.get("attempts"), "error": r.get("error")}
    harness = harness_error(obs, r)
    if harness:
        return harness
    if not r["ok"]:
        detail = f" ({r['detail']})" if r.get("detail") else ""
        kind = r["error"].split(":")[0]
        return Verdict(False, kind, f"{obs.case.protocol} from {obs.source.name} to {dst.name} at "
                       f"{target}: {r['error']}{detail} after {r.get('attempts', 0)} attempt(s) "
                       f"[{', '.join(r.get('errors', []))}]", observed)
    if obs.case.protocol != "icmp" and r.get("responder") not in may_answer:
        return Verdict(False, "wrong-responder", f"{target} was answered by {r.get('responder')}, "
                       f"not by {' or '.join(sorted(may_answer))}", observed)
    return None


def _attempt(obs: Observation) -> Verdict | None:
    return connection_failed(obs, obs.result, {obs.destination.name})


def passed(obs: Observation, observed: dict | None = None) -> Verdict:
    """A pass, or a flaky pass when any connection needed a retry."""
    r = obs.result
    observed = observed if observed is not None else {
        "seen": r.get("seen"), "local": r.get("local"), "responder": r.get("responder"),
        "attempts": r.get("attempts"), "error": None}
    retried = [r for r in obs.results if r.get("attempts", 1) > 1]
    if retried:
        return Verdict(True, "flaky", f"{len(retried)} connection(s) passed only on a retry "
                       f"(earlier: {', '.join(retried[0].get('errors', []))})", observed)
    return Verdict(True, "pass", "", observed)




def _unobserved(obs: Observation) -> Verdict:
    """The echo came back but the receiver has no record of the sender: when it could not be asked,
    the harness failed (an error); when it was asked and saw nothing, that is evidence."""
    r = obs.result
    if r.get("capture_error"):
        return Verdict(False, "unobserved", f"{obs.destination.name} answered but could not be asked "
                       f"who sent the packet: {r['capture_error']}", {"seen": None,
                                                                       "local": r.get("local")},
                       harness=True)
    return Verdict(False, "unobserved", f"{obs.destination.name} answered but cannot say who sent "
                   "the packet: no matching packet was captured", {"seen": None, "local": r.get("local")})


def reached(obs: Observation) -> Verdict:
    """NODE-POD: the connection succeeds (and the intended probe answered)."""
    return _attempt(obs) or passed(obs)


def reached_at_full_size(obs: Observation) -> Verdict:
    """MTU: a DF-marked packet as large as the source's pod interface MTU arrives across nodes."""
    failed = _attempt(obs)
    if failed is None:
        return passed(obs)
    size = obs.result.get("size", "?")
    failed.reason = (f"a {size}-byte packet with Don't Fragment set (the MTU of "
                     f"{obs.source.name}'s interface) did not arrive, and no ICMP said why: a path "
                     f"MTU black hole. {failed.reason}") if failed.kind == "timeout" else failed.reason
    return failed


def arrived_whole(obs: Observation) -> Verdict:
    """UDP-LARGE: a datagram larger than one packet (fragmented on its way) reaches the pod on the
    other node whole: the receiver read as many bytes as were sent, and answered."""
    failed = _attempt(obs)
    r = obs.result
    if failed is not None:
        if failed.kind == "timeout":
            failed.reason = (f"a {obs.check.payload}-byte UDP datagram (fragmented: larger than the "
                             f"path's packets) from {obs.source.name} to {obs.destination.name} got no "
                             f"answer: its fragments were lost or not reassembled. {failed.reason}")
        return failed
    if r.get("received") != r.get("sent"):
        return Verdict(False, "truncated", f"{obs.destination.name} received {r.get('received')} of the "
                       f"{r.get('sent')} bytes {obs.source.name} sent in one UDP datagram",
                       {"sent": r.get("sent"), "received": r.get("received")})
    return passed(obs, {"sent": r.get("sent"), "received": r.get("received"), "seen": r.get("seen"),
                        "responder": r.get("responder")})


def reached_on_loopback(obs: Observation) -> Verdict:
    """LOCALHOST: 127.0.0.1 of one container is the other container's listener."""
    return reached(obs)


def reached_from_pod_ip(obs: Observation) -> Verdict:
    """POD-POD-*: the receiver sees the sender's pod IP, which is also the sender's own address."""
    failed = _attempt(obs)
    if failed:
        return failed
    r, src, dst = obs.result, obs.source, obs.destination
    seen, topo = r.get("seen"), obs.topology
    if seen is None:
        return _unobserved(obs)
    if seen != src.ip:
        return Verdict(False, "nat", f"NAT: {dst.name} saw the connection come from {seen} "
                       f"({topo.who_has(seen, _node_addresses(obs))}), expected {src.ip}, the pod "
                       f"IP of {src.pod}", {"seen": seen, "local": r.get("local")})
    own = obs.addresses(src)
    if r.get("local") != src.ip or src.ip not in own:
        return Verdict(False, "mismatch", f"{src.name} sent from {r.get('local')} and has "
                       f"{own} on its interfaces, but the cluster reports its pod IP as {src.ip}",
                       {"seen": seen, "local": r.get("local")})
    return passed(obs)


def reached_from_node_address(obs: Observation) -> Verdict:
    """HOSTNET-POD: the receiver sees one of the sending node's own addresses."""
    failed = _attempt(obs)
    if failed:
        return failed
    seen, node = obs.result.get("seen"), obs.source.node
    if seen is None:
        return _unobserved(obs)
    addresses = obs.node_addresses(node)
    if seen not in addresses:
        topo = obs.topology
        return Verdict(False, "nat", f"NAT: {obs.destination.name} saw the connection come from "
                       f"{seen} ({topo.who_has(seen, _node_addresses(obs))}), which is not an "
                       f"address of node {node} ({', '.join(addresses)})",
                       {"seen": seen, "local": obs.result.get("local")})
    return passed(obs)


def _node_addresses(obs: Observation) -> dict[str, list[str]]:
    return {n.name: obs.node_addresses(n.name) for n in obs.topology.nodes}


def _interfaces(report: dict) -> list[tuple]:
    return sorted((i["name"], i["mac"], tuple(sorted(i["addresses"]))) for i in report["interfaces"])


def same_network_namespace(obs: Observation) -> Verdict:
    """LOCALHOST: both containers see the same interfaces, with the same IPs and MACs."""
    a, b = obs.report(obs.source), obs.report(obs.destination)
    for report in (a, b):
        if "error" in report:
            return Verdict(False, "probe unavailable", report["error"], harness=True)
    if _interfaces(a) != _interfaces(b):
        return Verdict(False, "mismatch", f"{obs.source.name} sees {_interfaces(a)} but "
                       f"{obs.destination.name} sees {_interfaces(b)}: not one network namespace",
                       {"source": _interfaces(a), "destination": _interfaces(b)})
    return Verdict(True, "pass", "", {"interfaces": _interfaces(a)})


@between_nodes
def _all_pods(topology: Topology):
    return pod_pairs(same_node=True)(topology) + pod_pairs(same_node=False)(topology)


PEERS = Check("POD-IP-SELF", _all_pods, ("tcp",), reached)


def pod_ip_is_own_and_seen(obs: Observation) -> Verdict:
    """POD-IP-SELF: reported IP == the IP on the pod's interface == the source its peers see (the
    PEERS batch, which the check declares as its evidence)."""
    src = obs.source
    refused = _not_its_own(obs, src.name)
    if refused:
        return refused
    own = obs.addresses(src)
    seen = {}
    peers = obs.evidence[(PEERS, "tcp")]
    for case in PEERS.cases(obs.topology, "tcp"):
        found = peers.get(case.id) if case.source == src.name and case.family == obs.case.family else None
        if found and found["ok"]:
            seen[case.destination] = found["seen"]
    if not seen:
        return Verdict(False, "unobserved", f"no peer of {src.name} could be reached, so none "
                       "could observe its address (POD-POD-* say why)", {"own": own}, harness=True)
    wrong = {peer: ip for peer, ip in seen.items() if ip != src.ip}
    if wrong:
        return Verdict(False, "nat", f"{src.name} has {src.ip}, but peers saw it as "
                       + ", ".join(f"{ip} (at {peer})" for peer, ip in sorted(wrong.items())),
                       {"own": own, "seen_by_peers": seen})
    return Verdict(True, "pass", "", {"own": own, "seen_by_peers": seen})


def own_address_in_each_family(obs: Observation) -> Verdict:
    """DUAL-STACK, in the item's family: the cluster reports an address of that family for the pod
    (``podIPs``) or node (InternalIP), it is on the endpoint's own interfaces, and a pod's is the
    source its peers see in that family (as POD-IP-SELF, from the same PEERS evidence)."""
    src, family = obs.source, obs.case.family
    if src.ip is None:
        listed = [ip for _, ip in src.addresses]
        return Verdict(False, "missing", f"the cluster reports no {family} address for {src.name} "
                       f"(it has {', '.join(listed) or 'none'}): a dual-stack cluster gives one per family",
                       {"addresses": listed})
    if src.kind == POD:
        return pod_ip_is_own_and_seen(obs)
    return _not_its_own(obs, f"node {src.node}") or Verdict(True, "pass", "", {"own": obs.addresses(src)})


def _not_its_own(obs: Observation, who: str) -> Verdict | None:
    """Why the address the cluster reports for the source is not on its own interfaces (or its
    self-report could not be read: a harness error); None when it is."""
    src = obs.source
    report = obs.report(src)
    if "error" in report:
        return Verdict(False, "probe unavailable", report["error"], harness=True)
    own = obs.addresses(src)
    if src.ip not in own:
        return Verdict(False, "mismatch", f"the cluster reports {who} at {src.ip}, but its "
                       f"interfaces carry {own or 'no address'}", {"own": own})
    return None


__all__ = ["Verdict", "reached", "reached_on_loopback", "reached_from_pod_ip",
           "reached_from_node_address", "same_network_namespace", "pod_ip_is_own_and_seen",
           "own_address_in_each_family"]

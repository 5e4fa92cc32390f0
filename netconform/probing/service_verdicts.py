"""Verdicts of the Service rows (SVC-*, HOSTPORT): many connections to a target that forwards.

A forwarding target (ClusterIP, NodePort, hostPort) may be answered by any of the probes it leads
to; which one answered, and which source it saw, is what these rules judge.
"""
from __future__ import annotations

from collections import Counter

from ..topology import HOSTPORT, NODEPORT, SERVICE
from .runner import Observation
from .verdicts import Verdict, connection_failed, harness_error, passed, target_text

PROMPT_MS = 1000.0  # a reject must come back within a second: a timeout is no reject


def may_answer(obs: Observation) -> set[str]:
    dst = obs.destination
    if dst.kind in (SERVICE, NODEPORT):
        return set(obs.topology.services[dst.serves].backends)
    if dst.kind == HOSTPORT:
        return {dst.serves}
    return {dst.name}


def _all_connected(obs: Observation) -> Verdict | None:
    """Every connection answered by a probe the target leads to; else the first failure, counted."""
    failures = [v for r in obs.results if (v := connection_failed(obs, r, may_answer(obs)))]
    if not failures:
        return None
    first = failures[0]
    first.reason = f"{len(failures)} of {len(obs.results)} connection(s) failed; first: {first.reason}"
    return first


def _answered_by(obs: Observation) -> Counter:
    return Counter(r["responder"] for r in obs.results)


def each_port_reaches_its_target(obs: Observation) -> Verdict:
    """SVC-MULTIPORT: a Service port is answered by the container listening on its own target
    port (duo's c1 on 8080 behind port 80, c2 on 8081 behind port 81), in any backend pod."""
    topo, dst = obs.topology, obs.destination
    service = topo.services[dst.serves]
    target = service.target_of(dst.port)
    backend_pods = {topo.endpoint(b).pod for b in service.backends}
    listeners = {e.name for e in topo.endpoints if e.pod in backend_pods and e.port == target}
    failed = connection_failed(obs, obs.result, listeners)
    if failed and failed.kind == "wrong-responder":
        failed.reason += f" (port {dst.port} must reach target port {target})"
    return failed or passed(obs)


def every_backend_reached(obs: Observation) -> Verdict:
    """SVC-CLUSTERIP: every connection reaches a backend, and every ready backend is reached."""
    failed = _all_connected(obs)
    if failed:
        return failed
    answered, backends = _answered_by(obs), may_answer(obs)
    missing = sorted(backends - set(answered))
    if missing:
        return Verdict(False, "unbalanced", f"{len(obs.results)} connections to "
                       f"{obs.destination.name} at {target_text(obs)} reached {dict(answered)} but "
                       f"never {', '.join(missing)}", {"answered_by": dict(answered)})
    return passed(obs, {"answered_by": dict(answered)})


def client_ip_kept(obs: Observation) -> Verdict:
    """SVC-SOURCE-IP: a backend on another node sees the client's pod IP."""
    failed = _all_connected(obs)
    if failed:
        return failed
    topo, src = obs.topology, obs.source
    remote = [r for r in obs.results if topo.endpoint(r["responder"]).node != src.node]
    if not remote:
        return Verdict(False, "unobserved", f"none of {len(obs.results)} connections reached a "
                       f"backend on another node: {dict(_answered_by(obs))}")
    for r in remote:
        if r["seen"] != src.ip:
            return Verdict(False, "nat", f"NAT: {r['responder']} saw the connection through "
                           f"{obs.destination.name} come from {r['seen']} ({topo.who_has(r['seen'])})"
                           f", expected {src.ip}, the pod IP of {src.pod}",
                           {"seen": r["seen"], "responder": r["responder"]})
    return passed(obs, {"seen": sorted({r["seen"] for r in remote}), "remote_answers": len(remote)})


def client_pod_ip_seen(obs: Observation) -> Verdict:
    """SVC-HOSTNET-ENDPOINTS: every connection reaches a backend (a hostNetwork pod, at its
    node's address) and every backend, on the client's node or another, sees the client's pod IP."""
    failed = _all_connected(obs)
    if failed:
        return failed
    topo, src = obs.topology, obs.source
    for r in obs.results:
        if r["seen"] != src.ip:
            return Verdict(False, "nat", f"NAT: {r['responder']} saw the connection through "
                           f"{obs.destination.name} come from {r['seen']} ({topo.who_has(r['seen'])})"
                           f", expected {src.ip}, the pod IP of {src.pod}",
                           {"seen": r["seen"], "responder": r["responder"]})
    return passed(obs, {"seen": sorted({r["seen"] for r in obs.results}),
                        "responders": sorted(set(_answered_by(obs)))})


def lands_on_itself(obs: Observation) -> Verdict:
    """SVC-HAIRPIN: a backend reaches its own Service, and some connections land on itself."""
    failed = _all_connected(obs)
    if failed:
        return failed
    answered = _answered_by(obs)
    if not answered[obs.source.name]:
        return Verdict(False, "unobserved", f"none of {len(obs.results)} connections from "
                       f"{obs.source.name} to its own Service landed on itself: {dict(answered)}",
                       {"answered_by": dict(answered)})
    return passed(obs, {"answered_by": dict(answered)})


def refused_promptly(obs: Observation) -> Verdict:
    """SVC-NO-ENDPOINTS: the connection is refused within a second, not left to time out."""
    for r in obs.results:
        harness = harness_error(obs, r)
        if harness:
            return harness
        if r["ok"]:
            return Verdict(False, "answered", f"{target_text(obs)} has no endpoints but "
                           f"{r['responder']} answered", {"responder": r["responder"]})
        if r["error"] != "refused":
            return Verdict(False, r["error"].split(":")[0], f"{obs.case.protocol} to "
                           f"{obs.destination.name} at {target_text(obs)}: {r['error']} after "
                           f"{r['latency_ms']:.0f} ms; a Service without endpoints must reject",
                           {"error": r["error"], "latency_ms": r["latency_ms"]})
        if r["latency_ms"] > PROMPT_MS * r.get("attempts", 1):
            return Verdict(False, "slow", f"refused only after {r['latency_ms']:.0f} ms",
                           {"latency_ms": r["latency_ms"]})
    return Verdict(True, "pass", "", {"error": "refused",
                                      "latency_ms": max(r["latency_ms"] for r in obs.results)})


def reached_a_backend(obs: Observation) -> Verdict:
    """SVC-NODEPORT and HOSTPORT: every connection is answered by a probe the port leads to."""
    failed = _all_connected(obs)
    return failed or passed(obs)


def real_client_ip_on_local_backend(obs: Observation) -> Verdict:
    """SVC-ETP-LOCAL: a local backend answers and sees the outside client's own address."""
    failed = _all_connected(obs)
    if failed:
        return failed
    topo, node = obs.topology, obs.destination.node
    for r in obs.results:
        if topo.endpoint(r["responder"]).node != node:
            return Verdict(False, "not-local", f"{target_text(obs)} forwarded to {r['responder']} "
                           f"on another node: externalTrafficPolicy Local must stay on {node}",
                           {"responder": r["responder"]})
        if r["seen"] != obs.source.ip:
            return Verdict(False, "nat", f"NAT: {r['responder']} saw {r['seen']} "
                           f"({topo.who_has(r['seen'])}), expected the client's own address "
                           f"{obs.source.ip}", {"seen": r["seen"], "responder": r["responder"]})
    return passed(obs)


def tls_handshake_completed(obs: Observation) -> Verdict:
    """POD-APISERVER: a TCP connection to the ``kubernetes`` Service's ClusterIP, port 443, and a
    TLS handshake over it (any in-cluster client of the API server starts so). When the backend
    could not read that ClusterIP, nothing about the network was learnt: an error."""
    if obs.destination.ip is None:
        return Verdict(False, "no address", "the ClusterIP of the kubernetes Service (default "
                       "namespace) could not be read from the API server; the network was not judged",
                       {}, harness=True)
    r = obs.result
    failed = harness_error(obs, r)
    if failed:
        return failed
    if not r["ok"]:
        return Verdict(False, r["error"].split(":")[0],
                       f"no TLS handshake from {obs.source.name} with the API server through the "
                       f"kubernetes Service at {target_text(obs)}: {r['error']} after "
                       f"{r.get('attempts', 0)} attempt(s) [{', '.join(r.get('errors', []))}]",
                       {"local": r.get("local"), "error": r.get("error"), "attempts": r.get("attempts")})
    return passed(obs, {"local": r.get("local"), "tls": r.get("tls"), "attempts": r.get("attempts"),
                        "error": None})


def only_local_backends(obs: Observation) -> Verdict:
    """SVC-ITP-LOCAL: the round's connections as expected (answered by a backend; or, from a
    node without a backend, no answer while the positive control to ``web`` gets one), and every
    answer from a backend on the client's own node."""
    from .dns_verdicts import answered_as_expected  # the rounds' verdict, which this one extends
    verdict = answered_as_expected(obs)
    if not verdict.ok:
        return verdict
    topo, src = obs.topology, obs.source
    for r in obs.results:
        c = r.get("connection") or {}
        if c.get("answered", True) and not c.get("control") and r.get("responder") and \
                topo.endpoint(r["responder"]).node != src.node:
            return Verdict(False, "not-local", f"{obs.case.protocol} from {src.name} through "
                           f"{obs.destination.name} ({c.get('label')}) was answered by "
                           f"{r['responder']} on another node: internalTrafficPolicy Local must "
                           f"stay on {src.node}", {"responder": r["responder"]})
    return verdict


def reached_through_api(obs: Observation) -> Verdict:
    """APISERVER-POD: the API server's pod proxy reached the destination's probe at its pod IP
    (the probe answered its /healthz with its own name)."""
    r, dst = obs.result, obs.destination
    failed = harness_error(obs, r)
    if failed:
        return failed
    if r.get("error") == "harness":
        return Verdict(False, "harness", r.get("harness_error", ""), harness=True)
    if not r["ok"]:
        return Verdict(False, r["error"].split(" ")[0].lower(),
                       f"the API server could not reach {dst.name} at its pod IP {dst.ip} through its "
                       f"pod proxy: {r['error']}: {r.get('detail')} after {r.get('attempts', 0)} "
                       f"attempt(s); the control plane cannot route to pod IPs",
                       {"error": r["error"], "detail": r.get("detail")})
    if r.get("responder") != dst.name:
        return Verdict(False, "wrong-responder", f"the pod proxy of {dst.name} was answered by "
                       f"{r.get('responder')}", {"responder": r.get("responder")})
    return passed(obs, {"responder": r["responder"], "attempts": r.get("attempts"), "error": None})


def held_then_released(obs: Observation) -> Verdict:
    """SVC-AFFINITY-TIMEOUT: each round's connections land on one backend (held within the
    timeout), and across rounds that come more than the timeout apart, more than one backend
    answers (released after it)."""
    from ..service_changes import AFFINITY_TIMEOUT, rounds_backends
    from .dns_verdicts import answered_as_expected  # the rounds' verdict, which this one extends
    verdict = answered_as_expected(obs)
    if not verdict.ok:
        return verdict
    by_round = rounds_backends(obs.case.id, {r["id"]: r for r in obs.results})
    backends = set().union(*by_round.values()) if by_round else set()
    if len(backends) < 2:
        return Verdict(False, "still-sticky", f"{len(by_round)} rounds of {obs.case.protocol} connections "
                       f"from {obs.source.name} to {obs.destination.name}, each more than "
                       f"{AFFINITY_TIMEOUT + 0.5:g} s after the one before, all landed on "
                       f"{', '.join(sorted(backends)) or 'nothing'}: the affinity outlived its "
                       f"timeoutSeconds {AFFINITY_TIMEOUT}", {"rounds": {k: sorted(v) for k, v in by_round.items()}})
    return verdict


def backend_followed(obs: Observation) -> Verdict:
    """SVC-UDP-BACKEND-CHANGE: from one fixed source port, datagrams reach the first backend
    within the stated time of its readiness, and the second within that time of the first's
    deletion (probing/cycle.py): a conntrack entry the proxy left behind keeps them from it."""
    r = obs.result
    what = f"udp from {obs.source.name} to {obs.destination.name} at {target_text(obs)}"
    if r.get("harness_error"):
        return Verdict(False, "harness", f"{what}: {r['harness_error']}; the network was not judged",
                       {"error": r.get("error")}, harness=True)
    cycle = r["cycle"]
    sent, pods, within = cycle["datagrams"], cycle["pods"], cycle["within"]
    lost = next((d for d in sent if d.get("error") == "probe unavailable"), None)
    if lost:
        return Verdict(False, "probe unavailable", f"the probe {obs.source.name} could not be asked to "
                       f"send at {lost['at']:g} s: {lost.get('detail')}", {}, harness=True)
    observed = {"pods": pods, "source_port": cycle["source_port"],
                "answered_by": dict(Counter(d["responder"] for d in sent if d["responder"])),
                "datagrams": sent}  # the timeline: when each was sent, who answered, or the error
    stream = f"{what}, one datagram every {cycle['interval']:g} s from source port {cycle['source_port']}"
    first = pods["first"]
    silent = _silent(sent, first["ready_at"], within, what, "the first backend was Ready", observed)
    if silent:
        return silent
    if not _answered(sent, first, first["ready_at"] + within):
        kind, why = _why(sent, first["ready_at"], within, after="appeared")
        return Verdict(False, kind, f"{stream}: the first backend {first['name']} ({first['ip']}) was Ready "
                       f"at {first['ready_at']:g} s, and no datagram reached it in the {within:g} s after "
                       f"({_outcomes(sent, first['ready_at'], within)}){why}", observed)
    second = pods.get("second")
    if second is None or first.get("deleted_at") is None:
        return Verdict(False, "harness", f"{what}: the second backend was not made; the network was "
                       "not judged", observed, harness=True)
    silent = _silent(sent, first["deleted_at"], within, what, "the first backend was deleted", observed)
    if silent:
        return silent
    if not _answered(sent, second, first["deleted_at"] + within):
        kind, why = _why(sent, first["deleted_at"], within, after="was deleted", old=_responder_of(first))
        return Verdict(False, kind, f"{stream}: after {first['name']} was deleted at {first['deleted_at']:g} s, "
                       f"no datagram reached the new backend {second['name']} ({second['ip']}) in "
                       f"{within:g} s ({_outcomes(sent, first['deleted_at'], within)}){why}", observed)
    return Verdict(True, "pass", "", observed)


def _why(sent: list[dict], start: float, within: float, after: str, old: str | None = None) -> tuple[str, str]:
    """What the datagrams of a window say went wrong: every one refused (the proxy still rejects
    as for a Service without endpoints: the change never reached its rules), every one lost or
    still answered by the deleted backend ``old`` (the flow kept a conntrack entry from before the
    backend {after}, or a drop on the way; a datagram sent as the deletion ended may still have
    reached the old pod), or else."""
    window = [d for d in sent if start <= d["at"] <= start + within]
    unanswered = {d.get("error") for d in window if not d["responder"]}
    others = [d for d in window if d["responder"] and d["responder"] != old]
    if window and unanswered == {"refused"} and not any(d["responder"] for d in window):
        return "not-programmed", ": the proxy kept rejecting them, as for a Service without endpoints"
    if window and unanswered == {"timeout"} and not others:
        return "stale-entry", (f": every one was lost{' or answered by the deleted backend' if old else ''}, "
                               f"as when the flow keeps a conntrack entry from before the backend {after} "
                               f"(or a drop on the way)")
    return "not-reached", ""


def _silent(sent: list[dict], start: float, within: float, what: str, event: str,
            observed: dict) -> Verdict | None:
    """A window in which the client sent nothing (its thread starved, its probe slow to answer)
    says nothing about the network: the item is the harness's error, never a failure."""
    if any(start <= d["at"] <= start + within for d in sent):
        return None
    return Verdict(False, "harness", f"{what}: the client sent no datagram in the {within:g} s after "
                   f"{event} (at {start:g} s); the network was not judged", observed, harness=True)


def _responder_of(pod: dict) -> str:
    """The name a cycled pod's probe answers with: ``<node>/<pod name>``."""
    return f"{pod['node']}/{pod['name']}"


def _answered(sent: list[dict], pod: dict, by: float) -> bool:
    return any(d["responder"] == _responder_of(pod) and d["at"] <= by for d in sent)


def _outcomes(sent: list[dict], start: float, within: float) -> str:
    """What became of the datagrams of a window: '28 timeout, 2 answered by node-1/x'."""
    counted = Counter(f"answered by {d['responder']}" if d["responder"] else (d.get("error") or "no answer")
                      for d in sent if start <= d["at"] <= start + within)
    return ", ".join(f"{n} {what}" for what, n in counted.most_common()) or "none sent"

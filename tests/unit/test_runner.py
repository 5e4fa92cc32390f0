"""The probing engine batches: control requests grow with probes, not with pairs."""
from netconform.checks import Check, pod_pairs
from netconform.probing.channel import ProbeChannel, ProbeUnavailable
from netconform.probing.runner import ProbeSettings, Runner
from netconform.probing.verdicts import reached_from_pod_ip

from .fakes import topology


class EchoingProbes:
    """Channels whose probe 'connects' to every target and reports the sender's pod IP as seen."""

    def __init__(self, topo, dead=()):
        self.topo, self.dead, self.calls, self.bodies = topo, set(dead), [], []

    def __call__(self, endpoint):
        outer = self

        class Channel(ProbeChannel):
            def call(self, path, body=None, timeout=10.0):
                outer.calls.append((endpoint.name, path))
                outer.bodies.append(body)
                if endpoint.name in outer.dead:
                    raise ProbeUnavailable(f"{endpoint.name}: connection refused")
                if path == "self":
                    return {"name": endpoint.name, "interfaces": [], "routes": []}
                if path == "icmp-seen":
                    return {"seen": {t: "10.0.0.1" for t in body["tokens"]}}
                by_ip = {e.ip: e.name for e in outer.topo.endpoints}
                return {"results": [
                    {"id": t["id"], "ok": True, "seen": endpoint.ip, "local": endpoint.ip,
                     "responder": by_ip[t["ip"]], "attempts": 1, "errors": [], "error": None}
                    for t in body["targets"]]}

        return Channel(endpoint.name)


CROSS = Check("POD-POD-CROSS", pod_pairs(False), ("tcp",), reached_from_pod_ip)


def requests_for(nodes, pods):
    topo = topology(nodes, pods)
    probes = EchoingProbes(topo)
    runner = Runner(topo, probes, ProbeSettings())
    results = runner.batch(CROSS, "tcp")
    assert len(results) == nodes * pods * (nodes - 1) * pods and all(r["ok"] for r in results.values())
    timed = runner.batch_seconds["POD-POD-CROSS"]
    runner.batch(CROSS, "tcp")  # a second item of the same batch asks nobody
    assert list(runner.batch_seconds) == ["POD-POD-CROSS"] and runner.batch_seconds["POD-POD-CROSS"] == timed > 0
    return len(probes.calls), len(results)


def test_one_request_per_source_probe_whatever_the_number_of_pairs():
    small_requests, small_pairs = requests_for(3, 2)
    big_requests, big_pairs = requests_for(6, 4)
    assert (small_requests, big_requests) == (6, 24)  # pods, not pairs
    assert big_pairs / small_pairs > 2 * big_requests / small_requests


def test_a_dead_probe_fails_its_own_pairs_with_the_reason_and_spares_the_others():
    topo = topology(2, 1)
    runner = Runner(topo, EchoingProbes(topo, dead={"node-1/probe-a"}))
    results = runner.batch(CROSS, "tcp")
    dead = results["tcp/ipv4:node-1/probe-a->node-2/probe-a"]
    assert not dead["ok"] and dead["error"] == "probe unavailable"
    assert "connection refused" in dead["detail"]
    assert results["tcp/ipv4:node-2/probe-a->node-1/probe-a"]["ok"]


def test_icmp_sources_come_from_the_receivers_capture():
    topo = topology(2, 1)
    probes = EchoingProbes(topo)
    icmp = Check("POD-POD-CROSS", pod_pairs(False), ("icmp",), reached_from_pod_ip)
    results = Runner(topo, probes).batch(icmp, "icmp")
    assert {r["seen"] for r in results.values()} == {"10.0.0.1"}
    assert sorted(p for _, p in probes.calls) == ["icmp-seen", "icmp-seen", "probe", "probe"]


class LaggingCapture(EchoingProbes):
    """Receivers whose capture logs a packet only on the n-th time they are asked (never: 0)."""

    def __init__(self, topo, logged_on_ask: int):
        super().__init__(topo)
        self.logged_on_ask, self.asks = logged_on_ask, 0

    def __call__(self, endpoint):
        channel, outer = super().__call__(endpoint), self

        class Lagging(type(channel)):
            def call(self, path, body=None, timeout=10.0):
                answer = channel.call(path, body, timeout)
                if path == "icmp-seen":
                    outer.asks += 1
                    if not outer.logged_on_ask or outer.asks < outer.logged_on_ask:
                        return {"seen": {}}
                return answer

        return Lagging(endpoint.name)


def test_a_lagging_capture_is_asked_again_and_a_missing_record_is_the_harness_s(monkeypatch):
    """Under load the receiver's capture (a Python thread) may not have logged an echo that came
    back yet: it is asked again; a record still missing is an error of the harness, not NAT."""
    from netconform.probing import runner as runner_module
    monkeypatch.setattr(runner_module, "ICMP_SEEN_PAUSE", 0.01)
    topo = topology(2, 1)
    icmp = Check("POD-POD-CROSS", pod_pairs(False), ("icmp",), reached_from_pod_ip)
    late = Runner(topo, LaggingCapture(topo, logged_on_ask=3)).batch(icmp, "icmp")
    assert {r["seen"] for r in late.values()} == {"10.0.0.1"}
    never = Runner(topo, LaggingCapture(topo, logged_on_ask=0)).batch(icmp, "icmp")
    assert all("had not logged it" in r["capture_error"] for r in never.values())


def test_a_check_that_judges_anothers_connections_makes_none_of_its_own():
    """SVC-SOURCE-IP looks at SVC-CLUSTERIP's connections for the client address seen: one batch."""
    from netconform.services import add_services
    from suites.test_services import test_svc_clusterip, test_svc_source_ip

    plain = topology(3, 2)
    topo = add_services(plain, outside=False).with_addresses(
        {e.pod: e.ip for e in plain.endpoints if e.kind != "host"}, {n.name: n.ip for n in plain.nodes},
        {"web": "10.96.0.10"})
    clusterip, source_ip = test_svc_clusterip.netconform_check, test_svc_source_ip.netconform_check
    assert source_ip.judges_connections_of is clusterip
    assert (source_ip.pairs(topo), source_ip.protocols) == (clusterip.pairs(topo), clusterip.protocols)
    assert source_ip.connections(topo, topo.endpoint("svc/web")) == clusterip.connections(topo, topo.endpoint("svc/web")) > 1
    probes = EchoingProbes(topo)
    runner = Runner(topo, probes)
    case = source_ip.cases(topo, "tcp")[0]
    judged = runner.observe(source_ip, case).results
    asked = len([c for c in probes.calls if c[1] == "probe"])
    made = runner.observe(clusterip, next(c for c in clusterip.cases(topo, "tcp") if c.id == case.id)).results
    assert [c for c in probes.calls if c[1] == "probe"][asked:] == []  # SVC-CLUSTERIP's own batch, made once
    assert judged == made and len(made) == clusterip.connections(topo, topo.endpoint("svc/web"))
    assert list(runner.batch_seconds) == ["SVC-CLUSTERIP"]


def test_a_targets_requirement_is_read_from_its_token_whatever_its_id_holds():
    """service_change_flaps is counted per requirement: target ids hold ':' and '[' of their own."""
    from netconform.probing.runner import _requirement_of
    target = {"id": "udp/ipv4:node-1/probe-a->svc/protocols@tcp-removed/clusterip",
              "token": "ab12cd34:SVC-PORT-PROTOCOLS[udp/ipv4:node-1/probe-a->svc/protocols@tcp-removed/clusterip]"}
    assert _requirement_of(target) == "SVC-PORT-PROTOCOLS"

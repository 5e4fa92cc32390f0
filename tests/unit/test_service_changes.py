"""SVC-TYPE-CHANGE on a stand-in cluster: the rounds it asks as the Service changes type
(netconform/service_changes.py), and the verdict on what each round got."""
import dataclasses

import pytest

from netconform.checks import DnsNames
from netconform.probing.runner import ProbeSettings, Runner
from netconform.service_changes import node_port, type_change_rounds
from netconform.services import add_services

from .fakes import StandInChannel, topology

SETTLE = ProbeSettings(settle=2.0)  # what a stand-in that never follows a change costs per round
BASE = topology(nodes=2, standalone=True)
TOPO = dataclasses.replace(
    add_services(BASE, outside=False).with_addresses(
        {e.pod: e.ip for e in BASE.endpoints if e.pod}, {n.name: n.ip for n in BASE.nodes},
        {"web": "10.96.0.20", "itp-local": "10.96.0.30"}),
    meta={"namespace": "netconform-x", "kubernetes_service_ip": "10.96.0.1"})
BACKENDS = TOPO.services["retyped"].backends


class RetypedStandIn:
    """The API server's and the network's part for the ``retyped`` Service: the type a patch
    gives it (with a ClusterIP and nodePorts as the API would allocate), DNS answers that follow
    it, and connections that a backend answers, unless ``broken`` says which do not."""

    def __init__(self, broken: str | None = None, refuse: str | None = None):
        self.spec = {"type": "ExternalName", "externalName": "outside.netconform.test",
                     "ports": [{"name": "tcp", "port": 80, "protocol": "TCP"},
                               {"name": "udp", "port": 80, "protocol": "UDP"}]}
        self.broken, self.refuse, self.patches = broken, refuse, []
        self.allocated = 0

    def services(self, name, patch):
        assert name == "retyped"
        if patch:
            self.patches.append(patch["spec"]["type"])
            if self.refuse == patch["spec"]["type"]:
                raise RuntimeError("the API server said no")
            kind = patch["spec"]["type"]
            self.spec = {**self.spec, **{k: v for k, v in patch["spec"].items() if v is not None}}
            self.spec.pop("externalName", None) if kind != "ExternalName" else None
            self.spec.pop("clusterIP", None)
            self.spec["ports"] = [{k: v for k, v in p.items() if k != "nodePort"} for p in self.spec["ports"]]
            if kind != "ExternalName":
                self.allocated += 1
                self.spec["clusterIP"] = f"10.96.9.{self.allocated}"
            if kind == "NodePort":
                for i, p in enumerate(self.spec["ports"]):
                    p["nodePort"] = 31000 + i
        return dict(self.spec)

    def channel(self, endpoint):
        return StandInChannel(endpoint, self.probe)

    def probe(self, endpoint, body):
        stand_in = self
        return {"results": [stand_in.answer(t) for t in body["targets"]]}

    def answer(self, target):
        spec = self.spec
        base = {"id": target["id"], "ok": True, "error": None, "attempts": 1, "errors": []}
        if "dns" not in target:  # a connection to a node's nodePort
            if self.broken == "nodeport":
                return {**base, "ok": False, "error": "refused", "errors": ["refused"]}
            return {**base, "responder": BACKENDS[0]}
        external = spec["type"] == "ExternalName"
        answer = f"{spec['externalName']}." if external else spec["clusterIP"]
        if target["dns"].get("connect"):
            if self.broken == spec["type"]:
                return {**base, "ok": False, "error": f"error: retyped resolved to {answer}, but "
                        f"{target['proto']} to it failed: timeout", "errors": ["timeout"]}
            base["responder"] = BACKENDS[0]
        return {**base, "rcode": "NOERROR", "answers": [answer]}


def judge(stand_in, protocol="tcp"):
    from suites.test_services import test_svc_type_change
    check = test_svc_type_change.netconform_check
    runner = Runner(TOPO, stand_in.channel, SETTLE, services=stand_in.services)
    obs = runner.observe(check, check.cases(TOPO, protocol)[0])
    return obs, check.verdict(obs)


def test_the_service_goes_through_every_type_change_once_and_each_state_is_asked():
    stand_in = RetypedStandIn()
    obs, verdict = judge(stand_in)
    assert verdict.ok, verdict.reason
    assert stand_in.patches == ["ClusterIP", "ExternalName", "NodePort", "ExternalName", "ExternalName"]
    asked = {r["id"].split("@")[1]: r.get("query", r.get("connection")) for r in obs.results}
    assert list(asked) == ["initial/short", "initial/fqdn", "clusterip/short", "clusterip/fqdn",
                           "externalname/short", "externalname/fqdn", "nodeport/short", "nodeport/fqdn",
                           "nodeport/node-port", "externalname-again/short", "externalname-again/fqdn"]
    assert asked["initial/short"]["type"] == "CNAME" and asked["clusterip/short"]["connect"] == 80
    assert tuple(asked["clusterip/short"]["expect"]) == ("10.96.9.1",)
    assert tuple(asked["nodeport/short"]["expect"]) == ("10.96.9.2",)
    source = TOPO.endpoint(obs.case.source)
    assert asked["nodeport/node-port"] == {"label": "node-port", "ip": TOPO.host_of(source.node).ip, "port": 31000,
                                           "answered": True, "why_unanswered": "", "sticky": None, "control": False}


def test_the_nodeport_of_the_items_protocol_is_the_one_connected_to():
    assert node_port({"ports": [{"protocol": "TCP", "nodePort": 31000},
                                {"protocol": "UDP", "nodePort": 31001}]}, "udp") == 31001
    obs, verdict = judge(RetypedStandIn(), "udp")
    assert verdict.ok and [r["connection"]["port"] for r in obs.results if "connection" in r] == [31001]


@pytest.mark.parametrize("broken, kind, words", [
    ("ClusterIP", "timeout", "A retyped (with the search list) over tcp"),
    ("NodePort", "timeout", "A retyped (with the search list) over tcp"),
    ("nodeport", "refused", "to 172.18.0.2:31000 (node-port, round nodeport): refused"),
])
def test_a_new_clusterip_or_nodeport_that_carries_nothing_fails_saying_which(broken, kind, words):
    obs, verdict = judge(RetypedStandIn(broken=broken))
    assert (verdict.ok, verdict.harness, verdict.kind) == (False, False, kind)
    assert words in verdict.reason


def test_an_item_that_failed_a_round_is_asked_no_further_rounds_and_the_service_is_put_back():
    """A later round cannot undo a failure, and each would wait out the settle time again."""
    stand_in = RetypedStandIn(broken="ClusterIP")
    obs, verdict = judge(stand_in)
    assert (verdict.ok, verdict.harness, verdict.kind) == (False, False, "timeout")
    assert {r["id"].split("@")[1].split("/")[0] for r in obs.results} == {"initial", "clusterip"}
    assert stand_in.patches == ["ClusterIP", "ExternalName"] and stand_in.spec["type"] == "ExternalName"


def test_a_wrong_responder_on_the_nodeport_fails():
    stand_in = RetypedStandIn()
    answer = stand_in.answer
    stand_in.answer = lambda t: {**answer(t), "responder": "node-2/probe-b"} if "dns" not in t else answer(t)
    obs, verdict = judge(stand_in)
    assert (verdict.ok, verdict.kind) == (False, "wrong-responder") and "node-2/probe-b" in verdict.reason


def test_a_type_change_the_api_refuses_is_a_harness_error_and_the_service_is_put_back():
    stand_in = RetypedStandIn(refuse="NodePort")
    obs, verdict = judge(stand_in)
    assert (verdict.ok, verdict.harness) == (False, True) and "the API server said no" in verdict.reason
    assert stand_in.patches[-1] == "ExternalName" and stand_in.spec["type"] == "ExternalName"


def test_an_externalname_round_asks_only_for_the_cname():
    asks = type_change_rounds(TOPO, TOPO.endpoint("node-1/probe-a"), TOPO.endpoint("svc/retyped"),
                              DnsNames("netconform-x", "cluster.local", "10.96.0.1"),
                              {"type": "ExternalName", "externalName": "elsewhere.test"}, "tcp")
    assert [(a.label, a.type, a.expect) for a in asks] == [("short", "CNAME", ("elsewhere.test.",)),
                                                           ("fqdn", "CNAME", ("elsewhere.test.",))]


class ProtocolsStandIn:
    """The ``protocols`` Service as the API server keeps it and a proxy that follows its ports
    (or, ``frozen``, keeps serving what it served first)."""

    def __init__(self, frozen: bool = False, control_broken: bool = False):
        self.ports = [{"name": "tcp", "port": 80, "protocol": "TCP"}, {"name": "udp", "port": 80, "protocol": "UDP"}]
        self.frozen, self.control_broken, self.patches, self.targets = frozen, control_broken, [], []

    def services(self, name, patch):
        assert name == "protocols"
        if patch:
            self.patches.append(sorted(p["protocol"] for p in patch["spec"]["ports"]))
            self.ports = patch["spec"]["ports"]
        return {"type": "ClusterIP", "clusterIP": "10.96.5.5", "ports": self.ports}

    def channel(self, endpoint):
        return StandInChannel(endpoint, self.probe)

    def probe(self, endpoint, body):
        stand_in = self
        stand_in.targets += body["targets"]
        served = {"TCP", "UDP"} if stand_in.frozen else {p["protocol"] for p in stand_in.ports}
        web = TOPO.endpoint("svc/web").ip  # the control: web always has both
        return {"results": [
            {"id": t["id"], "ok": True, "error": None, "attempts": 1, "errors": [], "responder": BACKENDS[0]}
            if (t["ip"] != web and t["proto"].upper() in served) or
            (t["ip"] == web and not stand_in.control_broken) else
            {"id": t["id"], "ok": False, "error": "timeout", "attempts": 2, "errors": ["timeout", "timeout"]}
            for t in body["targets"]]}


def judge_protocols(stand_in, protocol):
    from suites.test_services import test_svc_port_protocols
    check = test_svc_port_protocols.netconform_check
    runner = Runner(TOPO, stand_in.channel, SETTLE, services=stand_in.services)
    obs = runner.observe(check, check.cases(TOPO, protocol)[0])
    return obs, check.verdict(obs)


@pytest.mark.parametrize("protocol, asked", [
    ("tcp", {"initial/clusterip": True, "udp-removed/clusterip": True, "tcp-removed/clusterip": False,
             "tcp-removed/control": True}),
    ("udp", {"initial/clusterip": True, "udp-removed/clusterip": False, "udp-removed/control": True,
             "tcp-removed/clusterip": True})])
def test_each_protocol_reaches_a_backend_while_the_service_has_it_and_gets_no_answer_once_removed(
        protocol, asked):
    stand_in = ProtocolsStandIn()
    obs, verdict = judge_protocols(stand_in, protocol)
    assert (verdict.ok, verdict.kind) == (True, "pass"), verdict.reason  # unanswered twice: no retry
    assert {r["id"].split("@")[1]: r["connection"]["answered"] for r in obs.results} == asked
    assert stand_in.patches == [["TCP"], ["UDP"], ["TCP", "UDP"]]  # the last puts it back
    control = next(r["connection"] for r in obs.results if r["connection"]["control"])
    assert control["ip"] == TOPO.endpoint("svc/web").ip
    unanswered = [t for t in stand_in.targets if t.get("unanswered") and t["id"].startswith(obs.case.id)]
    assert len(unanswered) == 1 and unanswered[0]["settle"] == SETTLE.settle


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_a_removed_port_whose_positive_control_fails_too_is_an_error_not_a_pass(protocol):
    obs, verdict = judge_protocols(ProtocolsStandIn(control_broken=True), protocol)
    assert (verdict.ok, verdict.harness, verdict.kind) == (False, True, "control failed")
    assert "proves nothing" in verdict.reason and f"(control, round {protocol}-removed)" in verdict.reason


def test_a_connection_that_never_followed_a_change_says_its_round_and_how_long_it_was_waited_for():
    """After a change the probe tries every 0.25 s for the settle time before its counted attempts:
    a failure says which round it was and that those tries went unanswered too (a cluster slow to
    follow the change reads apart from one whose change broke the path at once)."""
    from types import SimpleNamespace
    from netconform.probing.dns_verdicts import _connection_failed
    obs = SimpleNamespace(case=SimpleNamespace(protocol="udp"), source=SimpleNamespace(name="node-6/probe-b"))
    r = {"id": "SVC-PORT-PROTOCOLS[udp/ipv4:node-6/probe-b->svc/protocols]@tcp-removed/clusterip", "ok": False,
         "error": "refused", "errors": ["refused", "refused"], "attempts": 2, "settled": 80,
         "connection": {"label": "clusterip", "ip": "10.96.0.9", "port": 80, "answered": True}}
    verdict = _connection_failed(obs, r)
    assert verdict.kind == "refused" and verdict.observed["round"] == "tcp-removed"
    assert verdict.reason == ("udp from node-6/probe-b to 10.96.0.9:80 (clusterip, round tcp-removed): refused "
                              "after 2 attempt(s) [refused, refused]; before them, 80 tries while the cluster "
                              "had time to follow the change went unanswered")
    assert verdict.observed["settled"] == 80


@pytest.mark.parametrize("settled, flapped, steady, said", [
    (40, 12, False, "went unanswered; it flapped: 12 time(s) a try that behaved was followed by one that did "
                    "not, and it never behaved on every try for two sync periods on end"),
    (0, 1, True, "[refused, refused]; it flapped: 1 time(s) a try that behaved was followed by one that did not"),
])
def test_a_connection_that_flapped_says_so_and_whether_it_ever_steadied(settled, flapped, steady, said):
    from types import SimpleNamespace
    from netconform.probing.dns_verdicts import _connection_failed
    obs = SimpleNamespace(case=SimpleNamespace(protocol="udp"), source=SimpleNamespace(name="node-6/probe-b"))
    r = {"id": "SVC-PORT-PROTOCOLS[udp/ipv4:node-6/probe-b->svc/protocols]@tcp-removed/clusterip", "ok": False,
         "error": "refused", "errors": ["refused", "refused"], "attempts": 2, "settled": settled, "flapped": flapped,
         "steady": steady, "connection": {"label": "clusterip", "ip": "10.96.0.9", "port": 80, "answered": True}}
    verdict = _connection_failed(obs, r)
    assert verdict.reason.endswith(said), verdict.reason
    assert (verdict.observed["flapped"], verdict.observed["steady"]) == (flapped, steady)


def test_a_removed_protocol_that_is_still_answered_fails():
    obs, verdict = judge_protocols(ProtocolsStandIn(frozen=True), "udp")
    assert (verdict.ok, verdict.harness, verdict.kind) == (False, False, "still-answered")
    assert "no longer has that port over udp" in verdict.reason


class AffinityStandIn:
    """``web-affinity`` as the API server keeps it and a proxy that follows its affinity after
    ``lag`` rounds of connections (each round the runner asks is one request per source), or
    never (``broken``): with ClientIP every connection of a source lands on one backend, without
    it they go round the backends."""

    def __init__(self, lag: int = 0, broken: bool = False, dead_port: int | None = None):
        self.spec = {"type": "NodePort", "clusterIP": "10.96.6.6", "sessionAffinity": "ClientIP",
                     "ports": [{"name": "tcp", "port": 80, "protocol": "TCP", "nodePort": 30082},
                               {"name": "udp", "port": 80, "protocol": "UDP", "nodePort": 30082}]}
        self.applied, self.lag, self.broken, self.asked_since = "ClientIP", lag, broken, 0
        self.bodies, self.turn = [], 0
        self.dead_port = dead_port  # a port that never answers (a NodePort the proxy left out)

    def services(self, name, patch):
        assert name == "web-affinity"
        if patch:
            self.spec = {**self.spec, **{k: v for k, v in patch["spec"].items() if v is not None}}
            self.asked_since = 0
        return dict(self.spec)

    def channel(self, endpoint):
        return StandInChannel(endpoint, self.probe)

    def probe(self, endpoint, body):
        stand_in = self
        stand_in.bodies.append(body)
        if stand_in.asked_since >= stand_in.lag and not stand_in.broken:
            stand_in.applied = stand_in.spec["sessionAffinity"]
        stand_in.asked_since += 1
        results = []
        for t in body["targets"]:
            stand_in.turn += 1
            if t.get("port") == stand_in.dead_port:
                results.append({"id": t["id"], "ok": False, "error": "timeout", "attempts": 1,
                                "errors": ["timeout"], "responder": None})
                continue
            backend = BACKENDS[0] if stand_in.applied == "ClientIP" else BACKENDS[stand_in.turn % len(BACKENDS)]
            results.append({"id": t["id"], "ok": True, "error": None, "attempts": 1, "errors": [],
                            "responder": backend})
        return {"results": results}


def judge_affinity(stand_in, protocol="tcp"):
    from suites.test_services import test_svc_affinity
    check = test_svc_affinity.netconform_check
    runner = Runner(TOPO, stand_in.channel, SETTLE, services=stand_in.services)
    obs = runner.observe(check, check.cases(TOPO, protocol)[0])
    return obs, check.verdict(obs)


def test_affinity_holds_through_clusterip_and_nodeport_goes_when_switched_off_and_comes_back():
    stand_in = AffinityStandIn()
    obs, verdict = judge_affinity(stand_in)
    assert verdict.ok, verdict.reason
    rounds = {r["id"].split("@")[1].split("#")[0] for r in obs.results}
    assert rounds == {f"{r}/{a}" for r in ("initial", "none", "clientip-again") for a in ("clusterip", "nodeport")}
    assert obs.results[0]["connection"]["sticky"] is True
    source = TOPO.endpoint(obs.case.source)
    nodeport = {(r["connection"]["ip"], r["connection"]["port"]) for r in obs.results if "nodeport" in r["id"]}
    assert nodeport == {(TOPO.host_of(source.node).ip, 30082)}
    first = next(b for b in stand_in.bodies if b["targets"][0]["id"].startswith(obs.case.id))
    assert [t["id"].split("@")[1] for t in first["targets"] if t["id"].startswith(obs.case.id)] == \
        ["initial/clusterip#0", "initial/nodeport#0"]  # each address's first connection alone
    assert stand_in.spec["sessionAffinity"] == "ClientIP"  # put back


def test_a_proxy_that_follows_the_switch_a_little_late_is_asked_again_and_passes():
    obs, verdict = judge_affinity(AffinityStandIn(lag=2))
    assert verdict.ok, verdict.reason


def test_a_proxy_that_never_switches_the_affinity_off_fails_as_still_sticky():
    obs, verdict = judge_affinity(AffinityStandIn(broken=True))
    assert (verdict.ok, verdict.harness, verdict.kind) == (False, False, "still-sticky")
    assert "(none)" in verdict.reason and "sessionAffinity None" in verdict.reason


def test_a_client_that_lands_on_two_backends_with_clientip_fails():
    stand_in = AffinityStandIn()
    stand_in.applied = "None"  # the proxy ignores ClientIP from the start
    stand_in.broken = True
    obs, verdict = judge_affinity(stand_in)
    assert (verdict.ok, verdict.kind) == (False, "affinity") and "(initial)" in verdict.reason


def test_an_address_whose_first_affinity_connection_fails_gets_no_more_and_fails_on_that_one():
    stand_in = AffinityStandIn(dead_port=30082)
    obs, verdict = judge_affinity(stand_in)
    assert (verdict.ok, verdict.harness, verdict.kind) == (False, False, "timeout"), verdict.reason
    assert "nodeport#0" in verdict.reason  # the first connection, not one of those never made
    sent = [t["id"] for b in stand_in.bodies for t in b["targets"]
            if t["id"].startswith(obs.case.id) and "nodeport" in t["id"]]
    # the first only, never asked again; and no later round: the item failed in the first
    assert sent == [f"{obs.case.id}@initial/nodeport#0"]
    later = [r for r in obs.results if "nodeport" in r["id"] and not r["id"].endswith("#0")]
    assert later and all(r["error"].startswith("not made: ") and r["attempts"] == 0 for r in later)
    assert later[0]["error"] == f"not made: {obs.case.id}@initial/nodeport#0 failed"


class ItpStandIn:
    """kube-proxy's part for ``itp-local`` (internalTrafficPolicy Local, one backend on node-1):
    a client on node-1 reaches it, one elsewhere gets no answer, unless the proxy ``ignores`` the
    policy; ``web`` (the positive control) always answers, unless ``control_broken``."""

    def __init__(self, ignores: bool = False, control_broken: bool = False):
        self.ignores, self.control_broken = ignores, control_broken

    def channel(self, endpoint):
        return StandInChannel(endpoint, self.probe)

    def probe(self, endpoint, body):
        stand_in = self
        backend = TOPO.services["itp-local"].backends[0]
        results = []
        for t in body["targets"]:
            to_web = t["ip"] == TOPO.endpoint("svc/web").ip
            answered = not stand_in.control_broken if to_web else \
                (endpoint.node == TOPO.endpoint(backend).node or stand_in.ignores)
            results.append({"id": t["id"], "ok": True, "error": None, "attempts": 1, "errors": [],
                            "responder": BACKENDS[0] if to_web else backend} if answered else
                           {"id": t["id"], "ok": False, "error": "timeout", "attempts": 1,
                            "errors": ["timeout"]})
        return {"results": results}


def judge_itp(stand_in, node):
    from suites.test_services import test_svc_itp_local
    check = test_svc_itp_local.netconform_check
    runner = Runner(TOPO, stand_in.channel, SETTLE)  # no Service is changed: no changer needed
    case = next(c for c in check.cases(TOPO, "tcp") if c.source.startswith(f"{node}/"))
    obs = runner.observe(check, case)
    return obs, check.verdict(obs)


def test_itp_local_is_reached_on_the_backends_node_and_silent_elsewhere_with_its_control():
    assert TOPO.endpoint(TOPO.services["itp-local"].backends[0]).node == "node-1"
    obs, verdict = judge_itp(ItpStandIn(), "node-1")
    assert verdict.ok and len(obs.results) == 5, verdict.reason
    obs, verdict = judge_itp(ItpStandIn(), "node-2")
    assert verdict.ok, verdict.reason
    assert sorted(r["id"].split("@")[1] for r in obs.results) == ["initial/control", "initial/no-local"]


def test_itp_local_answered_from_a_node_without_a_backend_fails_and_a_failed_control_is_an_error():
    obs, verdict = judge_itp(ItpStandIn(ignores=True), "node-2")
    assert (verdict.ok, verdict.kind) == (False, "still-answered")
    assert "node-2 has no backend of the Service, whose internalTrafficPolicy is Local" in verdict.reason
    obs, verdict = judge_itp(ItpStandIn(control_broken=True), "node-2")
    assert (verdict.ok, verdict.harness, verdict.kind) == (False, True, "control failed")


class ExpiringStandIn:
    """``affinity-timeout``: each round's connections land on one backend; from round ``moves_at``
    on (never: None) a round lands on the next backend, as an expired affinity lets it."""

    def __init__(self, moves_at: int | None = 1):
        self.moves_at, self.rounds, self.reads = moves_at, [], 0

    def services(self, name, patch):
        assert name == "affinity-timeout" and patch is None  # rounds only wait, nothing is changed
        self.reads += 1
        return {}

    def channel(self, endpoint):
        return StandInChannel(endpoint, self.probe)

    def probe(self, endpoint, body):
        stand_in = self
        stand_in.rounds.append(body)
        moved = stand_in.moves_at is not None and stand_in.reads > stand_in.moves_at
        backend = BACKENDS[1] if moved else BACKENDS[0]
        return {"results": [{"id": t["id"], "ok": True, "error": None, "attempts": 1, "errors": [],
                             "responder": backend} for t in body["targets"]]}


def judge_expiring(stand_in):
    from netconform.service_changes import AFFINITY_EXPIRY_CHANGES
    from suites.test_services import test_svc_affinity_timeout
    check = dataclasses.replace(test_svc_affinity_timeout.netconform_check, changes=tuple(
        dataclasses.replace(c, pause=0.0) for c in AFFINITY_EXPIRY_CHANGES))  # no real waiting
    runner = Runner(TOPO, stand_in.channel, SETTLE, services=stand_in.services)
    obs = runner.observe(check, check.cases(TOPO, "tcp")[0])
    return obs, check.verdict(obs)


def test_an_affinity_released_after_its_timeout_passes_and_asks_no_more_rounds():
    stand_in = ExpiringStandIn(moves_at=2)
    obs, verdict = judge_expiring(stand_in)
    assert verdict.ok, verdict.reason
    assert sorted({r["id"].split("@")[1].split("/")[0] for r in obs.results}) == ["expired-1", "expired-2", "initial"]


def test_an_affinity_that_outlives_its_timeout_fails_after_every_round_as_still_sticky():
    obs, verdict = judge_expiring(ExpiringStandIn(moves_at=None))
    assert (verdict.ok, verdict.kind) == (False, "still-sticky")
    assert verdict.reason.startswith("13 rounds of tcp connections") and "timeoutSeconds 1" in verdict.reason

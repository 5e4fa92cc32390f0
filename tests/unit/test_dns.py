"""The DNS rows on hand-made observations: the questions each row asks (netconform/dns.py), the
verdict that compares their answers (probing/dns_verdicts.py), and where the names come from."""
import dataclasses

import pytest

from netconform import dns
from netconform.checks import Case, Check, DnsNames, pods_to_service
from netconform.probing import dns_verdicts
from netconform.probing.runner import CHANGE_SETTLE, Runner
from netconform.services import add_services
from netconform.topology import SERVICE

from .fakes import FakeRunner, StandInChannel, observation, self_report, topology

NAMES = DnsNames("netconform-x", "cluster.local", "10.96.0.1")
TOPO = add_services(topology(nodes=3), outside=False).with_addresses(
    {e.pod: e.ip for e in topology(nodes=3).endpoints if e.pod},
    {n.name: n.ip for n in topology(nodes=3).nodes},
    {"web": "10.96.0.20", "web-affinity": "10.96.0.21", "web-local": "10.96.0.22", "empty": "10.96.0.23",
     "multiport": "10.96.0.24", "manual": "10.96.0.25", "protocols": "10.96.0.26", "hostnet": "10.96.0.27", "itp-local": "10.96.0.28", "affinity-timeout": "10.96.0.29",
     "udp-cycle": "10.96.0.30"})
A = TOPO.endpoint("node-1/probe-a")
WEB, HEADLESS, EXTERNAL = (TOPO.endpoint(f"svc/{n}") for n in ("web", "web-headless", "external"))
BACKENDS = sorted(TOPO.endpoint(b).ip for b in TOPO.services["web"].backends)


def names_of(queries):
    return {q.label: q.name for q in queries}


def test_a_service_is_asked_by_every_name_its_search_list_completes_and_must_connect():
    queries = dns.service_a(TOPO, A, WEB, NAMES)
    assert names_of(queries) == {"kubernetes.default": "kubernetes.default", "short": "web",
                                 "ns": "web.netconform-x", "svc": "web.netconform-x.svc",
                                 "fqdn": "web.netconform-x.svc.cluster.local."}
    assert queries[0].expect == ("10.96.0.1",) and queries[0].connect is None
    assert all(q.expect == ("10.96.0.20",) and q.connect == 80 for q in queries[1:])
    assert [q.search for q in queries] == [True, True, True, True, False]  # the FQDN as dig asks it


def test_headless_names_expect_exactly_the_ready_backends():
    assert all(list(q.expect) == BACKENDS for q in dns.headless_a(TOPO, A, HEADLESS, NAMES))


def test_srv_of_a_clusterip_names_the_service_and_of_a_headless_one_each_backend():
    (one, *_), (many, *_) = dns.srv(TOPO, A, WEB, NAMES), dns.srv(TOPO, A, HEADLESS, NAMES)
    assert one.name == "_tcp._tcp.web.netconform-x.svc.cluster.local." and one.type == "SRV"
    assert one.expect == ("80 web.netconform-x.svc.cluster.local.",)
    assert many.expect == ("8080 *.web-headless.netconform-x.svc.cluster.local.",) * 3


def test_ptr_and_pod_names():
    assert dns.ptr(TOPO, A, WEB, NAMES)[0].name == "20.0.96.10.in-addr.arpa."
    pod, unknown = dns.pod_a(TOPO, A, TOPO.endpoint("node-2/probe-a"), NAMES)
    assert (pod.name, pod.expect, pod.search) == ("10-244-2-2.netconform-x.pod.cluster.local.",
                                                  ("10.244.2.2",), False)
    assert unknown.expect == ("NXDOMAIN", dns.UNKNOWN_POD_IP)


def test_every_pod_asks_for_the_standalone_pods_hostname_under_its_subdomain():
    from netconform.plan import probe_plan
    planned = probe_plan(["node-1", "node-2"], 2, outside=False)
    pods = {pod: f"10.244.0.{i}" for i, pod in enumerate(sorted({e.pod for e in planned.endpoints if e.pod}), 2)}
    live = planned.with_addresses(pods, {"node-1": "172.18.0.2", "node-2": "172.18.0.3"}, {})
    named = live.endpoint("node-1/named")
    assert live.services["hostnames"].backends == ("node-1/named",) and live.services["hostnames"].headless
    pairs = dns.pods_to_named(live)
    assert [(s.name, d.name) for s, d in pairs] == [(p.name, "node-1/named") for p in live.of_kind("pod")]
    short, full = dns.pod_hostname(live, pairs[0][0], named, NAMES)
    assert (short.name, short.search, short.expect) == ("querier.hostnames", True, (named.ip,))
    assert (full.name, full.search) == ("querier.hostnames.netconform-x.svc.cluster.local.", False)


def test_each_pod_asks_about_one_other_and_is_asked_about_once():
    pairs = dns.next_pod(TOPO)
    pods = [e.name for e in TOPO.endpoints if e.kind == "pod"]
    assert sorted(s.name for s, _ in pairs) == sorted(pods) == sorted(d.name for _, d in pairs)
    assert all(s is not d for s, d in pairs)


def observe(queries, answers, protocol="udp", destination=WEB):
    check = Check("DNS-SVC", pods_to_service("web"), (protocol,), dns_verdicts.answered_as_expected,
                  queries=lambda *a: queries)
    results = [{"id": q.label, "query": dataclasses.asdict(q), "attempts": 1, "errors": [], **a}
               for q, a in zip(queries, answers)]
    case = Case("DNS-SVC", protocol, A.name, destination.name)
    return dns_verdicts.answered_as_expected(observation(case, check, A, destination, results, FakeRunner(TOPO)))


def ok(answers, rcode="NOERROR", **extra):
    return {"ok": True, "error": None, "rcode": rcode, "answers": answers, "qname": "x.", **extra}


def test_the_expected_records_pass_and_a_wrong_one_fails_naming_the_question():
    q = dns.Query("fqdn", "web.netconform-x.svc.cluster.local", expect=("10.96.0.20",))
    assert dns_verdicts.answered_as_expected.__doc__ and observe([q], [ok(["10.96.0.20"])]).ok
    v = observe([q], [ok(["10.96.0.99"])])
    assert (v.ok, v.kind, v.harness) == (False, "wrong-answer", False)
    assert "A web.netconform-x.svc.cluster.local (with the search list) over udp" in v.reason
    assert "10.96.0.99" in v.reason and "10.96.0.20" in v.reason


def test_nxdomain_and_no_answer_fail_as_the_networks_doing():
    q = dns.Query("short", "web", expect=("10.96.0.20",))
    assert observe([q], [ok([], rcode="NXDOMAIN")]).kind == "wrong-answer"
    v = observe([q], [{"ok": False, "error": "timeout", "attempts": 2, "errors": ["timeout"] * 2}])
    assert (v.ok, v.kind, v.harness) == (False, "timeout", False) and "2 attempt(s)" in v.reason


@pytest.mark.parametrize("answer, mode", [(ok([], rcode="NXDOMAIN"), "pods verified"),
                                          (ok([dns.UNKNOWN_POD_IP]), "pods insecure")])
def test_an_unknown_pod_ip_may_be_nxdomain_or_echoed_and_the_report_says_which(answer, mode):
    q = dns.Query("unknown", "192-0-2-123.ns.pod.cluster.local", expect=("NXDOMAIN", dns.UNKNOWN_POD_IP))
    v = observe([q], [answer])
    assert v.ok and mode in v.reason
    assert not observe([q], [ok(["10.0.0.1"])]).ok


def test_names_are_compared_without_regard_to_case():
    q = dns.Query("ptr", "20.0.96.10.in-addr.arpa.", "PTR", search=False, expect=("web.NS.svc.cluster.local.",))
    assert observe([q], [ok(["Web.ns.svc.cluster.local."])]).ok


def test_srv_answers_are_judged_by_port_and_target_and_count():
    q = dns.Query("fqdn", "_tcp._tcp.web-headless", "SRV", expect=("8080 *.web-headless.ns.svc.d.",) * 2)
    good = ["0 50 8080 10-244-1-2.web-headless.ns.svc.d.", "0 50 8080 10-244-2-2.web-headless.ns.svc.d."]
    assert observe([q], [ok(good)], destination=HEADLESS).ok
    assert not observe([q], [ok(good[:1])], destination=HEADLESS).ok  # a backend missing
    assert not observe([q], [ok([g.replace("8080", "80") for g in good])], destination=HEADLESS).ok


def test_several_records_answered_again_to_another_form_of_the_name_are_written_once():
    expect = ("8080 *.web-headless.ns.svc.d.",) * 2
    asked = [dns.Query(label, name, "SRV", expect=expect) for label, name in
             (("fqdn", "_tcp._tcp.web-headless.ns.svc.d."), ("short", "_tcp._tcp.web-headless"))]
    good = ["0 50 8080 10-244-1-2.web-headless.ns.svc.d.", "0 50 8080 10-244-2-2.web-headless.ns.svc.d."]
    v = observe(asked, [ok(good), ok(good)], destination=HEADLESS)
    assert v.ok and v.observed == {"fqdn": ["8080 10-244-1-2.web-headless.ns.svc.d.",
                                            "8080 10-244-2-2.web-headless.ns.svc.d."], "short": "as fqdn"}
    one = [dns.Query(label, name, expect=("10.96.0.20",)) for label, name in (("short", "web"), ("ns", "web.ns"))]
    assert observe(one, [ok(["10.96.0.20"])] * 2).observed == {"short": ["10.96.0.20"], "ns": ["10.96.0.20"]}


def test_a_name_that_connects_to_something_other_than_a_backend_fails():
    q = dns.Query("short", "web", expect=("10.96.0.20",), connect=80)
    backend = TOPO.services["web"].backends[0]
    assert observe([q], [ok(["10.96.0.20"], responder=backend)]).ok
    v = observe([q], [ok(["10.96.0.20"], responder="node-1/probe-b", connected_to="10.96.0.20")])
    assert (v.ok, v.kind) == (False, "wrong-responder")


def test_names_that_cannot_be_made_are_a_harness_error():
    q = dns.Query("short", "web", expect=("10.96.0.20",))
    v = observe([q], [{"ok": False, "error": "harness", "harness_error": "no probe's resolv.conf ..."}])
    assert (v.ok, v.harness) == (False, True)


def test_the_cluster_domain_is_read_from_a_probes_search_list():
    topo = dataclasses.replace(TOPO, meta={"namespace": "netconform-x", "kubernetes_service_ip": "10.96.0.1"})
    runner = Runner(topo, channel_for=None)
    conf = {"search": ["netconform-x.svc.example.org", "svc.example.org", "example.org"]}
    runner._reports = {e.name: {**self_report(e.name, [e.ip]), "resolv_conf": conf} for e in topo.probes()}
    assert runner.dns_names() == DnsNames("netconform-x", "example.org", "10.96.0.1")
    # a managed cluster's: another domain, the node's own search domains after the cluster's, and
    # NodeLocal DNSCache's link-local nameserver (the probes ask whatever resolv.conf names)
    managed = {"search": ["netconform-x.svc.corp.internal", "svc.corp.internal", "corp.internal",
                          "ec2.internal"], "nameservers": ["169.254.20.10"], "ndots": 5}
    runner._reports = {e.name: {**self_report(e.name, [e.ip]), "resolv_conf": managed} for e in topo.probes()}
    assert runner.dns_names() == DnsNames("netconform-x", "corp.internal", "10.96.0.1")
    runner.topology.meta["kubernetes_service_ip"] = None
    assert "kubernetes Service (default/kubernetes) could not be read" in runner.dns_names()
    runner.topology.meta["kubernetes_service_ip"] = "10.96.0.1"
    runner._reports = {e.name: {**self_report(e.name, [e.ip]), "resolv_conf": {"search": ["svc.x"]}}
                       for e in topo.probes()}
    assert "no probe's resolv.conf searches netconform-x.svc.<domain>" in runner.dns_names()


def test_the_dns_services_exist_and_only_clusterip_ones_are_proxied():
    services = TOPO.services
    assert services["web-headless"].headless and not services["web-headless"].proxied
    assert services["external"].external_name == "outside.netconform.test"
    assert [e.serves for e in TOPO.of_kind(SERVICE) if e.ip is None] == [
        "web-headless", "external", "retyped", "hostnames"]
    multiport = [e for e in TOPO.of_kind(SERVICE) if e.serves == "multiport"]
    assert [(e.name, e.port) for e in multiport] == [("svc/multiport", 80), ("svc/multiport:81", 81)]
    assert TOPO.services["multiport"].port_names == ("tcp", "udp", "second-tcp", "second-udp")


class ClusterDnsStandIn:
    """A probe channel and a Service changer over one Service's state: the probe answers every
    question with what that state says (a CNAME of the external name, or the ClusterIP)."""

    def __init__(self, fail_on: str | None = None):
        self.spec = {"type": "ExternalName", "externalName": "outside.netconform.test"}
        self.changes, self.fail_on = [], fail_on

    def services(self, name, patch):
        self.changes.append((name, patch and (patch["spec"].get("externalName") or patch["spec"].get("type"))))
        if patch and self.fail_on and self.fail_on in str(patch):
            raise RuntimeError("the API server said no")
        if patch:
            self.spec = {**self.spec, **{k: v for k, v in patch["spec"].items() if v is not None}}
            self.spec.setdefault("clusterIP", "10.96.7.7")
            if self.spec["type"] == "ExternalName":
                self.spec.pop("clusterIP")
        return dict(self.spec)

    def channel(self, endpoint):
        return StandInChannel(endpoint, self.probe)

    def probe(self, endpoint, body):
        stand_in = self
        external = stand_in.spec["type"] == "ExternalName"
        answer = f"{stand_in.spec['externalName']}." if external else stand_in.spec["clusterIP"]
        return {"results": [{"id": t["id"], "ok": True, "error": None, "rcode": "NOERROR",
                             "answers": [answer], "attempts": 1, "errors": []}
                            for t in body["targets"]]}


def externalname_runner(stand_in):
    topo = dataclasses.replace(TOPO, meta={"namespace": "netconform-x", "kubernetes_service_ip": "10.96.0.1"})
    return Runner(topo, stand_in.channel, services=stand_in.services)


def judge_externalname(stand_in, protocol="udp", can_change=True):
    """DNS-EXTERNALNAME's verdict on its first item, the Service changed through ``stand_in``."""
    from suites.test_dns import test_dns_externalname
    check = test_dns_externalname.netconform_check
    runner = externalname_runner(stand_in)
    if not can_change:
        runner.services = None
    return check.verdict(runner.observe(check, check.cases(runner.topology, protocol)[0]))


def test_externalname_is_asked_before_and_after_each_change_and_put_back():
    from suites.test_dns import test_dns_externalname
    check = test_dns_externalname.netconform_check
    stand_in = ClusterDnsStandIn()
    runner = externalname_runner(stand_in)
    case = check.cases(runner.topology, "udp")[0]
    obs = runner.observe(check, case)
    rounds = [r["id"].split("@")[1] for r in obs.results]
    assert rounds == ["initial/short", "initial/fqdn", "renamed/short", "renamed/fqdn",
                      "clusterip/short", "clusterip/fqdn"]
    assert [r["query"]["type"] for r in obs.results] == ["CNAME"] * 4 + ["A"] * 2
    assert {r["query"]["settle"] for r in obs.results} == {CHANGE_SETTLE}  # the first round too: see the runner
    assert check.verdict(obs).ok
    assert stand_in.changes == [("external", None), ("external", "renamed.netconform.test"),
                                ("external", "ClusterIP"), ("external", "outside.netconform.test")]


def test_a_service_change_the_api_refuses_is_a_harness_error_and_the_service_is_still_put_back():
    stand_in = ClusterDnsStandIn(fail_on="ClusterIP")
    verdict = judge_externalname(stand_in, "tcp")
    assert (verdict.ok, verdict.harness) == (False, True) and "the API server said no" in verdict.reason
    assert stand_in.changes[-1] == ("external", "outside.netconform.test")


def test_a_backend_that_cannot_change_services_makes_the_rounds_errors():
    verdict = judge_externalname(ClusterDnsStandIn(), can_change=False)
    assert (verdict.ok, verdict.harness) == (False, True) and "cannot change" in verdict.reason


def test_a_service_that_cannot_be_put_back_makes_the_item_an_error():
    verdict = judge_externalname(ClusterDnsStandIn(fail_on="'ExternalName'"))
    assert (verdict.ok, verdict.harness) == (False, True) and "the API server said no" in verdict.reason

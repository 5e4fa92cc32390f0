"""The IP family as an axis, through the engine: on a dual-stack stand-in cluster every case is one
family's, its connections go to that family's addresses, and a fault of one family turns only that
family's items red (shared/docs/network-model.md: a requirement holds only in every family)."""
from dataclasses import replace

from netconform.checks import Check, loopback, pod_pairs
from netconform.probing.runner import Runner
from netconform.probing.verdicts import reached_from_pod_ip
from netconform.topology import IPV4, IPV6, Topology, family_of

from .fakes import result, self_report, topology

CROSS = Check("POD-POD-CROSS", pod_pairs(same_node=False), ("tcp", "udp"), reached_from_pod_ip)


def dual_stack() -> Topology:
    """fakes.topology's cluster with an IPv6 address beside each IPv4 one (fd00::<the IPv4 as hex>)."""
    plain = topology(nodes=2, pods=2)

    def six(ip: str) -> str:
        a, b, c, d = (int(x) for x in ip.split("."))
        return f"fd00::{a:x}:{b:x}:{c:x}:{d:x}"
    pods = {e.pod: [e.ip, six(e.ip)] for e in plain.endpoints if e.pod}
    nodes = {n.name: [n.ip, six(n.ip)] for n in plain.nodes}
    bare = Topology([replace(n, ip=None) for n in plain.nodes], [replace(e, ip=None) for e in plain.endpoints],
                    families=(IPV4, IPV6), cluster_families=(IPV4, IPV6))
    return bare.with_addresses(pods, nodes)


class DualStackChannel:
    """A probe on the stand-in: answers every connection with the source the receiver saw, its
    own address in the target's family; ``nat6`` rewrites IPv6 sources to the node's address."""

    def __init__(self, topo: Topology, endpoint, nat6: bool = False, asked: list | None = None) -> None:
        self.topo, self.endpoint, self.nat6, self.asked = topo, endpoint, nat6, asked

    def call(self, what, body=None, timeout=10):
        me = self.topo.endpoint(self.endpoint.name)
        if what == "self":
            return self_report(me.name, [ip for _, ip in me.addresses])
        answers = []
        for target in body["targets"]:
            if target["ip"] is None:  # a pod given no address in the family: nothing to reach
                answers.append(result(target["id"], ok=False, error="unreachable"))
                continue
            family = family_of(target["ip"])
            seen = me.address_in(family)
            if self.nat6 and family == IPV6:
                seen = dict(self.topo.host_of(me.node).addresses)[IPV6]
            if self.asked is not None:
                self.asked.append((target["id"], target["ip"]))
            responder = next(e.name for e in self.topo.endpoints if target["ip"] in dict(e.addresses).values()
                             and e.port == target["port"])
            answers.append(result(target["id"], seen=seen, local=me.address_in(family), responder=responder))
        return {"results": answers}


def judge_all(topo: Topology, nat6: bool = False, asked: list | None = None) -> dict[str, bool]:
    """Every case of CROSS judged as the session does: one runner per family, on its view."""
    reports: dict = {}
    runners = {f: Runner(topo.in_family(f), lambda e: DualStackChannel(topo, e, nat6, asked), reports=reports)
               for f in topo.families}
    return {case.full_id: CROSS.verdict(runners[case.family].observe(CROSS, case)).ok for case in CROSS.cases(topo)}


def test_each_case_is_one_familys_and_connects_to_that_familys_address():
    topo = dual_stack()
    asked: list = []
    verdicts = judge_all(topo, asked=asked)
    assert all(verdicts.values()), [k for k, ok in verdicts.items() if not ok]
    assert {k.split("[")[1].split(":")[0] for k in verdicts} == {"tcp/ipv4", "tcp/ipv6", "udp/ipv4", "udp/ipv6"}
    assert len(verdicts) == 2 * 2 * (2 * 2 * 2)  # families x protocols x (2 pods x 2 on the other node, both ways)
    for target_id, ip in asked:
        assert family_of(ip) == target_id.split("/")[1].split(":")[0], (target_id, ip)


def test_a_fault_of_one_family_turns_only_that_familys_items_red():
    verdicts = judge_all(dual_stack(), nat6=True)
    assert {k for k, ok in verdicts.items() if not ok} == {k for k in verdicts if "/ipv6:" in k}
    assert any("/ipv6:" in k for k in verdicts) and any("/ipv4:" in k for k in verdicts)


def test_a_familys_view_gives_each_name_its_address_in_that_family():
    topo = dual_stack()
    four, six = topo.in_family(IPV4), topo.in_family(IPV6)
    assert four.endpoint("node-1/probe-a").ip == "10.244.1.2" and four.nodes[0].ip == "172.18.0.2"
    assert six.endpoint("node-1/probe-a").ip == "fd00::a:f4:1:2" and six.nodes[0].ip == "fd00::ac:12:0:2"
    assert (four.families, six.families) == ((IPV4,), (IPV6,))
    assert (loopback(four.endpoint("node-1/duo/c1")), loopback(six.endpoint("node-1/duo/c1"))) == ("127.0.0.1", "::1")
    single = topology()  # addresses not known per family: the one address, where it is of the family
    assert single.in_family(IPV4).endpoint("node-1/probe-a").ip == "10.244.1.2"
    assert single.in_family(IPV6).endpoint("node-1/probe-a").ip is None


def test_the_dns_questions_of_an_ipv6_view_ask_for_aaaa_records_of_its_addresses():
    from netconform.checks import DnsNames
    from netconform.dns import UNKNOWN_POD_IP6, pod_a, service_a
    from netconform.services import add_services
    plain = add_services(topology(nodes=2, pods=2), outside=False)
    names = {e.pod: [e.ip, "fd00::" + e.ip.split(".")[-1]] for e in plain.endpoints if e.pod}
    dual = replace(plain, families=(IPV4, IPV6)).with_addresses(
        names, {n.name: n.ip for n in plain.nodes}, {"web": ["10.96.0.10", "fd00:96::10"],
                                                     "kubernetes": "10.96.0.1"})
    six, four = dual.in_family(IPV6), dual.in_family(IPV4)
    dns = DnsNames("ns", "cluster.local", None)  # the kubernetes Service has no IPv6 address
    web6 = next(e for e in six.endpoints if e.serves == "web" and e.kind == "service")
    asked = service_a(six, six.endpoint("node-1/probe-a"), web6, dns)
    assert {q.type for q in asked} == {"AAAA"} and {q.expect for q in asked} == {("fd00:96::10",)}
    assert "kubernetes.default" not in {q.label for q in asked}  # not asked where it has no address
    web4 = next(e for e in four.endpoints if e.serves == "web" and e.kind == "service")
    asked4 = service_a(four, four.endpoint("node-1/probe-a"), web4, DnsNames("ns", "cluster.local", "10.96.0.1"))
    assert {q.type for q in asked4} == {"A"} and ("10.96.0.1",) in {q.expect for q in asked4}
    pod, unknown = pod_a(six, six.endpoint("node-1/probe-a"), six.endpoint("node-2/probe-a"), dns)
    assert (pod.type, pod.expect, pod.name.split(".")[0]) == ("AAAA", ("fd00::2",), "fd00--2")
    assert unknown.expect == ("NXDOMAIN", UNKNOWN_POD_IP6)


def test_a_dual_stack_node_gives_host_local_its_ipv6_range_and_route_too(tmp_path):
    import json
    from netconform.backends.lab import conflists
    from netconform.profiles import profile
    values = {"POD_CIDR": "10.244.1.0/24", "NODE_IP": "172.18.0.2", "NODE_NAME": "node-1",
              "POD_CIDR_V6": "fd00:10:244:1::/64"}
    conf = conflists.load(profile("bridge").conflist, values, tmp_path)
    ipam = conf["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]]
    assert {"dst": "::/0"} in ipam["routes"] and {"dst": "0.0.0.0/0"} in ipam["routes"]
    single = conflists.load(profile("bridge").conflist, {k: v for k, v in values.items() if k != "POD_CIDR_V6"},
                            tmp_path)
    assert single["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]
    # a conflist that names its IPv6 range itself keeps it as it is
    own = tmp_path / "own.conflist"
    own.write_text(json.dumps({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge", "ipam": {
        "type": "host-local", "ranges": [[{"subnet": "${POD_CIDR}"}], [{"subnet": "${POD_CIDR_V6}"}]]}}]}))
    assert len(conflists.load(own, values, tmp_path)["plugins"][0]["ipam"]["ranges"]) == 2


def test_checks_of_what_exists_in_the_primary_family_alone_run_there_only():
    plain = replace(topology(), families=(IPV4, IPV6))
    both = Check("POD-POD-CROSS", pod_pairs(same_node=False), ("tcp",), reached_from_pod_ip)
    primary = replace(both, primary_family_only=True)
    assert {c.family for c in both.cases(plain)} == {IPV4, IPV6}
    assert {c.family for c in primary.cases(plain)} == {IPV4}


def test_a_changed_services_clusterip_is_read_in_the_family_of_the_check():
    from netconform.service_changes import cluster_ip
    spec = {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7", "fd00:10:96::7"]}
    v4, v6 = topology().in_family(IPV4), replace(topology(), families=(IPV4, IPV6)).in_family(IPV6)
    assert (cluster_ip(spec, v4), cluster_ip(spec, v6)) == ("10.96.0.7", "fd00:10:96::7")
    assert cluster_ip({"clusterIP": "10.96.0.7"}, v6) is None  # single-stack: none in IPv6
    assert cluster_ip({"clusterIP": "None"}, v4) is None


def judge_dual_stack(topo: Topology, reports: dict | None = None) -> dict[str, object]:
    """Every DUAL-STACK case judged as the session does (a runner per family, shared self-reports;
    ``reports`` replaces some probes' self-reports)."""
    from suites.test_dual_stack import test_dual_stack
    check = test_dual_stack.netconform_check
    shared: dict = dict(reports or {})
    runners = {f: Runner(topo.in_family(f), lambda e: DualStackChannel(topo, e), reports=shared)
               for f in topo.families}
    return {case.full_id: check.verdict(runners[case.family].observe(check, case)) for case in check.cases(topo)}


def test_dual_stack_checks_each_pod_and_node_in_each_family():
    verdicts = judge_dual_stack(dual_stack())
    assert all(v.ok for v in verdicts.values()), {k: v.reason for k, v in verdicts.items() if not v.ok}
    assert len(verdicts) == 2 * (4 + 2)  # families x (pods + nodes)
    assert "DUAL-STACK[ipv6:node-2/host]" in verdicts and "DUAL-STACK[ipv4:node-1/probe-a]" in verdicts


def test_dual_stack_fails_in_the_family_whose_address_a_node_lacks_or_a_pod_was_not_given():
    topo = dual_stack()
    host = topo.host_of("node-2")
    only_v4 = {host.name: self_report(host.name, [host.address_in(IPV4)])}
    verdicts = judge_dual_stack(topo, only_v4)
    failed = {k: v for k, v in verdicts.items() if not v.ok}
    assert list(failed) == ["DUAL-STACK[ipv6:node-2/host]"] and failed[list(failed)[0]].kind == "mismatch"
    assert not any(v.harness for v in failed.values())
    pods = {e.pod: [ip for _, ip in e.addresses] for e in topo.endpoints if e.pod}
    pods["node-1/probe-a"] = pods["node-1/probe-a"][:1]  # its podIPs: IPv4 alone
    given = replace(topo, endpoints=[replace(e, ip=None, addresses=()) for e in topo.endpoints])
    partial = given.with_addresses(pods, {n.name: [ip for _, ip in n.addresses] for n in topo.nodes})
    verdict = judge_dual_stack(partial)["DUAL-STACK[ipv6:node-1/probe-a]"]
    assert (verdict.ok, verdict.kind) == (False, "missing") and "no ipv6 address for node-1/probe-a" in verdict.reason


def test_dual_stack_is_skipped_with_the_reason_on_a_cluster_of_one_family():
    from suites.test_dual_stack import test_dual_stack
    assert test_dual_stack.netconform_check.missing(topology()) == \
        "needs a cluster of both IP families; this one has ipv4 alone"

"""Service planning, reading kube-proxy's rules, the lab's Service faults and the Service verdicts,
without a lab."""

import pytest

from netconform.backends.lab import faults
from netconform.checks import Case, Check, pods_to_service
from netconform.probing import service_verdicts as sv
from netconform.backends.kube.manifests import DeploySpec, render
from netconform.services import (BACKEND_LABEL, MAX_BACKENDS, add_services, backend_nodes, minimum_connections,
                                 picked_backends, spread_connections)
from netconform.topology import OUTSIDE

from .fakes import FakeRunner, observation, result, topology

_PLAIN = topology(3, 2)
TOPO = add_services(_PLAIN, outside=True).with_addresses(
    {e.pod: e.ip for e in _PLAIN.endpoints if e.kind != "host"}, {n.name: n.ip for n in _PLAIN.nodes},
    {"web": "10.96.0.10", "web-affinity": "10.96.0.11", "web-local": "10.96.0.12",
             "empty": "10.96.0.13"}, {"outside/client": "172.18.0.250"})
KUBE_PROXY_FIELDS = {"iptables", "nftables", "nodePortAddresses"}  # the ones lab faults may set
BACKENDS = ["node-1/probe-a", "node-2/probe-a", "node-3/probe-a"]


def test_every_service_but_empty_has_one_backend_per_node():
    assert list(TOPO.services["web"].backends) == BACKENDS
    assert TOPO.services["empty"].backends == ()


def test_up_to_ten_nodes_every_node_backs_the_services_past_that_ten_spread_first_to_last():
    """Upstream e2e's cap (maxNetProxyPodsCount): a client's connections grow with the backends."""
    assert backend_nodes([f"n{i}" for i in range(1, 11)]) == [f"n{i}" for i in range(1, 11)]
    nodes = [f"n{i}" for i in range(1, 51)]
    picked = backend_nodes(nodes)
    assert len(set(picked)) == MAX_BACKENDS == 10 and picked[0] == "n1" and picked[-1] == "n50"
    assert picked == sorted(picked, key=nodes.index)  # in node order, evenly spread
    gaps = [nodes.index(b) - nodes.index(a) for a, b in zip(picked, picked[1:])]
    assert max(gaps) - min(gaps) <= 1


def test_on_many_nodes_the_picked_services_have_ten_backends_and_local_traffic_keeps_one_per_node():
    big = add_services(topology(30, 2), outside=True)
    web, hostnet, local = big.services["web"], big.services["hostnet"], big.services["web-local"]
    assert len(web.backends) == len(hostnet.backends) == 10 and len(local.backends) == 30
    assert {big.endpoint(b).node for b in web.backends} == {big.endpoint(b).node for b in hostnet.backends}
    assert web.picked and hostnet.picked and big.services["retyped"].picked and not local.picked
    assert not big.services["multiport"].picked and not big.services["hostnames"].picked
    assert picked_backends(big) == sorted(web.backends + hostnet.backends)
    assert minimum_connections(len(web.backends)) == 153  # per client; 2,000 over 100 backends


def test_a_picked_services_selector_names_the_backend_label_and_the_others_do_not():
    big = add_services(topology(12, 2), outside=False)
    objects = render(DeploySpec("r1", "ns"), big, {"web": 30080, "web-affinity": 30082, "web-local": 30081},
                     {n.name: n.ip for n in big.nodes})
    selectors = {o["metadata"]["name"]: o["spec"].get("selector") or {} for o in objects if o["kind"] == "Service"}
    assert selectors["web"][BACKEND_LABEL] == "true" and selectors["hostnet"][BACKEND_LABEL] == "true"
    assert BACKEND_LABEL not in selectors["web-local"] and BACKEND_LABEL not in selectors["multiport"]
    templates = [o["spec"]["template"]["metadata"]["labels"] for o in objects if o["kind"] == "DaemonSet"]
    assert templates and not any(BACKEND_LABEL in labels for labels in templates)  # the run labels them


def miss_chance(backends: int, connections: int) -> float:
    return backends * (1 - 1 / backends) ** connections


@pytest.mark.parametrize("backends, connections", [(1, 1), (2, 21), (3, 37), (6, 86)])
def test_connections_make_missing_a_backend_by_chance_rarer_than_one_in_a_million(backends,
                                                                                     connections):
    assert minimum_connections(backends) == connections
    if backends > 1:  # the fewest that do: one less is not enough
        assert miss_chance(backends, connections) < 1e-6 <= miss_chance(backends, connections - 1)


@pytest.mark.parametrize("backends, connections", [(1, 1), (2, 21), (3, 14), (50, 5)])
def test_connections_all_landing_on_one_backend_by_chance_are_rarer_than_one_in_a_million(backends, connections):
    """What shows a Service is not sticky (SVC-AFFINITY's round without affinity): far fewer than
    what reaches every backend (878 over 50 backends)."""
    assert spread_connections(backends) == connections
    if backends > 1:
        same = lambda count: backends * (1 / backends) ** count  # noqa: E731
        assert same(connections) < 1e-6 <= same(connections - 1)
        assert connections <= minimum_connections(backends)


# iptables-save lines as kube-proxy 1.37's iptables mode writes them (namespace "ns")
SYNCED = """\
-A KUBE-SEP-AAA -s 10.244.1.2/32 -m comment --comment "ns/web:tcp" -j KUBE-MARK-MASQ
-A KUBE-SEP-AAA -p tcp -m comment --comment "ns/web:tcp" -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-BBB -p tcp -m comment --comment "ns/web:tcp" -m tcp -j DNAT --to-destination 10.244.2.2:8080
-A KUBE-SVC-X -m comment --comment "ns/web-affinity:tcp -> 10.244.1.2:8080" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-CCC --mask 255.255.255.255 --rsource -j KUBE-SEP-CCC
-A KUBE-SEP-CCC -p tcp -m comment --comment "ns/web-affinity:tcp" -m recent --set --name KUBE-SEP-CCC --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-DDD -p tcp -m comment --comment "ns/web-affinity:tcp" -m recent --set --name KUBE-SEP-DDD --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.9.9:8080
-A KUBE-SERVICES -d 10.96.0.13/32 -p tcp -m comment --comment "ns/empty:tcp has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
"""


# `nft list table ip kube-proxy` as kube-proxy 1.37's nftables mode writes it: the same state
NFT_SYNCED = """\
table ip kube-proxy {
	map no-endpoint-services {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to services with no endpoints"
		elements = { 10.96.0.13 . tcp . 80 comment "ns/empty:tcp" : goto reject-chain }
	}
	set affinity-LD7ADDTJ-ns/web-affinity/tcp/tcp__10.244.1.2/8080 {
		type ipv4_addr
		flags dynamic,timeout
		timeout 3h
	}
	chain service-AZHIABST-ns/web/tcp/tcp {
		ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.1.2 . 8080, 1 : 10.244.2.2 . 8080 }
	}
	chain external-AZHIABST-ns/web/tcp/tcp {
		meta mark set meta mark | 0x00004000 comment "masquerade"
		goto service-AZHIABST-ns/web/tcp/tcp
	}
	chain endpoint-LD7ADDTJ-ns/web-affinity/tcp/tcp__10.244.1.2/8080 {
		update @affinity-LD7ADDTJ-ns/web-affinity/tcp/tcp__10.244.1.2/8080 { ip saddr }
		meta l4proto tcp dnat to 10.244.1.2:8080
	}
	chain endpoint-I6RQPVH2-ns/web-affinity/tcp/tcp__10.244.9.9/8080 {
		update @affinity-I6RQPVH2-ns/web-affinity/tcp/tcp__10.244.9.9/8080 { ip saddr }
		meta l4proto tcp dnat to 10.244.9.9:8080
	}
	chain service-GAGNQTIA-ns/web-affinity/tcp/tcp {
		ip saddr @affinity-LD7ADDTJ-ns/web-affinity/tcp/tcp__10.244.1.2/8080 goto endpoint-LD7ADDTJ-ns/web-affinity/tcp/tcp__10.244.1.2/8080
		numgen random mod 2 vmap { 0 : goto endpoint-LD7ADDTJ-ns/web-affinity/tcp/tcp__10.244.1.2/8080, 1 : goto endpoint-I6RQPVH2-ns/web-affinity/tcp/tcp__10.244.9.9/8080 }
	}
	chain service-KW626GNZ-kube-system/kube-dns/udp/dns {
		meta l4proto udp dnat to 10.244.1.9:53
	}
}
"""


def two_node_topology():
    plain = topology(2, 1)
    topo = add_services(plain, outside=False)
    return topo.with_addresses({e.pod: e.ip for e in plain.endpoints if e.kind != "host"},
                               {n.name: n.ip for n in plain.nodes}, {})


@pytest.mark.parametrize("mode, rules", [("iptables", SYNCED), ("nftables", NFT_SYNCED)])
def test_kube_proxy_is_synced_only_when_every_service_port_has_exactly_its_backends(mode, rules):
    from netconform.backends.lab.proxyrules import missing, parse
    topo = two_node_topology()
    lacking = missing(topo, "ns", parse(mode, rules))
    assert "ns/web:tcp -> ['10.244.1.2', '10.244.2.2'] (has ['10.244.1.2', '10.244.2.2'])" not in lacking
    assert not any(item.startswith("ns/web:tcp") for item in lacking)  # both backends programmed
    assert any(item.startswith("ns/web:udp") for item in lacking)  # nothing for UDP yet
    assert any(item.startswith("ns/web-affinity:tcp") for item in lacking)  # a stale backend
    assert not any(item.startswith("ns/empty:tcp") for item in lacking)  # rejected
    assert "ns/empty:udp: no reject for a Service without endpoints" in lacking
    assert missing(topo, "other-namespace", parse(mode, rules))  # another run's rules are not ours
    assert not any("web-headless" in item or "external" in item for item in lacking)  # not proxied


# What kube-proxy writes past 1,000 endpoints ("large cluster mode", as on a 50-node dual-stack
# lab): no comment on the endpoint chains nor on the jumps to them (taken from such a lab, trimmed)
LARGE_CLUSTER_MODE = """\
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
-A KUBE-SVC-NPX46M4PTMTKRN6Y ! -s 10.244.0.0/16 -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-MARK-MASQ
-A KUBE-SVC-NPX46M4PTMTKRN6Y -j KUBE-SEP-WRQ4F7NS7AENVXFI
-A KUBE-SEP-WRQ4F7NS7AENVXFI -s 172.18.0.240/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-WRQ4F7NS7AENVXFI -p tcp -m tcp -j DNAT --to-destination 172.18.0.240:6443
-A KUBE-NODEPORTS -p udp -m comment --comment "ns/web-local:udp" -m udp --dport 30081 -j KUBE-EXT-IQLR7ID4LBSAFQ6T
-A KUBE-EXT-IQLR7ID4LBSAFQ6T -j KUBE-SVL-IQLR7ID4LBSAFQ6T
-A KUBE-SVL-IQLR7ID4LBSAFQ6T -j KUBE-SEP-UNOETGR4R6M3BP3B
-A KUBE-SEP-UNOETGR4R6M3BP3B -p udp -m udp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-TV2MEKTQKINFCSSO -p udp -m udp -j DNAT --to-destination 10.244.2.2:8080
-A KUBE-SERVICES -d 10.96.5.5/32 -p tcp -m comment --comment "ns/web6:tcp cluster IP" -m tcp --dport 80 -j KUBE-SVC-4BLZW4KMHAVXBFPT
-A KUBE-SVC-4BLZW4KMHAVXBFPT -m statistic --mode random --probability 0.5 -j KUBE-SEP-AAAAAAAAAAAAAAAA
-A KUBE-SVC-4BLZW4KMHAVXBFPT -j KUBE-SEP-BBBBBBBBBBBBBBBB
-A KUBE-SEP-AAAAAAAAAAAAAAAA -p tcp -m tcp -j DNAT --to-destination [fd00:10:244:1::2]:8080
-A KUBE-SEP-BBBBBBBBBBBBBBBB -p tcp -m tcp -j DNAT --to-destination [fd00:10:244:2::2]:8080
"""


def test_the_endpoints_of_kube_proxys_large_cluster_mode_are_read_through_its_chains():
    from netconform.backends.lab.proxyrules import parse, routes
    programmed = parse("iptables", LARGE_CLUSTER_MODE)
    assert programmed.destinations == {
        "default/kubernetes:https": {"172.18.0.240"},
        "ns/web-local:udp": {"10.244.1.2"},  # the Local chain's one endpoint, not the other chain's
        "ns/web6:tcp": {"fd00:10:244:1::2", "fd00:10:244:2::2"}}
    assert routes(programmed, "default/kubernetes:https")
    cut = LARGE_CLUSTER_MODE.replace("-A KUBE-SVC-NPX46M4PTMTKRN6Y -j KUBE-SEP-WRQ4F7NS7AENVXFI\n", "")
    assert not routes(parse("iptables", cut), "default/kubernetes:https")  # no jump: no endpoint


def test_kube_dns_counts_as_programmed_only_with_exactly_its_coredns_pods():
    from netconform.backends.lab.proxyrules import missing, parse
    topo = two_node_topology()
    dns = '-A KUBE-SEP-E -p udp -m comment --comment "kube-system/kube-dns:dns" -m udp -j DNAT --to-destination 10.244.1.9:53\n'
    wanted = {"kube-system/kube-dns:dns": {"10.244.1.9"}}

    def lacks_dns(rules: str, expected: dict, mode: str = "iptables") -> bool:
        return any("kube-dns" in item for item in missing(topo, "ns", parse(mode, rules), expected))
    assert not lacks_dns(SYNCED + dns, wanted) and lacks_dns(SYNCED, wanted)
    gone = {"kube-system/kube-dns:dns": set()}  # the dns-no-endpoints fault: no DNAT left
    assert lacks_dns(SYNCED + dns, gone) and not lacks_dns(SYNCED, gone)
    assert not lacks_dns(NFT_SYNCED, wanted, "nftables") and lacks_dns(NFT_SYNCED, gone, "nftables")


def test_a_service_port_is_routed_once_it_goes_to_some_endpoint_in_either_mode():
    from netconform.backends.lab.proxyrules import parse, routes
    assert routes(parse("iptables", SYNCED), "ns/web:tcp") and not routes(parse("iptables", SYNCED), "ns/web:udp")
    assert routes(parse("nftables", NFT_SYNCED), "ns/web:tcp")
    assert not routes(parse("nftables", NFT_SYNCED), "ns/empty:tcp")
    with pytest.raises(ValueError, match="unknown kube-proxy mode 'ipvs'"):
        parse("ipvs", SYNCED)


def test_kube_proxy_configuration_leaves_host_settings_alone_and_takes_a_faults_fields():
    from pathlib import Path
    from netconform.backends.lab.proxy import ProxySpec, configuration
    config = configuration(ProxySpec(settings={"iptables": {"masqueradeAll": True}}), "node-2", Path("/k"))
    assert config["hostnameOverride"] == "node-2"
    assert config["iptables"] == {"masqueradeAll": True, "syncPeriod": "30s", "minSyncPeriod": "1s"}
    assert config["conntrack"]["maxPerCore"] == 0 and config["conntrack"]["min"] == 0
    assert config["conntrack"]["tcpEstablishedTimeout"] == "0s"
    assert config["clusterCIDR"] == "10.244.0.0/16" and config["mode"] == "iptables"


def test_fault_placeholders_expand_per_value_and_unknown_ones_are_refused():
    values = {"${BACKEND_IP}": ["10.244.1.2", "10.244.2.2"], "${CLUSTER_IP_WEB}": ["10.96.0.10"],
              "${AFFINITY_LIST}": []}
    assert faults.expand(("-s", "${BACKEND_IP}", "-d", "${BACKEND_IP}/32"), values) == [
        ["-s", "10.244.1.2", "-d", "10.244.1.2/32"], ["-s", "10.244.2.2", "-d", "10.244.2.2/32"]]
    assert faults.expand(("--name", "${AFFINITY_LIST}"), values) == []  # no list: no command
    with pytest.raises(ValueError, match="unknown placeholder"):
        faults.expand(("-d", "${CLUSTER_IP_NOPE}"), values)
    assert faults.cluster_ip_placeholder("web-affinity") == "${CLUSTER_IP_WEB_AFFINITY}"


def test_affinity_lists_are_read_from_kube_proxys_rules():
    from netconform.backends.lab.proxyrules import affinity_lists
    assert affinity_lists("iptables", SYNCED) == ["KUBE-SEP-CCC"]
    assert affinity_lists("nftables", NFT_SYNCED) == ["affinity-LD7ADDTJ-ns/web-affinity/tcp/tcp__10.244.1.2/8080"]


def test_every_fault_names_known_requirements_and_lists_itself():
    from netconform.requirements import CATALOG
    listing = faults.listing()
    for fault in faults.FAULTS.values():
        assert set(fault.breaks) <= set(CATALOG) and fault.name in listing
        assert set(fault.proxy) <= KUBE_PROXY_FIELDS  # fields of KubeProxyConfiguration
    with pytest.raises(faults.UnknownFault, match="unknown --lab-fault 'nope'"):
        faults.fault("nope")


def observe(verdict, source, destination, results):
    check = Check("SVC-CLUSTERIP", pods_to_service("web"), ("tcp",), verdict)
    case = Case(check.requirement, "tcp", source, destination)
    return verdict(observation(case, check, TOPO.endpoint(source),
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


def test_every_fault_command_has_an_exact_undo():
    assert faults.undo(["iptables", "-w", "5", "-t", "nat", "-I", "POSTROUTING", "1", "-s", "10.0.0.1",
                        "-j", "MASQUERADE"]) == \
        ["iptables", "-w", "5", "-t", "nat", "-D", "POSTROUTING", "-s", "10.0.0.1", "-j", "MASQUERADE"]
    assert faults.undo(["iptables", "-I", "OUTPUT", "-d", "10.244.1.0/24", "-j", "DROP"]) == \
        ["iptables", "-D", "OUTPUT", "-d", "10.244.1.0/24", "-j", "DROP"]
    assert faults.undo(["ip", "route", "del", "10.244.3.0/24"], "10.244.3.0/24 via 172.18.0.4 dev eth0") == \
        ["ip", "route", "add", "10.244.3.0/24", "via", "172.18.0.4", "dev", "eth0"]
    assert faults.undo(["ip", "link", "set", "p1", "mtu", "1400"], "1500") == ["ip", "link", "set", "p1", "mtu", "1500"]
    assert faults.undo(["ss", "-K", "sport = :179"]) == []  # ended connections: their programs reconnect
    # an address taken from a pod comes back as the CNI gave it (IPv6: usable at once, no DAD)
    assert faults.undo(["ip", "-6", "addr", "del", "fd00:10:244:1::4/64", "dev", "eth0"]) == \
        ["ip", "-6", "addr", "add", "fd00:10:244:1::4/64", "dev", "eth0", "nodad"]
    with pytest.raises(faults.NotReversible):
        faults.undo(["iptables", "-t", "nat", "-F", "CNI-HOSTPORT-DNAT"])
    with pytest.raises(faults.NotReversible):
        faults.undo(["ip", "route", "del", "10.244.3.0/24"])  # nothing known to put back


def test_kube_proxy_has_synced_when_every_family_has_a_last_sync_time():
    from netconform.backends.lab.proxy import sync_time
    text = ('# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds …\n'
            'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family="IPv4"} 9.0e+09\n'
            'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 1.795790062300952e+09\n'
            'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv6"} 1.7957900590443935e+09\n')
    assert sync_time(text) == 1.7957900590443935e+09  # the older family decides
    assert sync_time("kubeproxy_sync_proxy_rules_duration_seconds_count 3\n") == 0.0  # never synced


def test_each_port_of_a_two_port_service_must_reach_its_own_target_port():
    from netconform.checks import Case, Check, pods_to_each_port
    from netconform.probing.service_verdicts import each_port_reaches_its_target
    topo = two_node_topology()
    check = Check("SVC-MULTIPORT", pods_to_each_port("multiport"), ("tcp",), each_port_reaches_its_target)
    source = topo.endpoint("node-1/probe-a")
    first, second = topo.endpoint("svc/multiport"), topo.endpoint("svc/multiport:81")

    def judge(destination, responder):
        case = Case("SVC-MULTIPORT", "tcp", source.name, destination.name)
        return each_port_reaches_its_target(observation(
            case, check, source, destination, [result(seen=source.ip, responder=responder)], FakeRunner(topo)))

    assert judge(first, "node-2/duo/c1").ok and judge(second, "node-1/duo/c2").ok
    crossed = judge(second, "node-2/duo/c1")
    assert (crossed.ok, crossed.kind) == (False, "wrong-responder") and "target port 8081" in crossed.reason
    assert not judge(first, "node-1/probe-a").ok  # not a backend at all


def test_a_faults_own_nftables_table_expands_per_value_and_is_deleted_whole():
    chains = (faults.NftChain("type nat hook postrouting priority srcnat - 1",
                              (("ip", "saddr", "${BACKEND_IP}", "ip", "daddr", "${BACKEND_IP}",
                                "snat", "ip", "to", "${BACKEND_IP}"),)),)
    script = faults.nft_script("hairpin", chains, {"${BACKEND_IP}": ["10.244.1.2", "10.244.2.2"]})
    assert script.splitlines() == [
        "table ip netconform-fault-hairpin {", "\tchain c0 {",
        "\t\ttype nat hook postrouting priority srcnat - 1; policy accept;",
        "\t\tip saddr 10.244.1.2 ip daddr 10.244.1.2 snat ip to 10.244.1.2",
        "\t\tip saddr 10.244.2.2 ip daddr 10.244.2.2 snat ip to 10.244.2.2", "\t}", "}"]
    assert faults.nft_undo("hairpin") == ["nft", "delete", "table", "ip", "netconform-fault-hairpin"]


def test_a_fault_without_a_mechanism_for_the_proxy_mode_is_refused_by_name():
    only_iptables = [f for f in faults.FAULTS.values() if f.modes == ("iptables",)]
    assert [f.name for f in only_iptables] == ["svc-no-affinity"]
    message = faults.mode_refusal(only_iptables[0], "nftables")
    assert "svc-no-affinity has no mechanism for kube-proxy's nftables mode" in message
    assert message.endswith("--lab-proxy iptables")


def _clients(pairs) -> list[str]:
    return sorted({src.name for src, _ in pairs})


def test_a_service_rows_clients_are_not_its_backends_so_no_must_row_needs_hairpin():
    """SVC-CLUSTERIP and the rows like it take their clients from the pods that do not back the
    Service: a backend's connection may land on itself, which only SVC-HAIRPIN (SHOULD) judges."""
    from netconform.checks import ALL, BACKENDS as ONLY_BACKENDS, nodeports
    others = _clients(pods_to_service("web")(TOPO))
    assert others == ["node-1/probe-b", "node-2/probe-b", "node-3/probe-b"]
    assert _clients(pods_to_service("web", clients=ONLY_BACKENDS)(TOPO)) == BACKENDS
    assert _clients(pods_to_service("web", clients=ALL)(TOPO)) == sorted(BACKENDS + others)
    assert _clients(nodeports("web", sources=("pod",))(TOPO)) == others  # POD-NODEPORT
    assert {src.kind for src, _ in nodeports("web")(TOPO)} == {"host", "outside"}  # SVC-NODEPORT: unchanged
    # SVC-ITP-LOCAL's positive control connects to web: its clients back neither Service
    assert _clients(pods_to_service("itp-local", apart_from=("web",))(TOPO)) == others


def test_with_one_pod_per_node_each_nodes_duo_pod_is_the_client_not_a_backend():
    """--lab-pods-per-node=1: every probe pod backs web; duo's first container, on every node, is
    no backend of it, so SVC-CLUSTERIP still needs no hairpin."""
    from netconform.checks import nodeports
    plain = topology(2, 1)
    one = add_services(plain, outside=False).with_addresses(
        {e.pod: e.ip for e in plain.endpoints if e.kind != "host"}, {n.name: n.ip for n in plain.nodes},
        {"web": "10.96.0.10"}, {})
    assert _clients(pods_to_service("web")(one)) == ["node-1/duo/c1", "node-2/duo/c1"]
    assert _clients(nodeports("web", sources=("pod",))(one)) == ["node-1/duo/c1", "node-2/duo/c1"]


def test_kube_proxys_ipv6_rules_are_read_with_their_bracketed_endpoints_in_either_mode():
    """An IPv6-only lab waits for kube-proxy's ip6tables or ip6 nftables rules: an endpoint there
    is written [fd00:…]:port, and a port's colons must not be taken for the address's end."""
    from netconform.backends.lab.proxyrules import parse
    ip6tables = ('-A KUBE-SEP-A -p tcp -m comment --comment "default/kubernetes:https" -m tcp '
                 '-j DNAT --to-destination [fd00:18::f0]:6443\n')
    assert parse("iptables", ip6tables).destinations == {"default/kubernetes:https": {"fd00:18::f0"}}
    nft = ("\tchain endpoint-ABC-default/kubernetes/tcp/https__fd00:18::f0/6443 {\n"
           "\t\tmeta l4proto tcp dnat ip6 to [fd00:18::f0]:6443\n\t}\n"
           "\tchain service-XYZ-ns/web/tcp/tcp {\n"
           "\t\tnumgen random mod 2 vmap { 0 : goto endpoint-1, 1 : goto endpoint-2 }\n"
           "\t\tdnat ip6 to numgen random mod 2 map { 0 : fd00:10:244:1::2 . 8080, 1 : fd00:10:244:2::2 . 8080 }\n\t}\n")
    found = parse("nftables", nft).destinations
    assert found["default/kubernetes:https"] == {"fd00:18::f0"}
    assert found["ns/web:tcp"] == {"fd00:10:244:1::2", "fd00:10:244:2::2"}


def test_on_an_ipv6_only_lab_a_fault_that_acts_through_ipv4_is_refused_and_the_others_are_not():
    v6 = ("ipv6",)
    assert "this lab is IPv6-only" in faults.family_refusal(faults.FAULTS["snat-between-nodes"], v6)
    assert "this lab is IPv6-only" in faults.family_refusal(faults.FAULTS["no-route-to-last-node"], v6)
    for name in ("ipv6-snat-between-nodes", "kube-proxy-frozen", "dns-wrong-search", "svc-no-nodeports"):
        assert faults.family_refusal(faults.FAULTS[name], v6) is None, name


def test_the_wait_for_kube_proxy_grows_with_the_nodes_and_families_it_waits_for():
    """Every node's kube-proxy shares the machine's cores: a 50-node dual-stack lab did not program
    its Services within a fixed 60 s, though nothing was wrong."""
    from pathlib import Path
    from netconform.backends.lab.cluster import LabSpec
    small = LabSpec(Path("x")).proxy_sync_timeout
    large = LabSpec(Path("x"), nodes=50, families=("ipv4", "ipv6")).proxy_sync_timeout
    assert small >= 60 and large > 3 * small
    assert LabSpec(Path("x"), nodes=50, proxy_sync_timeout=30).proxy_sync_timeout == 30  # as asked

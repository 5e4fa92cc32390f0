"""Faults the lab can inject, each meant to turn named requirements red.

The Services are programmed by the real kube-proxy, which rewrites its own chains whenever a
Service or its endpoints change, so no fault edits them. A fault acts as a misconfigured cluster
would: kube-proxy's configuration changed (``proxy``: KubeProxyConfiguration fields), or rules of
a node's own firewall inserted before kube-proxy's jumps after its first sync (it re-adds its jumps
only when they are missing, so they stay behind), or a table of the fault's own (``nft``) whose
chains hook in at a priority before kube-proxy's in either of its modes (iptables mode's chains
sit at the standard priorities, nftables mode's at the same), commands on the world's underlay ports, or the
duo pod's containers split apart, the resolv.conf the lab gives to the pods of a node, or a
Service patched in the API server (as a mistaken ``kubectl edit`` would).

Placeholders in commands: ${POD_CIDR} (this node's), ${LAST_POD_CIDR} (the last node's), on a
dual-stack lab ${POD_CIDR6} and ${LAST_POD_CIDR6} (the same in IPv6), in pod_commands ${POD_IP} and
${POD_IP6} (the pod's own addresses),
${CLUSTER_CIDR}, ${SERVICE_CIDR}, ${PORT} (a node's underlay port in the world namespace), ${OUTSIDE_IP},
${KUBERNETES_IP} (the kubernetes Service's ClusterIP),
${CLUSTER_IP_<SERVICE>} (e.g. ${CLUSTER_IP_EMPTY}), ${BACKEND_IPS_<SERVICE>} (its backends' pod
IPs, one command or rule each), ${LAST_BACKEND_IP} (the last backend of the
Services with backends). A command with ${BACKEND_IP} runs once per backend, and one with
${AFFINITY_LIST} once per client-affinity list kube-proxy keeps on that node.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fault:
    name: str
    breaks: tuple[str, ...]  # the requirements it must turn red
    description: str
    also: tuple[str, ...] = ()  # requirements it may turn red as a consequence (measured, explained)
    proxy: dict = field(default_factory=dict)  # KubeProxyConfiguration fields (proxy.py)
    node_commands: tuple[tuple[str, ...], ...] = ()  # run in node namespaces
    on_nodes: str = "all"  # which nodes run node_commands: "all", "first" or "last"
    port_commands: tuple[tuple[str, ...], ...] = ()  # run in the world ns, once per node port
    control_plane_commands: tuple[tuple[str, ...], ...] = ()  # run in the control plane's namespace
    # run in the network namespace of each probe pod (not the duo or one-of-a-kind pods) on
    # on_nodes, with ${POD_IP} and ${POD_IP6}: that pod's addresses
    pod_commands: tuple[tuple[str, ...], ...] = ()
    split_duo: bool = False  # duo's second container gets a network namespace of its own
    resolv_search: tuple[str, ...] | None = None  # the search list of the pods on on_nodes
    service_patches: tuple[tuple[str, str, dict], ...] = ()  # (namespace, Service, patch) in the API;
    # namespace RUN_NAMESPACE: the run's own
    proxy_frozen: bool = False  # every kube-proxy stopped (SIGSTOP): its rules stay as they are
    nft: tuple["NftChain", ...] = ()  # chains of the fault's own nftables table on on_nodes
    modes: tuple[str, ...] = ("iptables", "nftables")  # the kube-proxy modes it has a mechanism for
    # The real CNIs (cni_install.py) it is made for, acting on their datapath from outside the
    # daemon; empty: any lab CNI
    cnis: tuple[str, ...] = ()
    # The CNI's daemon on on_nodes killed (SIGKILL, as an OOM kill would); revert starts it again,
    # as kubelet restarts a container
    agent_killed: bool = False
    # The other nodes lose their routes to on_nodes' pods (BGP peers withdraw them once the session
    # has ended and the graceful restart time run out): inject waits until they have, revert until
    # every node has its routes again
    routes_withdrawn: bool = False
    # revert also restarts the CNI's daemon on on_nodes, as an operator would: a peer whose sessions
    # were refused is tried again only at GoBGP's connect retry (120 s), a restarted one at once
    revert_restarts_agent: bool = False
    # It acts on IPv6 alone (${POD_CIDR6}, ip6tables): it needs a dual-stack lab (--ip-family=dual),
    # and must turn only its requirements' IPv6 items red
    ipv6: bool = False


@dataclass(frozen=True)
class NftChain:
    """A base chain of a fault's own table: ``hook`` as nft writes it (``type nat hook postrouting
    priority srcnat - 1``), each rule a tuple of words whose placeholders expand as a command's."""
    hook: str
    rules: tuple[tuple[str, ...], ...]


def nft_table(fault_name: str) -> str:
    return f"netconform-fault-{fault_name}"


def nft_script(fault_name: str, chains: tuple[NftChain, ...], values: dict[str, list[str]]) -> str:
    """The ``nft -f`` input that creates the fault's table on one node."""
    lines = [f"table ip {nft_table(fault_name)} {{"]
    for index, chain in enumerate(chains):
        lines += [f"\tchain c{index} {{", f"\t\t{chain.hook}; policy accept;"]
        lines += [f"\t\t{' '.join(argv)}" for rule in chain.rules for argv in expand(rule, values)]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def nft_undo(fault_name: str) -> list[str]:
    return ["nft", "delete", "table", "ip", nft_table(fault_name)]


RUN_NAMESPACE = ""  # in service_patches: the namespace of the run's own objects


def cluster_ip_placeholder(service: str) -> str:
    return "${CLUSTER_IP_" + service.upper().replace("-", "_") + "}"


def backend_ips_placeholder(service: str) -> str:
    return "${BACKEND_IPS_" + service.upper().replace("-", "_") + "}"


def expand(command: tuple[str, ...], values: dict[str, list[str]]) -> list[list[str]]:
    """The argv(s) of one command: every placeholder replaced by its value; a placeholder with
    several values (or none) makes one argv per combination (or none)."""
    used = [name for name in values if any(name in part for part in command)]
    unknown = [part for part in command if "${" in part and not any(name in part for name in used)]
    if unknown:
        raise ValueError(f"unknown placeholder in fault command {' '.join(command)}: {unknown}")
    argvs = []
    for combination in itertools.product(*(values[name] for name in used)):
        chosen = dict(zip(used, combination))
        argv = []
        for part in command:
            for name, value in chosen.items():
                part = part.replace(name, value)
            argv.append(part)
        argvs.append(argv)
    return argvs


class NotReversible(ValueError):
    pass


def undo(argv: list[str], before: str = "") -> list[str]:
    """The command that takes ``argv`` back (empty: none is needed), so that a fault can be
    reverted on a running lab: an inserted iptables rule is deleted; a deleted route is added again
    as ``before`` (what
    ``ip route show`` printed for it); a changed MTU is set back to ``before``; a deleted address
    is added again (an IPv6 one without duplicate address detection, as the CNI adds it)."""
    if argv[0] in ("iptables", "ip6tables") and "-I" in argv:
        at = argv.index("-I")
        rest = argv[at + 2:]
        if rest and rest[0].isdigit():  # a position: -D takes the rule without it
            rest = rest[1:]
        return [*argv[:at], "-D", argv[at + 1], *rest]
    if argv[:2] == ["ss", "-K"]:
        return []  # connections ended stay ended: their programs open new ones
    if argv[:3] == ["ip", "route", "del"] and before:
        return ["ip", "route", "add", *before.split()]
    if argv[:3] == ["ip", "link", "set"] and "mtu" in argv and before:
        return [*argv[:argv.index("mtu") + 1], before]
    if argv[0] == "ip" and "addr" in argv[1:3] and argv[argv.index("addr") + 1] == "del":
        at = argv.index("addr") + 1  # the same address again, without duplicate detection: usable at once
        return [*argv[:at], "add", *argv[at + 1:], *(["nodad"] if "-6" in argv else [])]
    raise NotReversible(f"a fault command with no known undo: {' '.join(argv)}")


def _both_ways(*rule: str) -> tuple[tuple[str, ...], ...]:
    """A filter rule for forwarded traffic and for the node's own (pods on other nodes, and the
    node itself, both reach Services through this node's rules)."""
    return (("iptables", "-I", "FORWARD", "1", *rule), ("iptables", "-I", "OUTPUT", "1", *rule))


DNS_ROWS = ("DNS-SVC", "DNS-HEADLESS", "DNS-SRV", "DNS-EXTERNALNAME", "DNS-POD-A", "DNS-PTR",
            "DNS-HOSTNET", "DNS-POD-HOSTNAME")
# The rows that change a Service at run time or make its endpoints by hand: the pod traffic they
# ride on (ClusterIPs, NodePorts, names) breaks with the faults that break pod traffic
CHANGING_ROWS = ("SVC-TYPE-CHANGE", "SVC-PORT-PROTOCOLS", "SVC-ENDPOINTSLICE-MANUAL")

# What crosses between the first node and the others, when that node is cut off below the CNI
FIRST_NODE_CUT_OFF = ("SVC-UDP-BACKEND-CHANGE", "SVC-HOSTNET-ENDPOINTS", "SVC-ITP-LOCAL", "HOSTNET-POD",
                      "SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-NODEPORT", "SVC-AFFINITY", "SVC-AFFINITY-TIMEOUT",
                      "SVC-HAIRPIN", "SVC-ETP-LOCAL", "SVC-NO-ENDPOINTS", "MTU", "POD-NODEPORT", "HOSTNET-SVC",
                      "HOSTPORT", "POD-APISERVER", "APISERVER-POD", "UDP-LARGE", *DNS_ROWS, "SVC-MULTIPORT",
                      *CHANGING_ROWS)

# A masquerade agent's rule ahead of the CNI's (srcnat - 1): whatever device the CNI sends through
# (flannel.1, eth0), pod traffic to another node's pods leaves with the node's address
MASQUERADE_TO_OTHER_NODES_PODS = (
    NftChain("type nat hook postrouting priority srcnat - 1",
             (("ip", "saddr", "${POD_CIDR}", "ip", "daddr", "${CLUSTER_CIDR}", "ip", "daddr", "!=", "${POD_CIDR}",
               "masquerade"),)),)

FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("snat-between-nodes", ("POD-POD-CROSS", "POD-IP-SELF"),
          "nodes masquerade pod traffic leaving for other nodes",
          # SVC-HOSTNET-ENDPOINTS: a pod's connection to a host on another node is SNATed too
          also=("SVC-HOSTNET-ENDPOINTS", "SVC-SOURCE-IP",),  # a Service connection to another node's backend is SNATed too
          node_commands=(("iptables", "-t", "nat", "-I", "POSTROUTING", "-s", "${POD_CIDR}",
                          "-o", "eth0", "-j", "MASQUERADE"),)),
    Fault("snat-host-network", ("HOSTNET-POD",),
          "nodes rewrite the source of their own traffic to pods to an address that is not theirs",
          # a node's own connection to a NodePort with a remote backend; and SVC-NO-ENDPOINTS when
          # the unreachables for replies to 203.0.113.7 use up a pod's ICMP rate limit first
          # DNS-HOSTNET: the hostNetwork pods' DNS queries are SNATed too
          also=("SVC-NODEPORT", "SVC-NO-ENDPOINTS", "HOSTNET-SVC", "DNS-HOSTNET"),
          node_commands=(("iptables", "-t", "nat", "-I", "POSTROUTING", "-m", "addrtype",
                          "--src-type", "LOCAL", "-d", "${CLUSTER_CIDR}", "-j", "SNAT",
                          "--to-source", "203.0.113.7"),)),
    Fault("no-route-to-last-node", ("POD-POD-CROSS",),
          "the first node has no route to the last node's pod CIDR",
          # everything that crosses from the first to the last node; and SVC-NO-ENDPOINTS when the
          # node's ICMP unreachables to a pod use up its ICMP rate limit before kube-proxy's REJECT
          # DNS_ROWS: CoreDNS on the first node cannot answer the last node's pods
          # SVC-MULTIPORT: a ClusterIP with backends on every node, as SVC-CLUSTERIP
          # SVC-HOSTNET-ENDPOINTS, SVC-ITP-LOCAL (its control to web): replies to the last node's pods
          # UDP-LARGE: its pairs across nodes (on vxlan, the first node's datagrams to the last)
          also=("SVC-UDP-BACKEND-CHANGE", "SVC-HOSTNET-ENDPOINTS", "SVC-ITP-LOCAL", "HOSTNET-POD", "SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-NODEPORT", "SVC-AFFINITY", "SVC-AFFINITY-TIMEOUT",
                "SVC-HAIRPIN", "SVC-ETP-LOCAL", "SVC-NO-ENDPOINTS", "MTU", "POD-NODEPORT",
                "HOSTNET-SVC", *DNS_ROWS, "SVC-MULTIPORT", "UDP-LARGE", *CHANGING_ROWS),
          on_nodes="first", node_commands=(("ip", "route", "del", "${LAST_POD_CIDR}"),)),
    Fault("node-blocks-own-pods", ("NODE-POD",),
          "every node's firewall drops what the node itself sends to its own pods",
          # the node's own connections through Services and hostPorts, and its REJECTs to its pods
          # DNS-HOSTNET: the node's queries to a CoreDNS pod on it
          # SVC-HOSTNET-ENDPOINTS: a host backend's replies to its own node's pods
          also=("SVC-HOSTNET-ENDPOINTS", "HOSTNET-POD", "SVC-NODEPORT", "HOSTPORT", "SVC-NO-ENDPOINTS", "HOSTNET-SVC", "DNS-HOSTNET"),
          node_commands=(("iptables", "-I", "OUTPUT", "-d", "${POD_CIDR}", "-j", "DROP"),)),
    Fault("one-way-drop", ("POD-POD-CROSS",),
          "the last node forwards requests to its pods but drops their replies to other nodes",
          # every connection a pod of the last node takes part in across nodes (its ACKs are
          # replies' companions: ESTABLISHED too), and so every Service check with such a pair
          # DNS_ROWS: DNS over TCP between the last node's pods and CoreDNS
          # SVC-MULTIPORT: a ClusterIP with backends on every node, as SVC-CLUSTERIP
          # SVC-HOSTNET-ENDPOINTS, SVC-ITP-LOCAL, POD-APISERVER, APISERVER-POD: the last node's pods'
          # connections across nodes, and the API server's to them
          also=("SVC-UDP-BACKEND-CHANGE", "SVC-HOSTNET-ENDPOINTS", "SVC-ITP-LOCAL", "POD-APISERVER", "APISERVER-POD", "HOSTNET-POD", "SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-NODEPORT", "SVC-AFFINITY", "SVC-AFFINITY-TIMEOUT",
                "SVC-HAIRPIN", "SVC-ETP-LOCAL", "HOSTPORT", "MTU", "POD-NODEPORT", "HOSTNET-SVC", *DNS_ROWS, "SVC-MULTIPORT", *CHANGING_ROWS),
          on_nodes="last", node_commands=(("iptables", "-I", "FORWARD", "-s", "${POD_CIDR}", "-o", "eth0",
                                           "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "DROP"),)),
    Fault("udp-drop", ("POD-POD-SAME", "POD-POD-CROSS"),
          "nodes drop every forwarded UDP packet to a pod (TCP and ICMP pass)",
          # DNS_ROWS: DNS over UDP to CoreDNS pods
          # SVC-MULTIPORT: a ClusterIP with backends on every node, as SVC-CLUSTERIP
          # SVC-HOSTNET-ENDPOINTS, SVC-ITP-LOCAL: their UDP items
          also=("SVC-UDP-BACKEND-CHANGE", "SVC-HOSTNET-ENDPOINTS", "SVC-ITP-LOCAL", "HOSTNET-POD", "SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-HAIRPIN", "SVC-AFFINITY", "SVC-AFFINITY-TIMEOUT",
                "SVC-NODEPORT", "SVC-ETP-LOCAL", "HOSTPORT", "POD-NODEPORT", "HOSTNET-SVC", *DNS_ROWS, "SVC-MULTIPORT", *CHANGING_ROWS),
          # every UDP item that crosses a FORWARD
          node_commands=(("iptables", "-I", "FORWARD", "-p", "udp", "-d", "${CLUSTER_CIDR}", "-j", "DROP"),)),
    Fault("localhost-split", ("LOCALHOST",),
          "the duo pod's second container runs in a network namespace of its own", also=("SVC-MULTIPORT", "SVC-ENDPOINTSLICE-MANUAL"),  # duo's c2 (port 81 of multiport, manual) is gone
          split_duo=True),
    Fault("flannel-vxlan-dropped", ("POD-POD-CROSS",),
          "the first node's firewall drops flannel's VXLAN packets (UDP 8472), in and out, below flanneld",
          also=FIRST_NODE_CUT_OFF, on_nodes="first", cnis=("flannel",),
          nft=(NftChain("type filter hook input priority filter - 10", (("udp", "dport", "8472", "drop"),)),
               NftChain("type filter hook output priority filter - 10", (("udp", "dport", "8472", "drop"),)))),
    Fault("flannel-masquerade-between-nodes", ("POD-POD-CROSS", "POD-IP-SELF"),
          "a misconfigured masquerade agent on every node masquerades pod traffic to other nodes' "
          "pods, before flannel's own rules (out of flannel.1, which a rule for eth0 would miss)",
          also=("SVC-HOSTNET-ENDPOINTS", "SVC-SOURCE-IP"), cnis=("flannel",), nft=MASQUERADE_TO_OTHER_NODES_PODS),
    Fault("flannel-agent-killed", (),
          "flanneld killed on the first node: its VXLAN device, forwarding entries and routes stay "
          "in the kernel and its subnet lease outlives it, so nothing may break while it is down",
          on_nodes="first", cnis=("flannel",), agent_killed=True),
    Fault("kube-router-agent-killed", ("POD-POD-CROSS",),
          "kube-router killed on the first node: its peers keep its routes for the graceful restart "
          "time (nothing breaks meanwhile), then withdraw its pod CIDR, and the other nodes' pods can "
          "no longer reach its pods, nor it theirs (their replies have no way back)",
          also=FIRST_NODE_CUT_OFF, on_nodes="first", cnis=("kube-router",), agent_killed=True,
          routes_withdrawn=True),
    Fault("kube-router-bgp-blocked", ("POD-POD-CROSS",),
          "the first node's firewall resets BGP (TCP 179), in and out, below kube-router, and its "
          "sessions are ended: once the graceful restart time is over its peers withdraw its pod CIDR",
          also=FIRST_NODE_CUT_OFF, on_nodes="first", cnis=("kube-router",), routes_withdrawn=True,
          revert_restarts_agent=True,
          node_commands=(("ss", "-K", "sport = :179 or dport = :179"),),  # its sessions now, not at a keepalive
          # its resets go out (the ended sessions' and the rejects'): the peers learn at once
          nft=(NftChain("type filter hook input priority filter - 10",
                        (("tcp", "dport", "179", "reject", "with", "tcp", "reset"),
                         ("tcp", "sport", "179", "reject", "with", "tcp", "reset"))),
               NftChain("type filter hook output priority filter - 10",
                        (("tcp", "flags", "&", "rst", "==", "rst", "accept"),
                         ("tcp", "dport", "179", "reject", "with", "tcp", "reset"),
                         ("tcp", "sport", "179", "reject", "with", "tcp", "reset"))))),
    Fault("kube-router-masquerade-between-nodes", ("POD-POD-CROSS", "POD-IP-SELF"),
          "a misconfigured masquerade agent on every node masquerades pod traffic to other nodes' "
          "pods, before kube-router's own rules (its pod-egress masquerade leaves pod CIDRs alone)",
          also=("SVC-SOURCE-IP",), cnis=("kube-router",), nft=MASQUERADE_TO_OTHER_NODES_PODS),
    Fault("ipv6-no-route-to-last-node", ("POD-POD-CROSS",),
          "the first node has no IPv6 route to the last node's IPv6 pod range (its IPv4 route stays)",
          # as no-route-to-last-node, in IPv6 alone
          also=("SVC-UDP-BACKEND-CHANGE", "SVC-HOSTNET-ENDPOINTS", "SVC-ITP-LOCAL", "HOSTNET-POD", "SVC-CLUSTERIP",
                "SVC-SOURCE-IP", "SVC-NODEPORT", "SVC-AFFINITY", "SVC-AFFINITY-TIMEOUT", "SVC-HAIRPIN",
                "SVC-ETP-LOCAL", "SVC-NO-ENDPOINTS", "MTU", "POD-NODEPORT", "HOSTNET-SVC", *DNS_ROWS,
                "SVC-MULTIPORT", "HOSTPORT", "UDP-LARGE", *CHANGING_ROWS),
          on_nodes="first", ipv6=True, node_commands=(("ip", "route", "del", "${LAST_POD_CIDR6}"),)),
    Fault("ipv6-snat-between-nodes", ("POD-POD-CROSS", "POD-IP-SELF"),
          "nodes masquerade IPv6 pod traffic leaving for other nodes (ip6tables; IPv4 is left alone)",
          also=("SVC-HOSTNET-ENDPOINTS", "SVC-SOURCE-IP"), ipv6=True,
          node_commands=(("ip6tables", "-t", "nat", "-I", "POSTROUTING", "-s", "${POD_CIDR6}",
                          "-o", "eth0", "-j", "MASQUERADE"),)),
    Fault("ipv6-pod-address-removed", ("DUAL-STACK",),
          "the first node's probe pods lose their IPv6 address (podIPs still list it); IPv4 stays",
          # every IPv6 item to or from those pods: they have no IPv6 address to send from or receive at
          also=("POD-POD-SAME", "POD-POD-CROSS", "POD-IP-SELF", "NODE-POD", *FIRST_NODE_CUT_OFF),
          on_nodes="first", ipv6=True, pod_commands=(("ip", "-6", "addr", "del", "${POD_IP6}/64", "dev", "eth0"),)),
    Fault("mtu-black-hole", ("MTU",),
          "the underlay carries 1400-byte packets, pods send 1500, and nothing says so (no ICMP)",
          port_commands=(("ip", "link", "set", "${PORT}", "mtu", "1400"),)),
    Fault("svc-lost-endpoint", ("SVC-CLUSTERIP",),
          "nodes drop connections to web's ClusterIP that kube-proxy sent to its last endpoint "
          "(an endpoint that is listed but cannot be reached through the Service)",
          # the same ClusterIP: the lost backend never answers
          # DNS-SVC, DNS-HOSTNET: the name connects through web's ClusterIP
          # SVC-PORT-PROTOCOLS: its positive control goes to web (an error when it is lost)
          # SVC-ITP-LOCAL: its positive control goes to web (an error when it is lost)
          also=("SVC-ITP-LOCAL", "SVC-HAIRPIN", "SVC-SOURCE-IP", "HOSTNET-SVC", "DNS-SVC", "DNS-HOSTNET", "SVC-PORT-PROTOCOLS"),
          node_commands=_both_ways("-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst",
                                   cluster_ip_placeholder("web"), "-d", "${LAST_BACKEND_IP}",
                                   "-j", "DROP")),
    Fault("svc-snat", ("SVC-SOURCE-IP",), "kube-proxy masquerades every Service connection "
          "(masqueradeAll: true)",
          also=("SVC-HOSTNET-ENDPOINTS",),  # its backends see the node's address too
          proxy={mode: {"masqueradeAll": True} for mode in ("iptables", "nftables")}),
    Fault("svc-no-nodeports", ("SVC-NODEPORT", "POD-NODEPORT", "SVC-ETP-LOCAL", "SVC-AFFINITY"),
          "kube-proxy serves NodePorts on no address of the nodes (nodePortAddresses: 192.0.2.0/24)",
          also=("SVC-TYPE-CHANGE",),  # its NodePort round connects to the nodePort it was given
          proxy={"nodePortAddresses": ["192.0.2.0/24"]}),
    Fault("svc-no-hairpin-masquerade", ("SVC-HAIRPIN",),
          "another program's source NAT, ahead of kube-proxy's, gives a backend's connection to "
          "itself through a Service its own address, so kube-proxy's hairpin masquerade never "
          "applies (a connection is source-NATed once)",
          # no other row's client is a backend of the Service it connects to (checks.not_backing)
          nft=(NftChain("type nat hook postrouting priority srcnat - 1",
                        (("ip", "saddr", "${BACKEND_IP}", "ip", "daddr", "${BACKEND_IP}",
                          "snat", "ip", "to", "${BACKEND_IP}"),)),)),
    Fault("svc-no-affinity", ("SVC-AFFINITY", "SVC-AFFINITY-TIMEOUT"),
          "every new connection first makes the node forget its client's affinity (as a flushed "
          "affinity table); iptables mode only: nftables mode keeps affinity in sets of its own "
          "table, which no other table's rule can reach",
          modes=("iptables",),
          node_commands=tuple(("iptables", "-t", "nat", "-I", chain, "1", "-m", "recent", "--name",
                               "${AFFINITY_LIST}", "--rsource", "--mask", "255.255.255.255", "--remove")
                              for chain in ("PREROUTING", "OUTPUT"))),
    Fault("svc-no-reject", ("SVC-NO-ENDPOINTS",),
          "a node firewall drops what is sent to a Service without endpoints before kube-proxy "
          "can reject it, so its connections time out",
          nft=tuple(NftChain(f"type filter hook {hook} priority filter - 10",
                             (("ip", "daddr", cluster_ip_placeholder("empty"), "drop"),))
                    for hook in ("forward", "output"))),
    Fault("svc-etp-ignored", ("SVC-ETP-LOCAL",),
          "nodes masquerade connections from outside the cluster, so externalTrafficPolicy: Local "
          "backends do not see the client",
          node_commands=(("iptables", "-t", "nat", "-I", "POSTROUTING", "1", "-s", "${OUTSIDE_IP}",
                          "-d", "${CLUSTER_CIDR}", "-j", "MASQUERADE"),)),
    Fault("host-clusterip-blocked", ("HOSTNET-SVC",),
          "every node's firewall drops its own connections to ClusterIPs (after kube-proxy's DNAT)",
          # SVC-HOSTNET-ENDPOINTS: a host backend's replies leave through OUTPUT, DNATed from a ClusterIP
          also=("SVC-HOSTNET-ENDPOINTS", "DNS-HOSTNET",),  # its DNS queries go to the kube-dns ClusterIP
          node_commands=(("iptables", "-I", "OUTPUT", "1", "-m", "conntrack", "--ctstate", "DNAT",
                          "--ctorigdst", "${SERVICE_CIDR}", "-j", "DROP"),)),
    Fault("svc-second-port-dropped", ("SVC-MULTIPORT",), "every node's firewall drops what is sent "
          "to the second port of the two-port Service (as if kube-proxy had programmed one port)",
          # matched after kube-proxy's DNAT by the original destination, as svc-lost-endpoint
          node_commands=_both_ways("-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst",
                                   cluster_ip_placeholder("multiport"), "--ctorigdstport", "81",
                                   "-j", "DROP")),
    Fault("svc-manual-slices-ignored", ("SVC-ENDPOINTSLICE-MANUAL",), "every node's firewall drops "
          "what is sent to the Service whose EndpointSlices were made by hand (as a proxy that "
          "only reads the slices the EndpointSlice controller made)",
          # matched after kube-proxy's DNAT by the original destination, as svc-lost-endpoint
          node_commands=_both_ways("-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst",
                                   cluster_ip_placeholder("manual"), "-j", "DROP")),
    Fault("dns-udp-dropped", DNS_ROWS, "the first node drops DNS over UDP from its pods and "
          "from itself (TCP passes)", also=("SVC-TYPE-CHANGE",),  # its names are asked over UDP too
          on_nodes="first",
          node_commands=(("iptables", "-I", "FORWARD", "1", "-s", "${POD_CIDR}", "-p", "udp",
                          "--dport", "53", "-j", "DROP"),
                         ("iptables", "-I", "OUTPUT", "1", "-p", "udp", "--dport", "53", "-j", "DROP"))),
    Fault("dns-wrong-search", ("DNS-SVC", "DNS-HEADLESS", "DNS-SRV", "DNS-EXTERNALNAME", "DNS-HOSTNET",
                               "DNS-POD-HOSTNAME"),
          "the pods of the first node get a search list without their namespace's "
          "(svc.<domain> <domain>): short Service names do not resolve; absolute names do",
          also=("SVC-TYPE-CHANGE",),  # it asks short names too
          on_nodes="first", resolv_search=("svc.${DOMAIN}", "${DOMAIN}")),
    Fault("dns-no-endpoints", DNS_ROWS, "the kube-dns Service selects no pod (its selector "
          "edited), so cluster DNS has no endpoints",
          also=("SVC-TYPE-CHANGE",),  # it asks names
          service_patches=(("kube-system", "kube-dns", {"spec": {"selector": {"k8s-app": "kube-dns-nowhere"}}}),)),
    Fault("kube-proxy-frozen", ("SVC-TYPE-CHANGE", "SVC-PORT-PROTOCOLS", "SVC-AFFINITY", "SVC-UDP-BACKEND-CHANGE"),
          "every kube-proxy hangs after its first sync "
          "(stopped): the rules it wrote keep working, Service and endpoint changes are never "
          "applied (a new backend pod is never reached)",
          proxy_frozen=True),
    Fault("svc-affinity-never-expires", ("SVC-AFFINITY-TIMEOUT",), "the Service whose ClientIP "
          "affinity should expire after 1 s keeps it for 3 hours (its timeoutSeconds edited), so "
          "its clients stay on one backend",
          service_patches=((RUN_NAMESPACE, "affinity-timeout",
                            {"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}}}),)),
    Fault("dns-hostname-unpublished", ("DNS-POD-HOSTNAME",), "the headless Service named like the "
          "pod's subdomain selects no pod (its selector edited), so the pod's hostname has no record",
          service_patches=((RUN_NAMESPACE, "hostnames", {"spec": {"selector": {"netconform.io/role": "nowhere"}}}),)),
    Fault("svc-itp-ignored", ("SVC-ITP-LOCAL",), "a second proxy ahead of kube-proxy (a nat "
          "chain of its own at dstnat - 1) sends the internalTrafficPolicy Local Service to its "
          "backend wherever the client is, as a proxy that ignores the policy",
          nft=(NftChain("type nat hook prerouting priority dstnat - 1",
                        (("ip", "daddr", cluster_ip_placeholder("itp-local"), "meta", "l4proto", "{", "tcp,",
                          "udp", "}", "th", "dport", "80", "dnat", "ip", "to",
                          backend_ips_placeholder("itp-local") + ":8080"),)),)),
    Fault("apiserver-cut-off-from-pods", ("APISERVER-POD",), "the control plane's firewall drops "
          "the connections the API server opens to pod IPs (its pod proxy); connections pods open "
          "to it still pass",
          control_plane_commands=(("iptables", "-I", "OUTPUT", "1", "-d", "${CLUSTER_CIDR}", "-m",
                                   "conntrack", "--ctstate", "NEW", "-j", "DROP"),)),
    Fault("pods-apiserver-blocked", ("POD-APISERVER",), "every node's firewall drops the new "
          "connections its pods open to the kubernetes Service (matched after kube-proxy's DNAT by "
          "their original destination; the connections open before stay)",
          node_commands=(("iptables", "-I", "FORWARD", "1", "-s", "${POD_CIDR}", "-m", "conntrack",
                          "--ctstate", "NEW", "-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst",
                          "${KUBERNETES_IP}", "-j", "DROP"),)),
    Fault("svc-hostnet-masqueraded", ("SVC-HOSTNET-ENDPOINTS",), "every node masquerades its "
          "pods' connections to the Service whose endpoints are hostNetwork pods (matched after "
          "kube-proxy's DNAT by their original destination), so a backend on another node sees "
          "the node's address (as a CNI that masquerades pod traffic to node addresses)",
          node_commands=(("iptables", "-t", "nat", "-I", "POSTROUTING", "1", "-s", "${POD_CIDR}",
                          "-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst",
                          cluster_ip_placeholder("hostnet"), "-j", "MASQUERADE"),)),
    Fault("udp-fragments-dropped", ("UDP-LARGE",), "every node drops the fragments after the first "
          "of what it receives, before reassembly (as a network that filters IP fragments): a "
          "datagram larger than one packet never arrives",
          nft=(NftChain("type filter hook prerouting priority -450",
                        (("ip", "frag-off", "&", "0x1fff", "!=", "0", "drop"),)),)),
    Fault("hostport-dnat-flushed", ("HOSTPORT",), "the portmap plugin's DNAT rules are bypassed "
          "(as if flushed)",
          node_commands=(("iptables", "-t", "nat", "-I", "CNI-HOSTPORT-DNAT", "1", "-j", "RETURN"),)),
]}


class UnknownFault(ValueError):
    pass


def mode_refusal(fault: Fault, mode: str) -> str:
    return (f"--lab-fault {fault.name} has no mechanism for kube-proxy's {mode} mode (it has one "
            f"for: {', '.join(fault.modes)}); run it with --lab-proxy {fault.modes[0]}")


def family_refusal(fault: Fault, families: tuple[str, ...]) -> str | None:
    """Why ``fault`` cannot be injected into a lab of ``families``, or None when it can."""
    if fault.ipv6 and "ipv6" not in families:
        return f"--lab-fault {fault.name} acts on IPv6 alone; run it with --ip-family=dual"
    if "ipv4" not in families and not fault.ipv6 and _acts_on_ipv4(fault):
        return (f"--lab-fault {fault.name} acts on IPv4 (its routes, iptables or nftables rules) and this "
                f"lab is IPv6-only: it would break nothing; run it with --ip-family=ipv4 or dual")
    return None


def _acts_on_ipv4(fault: Fault) -> bool:
    """Whether the fault works through IPv4 tools (commands, an ``ip`` nftables table); the
    others (kube-proxy's settings, a Service patched, a search list, a frozen proxy) act in any family."""
    return bool(fault.node_commands or fault.port_commands or fault.control_plane_commands
                or fault.pod_commands or fault.nft)


def cni_refusal(fault: Fault, cni: str | None) -> str | None:
    """Why ``fault`` cannot be injected into a lab whose installed CNI is ``cni`` (None: the
    conflist alone), or None when it can."""
    if fault.cnis and cni not in fault.cnis:
        return (f"--lab-fault {fault.name} acts on {', '.join(fault.cnis)}'s datapath; run it with "
                f"--cni={fault.cnis[0]}")
    return None


def fault(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise UnknownFault(f"unknown --lab-fault {name!r}; known faults: "
                           f"{', '.join(sorted(FAULTS))} (or 'list')") from None


def listing() -> str:
    width = max(len(name) for name in FAULTS)
    return "\n".join(f"{f.name:<{width}}  breaks {', '.join(f.breaks) or 'nothing'}"
                     f"{' (also ' + ', '.join(f.also) + ')' if f.also else ''}: {f.description}"
                     f"{' [--cni=' + '|'.join(f.cnis) + ' only]' if f.cnis else ''}"
                     for f in FAULTS.values())

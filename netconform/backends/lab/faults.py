"""Faults the lab can inject, each meant to turn named requirements red.

A fault turns a kube-proxy knob (the Service rules are rendered without one behaviour), runs
commands in node namespaces or on the world's underlay ports after the lab is built, as a
misconfigured node or network would have, or splits the duo pod's containers apart.
Placeholders in commands: ${POD_CIDR} (this node's), ${LAST_POD_CIDR} (the last node's),
${CLUSTER_CIDR}, ${PORT} (a node's underlay port in the world namespace).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fault:
    name: str
    breaks: tuple[str, ...]  # the requirements it must turn red
    description: str
    also: tuple[str, ...] = ()  # requirements it may turn red as a consequence (measured, explained)
    proxy: dict = field(default_factory=dict)  # ProxyOptions overrides
    node_commands: tuple[tuple[str, ...], ...] = ()  # run in node namespaces
    on_nodes: str = "all"  # which nodes run node_commands: "all", "first" or "last"
    port_commands: tuple[tuple[str, ...], ...] = ()  # run in the world ns, once per node port
    split_duo: bool = False  # duo's second container gets a network namespace of its own


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("snat-between-nodes", ("POD-POD-CROSS", "POD-IP-SELF"),
          "nodes masquerade pod traffic leaving for other nodes",
          also=("SVC-SOURCE-IP",),  # a Service connection to another node's backend is SNATed too
          node_commands=(("iptables", "-t", "nat", "-I", "POSTROUTING", "-s", "${POD_CIDR}",
                          "-o", "eth0", "-j", "MASQUERADE"),)),
    Fault("snat-host-network", ("HOSTNET-POD",),
          "nodes rewrite the source of their own traffic to pods to an address that is not theirs",
          # a node's own connection to a NodePort with a remote backend; and SVC-NO-ENDPOINTS when
          # the unreachables for replies to 203.0.113.7 use up a pod's ICMP rate limit first
          also=("SVC-NODEPORT", "SVC-NO-ENDPOINTS"),
          node_commands=(("iptables", "-t", "nat", "-I", "POSTROUTING", "-m", "addrtype",
                          "--src-type", "LOCAL", "-d", "${CLUSTER_CIDR}", "-j", "SNAT",
                          "--to-source", "203.0.113.7"),)),
    Fault("no-route-to-last-node", ("POD-POD-CROSS",),
          "the first node has no route to the last node's pod CIDR",
          # everything that crosses from the first to the last node; and SVC-NO-ENDPOINTS when the
          # node's ICMP unreachables to a pod use up its ICMP rate limit before kube-proxy's REJECT
          also=("HOSTNET-POD", "SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-NODEPORT", "SVC-AFFINITY",
                "SVC-HAIRPIN", "SVC-ETP-LOCAL", "SVC-NO-ENDPOINTS", "MTU"),
          on_nodes="first", node_commands=(("ip", "route", "del", "${LAST_POD_CIDR}"),)),
    Fault("node-blocks-own-pods", ("NODE-POD",),
          "every node's firewall drops what the node itself sends to its own pods",
          # the node's own connections through Services and hostPorts, and its REJECTs to its pods
          also=("HOSTNET-POD", "SVC-NODEPORT", "HOSTPORT", "SVC-NO-ENDPOINTS"),
          node_commands=(("iptables", "-I", "OUTPUT", "-d", "${POD_CIDR}", "-j", "DROP"),)),
    Fault("one-way-drop", ("POD-POD-CROSS",),
          "the last node forwards requests to its pods but drops their replies to other nodes",
          # every connection a pod of the last node takes part in across nodes (its ACKs are
          # replies' companions: ESTABLISHED too), and so every Service check with such a pair
          also=("HOSTNET-POD", "SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-NODEPORT", "SVC-AFFINITY",
                "SVC-HAIRPIN", "SVC-ETP-LOCAL", "HOSTPORT", "MTU"),
          on_nodes="last", node_commands=(("iptables", "-I", "FORWARD", "-s", "${POD_CIDR}", "-o", "eth0",
                                           "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "DROP"),)),
    Fault("udp-drop", ("POD-POD-SAME", "POD-POD-CROSS"),
          "nodes drop every forwarded UDP packet to a pod (TCP and ICMP pass)",
          also=("HOSTNET-POD", "SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-HAIRPIN", "SVC-AFFINITY",
                "SVC-NODEPORT", "SVC-ETP-LOCAL", "HOSTPORT"),  # every UDP item that crosses a FORWARD
          node_commands=(("iptables", "-I", "FORWARD", "-p", "udp", "-d", "${CLUSTER_CIDR}", "-j", "DROP"),)),
    Fault("localhost-split", ("LOCALHOST",),
          "the duo pod's second container runs in a network namespace of its own", split_duo=True),
    Fault("mtu-black-hole", ("MTU",),
          "the underlay carries 1400-byte packets, pods send 1500, and nothing says so (no ICMP)",
          port_commands=(("ip", "link", "set", "${PORT}", "mtu", "1400"),)),
    Fault("svc-lost-endpoint", ("SVC-CLUSTERIP",),
          "kube-proxy balances over all endpoints but the last",
          also=("SVC-HAIRPIN",),  # the forgotten backend never reaches itself
          proxy={"drop_last_endpoint": True}),
    Fault("svc-snat", ("SVC-SOURCE-IP",), "kube-proxy masquerades every Service connection",
          proxy={"masquerade_all": True}),
    Fault("svc-no-nodeports", ("SVC-NODEPORT", "SVC-ETP-LOCAL"),
          "the jump to KUBE-NODEPORTS is missing", proxy={"nodeports": False}),
    Fault("svc-no-hairpin-masquerade", ("SVC-HAIRPIN",),
          "the KUBE-SEP masquerade rule for a backend reaching itself is missing",
          also=("SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-AFFINITY"),  # backends are clients there too
          proxy={"hairpin_masquerade": False}),
    Fault("svc-no-affinity", ("SVC-AFFINITY",), "sessionAffinity: ClientIP is ignored",
          proxy={"session_affinity": False}),
    Fault("svc-no-reject", ("SVC-NO-ENDPOINTS",),
          "a Service without endpoints is not rejected, so its connections time out",
          proxy={"reject_without_endpoints": False}),
    Fault("svc-etp-ignored", ("SVC-ETP-LOCAL",),
          "externalTrafficPolicy: Local is treated as Cluster (client IP masqueraded)",
          proxy={"local_traffic_policy": False}),
    Fault("hostport-dnat-flushed", ("HOSTPORT",), "the portmap plugin's DNAT rules are gone",
          node_commands=(("iptables", "-t", "nat", "-F", "CNI-HOSTPORT-DNAT"),)),
]}


class UnknownFault(ValueError):
    pass


def fault(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise UnknownFault(f"unknown --lab-fault {name!r}; known faults: "
                           f"{', '.join(sorted(FAULTS))} (or 'list')") from None


def listing() -> str:
    width = max(len(name) for name in FAULTS)
    return "\n".join(f"{f.name:<{width}}  breaks {', '.join(f.breaks)}"
                     f"{' (also ' + ', '.join(f.also) + ')' if f.also else ''}: {f.description}"
                     for f in FAULTS.values())

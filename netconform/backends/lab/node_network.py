"""The lab's nodes on the network: each node namespace addressed on the underlay, reaching every
other node's pod range (interconnects/), and the namespaces that are no node (the outside client,
the control plane) routed to every pod.

    world ns:  bridge ── veth ── node ns (eth0 172.18.0.x and fd00:18::x, routes to other pod CIDRs)
                     └── veth ── outside ns (the client outside the cluster)

Apart from LabCluster so that a change of how nodes are wired (a family, an interconnect, a node
sysctl) has one place, and the cluster only says when it happens.
"""
from __future__ import annotations

from typing import Sequence

from . import netns
from .interconnects import INTERCONNECTS, CniRouted, Interconnect
from .naming import (OUTSIDE_IP, OUTSIDE_IP6, UNDERLAY_GATEWAY, UNDERLAY_GATEWAY6, RunNames, in_families,
                     node_ip, node_ip6, pod_cidr, pod_cidr6)
from .underlay import Port, Underlay

# Each node namespace's own settings (the host's are untouched).
NODE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    # kube-proxy needs bridged pod traffic to pass iptables, as kubelet's preflight requires
    "net.bridge.bridge-nf-call-iptables": "1",
    # Hairpin traffic leaves by the veth it came in on (ptp), so the node would send ICMP
    # redirects to the pod; they spend the pod's ICMP rate-limit tokens, and kube-proxy's
    # REJECT for a Service without endpoints is then not sent for a second or two.
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    # The node's ICMP errors to one pod are rate-limited (6 at once, then one a second):
    # kube-proxy's REJECT for a Service without endpoints is such an error, so checks run
    # in quick succession (a fault injected and reverted on a running lab, a retry) would
    # see timeouts that say nothing about the network.
    "net.ipv4.icmp_ratelimit": "0",
}
# The same for IPv6 (its ICMPv6 errors, kube-proxy's rejects among them, are rate-limited too)
NODE_SYSCTLS6 = {"net.ipv6.conf.all.forwarding": "1", "net.bridge.bridge-nf-call-ip6tables": "1",
                 "net.ipv6.icmp.ratelimit": "0"}


class NodeNetwork:
    """Node ``i`` (1-based) of ``nodes`` is node-i: its addresses, pod ranges and wiring."""

    def __init__(self, names: RunNames, nodes: Sequence[str], families: tuple[str, ...],
                 overlay: str, cni_routed: bool) -> None:
        self.names = names
        self.nodes = list(nodes)
        self.families = families
        self.has_ipv6 = "ipv6" in families
        # between the nodes: a real CNI's daemons route, else the profile's interconnect
        self.interconnect: Interconnect = CniRouted() if cni_routed else INTERCONNECTS[overlay]

    def node_ips(self, index: int) -> list[str]:
        """Node ``index``'s InternalIPs, one per family (the primary's first); 0 is the control plane's range."""
        return in_families(self.families, node_ip(index), node_ip6(index))

    def pod_cidrs(self, index: int) -> list[str]:
        return in_families(self.families, pod_cidr(index), pod_cidr6(index))

    def index(self, node: str) -> int:
        return self.nodes.index(node) + 1

    def build(self, underlay: Underlay) -> None:
        """The world with every node and the outside client on it, each addressed and routed."""
        ports = [Port(self.names.underlay_port(i), self.names.node(n)) for i, n in enumerate(self.nodes, 1)]
        ports.append(Port(self.names.underlay_port(0), self.names.outside))
        underlay.create(ports)
        netns.ip_batch(self.names.outside, ["link set lo up", f"addr add {OUTSIDE_IP}/24 dev eth0",
                                            *([f"addr add {OUTSIDE_IP6}/64 dev eth0 nodad"] if self.has_ipv6 else []),
                                            "link set eth0 up"])
        for index, node in enumerate(self.nodes, 1):
            self.configure_node(index, node)
        self.route_pods_from(self.names.outside)

    def configure_node(self, index: int, node: str) -> None:
        """Address the node on the underlay and reach every other node's pod range."""
        name = self.names.node(node)
        commands = ["link set lo up", f"addr add {node_ip(index)}/24 dev eth0", "link set eth0 up"]
        if self.has_ipv6:  # no duplicate address detection: the underlay is the lab's own
            commands.insert(2, f"addr add {node_ip6(index)}/64 dev eth0 nodad")
        others = [other for other in range(1, len(self.nodes) + 1) if other != index]
        between, fdb = self.interconnect.commands(index, others, self.families)
        commands += between
        commands.append(f"route add default via {UNDERLAY_GATEWAY}")
        if self.has_ipv6:
            commands.append(f"route add default via {UNDERLAY_GATEWAY6}")
        netns.ip_batch(name, commands)
        if fdb:
            netns.ip_batch(name, fdb, tool="bridge")
        netns.sysctl(name, {**(NODE_SYSCTLS6 if self.has_ipv6 else {}), **NODE_SYSCTLS})

    def route_pods_from(self, namespace: str) -> None:
        """Routes to every node's pod range via that node, for a namespace on the underlay that is
        not a node (the control plane, the outside network): pods reach it with their own IPs."""
        count = len(self.nodes)
        commands = [f"route add {pod_cidr(i)} via {node_ip(i)}" for i in range(1, count + 1)]
        if self.has_ipv6:
            commands += [f"route add {pod_cidr6(i)} via {node_ip6(i)}" for i in range(1, count + 1)]
        netns.ip_batch(namespace, commands)

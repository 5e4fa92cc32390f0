"""How a node reaches the other nodes' pod CIDRs when no CNI daemon routes them (a conflist alone).

Each way is a small class the LabSpec names by ``overlay``; one more (BGP, say) is one more class
and one entry in INTERCONNECTS. A real CNI installed from its manifest (cni_install.py) routes
between nodes itself, and the lab then adds nothing (``CniRouted``).

    routes: a route per other node's pod CIDR via that node's underlay address (kubenet, a cloud
            route table)
    vxlan:  a flannel-like overlay: one VTEP per node, addressed x.y.N.0 of its pod CIDR, and for
            every other node a route through its VTEP with static ARP and FDB entries
"""
from __future__ import annotations

from .naming import node_ip, pod_cidr

VXLAN_DEVICE = "vxlan.nc"  # inside the node namespaces only: no prefix needed


class StaticRoutes:
    name = "routes"

    def commands(self, index: int, others: list[int]) -> tuple[list[str], list[str]]:
        """The node's `ip` commands, and its `bridge fdb` commands (none here)."""
        return [f"route add {pod_cidr(other)} via {node_ip(other)}" for other in others], []


class Vxlan:
    name = "vxlan"

    def commands(self, index: int, others: list[int]) -> tuple[list[str], list[str]]:
        return vxlan_commands(index, others)


class CniRouted:
    """A real CNI's daemons route between the nodes: the lab adds nothing."""
    name = "cni"

    def commands(self, index: int, others: list[int]) -> tuple[list[str], list[str]]:
        return [], []


INTERCONNECTS = {way.name: way for way in (StaticRoutes(), Vxlan())}


def vxlan_commands(index: int, others: list[int]) -> tuple[list[str], list[str]]:
    """Returns the `ip` commands and the `bridge fdb` commands of the node ``index``."""
    commands = [f"link add {VXLAN_DEVICE} address {vtep_mac(index)} type vxlan id 1 dev eth0 "
                f"dstport 4789 nolearning", f"addr add {vtep_ip(index)}/32 dev {VXLAN_DEVICE}",
                f"link set {VXLAN_DEVICE} up"]
    for other in others:
        commands += [f"route add {pod_cidr(other)} via {vtep_ip(other)} dev {VXLAN_DEVICE} onlink",
                     f"neigh add {vtep_ip(other)} lladdr {vtep_mac(other)} dev {VXLAN_DEVICE} nud permanent"]
    fdb = [f"fdb append {vtep_mac(other)} dev {VXLAN_DEVICE} dst {node_ip(other)}" for other in others]
    return commands, fdb


def vtep_ip(index: int) -> str:
    return pod_cidr(index).split("/")[0]


def vtep_mac(index: int) -> str:
    return f"02:6e:63:00:{index // 256:02x}:{index % 256:02x}"

"""A flannel-like VXLAN overlay: one VTEP per node, addressed x.y.N.0 of its pod range, and for
every other node a route through its VTEP with static ARP and FDB entries (IPv4)."""
from __future__ import annotations

from ..naming import node_ip, pod_cidr

VXLAN_DEVICE = "vxlan.nc"  # inside the node namespaces only: no prefix needed


class Vxlan:
    name = "vxlan"
    families = ("ipv4",)

    def commands(self, index: int, others: list[int], families: tuple[str, ...]) -> tuple[list[str], list[str]]:
        return vxlan_commands(index, others)


INTERCONNECT = Vxlan()


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

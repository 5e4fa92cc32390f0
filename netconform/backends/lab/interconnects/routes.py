"""Static routes: a route per other node's pod range via that node's underlay address, in each
family (kubenet does this, as does a cloud's route table)."""
from __future__ import annotations

from ..naming import node_ip, node_ip6, pod_cidr, pod_cidr6


class StaticRoutes:
    name = "routes"
    families = ("ipv4", "ipv6")

    def commands(self, index: int, others: list[int], families: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """The node's `ip` commands, and its `bridge fdb` commands (none here). The IPv4 routes
        stay on an IPv6-only lab: no pod has an IPv4 address there, so they carry nothing."""
        commands = [f"route add {pod_cidr(other)} via {node_ip(other)}" for other in others]
        if "ipv6" in families:
            commands += [f"route add {pod_cidr6(other)} via {node_ip6(other)}" for other in others]
        return commands, []


INTERCONNECT = StaticRoutes()

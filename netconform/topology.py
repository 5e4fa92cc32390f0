"""What a cluster looks like to the suites: nodes and the probe endpoints on them.

A backend first *plans* a topology (names only, known before anything is deployed, so pytest can
collect one item per pair) and then *starts* it, filling in addresses.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

POD, HOST, CONTAINER = "pod", "host", "container"


@dataclass(frozen=True)
class Endpoint:
    """One probe agent: a pod, a node's root namespace (hostNetwork), or one container of a pod."""

    node: str
    role: str  # "probe-a", "host", "duo/c1"
    kind: str  # POD, HOST or CONTAINER
    port: int = 8080  # its TCP and UDP echo port
    ip: str | None = None  # pod IP as the cluster reports it; the node IP for HOST

    @property
    def name(self) -> str:
        return f"{self.node}/{self.role}"

    @property
    def pod(self) -> str | None:
        """The pod this endpoint lives in (containers of one pod share it)."""
        if self.kind == HOST:
            return None
        return f"{self.node}/{self.role.split('/')[0]}"


@dataclass
class Node:
    name: str
    ip: str | None = None  # the node's InternalIP (the underlay address on the lab)


@dataclass
class Topology:
    nodes: list[Node]
    endpoints: list[Endpoint]
    meta: dict = field(default_factory=dict)

    def endpoint(self, name: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        raise KeyError(f"no probe named {name!r} in this cluster")

    def of_kind(self, kind: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.kind == kind]

    def host_of(self, node: str) -> Endpoint:
        return next(e for e in self.endpoints if e.kind == HOST and e.node == node)

    def with_addresses(self, pod_ips: dict[str, str], node_ips: dict[str, str]) -> "Topology":
        """The started topology: the same names, now with the addresses the cluster reports."""
        endpoints = [replace(e, ip=node_ips[e.node] if e.kind == HOST else pod_ips[e.pod])
                     for e in self.endpoints]
        nodes = [Node(n.name, node_ips[n.name]) for n in self.nodes]
        return Topology(nodes, endpoints, dict(self.meta))

    def who_has(self, ip: str | None, node_addresses: dict[str, list[str]] | None = None) -> str:
        """Name the owner of an address, for failure messages: 'node-1/probe-a' or 'node node-1'."""
        if ip is None:
            return "nothing"
        for endpoint in self.endpoints:
            if endpoint.kind != HOST and endpoint.ip == ip:
                return endpoint.pod or endpoint.name
        for node in self.nodes:
            if ip == node.ip or ip in (node_addresses or {}).get(node.name, []):
                return f"node {node.name}"
        return "an address of no pod or node"

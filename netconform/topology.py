"""What a cluster looks like to the suites: nodes and the probe endpoints on them.

A backend first *plans* a topology (names only, known before anything is deployed, so pytest can
collect one item per pair) and then *starts* it, filling in addresses.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from .pair_plan import PairPlan

# Endpoints with a probe agent behind them (STANDALONE: the one-of-a-kind pods on the first node,
# the pod with a hostname of DNS-POD-HOSTNAME and the pods sharing a hostPort of HOSTPORT; they
# take no part in the pod-to-pod pairs):
POD, HOST, CONTAINER, OUTSIDE, STANDALONE = "pod", "host", "container", "outside", "standalone"
# Targets that forward to probes (no agent of their own): a ClusterIP, a node's NodePort, a hostPort.
SERVICE, NODEPORT, HOSTPORT = "service", "nodeport", "hostport"
APISERVER = "apiserver"  # the cluster's own `kubernetes` Service (default namespace, port 443)
PROBE_KINDS = (POD, HOST, CONTAINER, OUTSIDE, STANDALONE)
IN_POD_NETWORK = (POD, CONTAINER, STANDALONE)  # their own pod network namespace, a pod IP


KUBERNETES_SERVICE = "kubernetes"  # its name in cluster_ips (with_addresses)

# The IP families (shared/docs/network-model.md: every MUST and SHOULD check runs per family the
# cluster has); the words are the ones in item ids, markers and results.json
IPV4, IPV6 = "ipv4", "ipv6"
FAMILIES = (IPV4, IPV6)
# --ip-family: the families a user expects the cluster to have
IP_FAMILY_CHOICES = {IPV4: (IPV4,), IPV6: (IPV6,), "dual": (IPV4, IPV6)}
Addresses = "str | list[str]"  # one address, or one per family (the primary family's first)


def family_of(ip: str) -> str:
    """The family of an address: 'ipv4' or 'ipv6' (ValueError for what is no address)."""
    return IPV4 if ipaddress.ip_address(ip).version == 4 else IPV6


@dataclass(frozen=True)
class Endpoint:
    """A probe agent (a pod, a node's root namespace, a container, a client outside the cluster),
    or a target that forwards to probes (a Service, a NodePort, a hostPort)."""

    node: str  # "svc" for Services, "outside" for the client outside the cluster
    role: str  # "probe-a", "host", "duo/c1", "web", "nodeport/web", "hostport/probe-b"
    kind: str
    port: int = 8080  # its TCP and UDP echo port, or the port it forwards
    ip: str | None = None  # pod IP as the cluster reports it; node IP; ClusterIP (in the family
    # of the view it is seen in: Topology.in_family; the primary family's in the full topology)
    serves: str | None = None  # what a forwarding target leads to: a Service or a pod name
    addresses: tuple[tuple[str, str], ...] = ()  # (family, address) of each family it has

    def address_in(self, family: str) -> str | None:
        return dict(self.addresses).get(family)

    @property
    def name(self) -> str:
        return f"{self.node}/{self.role}"

    @property
    def pod(self) -> str | None:
        """The pod this endpoint lives in (containers of one pod share it)."""
        if self.kind not in IN_POD_NETWORK:
            return None
        return f"{self.node}/{self.role.split('/')[0]}"


@dataclass
class Node:
    name: str
    ip: str | None = None  # the node's InternalIP (the underlay address on the lab)
    addresses: tuple[tuple[str, str], ...] = ()  # (family, InternalIP) of each family it has


@dataclass(frozen=True)
class Service:
    """A Service of the SVC checks, as kube-proxy sees it."""

    name: str
    port: int = 80
    target_port: int = 8080
    backends: tuple[str, ...] = ()  # endpoint names of the ready backends (none: no endpoints)
    node_port: int | None = None
    affinity: bool = False  # sessionAffinity: ClientIP
    affinity_timeout: int | None = None  # its sessionAffinityConfig.clientIP.timeoutSeconds
    local_traffic: bool = False  # externalTrafficPolicy: Local
    internal_local: bool = False  # internalTrafficPolicy: Local (only the client node's backends)
    headless: bool = False  # clusterIP: None (DNS answers with the ready backends' pod IPs)
    selects: str | None = None  # the probe role its selector names (default: the backend role)
    picked: bool = False  # its selector names services.BACKEND_LABEL too: the picked nodes' pods only
    second_port: tuple[int, int] | None = None  # (port, targetPort) of a second named port
    external_name: str | None = None  # type ExternalName (DNS answers with a CNAME, no proxying)
    manual: bool = False  # no selector: the run makes its EndpointSlices, one per port and pod
    cycled: bool = False  # its backends are pods a check creates and deletes (none at the start)
    cluster_ip: str | None = None
    cluster_ips: tuple[tuple[str, str], ...] = ()  # (family, ClusterIP) of each of its families

    @property
    def port_names(self) -> tuple[str, ...]:
        """Its ports' names, as kube-proxy's rules name them (``ns/svc:name``)."""
        names = ("tcp", "udp") + (("second-tcp", "second-udp") if self.second_port else ())
        return () if self.external_name else names

    def target_of(self, port: int) -> int:
        """The targetPort behind one of its ports."""
        return self.second_port[1] if self.second_port and port == self.second_port[0] else self.target_port

    @property
    def proxied(self) -> bool:
        """kube-proxy programs it: it has a ClusterIP."""
        return not self.headless and not self.external_name


@dataclass
class Topology:
    nodes: list[Node]
    endpoints: list[Endpoint]
    meta: dict = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    # The families the checks run in (each case is one family), and the families the cluster has:
    # a family the cluster has and the suite cannot probe yet leaves every row incomplete
    families: tuple[str, ...] = (IPV4,)
    cluster_families: tuple[str, ...] = (IPV4,)
    pairs: PairPlan = PairPlan()  # which pairs of each check are probed (pair_plan.py)

    @property
    def untested_families(self) -> tuple[str, ...]:
        return tuple(f for f in self.cluster_families if f not in self.families)

    def in_family(self, family: str) -> "Topology":
        """The cluster as the checks of one family see it: the same names, each ``ip`` (and each
        Service's ``cluster_ip``) its address in ``family`` (None where it has none), and that
        family alone to run in. Every check, batch and verdict then works unchanged per family."""
        def pick(ip: str | None, addresses: tuple[tuple[str, str], ...]) -> str | None:
            if not addresses:  # addresses not known per family: the one address, if in the family
                return ip if ip is not None and family_of(ip) == family else None
            return dict(addresses).get(family)
        endpoints = [replace(e, ip=pick(e.ip, e.addresses)) for e in self.endpoints]
        nodes = [replace(n, ip=pick(n.ip, n.addresses)) for n in self.nodes]
        services = {name: replace(s, cluster_ip=pick(s.cluster_ip, s.cluster_ips))
                    for name, s in self.services.items()}
        return Topology(nodes, endpoints, dict(self.meta), services, (family,), self.cluster_families, self.pairs)

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint of that name (the first, as listed). Looked up in an index made once per
        list of endpoints: a scan per call made the lab's wait for kube-proxy at 100 nodes (every
        backend of every Service, on every node, in each family) minutes of CPU."""
        index = self.__dict__.get("_by_name")
        if index is None or index[0] is not self.endpoints or index[1] != len(self.endpoints):
            by_name: dict[str, Endpoint] = {}
            for endpoint in self.endpoints:
                by_name.setdefault(endpoint.name, endpoint)
            index = self.__dict__["_by_name"] = (self.endpoints, len(self.endpoints), by_name)
        try:
            return index[2][name]
        except KeyError:
            raise KeyError(f"no probe named {name!r} in this cluster") from None

    def of_kind(self, kind: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.kind == kind]

    def host_of(self, node: str) -> Endpoint:
        return next(e for e in self.endpoints if e.kind == HOST and e.node == node)

    def probes(self) -> list[Endpoint]:
        """The endpoints with a probe agent behind them (the rest only forward)."""
        return [e for e in self.endpoints if e.kind in PROBE_KINDS]

    def with_addresses(self, pod_ips: dict[str, Addresses], node_ips: dict[str, Addresses],
                       cluster_ips: dict[str, Addresses] | None = None,
                       outside_ips: dict[str, Addresses] | None = None) -> "Topology":
        """The started topology: the same names, now with the addresses the cluster reports: one
        per name, or (dual-stack) a list, the primary family's first (a pod's ``podIPs``, a
        Service's ``clusterIPs``)."""
        def both(value: Addresses | None) -> tuple[str | None, tuple[tuple[str, str], ...]]:
            found = [value] if isinstance(value, str) else list(value or [])
            return (found[0] if found else None), tuple((family_of(ip), ip) for ip in found)

        services = {}
        for name, svc in self.services.items():
            ip, ips = both((cluster_ips or {}).get(name))
            services[name] = replace(svc, cluster_ip=ip, cluster_ips=ips)

        def address(e: Endpoint) -> Addresses | None:
            if e.kind in IN_POD_NETWORK:
                return pod_ips[e.pod]
            if e.kind == SERVICE:
                return [ip for _, ip in services[e.serves].cluster_ips]
            if e.kind == APISERVER:  # None when the backend could not read it
                return (cluster_ips or {}).get(KUBERNETES_SERVICE)
            if e.kind == OUTSIDE:
                return (outside_ips or {})[e.name]
            return node_ips[e.node]

        endpoints = []
        for e in self.endpoints:
            ip, ips = both(address(e))
            endpoints.append(replace(e, ip=ip, addresses=ips))
        nodes = [Node(n.name, *both(node_ips[n.name])) for n in self.nodes]
        return Topology(nodes, endpoints, dict(self.meta), services, self.families, self.cluster_families,
                        self.pairs)

    def who_has(self, ip: str | None, node_addresses: dict[str, list[str]] | None = None) -> str:
        """Name the owner of an address, for failure messages: 'node-1/probe-a' or 'node node-1'."""
        if ip is None:
            return "nothing"
        for endpoint in self.endpoints:
            if endpoint.kind in (*IN_POD_NETWORK, OUTSIDE) and endpoint.ip == ip:
                return endpoint.pod or endpoint.name
        for node in self.nodes:
            if ip == node.ip or ip in (node_addresses or {}).get(node.name, []):
                return f"node {node.name}"
        return "an address of no pod or node"

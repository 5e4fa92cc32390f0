"""The Services, hostPorts and outside client every backend deploys for the SVC and HOSTPORT checks.

Planned from the probe pods: backends are the first probe pod of a node, so each Service has one
backend per node and load balancing, source IP and hairpin are all observable. On more than
MAX_BACKENDS nodes, only that many nodes, spread from the first to the last, carry the backends, as
upstream e2e caps its netserver pods (maxNetProxyPodsCount): a client must reach every backend, so
its connections grow with the backends, and with one per node the Service rows grew with the
square of the nodes (2,000 connections per client at 100 nodes; 153 with 10 backends).
"""
from __future__ import annotations

from dataclasses import replace

from .topology import (APISERVER, CONTAINER, HOST, HOSTPORT, KUBERNETES_SERVICE, NODEPORT, OUTSIDE, POD, SERVICE,
                       STANDALONE, Endpoint, Service, Topology)

EXTERNAL_NAME = "outside.netconform.test"  # the ExternalName Service's target (.test: RFC 2606)
BACKEND_ROLE = "probe-a"
HOST_ROLE = "host"  # the hostNetwork probe pod of every node
MAX_BACKENDS = 10  # nodes whose probes back the Services (upstream e2e: maxNetProxyPodsCount = 10)
# The label the run adds to the picked backend pods (a DaemonSet's pods share one template, so the
# harness labels the chosen ones once they exist); the selector of every picked Service names it
BACKEND_LABEL = "netconform.io/backend"
AFFINITY_TIMEOUT = 1  # s, the timeoutSeconds of "affinity-timeout" (short: its rows wait it out)
# DNS-POD-HOSTNAME: the standalone pod "named" has hostname NAMED_HOSTNAME and, as subdomain, the
# headless Service "hostnames" that selects it: <hostname>.<subdomain>.<ns>.svc.<domain> is its name
NAMED_ROLE, NAMED_HOSTNAME, NAMED_SUBDOMAIN = "named", "querier", "hostnames"
# HOSTPORT, as upstream's "no conflict between pods with same hostPort but different hostIP and
# protocol": three pods on the first node share SHARED_HOSTPORT; (role, hostIP, protocol), "node"
# standing for the node's own IP
SHARED_HOSTPORT = 54323
# hostIP "localhost": the loopback address of the cluster's primary family (127.0.0.1, or ::1 on an
# IPv6 cluster, as upstream's hostPort test chooses it); "node": the node's address
SHARED = (("shared-local", "localhost", "TCP"), ("shared-node", "node", "TCP"), ("shared-udp", "node", "UDP"))
STANDALONE_ROLES = (NAMED_ROLE, *(role for role, _, _ in SHARED))
CYCLED_SERVICE, CYCLED_ROLE = "udp-cycle", "cycled"  # SVC-UDP-BACKEND-CHANGE
SERVICES = (
    Service("web", node_port=30080),
    Service("web-affinity", affinity=True, node_port=30082),
    # externalTrafficPolicy Local: every node's NodePort needs a local backend, so it has one per
    # node, never only the picked ones
    Service("web-local", node_port=30081, local_traffic=True),
    Service("empty"),  # no ready endpoints: kube-proxy rejects its connections
    Service("web-headless", headless=True),  # the DNS checks: A and SRV records per ready backend
    Service("external", external_name=EXTERNAL_NAME),  # the DNS checks: a CNAME
    # SVC-TYPE-CHANGE: an ExternalName Service that already has web's selector and ports, so that
    # changing its type is all it takes to make it a ClusterIP or NodePort Service of web's backends
    Service("retyped", external_name=EXTERNAL_NAME, selects=BACKEND_ROLE),
    # SVC-PORT-PROTOCOLS: port 80 over TCP and UDP, to web's backends; one protocol is removed at
    # a time while the run goes on
    Service("protocols"),
    Service(NAMED_SUBDOMAIN, headless=True, selects=NAMED_ROLE),  # DNS-POD-HOSTNAME
    # SVC-MULTIPORT: port 80 to duo's first container (8080), port 81 to its second (8081)
    Service("multiport", second_port=(81, 8081), selects="duo"),
    # SVC-ENDPOINTSLICE-MANUAL: multiport again, without a selector; its endpoints are
    # EndpointSlices the run makes by hand, one per (port, duo pod): each port, each pod its own
    Service("manual", second_port=(81, 8081), selects="duo", manual=True),
    # SVC-HOSTNET-ENDPOINTS: its endpoints are the hostNetwork probe pods (node IPs), its
    # targetPort their echo port (add_services sets it: it differs between lab and live clusters)
    Service("hostnet", selects=HOST_ROLE),
    # SVC-ITP-LOCAL: internalTrafficPolicy Local, in front of the standalone pod "named": its one
    # backend is on the first node, so the other nodes' pods have no local backend
    Service("itp-local", internal_local=True, selects=NAMED_ROLE),
    # SVC-AFFINITY-TIMEOUT: ClientIP affinity that expires after AFFINITY_TIMEOUT s, to web's backends
    Service("affinity-timeout", affinity=True, affinity_timeout=AFFINITY_TIMEOUT),
    # SVC-UDP-BACKEND-CHANGE: its selector names CYCLED_ROLE, which only the pods the check
    # creates (and deletes) while its clients send carry: no endpoints at the start
    Service(CYCLED_SERVICE, selects=CYCLED_ROLE, cycled=True),
)
HOSTPORT_PORT = 8088
OUTSIDE_CLIENT = Endpoint("outside", "client", OUTSIDE)


def hostport_role(topology: Topology) -> str:
    """The pod that asks for a hostPort: the last single-container probe pod of each node."""
    return max(e.role for e in topology.of_kind(POD))


def host_ports(role: str, holder: str, node_ip: str | None, hostport: int = HOSTPORT_PORT,
               shared_port: int = SHARED_HOSTPORT) -> list[dict]:
    """The hostPorts a pod of ``role`` declares (kubelet hands them to the CNI's portmap plugin):
    the holder's (``hostport``) on every node, and the shared ones' (``shared_port``; ``hostIP``
    "node": ``node_ip``). A live run that shares its cluster takes other numbers (kube/hostports.py)."""
    if role == holder:
        return [{"hostPort": hostport, "containerPort": 8080, "protocol": p} for p in ("TCP", "UDP")]
    return [{"hostPort": shared_port, "containerPort": 8080, "protocol": protocol,
             "hostIP": node_ip if host_ip == "node" else _loopback(node_ip)}
            for shared, host_ip, protocol in SHARED if shared == role]


def _loopback(ip: str | None) -> str:
    return "::1" if ip and ":" in ip else "127.0.0.1"


def shared_protocol(endpoint: Endpoint) -> str | None:
    """The protocol of a shared hostPort target (``hostport/shared-udp``: UDP)."""
    return next((p for role, _, p in SHARED if endpoint.role == f"hostport/{role}"), None)


def shared_address(endpoint: Endpoint) -> str:
    """Where a shared hostPort is reached: its hostIP (loopback, or the node's IP)."""
    host_ip = next((ip for role, ip, _ in SHARED if endpoint.role == f"hostport/{role}"), "node")
    return endpoint.ip if host_ip == "node" else _loopback(endpoint.ip)


def shared_source(source: Endpoint, destination: Endpoint) -> str | None:
    """The address a connection to a shared hostPort is made from: the node's own for the one
    bound to loopback, as upstream's hostPort test (``curl --interface hostIP``: IPv6 has no
    route_localnet, so a NATed connection cannot come from ::1); the kernel's choice otherwise."""
    loopback = next((ip for role, ip, _ in SHARED if destination.role == f"hostport/{role}"), None) == "localhost"
    return source.ip if loopback else None


def backend_nodes(nodes: list[str]) -> list[str]:
    """The nodes whose probes back the picked Services: all of them up to MAX_BACKENDS, else
    MAX_BACKENDS spread evenly from the first node to the last (the same for the same nodes)."""
    if len(nodes) <= MAX_BACKENDS:
        return list(nodes)
    return [nodes[round(i * (len(nodes) - 1) / (MAX_BACKENDS - 1))] for i in range(MAX_BACKENDS)]


def picked_backends(topology: Topology) -> list[str]:
    """The endpoints whose pods the run labels BACKEND_LABEL: every picked Service's backends."""
    return sorted({b for s in topology.services.values() if s.picked for b in s.backends})


def add_services(topology: Topology, outside: bool) -> Topology:
    """The planned topology plus Service, NodePort and hostPort targets (and the outside client)."""
    every = tuple(e.name for e in topology.of_kind(POD) if e.role == BACKEND_ROLE)
    picked_nodes = set(backend_nodes([n.name for n in topology.nodes]))
    backends = tuple(name for name in every if topology.endpoint(name).node in picked_nodes)
    duos = tuple(e.name for e in topology.endpoints if e.kind == CONTAINER and e.role == "duo/c1")
    named = tuple(e.name for e in topology.of_kind(STANDALONE) if e.role == NAMED_ROLE)
    hosts = topology.of_kind(HOST)
    chosen = {"duo": duos, NAMED_ROLE: named,
              HOST_ROLE: tuple(e.name for e in hosts if e.node in picked_nodes)}
    services = {s.name: s if s.name == "empty" or s.cycled or (s.external_name and not s.selects) else
                replace(s, backends=every) if s.local_traffic else
                replace(s, backends=chosen.get(s.selects, backends),
                        picked=(s.selects or BACKEND_ROLE) in (BACKEND_ROLE, HOST_ROLE)) for s in SERVICES}
    if hosts:  # the hostNetwork probes' echo port: 8080 on the lab, off the usual ones on a node
        services["hostnet"] = replace(services["hostnet"], target_port=hosts[0].port)
    endpoints = list(topology.endpoints)
    endpoints += [Endpoint("svc", s.name, SERVICE, s.port, serves=s.name) for s in services.values()]
    endpoints += [Endpoint("svc", f"{s.name}:{s.second_port[0]}", SERVICE, s.second_port[0], serves=s.name)
                  for s in services.values() if s.second_port]
    holder = hostport_role(topology)
    endpoints += [Endpoint(e.node, f"hostport/{e.role}", HOSTPORT, SHARED_HOSTPORT, serves=e.name)
                  for e in topology.of_kind(STANDALONE) if e.role in dict((r, p) for r, _, p in SHARED)]
    for node in topology.nodes:
        endpoints += [Endpoint(node.name, f"nodeport/{s.name}", NODEPORT, s.node_port, serves=s.name)
                      for s in services.values() if s.node_port]
        endpoints.append(Endpoint(node.name, f"hostport/{holder}", HOSTPORT, HOSTPORT_PORT,
                                  serves=f"{node.name}/{holder}"))
    endpoints.append(Endpoint("svc", KUBERNETES_SERVICE, APISERVER, 443))
    if outside:
        endpoints.append(OUTSIDE_CLIENT)
    return Topology(topology.nodes, endpoints, dict(topology.meta), services, topology.families,
                    topology.cluster_families, topology.pairs)


def spread_connections(backends: int, same_probability: float = 1e-6) -> int:
    """Connections needed so that, with uniform random balancing, the chance that all of them land
    on one backend stays below ``same_probability``: backends x (1/backends)^count. What shows a
    Service is not sticky needs only this (5 over 50 backends), not minimum_connections (878)."""
    if backends <= 1:
        return 1
    count = 1
    while backends * (1 / backends) ** count >= same_probability:
        count += 1
    return count


def minimum_connections(backends: int, miss_probability: float = 1e-6) -> int:
    """Connections needed so that, with uniform random balancing, the chance that some ready
    backend is never reached stays below ``miss_probability`` (union bound over backends)."""
    if backends <= 1:
        return 1
    count = 1
    while backends * (1 - 1 / backends) ** count >= miss_probability:
        count += 1
    return count

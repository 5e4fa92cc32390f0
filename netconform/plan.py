"""What every backend deploys on each node, by name: the same probes on the lab and on a cluster.

Per node: a host probe (hostNetwork), single-container probe pods ``probe-a``, ``probe-b``, …, and
a two-container pod ``duo`` (containers c1 and c2 share one network namespace); on the first node
also the standalone pods: ``named``, with a hostname and a subdomain (DNS-POD-HOSTNAME), and three
that share one hostPort on different hostIPs and protocols (HOSTPORT); plus the
Services of the SVC checks (``services.py``) and, where the backend has one, a client outside the
cluster.
"""
from __future__ import annotations

from .services import STANDALONE_ROLES, add_services
from .topology import CONTAINER, HOST, POD, STANDALONE, Endpoint, Node, Topology

ECHO_PORT = 8080  # every pod probe's TCP and UDP echo port
DUO_CONTAINERS = (("c1", 8080), ("c2", 8081))  # the two containers of duo and their echo ports


def pod_roles(pods_per_node: int) -> list[str]:
    return [f"probe-{chr(ord('a') + p)}" for p in range(pods_per_node)]


def probe_plan(node_names: list[str], pods_per_node: int, outside: bool,
               host_port: int = ECHO_PORT) -> Topology:
    nodes, endpoints = [], []
    for node in node_names:
        nodes.append(Node(node))
        endpoints.append(Endpoint(node, "host", HOST, host_port))
        endpoints += [Endpoint(node, role, POD) for role in pod_roles(pods_per_node)]
        endpoints += [Endpoint(node, f"duo/{c}", CONTAINER, port) for c, port in DUO_CONTAINERS]
    if node_names:
        endpoints += [Endpoint(node_names[0], role, STANDALONE) for role in STANDALONE_ROLES]
    return add_services(Topology(nodes, endpoints), outside=outside)

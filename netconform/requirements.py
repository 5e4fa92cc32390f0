"""The requirement catalog: IDs, levels and titles from shared/docs/network-model.md.

The ID is the pytest marker, the prefix of every test id and the key in results.json and the
report, so it is spelled here once and imported everywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    id: str
    level: str  # MUST, SHOULD or MAY
    title: str
    rule: str


_ROWS = [
    ("POD-POD-SAME", "MUST", "pod to pod, same node",
     "connection succeeds and the receiver observes the sender's pod IP as source"),
    ("POD-POD-CROSS", "MUST", "pod to pod, across nodes",
     "connection succeeds and the receiver observes the sender's pod IP as source"),
    ("POD-IP-SELF", "MUST", "a pod's own address",
     "equals the pod IP the cluster reports, and equals what peers observe"),
    ("NODE-POD", "MUST", "node agent to the pods on its node",
     "connection succeeds"),
    ("HOSTNET-POD", "MUST", "hostNetwork pod to every pod",
     "succeeds, and the receiver observes an IP of the sending node (no NAT)"),
    ("LOCALHOST", "MUST", "containers of one pod share localhost",
     "succeeds; both containers report the same interfaces, IP and MAC"),
    ("SVC-CLUSTERIP", "SHOULD", "ClusterIP Service load balancing",
     "every connection reaches a backend; over N connections every ready backend is reached"),
    ("SVC-SOURCE-IP", "SHOULD", "client IP kept through a ClusterIP",
     "the backend observes the client's pod IP"),
    ("SVC-NODEPORT", "SHOULD", "NodePort on every node", "reaches a backend"),
    ("SVC-HAIRPIN", "SHOULD", "a backend reaches itself through its Service", "succeeds"),
    ("SVC-AFFINITY", "SHOULD", "sessionAffinity: ClientIP", "all land on the same backend"),
    ("SVC-NO-ENDPOINTS", "SHOULD", "a Service with no ready endpoints",
     "the connection is refused promptly (reject, not a timeout)"),
    ("SVC-ETP-LOCAL", "SHOULD", "externalTrafficPolicy: Local",
     "the backend observes the real client IP"),
    ("HOSTPORT", "MAY", "hostPort", "nodeIP:hostPort reaches the pod"),
    ("DNS", "MAY", "Service DNS names", "resolves to the ClusterIP and connects"),
    ("MTU", "MAY", "full-size packets across nodes", "arrive; no black hole"),
]

CATALOG: dict[str, Requirement] = {row[0]: Requirement(*row) for row in _ROWS}
LEVELS = ("MUST", "SHOULD", "MAY")


def requirement(requirement_id: str) -> Requirement:
    try:
        return CATALOG[requirement_id]
    except KeyError:
        raise KeyError(f"unknown requirement {requirement_id!r}; "
                       f"see shared/docs/network-model.md") from None

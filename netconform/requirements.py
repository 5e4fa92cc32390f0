"""The requirement catalog: IDs, levels and rules of shared/docs/network-model.md (its latest text).

The ID is the pytest marker, the prefix of every test id and the key in results.json and the
report, so it is spelled here once and imported everywhere else.

Every row of the specification is here, checked or not: a MUST row that this version does not
check yet (``implemented=False``), or checks only in part (``gaps``), keeps the verdict from being
CONFORMANT and is named "not implemented" in it, so the verdict never claims more than was checked.
tests/unit/test_catalog.py keeps ``implemented`` and the suites' declared checks in step.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    id: str
    level: str  # MUST, SHOULD or MAY
    title: str
    rule: str
    implemented: bool = True  # a suite declares a check for it
    gaps: str = ""  # what of the row this version does not check yet (a MUST row with gaps: INCOMPLETE)

    @property
    def complete(self) -> bool:
        return self.implemented and not self.gaps


_NOT_YET = {"implemented": False}

_ROWS = [
    Requirement("POD-POD-SAME", "MUST", "pod to pod, same node",
                "connection succeeds and the receiver observes the sender's pod IP as source"),
    Requirement("POD-POD-CROSS", "MUST", "pod to pod, across nodes",
                "connection succeeds and the receiver observes the sender's pod IP as source"),
    Requirement("POD-IP-SELF", "MUST", "a pod's own address",
                "equals the pod IP the cluster reports, and equals what peers observe"),
    Requirement("NODE-POD", "MUST", "node agent to the pods on its node", "connection succeeds"),
    Requirement("HOSTNET-POD", "MUST", "hostNetwork pod to every pod",
                "succeeds, and the receiver observes an IP of the sending node (no NAT)"),
    Requirement("LOCALHOST", "MUST", "containers of one pod share localhost",
                "succeeds; both containers report the same interfaces, IP and MAC"),
    Requirement("SVC-CLUSTERIP", "MUST", "ClusterIP Service load balancing",
                "every connection reaches a backend; over N connections every ready backend is reached"),
    Requirement("SVC-SOURCE-IP", "SHOULD", "client IP kept through a ClusterIP",
                "the backend observes the client's pod IP"),
    Requirement("SVC-NODEPORT", "MUST", "NodePort on every node", "reaches a backend"),
    Requirement("SVC-HAIRPIN", "SHOULD", "a backend reaches itself through its Service", "succeeds"),
    Requirement("SVC-AFFINITY", "MUST", "sessionAffinity: ClientIP",
                "sticky: all land on the same backend; after a switch to None several backends are "
                "reached; after the switch back, sticky again"),
    Requirement("SVC-NO-ENDPOINTS", "SHOULD", "a Service with no ready endpoints",
                "the connection is refused promptly (reject, not a timeout)"),
    Requirement("SVC-ETP-LOCAL", "SHOULD", "externalTrafficPolicy: Local",
                "the backend observes the real client IP"),
    Requirement("HOSTPORT", "MUST", "hostPort",
                "nodeIP:hostPort reaches the pod; each of the pods sharing a hostPort is reached on "
                "its own hostIP/protocol"),
    Requirement("MTU", "MAY", "full-size packets across nodes", "arrive; no black hole"),
    Requirement("SVC-AFFINITY-TIMEOUT", "SHOULD", "sessionAffinity ClientIP with timeoutSeconds",
                "stickiness holds within the timeout and is released after it"),
    Requirement("SVC-ITP-LOCAL", "SHOULD", "internalTrafficPolicy: Local",
                "only node-local backends are reached; no local backend means no connection"),
    Requirement("SVC-MULTIPORT", "MUST", "one Service, two named ports",
                "each Service port reaches its own target port"),
    Requirement("SVC-PORT-PROTOCOLS", "MUST", "one port over TCP and UDP, then each removed",
                "both protocols reach a backend; a removed protocol gets no answer while the other "
                "still reaches a backend"),
    Requirement("POD-NODEPORT", "MUST", "pod to a NodePort on its own and another node",
                "reaches a backend"),
    Requirement("HOSTNET-SVC", "SHOULD", "hostNetwork pod to a ClusterIP", "reaches a backend"),
    Requirement("DNS-SVC", "MUST", "Service names resolve and connect",
                "A (and AAAA) records equal the ClusterIP(s); the name connects"),
    Requirement("DNS-HEADLESS", "MUST", "headless Service names",
                "resolve to exactly the ready backends' pod IPs"),
    Requirement("DNS-SRV", "MUST", "SRV records of named ports",
                "SRV target and port match the Service"),
    Requirement("DNS-EXTERNALNAME", "MUST", "ExternalName Services",
                "a CNAME of the external name that follows each change"),
    Requirement("DNS-POD-HOSTNAME", "MUST", "pod hostname and subdomain",
                "<hostname>.<subdomain>.<ns>.svc.<domain> resolves to the pod's IP(s)"),
    Requirement("POD-APISERVER", "SHOULD", "pods reach the kubernetes Service",
                "a TLS handshake with the API server through its ClusterIP"),
    Requirement("SVC-HOSTNET-ENDPOINTS", "SHOULD", "a Service backed by hostNetwork pods",
                "reaches a backend, which observes the client pod's IP"),
    Requirement("SVC-UDP-BACKEND-CHANGE", "SHOULD", "UDP through a ClusterIP as backends change",
                "datagrams reach the first backend within 30 s of its readiness, and the new one within 30 s "
                "of the old one's deletion (no stale conntrack entry)"),
    Requirement("DNS-POD-A", "MUST", "pod A records",
                "<ip-with-dashes>.<ns>.pod.<domain> resolves to the pod's IP"),
    Requirement("DNS-PTR", "MUST", "reverse lookup of a ClusterIP",
                "PTR names the Service's FQDN"),
    Requirement("SVC-TYPE-CHANGE", "MUST", "Service type changed at run time",
                "the new ClusterIP / NodePort carries traffic, or the name becomes a CNAME"),
    Requirement("SVC-ENDPOINTSLICE-MANUAL", "MUST", "EndpointSlices made by hand",
                "each Service port reaches exactly the endpoint its own slice names"),
    Requirement("APISERVER-POD", "SHOULD", "the API server reaches each pod",
                "the pod proxy reaches each probe"),
    Requirement("DNS-HOSTNET", "SHOULD", "hostNetwork pods with ClusterFirstWithHostNet",
                "resolve Service names like any pod"),
    Requirement("DUAL-STACK", "MAY", "both IP families",
                "one address per family, each present and reachable with the source preserved",
                gaps="a RequireDualStack Service's clusterIPs (the run's Services ask for "
                     "PreferDualStack; each family's ClusterIPs are checked by the Service rows)"),
    Requirement("UDP-LARGE", "MAY", "fragmented UDP across nodes",
                "2000-byte datagrams between pods on different nodes arrive whole"),
    Requirement("SCTP", "MAY", "SCTP pod to pod and through a ClusterIP", "succeeds", **_NOT_YET),
]

CATALOG: dict[str, Requirement] = {row.id: row for row in _ROWS}
LEVELS = ("MUST", "SHOULD", "MAY")


def requirement(requirement_id: str) -> Requirement:
    try:
        return CATALOG[requirement_id]
    except KeyError:
        raise KeyError(f"unknown requirement {requirement_id!r}; "
                       f"see shared/docs/network-model.md") from None

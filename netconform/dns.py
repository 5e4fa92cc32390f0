"""The questions of the DNS rows: which names a pod asks the cluster DNS, and what each must answer.

Each builder takes (topology, source, destination, names) and returns the Queries of one item, the
names spelled as upstream's DNS conformance tests spell them: a Service by its short name, by
``<svc>.<ns>``, ``<svc>.<ns>.svc`` (the search list completes them; ndots:5) and by FQDN; SRV
records ``_<port>._<proto>.<svc>…`` for a named port; pod A records ``<a-b-c-d>.<ns>.pod.<domain>``;
the PTR record of a ClusterIP. What a question expects is written next to it, as record text, so
the verdicts (probing/dns_verdicts.py) only compare.
"""
from __future__ import annotations

import ipaddress

from .checks import Change, DnsNames, Pair, Query
from .services import EXTERNAL_NAME, NAMED_HOSTNAME, NAMED_ROLE, NAMED_SUBDOMAIN
from .topology import IPV6, POD, STANDALONE, Endpoint, Topology, family_of

UNKNOWN_POD_IP = "192.0.2.123"  # TEST-NET-1 (RFC 5737): an address no pod has
UNKNOWN_POD_IP6 = "2001:db8::123"  # the documentation prefix (RFC 3849): the same, in IPv6


def address_type(topology: Topology) -> str:
    """The record type of addresses in the family a check runs in (its view: Topology.in_family)."""
    return "AAAA" if topology.families[0] == IPV6 else "A"


def fqdn(service: str, names: DnsNames) -> str:
    return f"{service}.{names.namespace}.svc.{names.domain}"


def search_forms(service: str, names: DnsNames) -> list[tuple[str, str, bool]]:
    """(label, name, search) of every way a pod may spell a Service of its own namespace: the
    partial names through the search list, the FQDN as an absolute name (with its trailing dot,
    as ``dig`` asks it: no search entry of the node's own domains is tried first)."""
    return [("short", service, True), ("ns", f"{service}.{names.namespace}", True),
            ("svc", f"{service}.{names.namespace}.svc", True), ("fqdn", f"{fqdn(service, names)}.", False)]


def service_a(topology: Topology, source: Endpoint, service: Endpoint, names: DnsNames) -> list[Query]:
    """DNS-SVC, DNS-HOSTNET: ``kubernetes.default`` and the Service by every name resolve to the
    ClusterIP, and the name connects to a backend."""
    rtype = address_type(topology)
    queries = [Query(label, name, rtype, search=search, expect=(service.ip,), connect=service.port)
               for label, name, search in search_forms(service.serves, names)]
    if names.kubernetes_ip is None:  # the kubernetes Service has no address in this family
        return queries
    return [Query("kubernetes.default", "kubernetes.default", rtype, expect=(names.kubernetes_ip,)), *queries]


def headless_a(topology: Topology, source: Endpoint, service: Endpoint, names: DnsNames) -> list[Query]:
    """DNS-HEADLESS: the headless Service's name resolves to exactly its ready backends' pod IPs."""
    ips = tuple(sorted(topology.endpoint(b).ip for b in topology.services[service.serves].backends))
    return [Query(label, name, address_type(topology), search=search, expect=ips)
            for label, name, search in search_forms(service.serves, names) if label in ("short", "fqdn")]


def srv(topology: Topology, source: Endpoint, service: Endpoint, names: DnsNames) -> list[Query]:
    """DNS-SRV: ``_<port>._<proto>.<svc>`` by FQDN and by the partial names the search list
    completes. A ClusterIP Service: one record, the Service's port, its FQDN as target. A headless
    one: one record per ready backend, its target port, a target under the Service's FQDN (the
    verdict checks the count, the ports and the targets' suffix)."""
    svc = topology.services[service.serves]
    prefix = "_tcp._tcp"  # the Services' TCP port is named "tcp"
    forms = [("fqdn", f"{prefix}.{fqdn(svc.name, names)}.", False), ("short", f"{prefix}.{svc.name}", True),
             ("ns", f"{prefix}.{svc.name}.{names.namespace}", True)]
    if svc.headless:  # a record per ready endpoint address: per backend and family the cluster has
        expect = tuple(f"{svc.target_port} *.{fqdn(svc.name, names)}." for _ in svc.backends
                       for _ in topology.cluster_families)
    else:
        expect = (f"{svc.port} {fqdn(svc.name, names)}.",)
    return [Query(label, name, "SRV", search=search, expect=expect) for label, name, search in forms]


def ptr(topology: Topology, source: Endpoint, service: Endpoint, names: DnsNames) -> list[Query]:
    """DNS-PTR: the reverse name of the ClusterIP names the Service's FQDN."""
    reverse = ipaddress.ip_address(service.ip).reverse_pointer
    return [Query("ptr", f"{reverse}.", "PTR", search=False, expect=(f"{fqdn(service.serves, names)}.",))]


def pod_a(topology: Topology, source: Endpoint, pod: Endpoint, names: DnsNames) -> list[Query]:
    """DNS-POD-A: a pod's dashed-IP name resolves to its IP; a dashed IP that no pod has answers
    NXDOMAIN where the cluster DNS verifies pods (``pods verified``), or itself (``pods
    insecure``, kubeadm's default): the verdict accepts either and says which."""
    def name(ip: str) -> str:
        return f"{ip.replace('.', '-').replace(':', '-')}.{names.namespace}.pod.{names.domain}."
    rtype = address_type(topology)
    unknown = UNKNOWN_POD_IP6 if rtype == "AAAA" else UNKNOWN_POD_IP
    return [Query("pod", name(pod.ip), rtype, search=False, expect=(pod.ip,)),
            Query("unknown", name(unknown), rtype, search=False, expect=("NXDOMAIN", unknown))]


def pod_hostname(topology: Topology, source: Endpoint, pod: Endpoint, names: DnsNames) -> list[Query]:
    """DNS-POD-HOSTNAME: the standalone pod's ``<hostname>.<subdomain>`` (the search list
    completes it) and its FQDN ``<hostname>.<subdomain>.<ns>.svc.<domain>`` resolve to its IP."""
    name = f"{NAMED_HOSTNAME}.{NAMED_SUBDOMAIN}"
    rtype = address_type(topology)
    return [Query("short", name, rtype, expect=(pod.ip,)),
            Query("fqdn", f"{name}.{names.namespace}.svc.{names.domain}.", rtype, search=False, expect=(pod.ip,))]


RENAMED = f"renamed.{EXTERNAL_NAME.split('.', 1)[1]}"
# DNS-EXTERNALNAME, as upstream's test: the ExternalName Service changed to another external name,
# then to a ClusterIP Service (no selector: only its name is asked); afterwards, put back.
EXTERNAL_CHANGES = (
    Change("renamed", "external", {"spec": {"externalName": RENAMED}}),
    Change("clusterip", "external", {"spec": {"type": "ClusterIP", "externalName": None,
                                              "ipFamilyPolicy": "PreferDualStack", "ports": [
        {"name": "tcp", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
)
EXTERNAL_RESTORE = Change("restored", "external", {"spec": {
    "type": "ExternalName", "externalName": EXTERNAL_NAME, "clusterIP": None, "clusterIPs": None,
    "ports": None, "ipFamilies": None, "ipFamilyPolicy": None, "internalTrafficPolicy": None,
    "sessionAffinity": None}})


def external_rounds(topology: Topology, source: Endpoint, service: Endpoint, names: DnsNames,
                    spec: dict, protocol: str) -> list[Query]:
    """DNS-EXTERNALNAME, one round per state of the Service: while it is an ExternalName, a CNAME
    query returns its external name as it is now; once a ClusterIP Service, an A query returns
    the ClusterIP the API server gave it."""
    external = spec.get("type") == "ExternalName"
    family = topology.families[0]
    in_family = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and family_of(ip) == family]
    rtype, expect = ("CNAME", f"{spec.get('externalName')}.") if external else \
        (address_type(topology), in_family[0] if in_family else spec.get("clusterIP"))
    return [Query(label, name, rtype, search=search, expect=(expect,))
            for label, name, search in search_forms(service.serves, names) if label in ("short", "fqdn")]


# --- pair builder (a pod to a Service: checks.pods_to_service) ---


def next_pod(topology: Topology) -> list[Pair]:
    """Each pod asks about the next one (on another node where there is one): every pod's name is
    asked once and every pod asks once, so items grow with pods, not their square."""
    pods = sorted(topology.of_kind(POD), key=lambda e: (e.role, e.node))
    return [(pod, pods[(i + 1) % len(pods)]) for i, pod in enumerate(pods)] if len(pods) > 1 else []


def pods_to_named(topology: Topology) -> list[Pair]:
    """Every pod asks for the standalone pod with a hostname (from its own node and the others)."""
    return [(pod, named) for pod in topology.of_kind(POD)
            for named in topology.of_kind(STANDALONE) if named.role == NAMED_ROLE]

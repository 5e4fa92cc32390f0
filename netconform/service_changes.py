"""The rows that change a Service while the run goes on, and what each state of it must do.

SVC-AFFINITY, as upstream's "should have session affinity work for service with type clusterIP /
NodePort" and "should be able to switch session affinity": ``web-affinity`` (ClientIP) is connected
to repeatedly through its ClusterIP and through the client's node's NodePort, each address's first
connection alone: all land on one backend; its affinity is switched to None (more than one backend
answers) and back to ClientIP (one again).

SVC-PORT-PROTOCOLS, as upstream's "should serve endpoints on same port and different protocols":
the Service ``protocols`` serves port 80 over TCP and UDP; its UDP port is removed, then UDP put
back and its TCP port removed. In each state, each protocol the Service has must reach one of its
backends through the ClusterIP, and the one it no longer has must get no answer (a reject or a
timeout: proxies differ), once the cluster has followed the change; in the same round the same
client reaches ``web`` over that protocol (the positive control the specification asks of a check
whose pass is "no connection").

SVC-TYPE-CHANGE, as upstream's "should be able to change the type from …" tests: the ``retyped``
Service starts as an ExternalName Service that already carries web's selector and ports, and is
changed, as a user's ``kubectl patch`` would, to ClusterIP, back to ExternalName, to NodePort and
back to ExternalName (each of upstream's four changes once). After each change the API server's
answer says what to expect: the ClusterIP it allocated must carry traffic, by the
Service's name, to one of web's backends; the NodePort it allocated must do the same on the client's
node; an ExternalName Service's name must be a CNAME to its external name. The API server clears
what the new type has no use for (ClusterIPs, nodePorts) itself, as it does for ``kubectl``.
"""
from __future__ import annotations

from .checks import Change, Connection, DnsNames, Query
from .services import AFFINITY_TIMEOUT, spread_connections
from .dns import address_type, search_forms
from .services import EXTERNAL_NAME
from .topology import SERVICE, Endpoint, Topology, family_of

RETYPED = "retyped"
TO_EXTERNAL_NAME = {"spec": {"type": "ExternalName", "externalName": EXTERNAL_NAME}}
# a ClusterIP per family the cluster has, as the run's other Services (manifests/kube/services.yaml.j2)
TYPE_CHANGES = (
    Change("clusterip", RETYPED, {"spec": {"type": "ClusterIP", "externalName": None,
                                           "ipFamilyPolicy": "PreferDualStack"}}),
    Change("externalname", RETYPED, TO_EXTERNAL_NAME),
    Change("nodeport", RETYPED, {"spec": {"type": "NodePort", "externalName": None,
                                          "ipFamilyPolicy": "PreferDualStack"}}),
    Change("externalname-again", RETYPED, TO_EXTERNAL_NAME),
)
TYPE_RESTORE = Change("restored", RETYPED, TO_EXTERNAL_NAME)


def cluster_ip(spec: dict, topology: Topology) -> str | None:
    """The Service's ClusterIP in the family the check runs in (its view: Topology.in_family),
    from ``clusterIPs`` (or ``clusterIP``); None when it has none in that family."""
    listed = spec.get("clusterIPs") or [spec.get("clusterIP")]
    found = [ip for ip in listed if ip and ip != "None" and family_of(ip) == topology.families[0]]
    return found[0] if found else None


def node_port(spec: dict, protocol: str) -> int | None:
    """The nodePort the API server gave the Service's port of ``protocol``."""
    return next((p.get("nodePort") for p in spec.get("ports") or []
                 if p.get("protocol", "TCP") == protocol.upper()), None)


def type_change_rounds(topology: Topology, source: Endpoint, service: Endpoint, names: DnsNames,
                       spec: dict, protocol: str) -> list[Query | Connection]:
    """One round per state of the Service: its short name and FQDN asked (the A record of a
    ClusterIP, then connecting through it; the CNAME of an ExternalName); as a NodePort Service,
    also a connection to the source's own node on the nodePort of the item's protocol."""
    forms = [f for f in search_forms(service.serves, names) if f[0] in ("short", "fqdn")]
    if spec.get("type") == "ExternalName":
        return [Query(label, name, "CNAME", search=search, expect=(f"{spec.get('externalName')}.",))
                for label, name, search in forms]
    asks: list[Query | Connection] = [
        Query(label, name, address_type(topology), search=search, expect=(cluster_ip(spec, topology),),
              connect=service.port)
        for label, name, search in forms]
    port = node_port(spec, protocol)
    if spec.get("type") == "NodePort":
        asks.append(Connection("node-port", topology.host_of(source.node).ip, port or 0))
    return asks


PROTOCOLS = "protocols"
CONTROL_SERVICE = "web"
_PORT = {"port": 80, "targetPort": 8080}
PROTOCOL_CHANGES = (
    Change("udp-removed", PROTOCOLS, {"spec": {"ports": [{"name": "tcp", "protocol": "TCP", **_PORT}]}}),
    Change("tcp-removed", PROTOCOLS, {"spec": {"ports": [{"name": "udp", "protocol": "UDP", **_PORT}]}}),
)
PROTOCOL_RESTORE = Change("restored", PROTOCOLS, {"spec": {"ports": [
    {"name": "tcp", "protocol": "TCP", **_PORT}, {"name": "udp", "protocol": "UDP", **_PORT}]}})


def protocol_rounds(topology: Topology, source: Endpoint, service: Endpoint, names: DnsNames,
                    spec: dict, protocol: str) -> list[Connection]:
    """One connection through the ClusterIP over the item's protocol, answered by a backend
    while the Service has the port over that protocol, unanswered once it has not."""
    served = {p.get("protocol", "TCP") for p in spec.get("ports") or [] if p.get("port") == service.port}
    asks = [Connection("clusterip", cluster_ip(spec, topology) or service.ip, service.port,
                       answered=protocol.upper() in served)]
    if not asks[0].answered:  # web has the port over this protocol: the silence's positive control
        web = next(e for e in topology.of_kind(SERVICE) if e.serves == CONTROL_SERVICE)
        asks.append(Connection("control", web.ip, web.port, control=True))
    return asks


AFFINITY = "web-affinity"
STICKY_CONNECTIONS = 10  # to each address, in a round where the affinity holds
AFFINITY_CHANGES = (
    Change("none", AFFINITY, {"spec": {"sessionAffinity": "None", "sessionAffinityConfig": None}}),
    Change("clientip-again", AFFINITY, {"spec": {"sessionAffinity": "ClientIP"}}),
)
AFFINITY_RESTORE = Change("restored", AFFINITY, {"spec": {"sessionAffinity": "ClientIP"}})


def affinity_rounds(topology: Topology, source: Endpoint, service: Endpoint, names: DnsNames,
                    spec: dict, protocol: str) -> list[Connection]:
    """Connections through the ClusterIP and the client's own node's NodePort: with ClientIP
    affinity, STICKY_CONNECTIONS to each, all to land on one backend; without, more than one must
    answer, and enough are made that random balancing lands them all on one backend by chance
    less than once in a million (with a single backend there is nothing to spread over: any
    answers). Reaching every backend is SVC-CLUSTERIP's: at 50 nodes asking it here too made
    878 connections per address where 5 show the spread."""
    sticky = spec.get("sessionAffinity") == "ClientIP"
    backends = len(topology.services[service.serves].backends)
    count = STICKY_CONNECTIONS if sticky else spread_connections(backends)
    expect = True if sticky else (False if backends > 1 else None)
    addresses = [("clusterip", cluster_ip(spec, topology) or service.ip, service.port)]
    port = node_port(spec, protocol)
    if port:
        addresses.append(("nodeport", topology.host_of(source.node).ip, port))
    return [Connection(f"{label}#{i}", ip, to, sticky=expect)
            for label, ip, to in addresses for i in range(count)]


ITP_LOCAL = "itp-local"
ITP_CONNECTIONS = 5  # from a client with a local backend: each must stay on its node


def itp_local_rounds(topology: Topology, source: Endpoint, service: Endpoint, names: DnsNames,
                     spec: dict, protocol: str) -> list[Connection]:
    """SVC-ITP-LOCAL, one round and no change: from a client on a node with a backend of the
    Service, ITP_CONNECTIONS through the ClusterIP, each answered (the verdict wants a backend on
    the client's node); from one on a node without, a connection that must get no answer (not a
    remote backend's), with a positive control to ``web`` over the same protocol."""
    local = [b for b in topology.services[service.serves].backends if topology.endpoint(b).node == source.node]
    if local:
        return [Connection(f"local#{i}", service.ip, service.port) for i in range(ITP_CONNECTIONS)]
    web = next(e for e in topology.of_kind(SERVICE) if e.serves == CONTROL_SERVICE)
    return [Connection("no-local", service.ip, service.port, answered=False,
                       why_unanswered=f"{source.node} has no backend of the Service, whose "
                                      "internalTrafficPolicy is Local"),
            Connection("control", web.ip, web.port, control=True)]


AFFINITY_EXPIRING = "affinity-timeout"
HELD_CONNECTIONS = 5  # per round, one after the other, well within the timeout: one backend
EXPIRY_ROUNDS = 12  # rounds after the first, each AFFINITY_TIMEOUT + 0.5 s after the one before
# Each later round starts after the affinity has expired; with three backends, all of them landing
# on the first round's backend by chance is (1/3)^12, under one in 500,000 per item
AFFINITY_EXPIRY_CHANGES = tuple(Change(f"expired-{i}", AFFINITY_EXPIRING, None, pause=AFFINITY_TIMEOUT + 0.5)
                                for i in range(1, EXPIRY_ROUNDS + 1))


def affinity_timeout_rounds(topology: Topology, source: Endpoint, service: Endpoint, names: DnsNames,
                            spec: dict, protocol: str) -> list[Connection]:
    """SVC-AFFINITY-TIMEOUT: every round, HELD_CONNECTIONS through the ClusterIP, one after the
    other, all to land on one backend (the affinity holds within its timeout); the rounds come
    more than the timeout apart, so some round after the first must land elsewhere (it was
    released). The Service's timeout is the run's own (AFFINITY_TIMEOUT), not what the API says."""
    return [Connection(f"clusterip#{i}", service.ip, service.port, sticky=True) for i in range(HELD_CONNECTIONS)]


def rounds_backends(case_id: str, results: dict[str, dict]) -> dict[str, set[str]]:
    """round -> the backends that answered its connections, for one case."""
    found: dict[str, set[str]] = {}
    for target_id, result in results.items():
        if target_id.startswith(f"{case_id}@") and result.get("ok") and result.get("responder"):
            found.setdefault(target_id.split("@", 1)[1].split("/", 1)[0], set()).add(result["responder"])
    return found


def released(case, results: dict[str, dict]) -> bool:
    """Enough rounds for the item: a round landed elsewhere than the first, or one failed (the
    verdict judges it on that)."""
    mine = {k: r for k, r in results.items() if k.startswith(f"{case.id}@")}
    if any(not r.get("ok") for r in mine.values()):
        return True
    return len(set().union(*rounds_backends(case.id, mine).values()) if mine else set()) > 1

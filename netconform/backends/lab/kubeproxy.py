"""kube-proxy's iptables mode, rendered for one lab node from the Service descriptions.

The rules follow kube-proxy's layout (KUBE-SERVICES → KUBE-SVC-* → KUBE-SEP-*, KUBE-NODEPORTS →
KUBE-EXT-*, KUBE-SVL-* for externalTrafficPolicy: Local, KUBE-MARK-MASQ and KUBE-POSTROUTING for
masquerade, REJECT in the filter table for Services without endpoints) so that a Service feature is
added here, in one place. ProxyOptions are the knobs lab faults turn to break one behaviour.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from ...topology import Service, Topology

MASQ_MARK = "0x4000"
NAMESPACE = "netconform"


@dataclass(frozen=True)
class ProxyOptions:
    hairpin_masquerade: bool = True  # a backend reaching itself through its Service is masqueraded
    reject_without_endpoints: bool = True  # no endpoints: REJECT (not a silent drop)
    masquerade_all: bool = False  # SNAT every Service connection (hides the client IP)
    session_affinity: bool = True  # honour sessionAffinity: ClientIP
    nodeports: bool = True  # jump to KUBE-NODEPORTS for local destination addresses
    drop_last_endpoint: bool = False  # forget one endpoint when balancing
    local_traffic_policy: bool = True  # honour externalTrafficPolicy: Local


def _chain(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:16]


def render(topology: Topology, node: str, cluster_cidr: str,
           options: ProxyOptions = ProxyOptions(), protocols: tuple[str, ...] = ("tcp", "udp")) -> str:
    """iptables-restore input (nat and filter tables) implementing every Service on ``node``."""
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    nat = [
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" "
        "-j MASQUERADE --random-fully",
    ]
    filter_chains = ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD"]
    filters = [
        "-A INPUT -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW -j KUBE-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES",
        "-A OUTPUT -m conntrack --ctstate NEW -j KUBE-SERVICES",
        "-A FORWARD -j KUBE-FORWARD",
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f"-A KUBE-FORWARD -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
        "-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    for service in topology.services.values():
        for proto in protocols:
            _service_rules(topology, service, proto, node, cluster_cidr, options,
                           nat_chains, nat, filters)
    if options.nodeports:
        nat.append("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" "
                   "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    return "\n".join(["*nat", *(f":{c} - [0:0]" for c in nat_chains), *nat, "COMMIT",
                      "*filter", *(f":{c} - [0:0]" for c in filter_chains), *filters, "COMMIT", ""])


def _service_rules(topology: Topology, service: Service, proto: str, node: str, cluster_cidr: str,
                   options: ProxyOptions, chains: list[str], nat: list[str],
                   filters: list[str]) -> None:
    port_name = f"{NAMESPACE}/{service.name}:{service.port}"
    comment = f"-m comment --comment \"{port_name}/{proto}"
    match = f"-p {proto} -m {proto}"
    cluster_ip = f"-d {service.cluster_ip}/32 {match} --dport {service.port}"
    backends = [topology.endpoint(name) for name in service.backends]
    if not backends:
        if options.reject_without_endpoints:
            filters.append(f"-A KUBE-SERVICES {cluster_ip} {comment} has no endpoints\" "
                           "-j REJECT --reject-with icmp-port-unreachable")
            if service.node_port:
                filters.append(f"-A KUBE-EXTERNAL-SERVICES {match} --dport {service.node_port} "
                               f"-m addrtype --dst-type LOCAL {comment} has no endpoints\" "
                               "-j REJECT --reject-with icmp-port-unreachable")
        return
    svc_chain = _chain("KUBE-SVC-", port_name, proto)
    chains.append(svc_chain)
    nat.append(f"-A KUBE-SERVICES {cluster_ip} {comment} cluster IP\" -j {svc_chain}")
    masq_from = "" if options.masquerade_all else f"! -s {cluster_cidr} "
    nat.append(f"-A {svc_chain} {masq_from}{cluster_ip} {comment} cluster IP\" -j KUBE-MARK-MASQ")
    sep = {b.name: _chain("KUBE-SEP-", port_name, proto, b.ip) for b in backends}
    for backend in backends:
        chains.append(sep[backend.name])
        affinity = ""
        if service.affinity and options.session_affinity:
            affinity = f"-m recent --name {sep[backend.name]} --mask 255.255.255.255 --rsource --set "
        if options.hairpin_masquerade:
            nat.append(f"-A {sep[backend.name]} -s {backend.ip}/32 {comment}\" -j KUBE-MARK-MASQ")
        nat.append(f"-A {sep[backend.name]} {comment}\" {match} {affinity}"
                   f"-j DNAT --to-destination {backend.ip}:{service.target_port}")
    balanced = backends[:-1] if options.drop_last_endpoint and len(backends) > 1 else backends
    if service.affinity and options.session_affinity:
        nat += [f"-A {svc_chain} {comment} -> {b.ip}\" -m recent --name {sep[b.name]} --mask "
                f"255.255.255.255 --rsource --rcheck --seconds 10800 --reap -j {sep[b.name]}"
                for b in balanced]
    nat += _balance(svc_chain, [sep[b.name] for b in balanced], comment)
    if not service.node_port:
        return
    ext_chain = _chain("KUBE-EXT-", port_name, proto)
    chains.append(ext_chain)
    nat.append(f"-A KUBE-NODEPORTS {match} --dport {service.node_port} {comment}\" -j {ext_chain}")
    if not (service.local_traffic and options.local_traffic_policy):
        nat += [f"-A {ext_chain} {comment} masquerade traffic for external destinations\" "
                "-j KUBE-MARK-MASQ", f"-A {ext_chain} -j {svc_chain}"]
        return
    local = [b for b in backends if b.node == node]
    nat += [f"-A {ext_chain} -s {cluster_cidr} {comment} pod traffic for external destinations\" "
            f"-j {svc_chain}",
            f"-A {ext_chain} -m addrtype --src-type LOCAL {comment} masquerade LOCAL traffic\" "
            "-j KUBE-MARK-MASQ",
            f"-A {ext_chain} -m addrtype --src-type LOCAL {comment} route LOCAL traffic\" "
            f"-j {svc_chain}"]
    if not local:
        filters.append(f"-A KUBE-EXTERNAL-SERVICES {match} --dport {service.node_port} -m addrtype "
                       f"--dst-type LOCAL {comment} has no local endpoints\" -j DROP")
        return
    svl_chain = _chain("KUBE-SVL-", port_name, proto)
    chains.append(svl_chain)
    nat.append(f"-A {ext_chain} -j {svl_chain}")
    nat += _balance(svl_chain, [sep[b.name] for b in local], comment)


def _balance(chain: str, targets: list[str], comment: str) -> list[str]:
    """Uniform random choice, as kube-proxy writes it: 1/n, then 1/(n-1) of the rest, …"""
    rules = []
    for index, target in enumerate(targets):
        left = len(targets) - index
        chance = "" if left == 1 else f"-m statistic --mode random --probability {1 / left:.11f} "
        rules.append(f"-A {chain} {comment} -> endpoint {index + 1}\" {chance}-j {target}")
    return rules

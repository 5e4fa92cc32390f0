"""Faults the lab can inject, each meant to turn named requirements red.

A fault either turns a kube-proxy knob (the Service rules are rendered without one behaviour) or
runs commands in every node namespace after the lab is built, as a misconfigured node would have.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fault:
    name: str
    breaks: tuple[str, ...]  # the requirements it must turn red
    description: str
    also: tuple[str, ...] = ()  # requirements it may turn red as a consequence (measured, explained)
    proxy: dict = field(default_factory=dict)  # ProxyOptions overrides
    node_commands: tuple[tuple[str, ...], ...] = ()  # run in each node ns; ${POD_CIDR} is filled in


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("snat-between-nodes", ("POD-POD-CROSS", "POD-IP-SELF"),
          "nodes masquerade pod traffic leaving for other nodes",
          also=("SVC-SOURCE-IP",),  # a Service connection to another node's backend is SNATed too
          node_commands=(("iptables", "-t", "nat", "-I", "POSTROUTING", "-s", "${POD_CIDR}",
                          "-o", "eth0", "-j", "MASQUERADE"),)),
    Fault("svc-lost-endpoint", ("SVC-CLUSTERIP",),
          "kube-proxy balances over all endpoints but the last",
          also=("SVC-HAIRPIN",),  # the forgotten backend never reaches itself
          proxy={"drop_last_endpoint": True}),
    Fault("svc-snat", ("SVC-SOURCE-IP",), "kube-proxy masquerades every Service connection",
          proxy={"masquerade_all": True}),
    Fault("svc-no-nodeports", ("SVC-NODEPORT", "SVC-ETP-LOCAL"),
          "the jump to KUBE-NODEPORTS is missing", proxy={"nodeports": False}),
    Fault("svc-no-hairpin-masquerade", ("SVC-HAIRPIN",),
          "the KUBE-SEP masquerade rule for a backend reaching itself is missing",
          also=("SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-AFFINITY"),  # backends are clients there too
          proxy={"hairpin_masquerade": False}),
    Fault("svc-no-affinity", ("SVC-AFFINITY",), "sessionAffinity: ClientIP is ignored",
          proxy={"session_affinity": False}),
    Fault("svc-no-reject", ("SVC-NO-ENDPOINTS",),
          "a Service without endpoints is not rejected, so its connections time out",
          proxy={"reject_without_endpoints": False}),
    Fault("svc-etp-ignored", ("SVC-ETP-LOCAL",),
          "externalTrafficPolicy: Local is treated as Cluster (client IP masqueraded)",
          proxy={"local_traffic_policy": False}),
    Fault("hostport-dnat-flushed", ("HOSTPORT",), "the portmap plugin's DNAT rules are gone",
          node_commands=(("iptables", "-t", "nat", "-F", "CNI-HOSTPORT-DNAT"),)),
]}


class UnknownFault(ValueError):
    pass


def fault(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise UnknownFault(f"unknown --lab-fault {name!r}; known faults: "
                           f"{', '.join(sorted(FAULTS))} (or 'list')") from None


def listing() -> str:
    width = max(len(name) for name in FAULTS)
    return "\n".join(f"{f.name:<{width}}  breaks {', '.join(f.breaks)}"
                     f"{' (also ' + ', '.join(f.also) + ')' if f.also else ''}: {f.description}"
                     for f in FAULTS.values())

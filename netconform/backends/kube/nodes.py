"""Which nodes a run deploys to: Ready, matching --node-selector, and every NoSchedule/NoExecute
taint tolerated (a DaemonSet would not place a probe anywhere else)."""
from __future__ import annotations

from dataclasses import dataclass

from ..base import BackendError


@dataclass(frozen=True)
class ClusterNode:
    name: str
    internal_ip: str  # its first InternalIP: the primary family's
    internal_ips: tuple[str, ...] = ()  # every InternalIP it reports (one per family), first first


def select_nodes(nodes: list, selector: dict[str, str], tolerations: list[dict]) -> list[ClusterNode]:
    """``nodes``: the items of a NodeList (client models). Raise when a chosen node is not Ready."""
    chosen, not_ready, tainted = [], [], []
    for node in nodes:
        labels = node.metadata.labels or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        # Ready first: the node lifecycle controller taints a node whose kubelet stopped
        # (node.kubernetes.io/unreachable), and that node must be named as not Ready, not passed
        # over as one more tainted node
        ready = next((c for c in (node.status.conditions or []) if c.type == "Ready"), None)
        if ready is None or ready.status != "True":
            why = (ready.reason or ready.message) if ready else "no Ready condition"
            not_ready.append(f"{node.metadata.name} ({why})")
            continue
        blocking = [t for t in (node.spec.taints or []) if t.effect in ("NoSchedule", "NoExecute")
                    and not any(_tolerates(tol, t) for tol in tolerations)]
        if blocking:
            tainted.append(f"{node.metadata.name} ({', '.join(_taint(t) for t in blocking)})")
            continue
        internal = [a.address for a in (node.status.addresses or []) if a.type == "InternalIP"]
        if not internal:
            raise BackendError(f"node {node.metadata.name} reports no InternalIP address")
        chosen.append(ClusterNode(node.metadata.name, internal[0], tuple(internal)))
    if not_ready:
        raise BackendError(f"node(s) not Ready: {'; '.join(not_ready)}; wait for them, or leave them "
                           "out with --node-selector")
    if not chosen:
        hint = f"; tainted: {'; '.join(tainted)} (see --tolerations)" if tainted else ""
        raise BackendError(f"no node to test: none matches --node-selector {selector or '{}'}{hint}")
    return sorted(chosen, key=lambda n: n.name)


def _tolerates(toleration: dict, taint) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.effect:
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.key
    return toleration.get("key") == taint.key and toleration.get("value", "") == (taint.value or "")


def _taint(taint) -> str:
    return f"{taint.key}{'=' + taint.value if taint.value else ''}:{taint.effect}"


def with_families(planned, items: list, chosen: list[ClusterNode]):
    """The planned topology with its IP families: the cluster has every family its chosen nodes'
    InternalIPs have (a dual-stack node lists one per family), and the checks run in each family
    every chosen node has, the primary (the family of the nodes' first InternalIP) first: the
    run's Services ask for a ClusterIP per family and pods have a podIP per family there.
    ``items``: the chosen nodes' Node objects."""
    from dataclasses import replace

    from ...topology import FAMILIES, family_of
    primary = {family_of(node.internal_ip) for node in chosen}
    if len(primary) > 1:
        raise BackendError("the chosen nodes' first InternalIPs are of both families ("
                           + ", ".join(f"{n.name} {n.internal_ip}" for n in chosen[:4])
                           + "): choose nodes of one primary family with --node-selector")
    has = {family_of(a.address) for item in items for a in (item.status.addresses or [])
           if a.type == "InternalIP"} | primary
    everywhere = set(FAMILIES)
    for node in chosen:
        everywhere &= {family_of(ip) for ip in node.internal_ips or (node.internal_ip,)}
    (first,) = primary
    tested = (first, *(f for f in FAMILIES if f in everywhere and f != first))
    return replace(planned, families=tested, cluster_families=tuple(f for f in FAMILIES if f in has))

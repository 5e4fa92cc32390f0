"""Which nodes a run deploys to, and why each other node is left out: a node that does not match
--node-selector, is not Linux, is not Ready, is cordoned or has a NoSchedule/NoExecute taint the
run does not tolerate is excluded, and named with its reason in the verdict's coverage statement
(network-model.md, "The verdict"): one unusable node no longer stops the whole run."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..base import BackendError

OS_LABEL = "kubernetes.io/os"  # kubelet sets it on every Node: the probes are Linux programs
CORDON_TAINT = "node.kubernetes.io/unschedulable"  # what `kubectl cordon` amounts to


@dataclass(frozen=True)
class ClusterNode:
    name: str
    internal_ip: str  # its first InternalIP: the primary family's
    internal_ips: tuple[str, ...] = ()  # every InternalIP it reports (one per family), first first


@dataclass(frozen=True)
class NodeChoice:
    """The nodes a run tests, and every other node of the cluster with the reason it is not."""
    chosen: list[ClusterNode]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (node, why), by name

    def listed(self, limit: int = 10) -> str:
        """The excluded nodes with their reasons, the first ``limit`` of them, as one line says them."""
        said = "; ".join(f"{name} ({why})" for name, why in self.excluded[:limit])
        return said + (f"; and {len(self.excluded) - limit} more" if len(self.excluded) > limit else "")

    def coverage(self) -> dict:
        return {"tested": len(self.chosen), "in_cluster": len(self.chosen) + len(self.excluded),
                "excluded": [{"name": name, "reason": why} for name, why in self.excluded]}


def select_nodes(nodes: list, selector: dict[str, str], tolerations: list[dict]) -> NodeChoice:
    """``nodes``: the items of a NodeList (client models). Raise only when no node is left."""
    chosen, excluded = [], []
    for node in nodes:
        why = _excluded_because(node, selector, tolerations)
        if why:
            excluded.append((node.metadata.name, why))
            continue
        internal = [a.address for a in (node.status.addresses or []) if a.type == "InternalIP"]
        if not internal:
            raise BackendError(f"node {node.metadata.name} reports no InternalIP address")
        chosen.append(ClusterNode(node.metadata.name, internal[0], tuple(internal)))
    choice = NodeChoice(sorted(chosen, key=lambda n: n.name), sorted(excluded))
    if not chosen:
        raise BackendError(f"no node to test: every node is excluded: {choice.listed()}" if excluded
                           else "no node to test: the cluster has no Node")
    return choice


def _excluded_because(node, selector: dict[str, str], tolerations: list[dict]) -> str | None:
    """Why ``node`` is not tested, or None. The order matters for what a node is called: a
    node whose kubelet stopped is tainted by the node lifecycle controller
    (node.kubernetes.io/unreachable), and must be named as not Ready, not as one more tainted node."""
    labels = node.metadata.labels or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return "not matching --node-selector"
    system = labels.get(OS_LABEL) or getattr(getattr(node.status, "node_info", None), "operating_system", None)
    if system and system != "linux":
        return f"not Linux ({OS_LABEL}={system})"
    unready = not_ready(node)
    if unready:
        return unready
    cordon = SimpleTaint(CORDON_TAINT, None, "NoSchedule")
    if node.spec.unschedulable and not any(_tolerates(tol, cordon) for tol in tolerations):
        return f"cordoned (tolerate {CORDON_TAINT} to include it)"
    blocking = [t for t in (node.spec.taints or []) if t.effect in ("NoSchedule", "NoExecute")
                and not any(_tolerates(tol, t) for tol in tolerations)]
    if blocking:
        return f"tainted ({', '.join(_taint(t) for t in blocking)}; see --tolerations)"
    return None


def ready_condition(node):
    """The node's Ready condition, or None when it has none."""
    return next((c for c in (node.status.conditions or []) if c.type == "Ready"), None)


def not_ready(node) -> str | None:
    """Why ``node`` is not Ready (its Ready condition's reason), or None when it is."""
    ready = ready_condition(node)
    if ready is None or ready.status != "True":
        return f"not Ready ({(ready.reason or ready.message or ready.status) if ready else 'no Ready condition'})"
    return None


# What kubelet says when the CNI is the reason its node is not Ready (no network plugin configured
# or ready): a node the network under test brought down is the network's doing, not a lost node
NETWORK_NOT_READY = ("NetworkPluginNotReady", "NetworkReady=false", "network plugin", "cni plugin not initialized")


def lost(items: list, chosen: set[str]) -> dict[str, str]:
    """The chosen nodes that are gone from ``items`` (a NodeList's) or not Ready now, with why
    (the Ready condition's reason and message). A node not Ready because its network plugin is not
    (kubelet's NetworkPluginNotReady) is not lost: the failures there are the network's."""
    found = {item.metadata.name: item for item in items}
    gone = {name: "deleted from the cluster" for name in chosen if name not in found}
    for name in chosen & set(found):
        ready = ready_condition(found[name])
        if ready is not None and ready.status == "True":
            continue
        said = " ".join(filter(None, (ready.reason, ready.message))) if ready else "no Ready condition"
        if any(words.lower() in said.lower() for words in NETWORK_NOT_READY):
            continue
        gone[name] = f"not Ready ({said[:200]})"
    return gone


@dataclass(frozen=True)
class SimpleTaint:
    key: str
    value: str | None
    effect: str


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

"""The policies that may block the run's traffic, read before probing.

The network model holds "barring intentional network segmentation": traffic a policy blocks is
not a network failure (network-model.md, "The verdict"). So the run lists the policies that can
select its pods: NetworkPolicies in its own namespace (a controller such as Kyverno may generate a
default-deny in every new namespace), the admin tiers AdminNetworkPolicy and
BaselineAdminNetworkPolicy, and the CNIs' own kinds (Calico GlobalNetworkPolicy and NetworkPolicy,
Cilium CiliumClusterwideNetworkPolicy and CiliumNetworkPolicy, Antrea ClusterNetworkPolicy and
NetworkPolicy; the namespaced ones in the run's namespace). A failed item is then
not judged: it is an error naming them, and the verdict is INCOMPLETE. A kind the API server does
not serve is simply absent; one the run may not read is said, since its policies are unknown.

``--allow-policy`` adds one allow-all NetworkPolicy (ingress and egress) to the run's namespace.
NetworkPolicies add up, so it lifts every namespaced NetworkPolicy's deny there, and a
BaselineAdminNetworkPolicy applies only where no NetworkPolicy selects a pod; the other kinds can
still deny, and are still named.
"""
from __future__ import annotations

from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

from .api import KubeApi

ALLOW_ALL = "netconform-allow-all"  # --allow-policy's NetworkPolicy, in the run's namespace


@dataclass(frozen=True)
class PolicyKind:
    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool  # read in the run's namespace; else cluster-wide
    lifted_by_allow_all: bool  # --allow-policy's NetworkPolicy makes its denials moot


KINDS = (
    PolicyKind("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies", True, True),
    PolicyKind("AdminNetworkPolicy", "policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", False, False),
    PolicyKind("BaselineAdminNetworkPolicy", "policy.networking.k8s.io", "v1alpha1",
               "baselineadminnetworkpolicies", False, True),
    PolicyKind("GlobalNetworkPolicy", "crd.projectcalico.org", "v1", "globalnetworkpolicies", False, False),
    PolicyKind("CiliumClusterwideNetworkPolicy", "cilium.io", "v2", "ciliumclusterwidenetworkpolicies", False, False),
    PolicyKind("CiliumNetworkPolicy", "cilium.io", "v2", "ciliumnetworkpolicies", True, False),
    # Calico's and Antrea's own namespaced kinds are ordered apart from NetworkPolicies, and may
    # deny before them: an allow-all NetworkPolicy does not lift them
    PolicyKind("Calico NetworkPolicy", "crd.projectcalico.org", "v1", "networkpolicies", True, False),
    PolicyKind("Antrea ClusterNetworkPolicy", "crd.antrea.io", "v1beta1", "clusternetworkpolicies", False, False),
    PolicyKind("Antrea NetworkPolicy", "crd.antrea.io", "v1beta1", "networkpolicies", True, False),
)


@dataclass(frozen=True)
class Policy:
    kind: PolicyKind
    name: str
    namespace: str | None

    @property
    def label(self) -> str:
        return f"{self.kind.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


@dataclass(frozen=True)
class PolicyScan:
    found: tuple[Policy, ...] = ()
    unreadable: tuple[str, ...] = ()  # "<kind>: <why>" for a kind the run may not list
    allow_all: bool = False  # --allow-policy's NetworkPolicy is in place

    @property
    def blocking(self) -> tuple[Policy, ...]:
        """The policies that may still deny the run's traffic."""
        return tuple(p for p in self.found if not (self.allow_all and p.kind.lifted_by_allow_all))

    @property
    def liftable(self) -> bool:
        """Whether --allow-policy would lift some of the blocking policies."""
        return any(p.kind.lifted_by_allow_all for p in self.blocking)

    def metadata(self) -> dict:
        return {"policies": [{"kind": p.kind.kind, "name": p.name, "namespace": p.namespace,
                              "may_block": p in self.blocking} for p in self.found],
                "policies_unreadable": list(self.unreadable), "allow_policy": self.allow_all}


def scan(api: KubeApi, namespace: str, allow_all: bool) -> PolicyScan:
    """One list per kind (nine requests); the run's own allow-all is not counted."""
    found, unreadable = [], []
    for kind in KINDS:
        try:
            if kind.namespaced:
                listed = api.custom.list_namespaced_custom_object(kind.group, kind.version, namespace,
                                                                  kind.plural, _request_timeout=(5, 10))
            else:
                listed = api.custom.list_cluster_custom_object(kind.group, kind.version, kind.plural,
                                                               _request_timeout=(5, 10))
        except ApiException as exc:
            if exc.status == 404:  # the API server does not serve this kind: no such policy
                continue
            unreadable.append(f"{kind.kind}: HTTP {exc.status} {exc.reason or ''}".strip())
            continue
        except Exception as exc:  # noqa: BLE001 - a lost connection: unknown, said, never fatal
            unreadable.append(f"{kind.kind}: {exc.__class__.__name__}: {exc}")
            continue
        for item in (listed or {}).get("items") or []:
            meta = item.get("metadata") or {}
            if kind.kind == "NetworkPolicy" and meta.get("name") == ALLOW_ALL and allow_all:
                continue
            found.append(Policy(kind, meta.get("name", "?"), meta.get("namespace")))
    return PolicyScan(tuple(found), tuple(unreadable), allow_all)


def allow_all_policy(namespace: str, labels: dict[str, str]) -> dict:
    """--allow-policy: every pod of the run's namespace may send and receive anything."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": ALLOW_ALL, "namespace": namespace, "labels": dict(labels)},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]}}


def describe(blocking: tuple[Policy, ...], limit: int = 5) -> str:
    names = ", ".join(p.label for p in blocking[:limit])
    return names + (f" and {len(blocking) - limit} more" if len(blocking) > limit else "")


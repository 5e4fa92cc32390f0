"""The run's Kubernetes objects on the lab: the same ones a live run creates.

The namespace, the probe DaemonSets and the Services are rendered from ``manifests/kube/`` exactly as
for a live cluster (backends/kube/manifests.py). The Services are created as they are. Each
DaemonSet becomes one Pod per node, bound to it, as the DaemonSet controller would make it: the lab
wires and runs those pods itself, and its kubelet (kubelet.py) reports them, so the EndpointSlice
controller and kube-proxy see real pods with real IPs.
"""
from __future__ import annotations

import copy

from kubernetes.client.exceptions import ApiException

from ...topology import Topology
from ..base import BackendError
from ..kube.api import KubeApi, status_message
from ..kube.manifests import DeploySpec, render, render_endpoint_slices, token_secret
from .naming import node_ip, node_ip6

IMAGE = "netconform-probe:lab"  # the probe agent, run by the lab as a process in the pod's namespace
ROLE_LABEL = "netconform.io/role"


def render_for_lab(run_id: str, namespace: str, planned: Topology, pods_per_node: int) -> list[dict]:
    """The run's objects; a shared hostPort's hostIP is the node's address in the primary family."""
    spec = DeploySpec(run_id, namespace, IMAGE, pods_per_node)
    node_ports = {s.name: s.node_port for s in planned.services.values() if s.node_port}
    primary = node_ip if planned.families[0] == "ipv4" else node_ip6
    return render(spec, planned, node_ports, {n.name: primary(i) for i, n in enumerate(planned.nodes, 1)})


def endpoint_slices_for_lab(run_id: str, namespace: str, live: Topology, pods_per_node: int) -> list[dict]:
    return render_endpoint_slices(DeploySpec(run_id, namespace, IMAGE, pods_per_node), live)


def pod_for(daemonset: dict, node: str) -> dict:
    """The pod the DaemonSet controller would create on ``node``, already bound to it."""
    return bound_pod(daemonset, f"{daemonset['spec']['template']['metadata']['labels'][ROLE_LABEL]}-{node}", node)


def bound_pod(workload: dict, name: str, node: str) -> dict:
    """A pod of ``workload``'s template (a DaemonSet's, a Deployment's), named ``name``, bound to
    ``node`` as its controller and the scheduler would leave it."""
    template = copy.deepcopy(workload["spec"]["template"])
    metadata = {"name": name, "namespace": workload["metadata"]["namespace"],
                "labels": template["metadata"]["labels"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {**template["spec"], "nodeName": node}}


class RunObjects:
    """Create the run's objects; the cluster and its namespace go with the run, so nothing here
    deletes them."""

    def __init__(self, api: KubeApi, objects: list[dict], token: str) -> None:
        self.api = api
        self.objects = objects
        self.token = token  # the probes' token, in the Secret their pods mount (the lab's own file)
        self.namespace = next(o for o in objects if o["kind"] == "Namespace")["metadata"]["name"]

    def create_services(self) -> dict[str, list[str]]:
        """The namespace and the Services; returns each Service's ClusterIPs (one per family the
        cluster has, the primary's first), as allocated."""
        api = self.api
        self._create("Namespace", lambda o: api.core.create_namespace(o))
        namespace = next(o for o in self.objects if o["kind"] == "Namespace")
        run_id = namespace["metadata"]["labels"]["netconform.io/run"]
        secret = token_secret(DeploySpec(run_id, self.namespace, IMAGE), self.token)
        self._call("create the probes' token Secret",
                   lambda: api.core.create_namespaced_secret(self.namespace, secret))
        created = self._create("Service", lambda o: api.core.create_namespaced_service(self.namespace, o))
        return {s.metadata.name: list(s.spec.cluster_ips or [s.spec.cluster_ip]) for s in created
                if s.spec.cluster_ip not in (None, "None")}  # headless and ExternalName have none

    def pods(self, nodes: list[str]) -> list[dict]:
        """One pod per DaemonSet and node, and the standalone pods (bound to their node in the
        manifest), as create_pods makes them."""
        made = [pod_for(daemonset, node) for daemonset in self.objects if daemonset["kind"] == "DaemonSet"
                for node in nodes]
        return made + [copy.deepcopy(o) for o in self.objects if o["kind"] == "Pod"]

    def create_pods(self, nodes: list[str]) -> dict[str, dict]:
        """The pods; returns them by planned name (``node-1/probe-a``)."""
        self._ensure_service_account()
        api, pods = self.api, {}
        for pod in self.pods(nodes):
            self._call(f"create Pod {pod['metadata']['name']}",
                       lambda pod=pod: api.core.create_namespaced_pod(self.namespace, pod))
            pods[f"{pod['spec']['nodeName']}/{pod['metadata']['labels'][ROLE_LABEL]}"] = pod
        return pods

    def create_endpoint_slices(self, slices: list[dict]) -> None:
        """The hand-made EndpointSlices (kube/manifests.py: render_endpoint_slices)."""
        for endpoint_slice in slices:
            self._call(f"create EndpointSlice {endpoint_slice['metadata']['name']}",
                       lambda o=endpoint_slice: self.api.discovery.create_namespaced_endpoint_slice(
                           self.namespace, o))

    def _create(self, kind: str, create) -> list:
        return [self._call(f"create {kind} {o['metadata']['name']}", lambda o=o: create(o))
                for o in self.objects if o["kind"] == kind]

    def _call(self, what: str, call):
        try:
            return self.api.call(what, call)
        except ApiException as exc:
            raise BackendError(f"lab: cannot {what}: {status_message(exc)}") from None

    def _ensure_service_account(self) -> None:
        """Pods are refused until the namespace's ServiceAccount "default" exists. The controller
        manager creates it, but only some seconds after it starts; creating it first is what a
        user may do too (the controller then finds it there)."""
        body = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": self.namespace}}
        try:
            self.api.call("create ServiceAccount default",
                          self.api.core.create_namespaced_service_account, self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:  # already made by the controller
                raise BackendError(f"lab: cannot create ServiceAccount {self.namespace}/default: "
                                   f"{status_message(exc)}") from None

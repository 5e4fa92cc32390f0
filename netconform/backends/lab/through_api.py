"""``--backend=kube`` on the lab: the live-cluster path, end to end, on a cluster of the lab's own.

The lab is built as a cluster only (control plane, registered nodes, its kubelet, kube-proxy,
CoreDNS: LabSpec.objects False), and the kube backend then does on it exactly what it does on a live
cluster: it lists the Nodes, renders and creates the run's namespace, DaemonSets, pods, Services and
EndpointSlices through the API server, waits for the pods to be
Ready, reaches every probe through the API server's pod proxy, changes Services and cycles pods
through the API, and deletes the namespace at the end. The DaemonSet controller makes the pods and
the scheduler binds them; the lab's kubelet (runtime_pods.py) runs them. Only the kubelet's work is
the lab's. It does so as a user bound to the ClusterRole of manifests/kube/rbac.yaml alone
(run_credentials.py), so every such run proves the README's list of permissions enough.

The plan (what pytest collects) is the kube backend's for the lab's node names, known before the
lab exists: no client outside the cluster (SVC-ETP-LOCAL is skipped, as on a live cluster), the
hostNetwork probe on the kube backend's ports. Faults are injected once the kube backend's objects
exist and kube-proxy has programmed them; the one that moves a container the lab starts itself
(localhost-split) is refused.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from ...plan import probe_plan
from ...probing.channel import ProbeChannel
from ...probing.runner import HostWatch
from ...profiles import Profile
from ...topology import Endpoint, Topology
from ..base import Backend, BackendError, Progress
from ..kube.backend import KubeBackend, KubeOptions
from ..kube.manifests import HOST_ECHO_PORT
from .backend import LabBackend
from .run_credentials import run_kubeconfig


class LabThroughApi(Backend):
    name = "kube"

    def __init__(self, lab: LabBackend, role: dict | None = None, allow_policy: bool = False) -> None:
        """``role``: the ClusterRole the run's user is bound to (default manifests/kube/rbac.yaml;
        a test gives one that lacks a permission)."""
        for fault in lab.spec.faults:
            if fault.split_duo:  # it restarts containers the lab runs itself
                raise BackendError(f"--lab-fault {fault.name} with --backend=kube: it moves a container "
                                   "the lab starts itself; run it without --backend=kube")
        self.lab = lab
        self.lab.spec = replace(lab.spec, objects=False)
        self.kube: KubeBackend | None = None
        self.role = role
        self.allow_policy = allow_policy  # --allow-policy, as on a live cluster

    def plan(self) -> Topology:
        """The kube backend's plan for the lab's nodes (it sorts them by name, as here)."""
        names = sorted(f"node-{i}" for i in range(1, self.lab.spec.nodes + 1))
        planned = probe_plan(names, self.lab.spec.pods_per_node, outside=False, host_port=HOST_ECHO_PORT)
        return replace(planned, families=self.lab.spec.families, cluster_families=self.lab.spec.families)

    def probe_concurrency(self, parallel_probes: int) -> int | None:
        return self.lab.probe_concurrency(parallel_probes)  # its probes share this machine too

    def start(self, progress: Progress) -> Topology:
        self.lab.start(progress)
        profile: Profile = replace(self.lab.profile, backend="kube", daemonsets=())
        cluster = self.lab.cluster
        kubeconfig = run_kubeconfig(cluster.control_plane, cluster.api, cluster.state_dir, self.role)
        # the user's default route: the agent in a ConfigMap, run by the stock Python image (the
        # lab kubelet runs exactly the file the ConfigMap holds, with python -I -S)
        options = KubeOptions(kubeconfig=kubeconfig, image=None,
                              ready_timeout=self.lab.spec.ready_timeout,
                              pods_per_node=self.lab.spec.pods_per_node, allow_policy=self.allow_policy)
        self.kube = KubeBackend(profile, options, run_id=self.lab.cluster.names.run_id)
        live = self.kube.start(progress)
        if {e.name for e in live.endpoints} != {e.name for e in self.plan().endpoints}:
            raise BackendError("the kube backend found other probes on the lab than were planned")
        # faults go in once the run's objects exist: they act on the Services and pods the kube
        # backend made (the run's namespace is the lab's prefix, as the lab's own objects' is)
        self.lab.cluster.sync_and_inject(live, self.lab.spec.faults, progress)
        return live

    def _kube(self) -> KubeBackend:
        if self.kube is None:
            raise BackendError("the lab's cluster is not up")
        return self.kube

    def channel(self, endpoint: Endpoint) -> ProbeChannel:
        return self._kube().channel(endpoint)

    def change_service(self, name: str, patch: dict | None) -> dict:
        return self._kube().change_service(name, patch)

    def reach_through_api(self, endpoint: Endpoint, timeout: float) -> dict:
        return self._kube().reach_through_api(endpoint, timeout)

    def start_pod(self, name: str, node: str, role: str) -> str:
        return self._kube().start_pod(name, node, role)

    def delete_pod(self, name: str) -> None:
        self._kube().delete_pod(name)

    def host_watch(self) -> HostWatch:
        return self.lab.host_watch()

    def keep_logs(self, destination: Path) -> list[str]:
        return self.lab.keep_logs(destination)

    def blocking_policies(self) -> str | None:
        return self.kube.blocking_policies() if self.kube else None

    def lost_nodes(self, final: bool = False) -> dict[str, str]:
        return self.kube.lost_nodes(final) if self.kube else {}

    def last_seen_ready(self, node: str) -> float:
        return self.kube.last_seen_ready(node) if self.kube else float("inf")

    def node_coverage(self, topology: Topology) -> dict:
        return self.kube.node_coverage(topology) if self.kube else super().node_coverage(topology)

    def metadata(self) -> dict:
        lab = self.lab.metadata()
        meta = {**lab, **(self.kube.metadata() if self.kube else {})}
        # what the lab knows of itself beats what the API shows of it (no kubeadm ConfigMap
        # tells its kube-proxy's mode)
        meta.update(backend="kube", cluster="lab", proxy_mode=lab["proxy_mode"],
                    kubernetes_version=lab["kubernetes_version"])
        return meta

    def close(self, hurry: Callable[[], bool] = lambda: False) -> list[str]:
        """The run's namespace deleted through the API (as on a live cluster), then the lab."""
        kube, self.kube = self.kube, None
        problems = kube.close(hurry) if kube is not None and not hurry() else []
        return problems + self.lab.close(hurry)

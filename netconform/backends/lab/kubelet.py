"""The lab's kubelet, as KWOK's and kubemark's hollow nodes are one, but for real namespaces.

What a kubelet tells the API server is what the rest of the cluster acts on: the Node (its
InternalIP, podCIDR, allocatable, Ready), its Lease in ``kube-node-lease`` renewed every 5 s (the
node lifecycle controller marks a node whose heartbeat stops Unknown, and then its pods not ready),
and each pod's status (podIP, Ready) from which the EndpointSlice controller builds the endpoints
kube-proxy programs. The lab wires pods through the CNI and runs their probes itself (cluster.py);
this module only reports them. Status is written with patches, so what others keep there (a CNI's
annotations and NetworkUnavailable condition) survives.

Every request is bounded (the KubeApi's timeouts); a heartbeat that fails is retried on the next
beat and counted, never raised into the run: a run whose heartbeats stop is caught by the node
lifecycle controller, as on a real cluster.
"""
from __future__ import annotations

import platform
import threading
from datetime import datetime, timezone
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from ..base import BackendError
from ..kube.api import KubeApi, status_message

LEASE_SECONDS = 40  # as kubelet: a Lease is valid this long
HEARTBEAT = 5.0  # seconds between renewals: kubelet's 10 s would leave one beat of slack before the
# lab's 20 s grace period (components.py), and one slow renewal would take a node's pods away
BEAT_TIMEOUT = (2.0, 3.0)  # connect, read: a renewal never takes longer than the next beat
LEASE_NAMESPACE = "kube-node-lease"
RUNTIME = "netconform-lab://1"  # what nodeInfo.containerRuntimeVersion says: namespaces and processes
ALLOCATABLE = {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "10Gi"}


def host_node_info() -> dict[str, str]:
    """What nodeInfo says of the OS and kernel: the host's, which every lab node shares."""
    image = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                image = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {"osImage": image, "kernelVersion": platform.release()}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LabKubelet:
    """The kubelet of every lab node, one heartbeat thread for all of them."""

    def __init__(self, api: KubeApi, kubelet_version: str, node_info: dict[str, str]) -> None:
        self.api = api
        self.kubelet_version = kubelet_version
        self.node_info = node_info  # osImage, kernelVersion, …: the host's, which every node shares
        self.nodes: dict[str, list[str]] = {}  # name -> its InternalIPs (one per family)
        self.missed_heartbeats = 0
        self.silent: set[str] = set()  # nodes whose kubelet is stopped (stop_node)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _call(self, what: str, method, *args, **kwargs):
        """One API call of registration or reporting; a refusal is one line, not a traceback."""
        try:
            return self.api.call(what, method, *args, **kwargs)
        except ApiException as exc:
            raise BackendError(f"lab kubelet: cannot {what}: {status_message(exc)}") from None

    # --- nodes ---

    def register(self, name: str, address: str | list[str], pod_cidr: str | list[str], labels: dict[str, str],
                 taints: list[dict] | None = None) -> None:
        """Create the Node (spec.podCIDR set, as kubeadm's node IPAM would; ``taints`` as kubelet's
        --register-with-taints), its status and its Lease, as kubelet does when it registers."""
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", **labels}},
                "spec": {"podCIDR": _listed(pod_cidr)[0], "podCIDRs": _listed(pod_cidr),
                         **({"taints": taints} if taints else {})}}
        node = self._call(f"create Node {name}", self.api.core.create_node, body)
        self.nodes[name] = _listed(address)  # one InternalIP per family, the primary's first
        self._patch_node_status(name)
        self._renew_lease(name, owner_uid=node.metadata.uid)

    def _patch_node_status(self, name: str) -> None:
        stamp = now()
        status = {
            "addresses": [*({"type": "InternalIP", "address": a} for a in self.nodes[name]),
                          {"type": "Hostname", "address": name}],
            "capacity": ALLOCATABLE, "allocatable": ALLOCATABLE,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "the lab kubelet is posting ready status",
                            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "architecture": "amd64",
                         "operatingSystem": "linux", "kubeletVersion": self.kubelet_version,
                         "kubeProxyVersion": "", "containerRuntimeVersion": RUNTIME, **self.node_info},
        }
        self._call(f"patch the status of Node {name}", self.api.core.patch_node_status, name,
                      {"status": status})

    def _renew_lease(self, name: str, owner_uid: str | None = None) -> None:
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_now()}
        if owner_uid is None:
            self.api.call(f"renew the Lease of {name}", self.api.coordination.patch_namespaced_lease,
                          name, LEASE_NAMESPACE, {"spec": spec}, _request_timeout=BEAT_TIMEOUT)
            return
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": name, "uid": owner_uid}]},
                "spec": spec}
        self._call(f"create the Lease of {name}", self.api.coordination.create_namespaced_lease,
                      LEASE_NAMESPACE, body)

    def start_heartbeats(self) -> None:
        """Renew every node's Lease every HEARTBEAT seconds until stop()."""
        self._thread = threading.Thread(target=self._beat, name="lab-kubelet", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            for name in list(self.nodes):
                if self._stop.is_set():
                    return
                if name in self.silent:
                    continue
                try:
                    self._renew_lease(name)
                except Exception:  # noqa: BLE001 - the next beat retries; the controller judges
                    self.missed_heartbeats += 1

    def stop_node(self, name: str) -> None:
        """Stop one node's kubelet: no more heartbeats, as when kubelet dies on a node."""
        self.silent.add(name)

    def stop(self) -> None:
        """Stop the heartbeats (the nodes go NotReady after the grace period, as a dead kubelet's)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=15)

    # --- pods ---

    def pod_running(self, namespace: str, name: str, node: str, pod_ip: str | list[str],
                    containers: list[str]) -> None:
        """Report a pod whose network is wired and whose probes answer: Running and Ready, with
        its IP (one per family: podIPs, the primary's first), as kubelet does once the readiness
        probes pass."""
        ips, host = _listed(pod_ip), self.nodes[node]
        stamp = now()
        conditions = [{"type": kind, "status": "True", "lastTransitionTime": stamp}
                      for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
        status = {"phase": "Running", "hostIP": host[0], "hostIPs": [{"ip": ip} for ip in host],
                  "podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips], "startTime": stamp,
                  "conditions": conditions,
                  "containerStatuses": [{"name": c, "ready": True, "started": True, "restartCount": 0,
                                         "image": "netconform-probe:lab", "imageID": "",
                                         "state": {"running": {"startedAt": stamp}}}
                                        for c in containers]}
        self._call(f"patch the status of pod {namespace}/{name}",
                      self.api.core.patch_namespaced_pod_status, name, namespace, {"status": status})


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


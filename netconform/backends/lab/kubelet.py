"""The lab's kubelet, as KWOK's and kubemark's hollow nodes are one, but for real namespaces.

What a kubelet tells the API server is what the rest of the cluster acts on: the Node (its
InternalIP, podCIDR, allocatable, Ready), its Lease in ``kube-node-lease`` renewed every 5 s (the
node lifecycle controller marks a node whose heartbeat stops Unknown, and then its pods not ready),
and each pod's status (podIP, Ready) from which the EndpointSlice controller builds the endpoints
kube-proxy programs. The lab wires pods through the CNI and runs their probes itself (cluster.py);
this module only reports them. Status is written with patches, so what others keep there (a CNI's
annotations and NetworkUnavailable condition) survives.

Every node's kubelet is on its own on a real cluster, so the lab kubelet never makes one node wait
for another: renewals and status reports go out several at once (WORKERS). A 50-node lab whose
204 pods were reported one after another took minutes, and all that time each status change made
every node's kube-proxy rewrite its rules: the machine was saturated, renewals came late, and the
node lifecycle controller marked every node Unknown and its pods not ready.

Like kubelet's status loop, it also mends what the node lifecycle controller did while heartbeats
were late: every NODE_STATUS_EVERY seconds it reads the Nodes, and a node of its own that is not
Ready (and whose kubelet was not stopped) is posted Ready again, with the pods it runs on that node
(the controller marked them not ready with it). Without this, a node that went Unknown once on a
loaded machine stayed Unknown for the whole run.

Every request is bounded (the KubeApi's timeouts); a heartbeat that fails is retried on the next
beat and counted, never raised into the run: a run whose heartbeats stop is caught by the node
lifecycle controller, as on a real cluster.
"""
from __future__ import annotations

import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from ..base import BackendError
from ..kube.api import KubeApi, status_message

LEASE_SECONDS = 40  # as kubelet: a Lease is valid this long
HEARTBEAT = 5.0  # seconds between renewals: half kubelet's 10 s, so that a loaded lab's late
# renewals still leave many beats before the grace period (components.py) ends
BEAT_TIMEOUT = (2.0, 3.0)  # connect, read: a renewal never takes longer than the next beat
LEASE_NAMESPACE = "kube-node-lease"
RUNTIME = "netconform-lab://1"  # what nodeInfo.containerRuntimeVersion says: namespaces and processes
ALLOCATABLE = {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "10Gi"}
WORKERS = 8  # API calls of different nodes made at once: fewer than the client's pool (10 on 2 cores)
NODE_STATUS_EVERY = 10.0  # seconds between two looks at the Nodes: kubelet's nodeStatusUpdateFrequency


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
        self.mended: dict[str, int] = {}  # node -> times posted Ready again after the controller marked it otherwise
        self.silent: set[str] = set()  # nodes whose kubelet is stopped (stop_node)
        # (namespace, name) -> (node, IPs, containers) of each pod reported running, to post again
        self.running: dict[tuple[str, str], tuple[str, list[str], list[str]]] = {}
        self.unposted: set[tuple[str, str]] = set()  # running pods whose status post failed: posted at the next look
        self._lock = threading.Lock()
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
        status = {
            "addresses": [*({"type": "InternalIP", "address": a} for a in self.nodes[name]),
                          {"type": "Hostname", "address": name}],
            "capacity": ALLOCATABLE, "allocatable": ALLOCATABLE,
            "conditions": _ready_conditions(),
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
        looked_at = time.monotonic()
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="lab-kubelet-beat") as pool:
            while not self._stop.wait(HEARTBEAT):
                beating = [name for name in self.nodes if name not in self.silent]
                missed = sum(not renewed for renewed in pool.map(self._try_renew, beating))
                with self._lock:
                    self.missed_heartbeats += missed
                if time.monotonic() - looked_at >= NODE_STATUS_EVERY and not self._stop.is_set():
                    looked_at = time.monotonic()
                    self._mend_nodes()
                    self._post_unposted()

    def _try_renew(self, name: str) -> bool:
        if self._stop.is_set():
            return True
        try:
            self._renew_lease(name)
            return True
        except Exception:  # noqa: BLE001 - the next beat retries; the controller judges
            return False

    def _mend_nodes(self) -> None:
        """Post Ready again each node of ours that the node lifecycle controller marked otherwise
        while its heartbeats were late, and its pods' readiness with it, as kubelet's status loop
        would. A failure is left to the next look."""
        try:
            listing = self.api.call("list Nodes", self.api.core.list_node, _request_timeout=BEAT_TIMEOUT)
        except Exception:  # noqa: BLE001 - the next look tries again
            return
        for node in listing.items:
            name = node.metadata.name
            if name not in self.nodes or name in self.silent or _ready(node) or self._stop.is_set():
                continue
            try:  # the conditions alone: a dual-stack node's two InternalIPs, sent again, would
                # collide in the strategic merge (addresses merge by type) and refuse the patch
                self.api.call(f"post Node {name} Ready again", self.api.core.patch_node_status, name,
                              {"status": {"conditions": _ready_conditions()}}, _request_timeout=BEAT_TIMEOUT)
            except Exception:  # noqa: BLE001 - the next look tries again
                continue
            self.mended[name] = self.mended.get(name, 0) + 1
            with self._lock:
                pods = [(key, *seen) for key, seen in self.running.items() if seen[0] == name]
            for (namespace, pod), _, ips, containers in pods:
                # a pod removed meanwhile is refused (404): nothing to mend
                _outcome(self._post_pod, namespace, pod, name, ips, containers)

    def _post_unposted(self) -> None:
        """Post again the status of each running pod whose report failed, as kubelet's status
        manager retries a pod's status until the API server has it. A failure waits for the next look."""
        with self._lock:
            pods = [(key, self.running[key]) for key in self.unposted if key in self.running]
            self.unposted.intersection_update(self.running)
        for (namespace, pod), (node, ips, containers) in pods:
            if self._stop.is_set() or node in self.silent:
                continue
            if _outcome(self._post_pod, namespace, pod, node, ips, containers) is None:
                with self._lock:
                    self.unposted.discard((namespace, pod))

    def stop_node(self, name: str) -> None:
        """Stop one node's kubelet: no more heartbeats, as when kubelet dies on a node."""
        self.silent.add(name)

    def resume_node(self, name: str) -> None:
        """Start a stopped node's kubelet again: heartbeats, and the node and its pods posted
        Ready at the next look (_mend_nodes), as a restarted kubelet posts its status."""
        self.silent.discard(name)

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
        probes pass. A report that fails is raised, and also kept to be posted again at the next
        look (NODE_STATUS_EVERY): the pod runs, and only its status is late."""
        with self._lock:
            self.running[(namespace, name)] = (node, _listed(pod_ip), list(containers))
        try:
            self._post_pod(namespace, name, node, _listed(pod_ip), containers)
        except Exception:
            with self._lock:
                self.unposted.add((namespace, name))
            raise

    def pods_running(self, pods: list[tuple[str, str, str, list[str], list[str]]]) -> None:
        """Report many pods (pod_running's arguments each) at once, as the kubelets of their
        nodes would, each on its own; the first refusal is raised once all were tried."""
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="lab-kubelet-pods") as pool:
            outcomes = list(pool.map(lambda pod: _outcome(self.pod_running, *pod), pods))
        problem = next((outcome for outcome in outcomes if outcome is not None), None)
        if problem is not None:
            raise problem

    def pod_gone(self, namespace: str, name: str) -> None:
        """The pod was removed from its node: nothing of it to post again."""
        with self._lock:
            self.running.pop((namespace, name), None)
            self.unposted.discard((namespace, name))

    def _post_pod(self, namespace: str, name: str, node: str, ips: list[str], containers: list[str]) -> None:
        host = self.nodes[node]
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


def _ready_conditions() -> list[dict]:
    """Ready, and no pressure of memory, disk or PIDs, as kubelet posts them (a condition it never
    posts is shown Unknown, NodeStatusNeverUpdated, by the node lifecycle controller)."""
    stamp = now()
    return [{"type": kind, "status": status, "reason": reason, "message": message,
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
            for kind, status, reason, message in (
                ("Ready", "True", "KubeletReady", "the lab kubelet is posting ready status"),
                ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))]


def _ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def _outcome(call, *args) -> BaseException | None:
    try:
        call(*args)
        return None
    except Exception as exc:  # noqa: BLE001 - handed back to be raised in the caller's thread
        return exc


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


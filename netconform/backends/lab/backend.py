"""The lab as a Backend: the suites see nodes, pods and probe channels, as on a real cluster."""
from __future__ import annotations

import platform
import shutil
from pathlib import Path
from typing import Callable

from ...probing.channel import ProbeChannel
from ...probing.runner import HostWatch
from ...profiles import Profile
from ...topology import Endpoint, Topology
from ..base import Backend, BackendError, Progress
from . import hostlimits
from .cluster import LabCluster, LabSpec, plan
from .cni import PLUGIN_DIRS
from .faults import Fault


class LabBackend(Backend):
    name = "lab"

    def __init__(self, profile: Profile, nodes: int = 3, pods_per_node: int = 2,
                 ready_timeout: float = 60.0, faults: tuple[Fault, ...] = (),
                 cni_path: tuple[str, ...] = PLUGIN_DIRS, cni_timeout: float = 20.0,
                 logs_kept_in: Path | None = None) -> None:
        self.profile = profile
        self.spec = LabSpec(profile.conflist, nodes, pods_per_node, ready_timeout, faults,
                            overlay=profile.overlay, cni_path=cni_path, cni_timeout=cni_timeout,
                            logs_kept_in=logs_kept_in)
        self.cluster: LabCluster | None = None

    def plan(self) -> Topology:
        return plan(self.spec)

    def start(self, progress: Progress) -> Topology:
        """A host that refuses what the lab asks of it (a read-only /proc/sys in a container, a
        kernel without a module) stops the run with that one reason, not a traceback."""
        self.cluster = LabCluster(self.spec)
        try:
            return self.cluster.build(progress)
        except OSError as exc:
            raise BackendError(f"the lab could not be built on this host: {exc}") from None

    def channel(self, endpoint: Endpoint) -> ProbeChannel:
        return self.cluster.channel(endpoint)

    def close(self, hurry: Callable[[], bool] = lambda: False) -> list[str]:
        cluster, self.cluster = self.cluster, None
        return cluster.teardown(hurry) if cluster else []

    def keep_logs(self, destination: Path) -> list[str]:
        """The probes' logs live in the run's state directory, which teardown removes."""
        source = self.cluster.state_dir / "logs" if self.cluster else None
        if source is None or not source.is_dir():
            return []
        try:
            shutil.copytree(source, destination, dirs_exist_ok=True)
        except OSError as exc:
            return [f"probe logs not kept in {destination}: {exc}"]
        return []

    def host_snapshot(self) -> hostlimits.Snapshot:
        """Overflow counters of the limits the host shares, conntrack read in the run's nodes."""
        cluster = self.cluster
        return hostlimits.snapshot([cluster.names.node(n.name) for n in cluster.topology.nodes]
                                   if cluster else [])

    def host_exceeded(self, before: hostlimits.Snapshot, after: hostlimits.Snapshot) -> str | None:
        """The one-line reason when the host, not the CNI, dropped packets between two snapshots."""
        return hostlimits.exceeded(before, after)

    def host_watch(self) -> HostWatch:
        """Every lab run shares the host's tables with the others: the runner watches them."""
        return HostWatch(self.host_snapshot, self.host_exceeded)

    def metadata(self) -> dict:
        """As a live cluster's: which Kubernetes, which proxy, which nodes. The lab's Services are
        still netconform's own iptables rules (issue 21 replaces them with kube-proxy)."""
        meta = {"backend": self.name, "cni": self.profile.name, "kubernetes_version": None,
                "proxy_mode": "iptables (netconform's rules in kube-proxy's layout, not kube-proxy)",
                "node_info": {node.name: {"os": _os_image(), "kernel": platform.release(),
                                          "runtime": "netconform lab (namespaces and processes)"}
                              for node in self.plan().nodes}}
        if self.cluster:
            meta.update(self.cluster.metadata())
        return meta


def _os_image() -> str:
    """The host's PRETTY_NAME, as a node's osImage reports it: the lab's nodes share the host's OS."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()

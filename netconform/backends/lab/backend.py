"""The lab as a Backend: the suites see nodes, pods and probe channels, as on a real cluster."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from ...probing.channel import ProbeChannel
from ...probing.runner import HostWatch, ProbeSettings
from ...profiles import Profile
from ...topology import Endpoint, Topology
from ..base import Backend, BackendError, Progress
from ...upstream import DEFAULT_RELEASE
from ...upstream.releases import get as pinned_release
from . import hostlimits
from .cluster import LabCluster, LabSpec, plan
from .cni import PLUGIN_DIRS
from .faults import Fault
from .kubelet import host_node_info


# Connections the lab's probes run at once, per CPU of this machine. Every probe of the lab runs
# here, client and echo server in one process: at 50 nodes, 16 probes with 64 connections each
# (1,024 at once on 2 CPUs) starved the echo servers, and SVC-HAIRPIN's connections, made, got
# their echo after the 2 s timeout (87 of 200 items failed "connected, no echo"). With 256 at once
# all 200 passed, in the same 69 s: the CPUs bound the rate, more at once only made each late.
IN_FLIGHT_PER_CPU = 128


def cpus() -> int:
    return len(os.sched_getaffinity(0))


class LabBackend(Backend):
    name = "lab"

    def __init__(self, profile: Profile, nodes: int = 3, pods_per_node: int = 2,
                 ready_timeout: float = 60.0, faults: tuple[Fault, ...] = (),
                 cni_path: tuple[str, ...] = PLUGIN_DIRS, cni_timeout: float = 20.0,
                 logs_kept_in: Path | None = None, release: str = DEFAULT_RELEASE,
                 proxy_mode: str = "iptables", families: tuple[str, ...] = ("ipv4",)) -> None:
        self.profile = profile
        self.spec = LabSpec(profile.conflist, nodes, pods_per_node, ready_timeout, faults,
                            overlay=profile.overlay, cni_path=cni_path, cni_timeout=cni_timeout,
                            logs_kept_in=logs_kept_in, release=release, proxy_mode=proxy_mode,
                            install=profile.lab_install, families=families)
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

    def change_service(self, name: str, patch: dict | None) -> dict:
        return self.cluster.change_service(name, patch)

    def reach_through_api(self, endpoint: Endpoint, timeout: float) -> dict:
        return self.cluster.reach_through_api(endpoint, timeout)

    def start_pod(self, name: str, node: str, role: str) -> str:
        return self.cluster.start_pod(name, node, role)

    def delete_pod(self, name: str) -> None:
        self.cluster.delete_pod(name)

    def close(self, hurry: Callable[[], bool] = lambda: False) -> list[str]:
        cluster, self.cluster = self.cluster, None
        return cluster.teardown(hurry) if cluster else []

    def keep_logs(self, destination: Path) -> list[str]:
        """The probes' and kube-proxies' logs, and the control plane's, live in the run's state
        directory, which teardown removes."""
        if self.cluster is None:
            return []
        problems = []
        # the logs of an earlier run into the same report directory are not this report's (a CNI's
        # pods have new names each run, so they would pile up beside the new ones)
        shutil.rmtree(destination, ignore_errors=True)
        for source, target in ((self.cluster.state_dir / "logs", destination),
                               (self.cluster.control_plane.layout.logs, destination / "control-plane")):
            if source.is_dir():
                try:
                    shutil.copytree(source, target, dirs_exist_ok=True)
                except OSError as exc:
                    problems.append(f"logs not kept in {target}: {exc}")
        return problems

    def probe_concurrency(self, parallel_probes: int) -> int | None:
        """The lab's probes share this machine: IN_FLIGHT_PER_CPU connections per CPU in all,
        at least 4 and at most the probes' default each."""
        return max(4, min(ProbeSettings.concurrency, IN_FLIGHT_PER_CPU * cpus() // max(1, parallel_probes)))

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
        """As a live cluster's: which Kubernetes, which proxy, which nodes (those built: a run
        that selected nothing builds none)."""
        meta = {"backend": self.name, "cni": self.profile.name,
                "kubernetes_version": pinned_release(self.spec.release).kubernetes,
                "proxy_mode": self.spec.proxy_mode}
        if self.cluster:
            info = host_node_info()
            meta["node_info"] = {node.name: {"os": info["osImage"], "kernel": info["kernelVersion"],
                                             "runtime": "netconform lab (namespaces and processes)"}
                                 for node in self.plan().nodes}
            meta.update(self.cluster.metadata())
        return meta


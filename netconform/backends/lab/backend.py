"""The lab as a Backend: the suites see nodes, pods and probe channels, as on a real cluster."""
from __future__ import annotations

from ...probing.channel import ProbeChannel
from ...profiles import Profile
from ...topology import Endpoint, Topology
from ..base import Backend, Progress
from .cluster import LabCluster, LabSpec, plan
from .faults import Fault


class LabBackend(Backend):
    name = "lab"

    def __init__(self, profile: Profile, nodes: int = 3, pods_per_node: int = 2,
                 ready_timeout: float = 60.0, faults: tuple[Fault, ...] = ()) -> None:
        self.profile = profile
        self.spec = LabSpec(profile.conflist, nodes, pods_per_node, ready_timeout, faults,
                            overlay=profile.overlay)
        self.cluster: LabCluster | None = None

    def plan(self) -> Topology:
        return plan(self.spec)

    def start(self, progress: Progress) -> Topology:
        self.cluster = LabCluster(self.spec)
        return self.cluster.build(progress)

    def channel(self, endpoint: Endpoint) -> ProbeChannel:
        return self.cluster.channel(endpoint)

    def close(self) -> list[str]:
        cluster, self.cluster = self.cluster, None
        return cluster.teardown() if cluster else []

    def metadata(self) -> dict:
        meta = {"backend": self.name, "cni": self.profile.name}
        if self.cluster:
            meta.update(self.cluster.metadata())
        return meta

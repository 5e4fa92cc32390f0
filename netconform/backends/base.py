"""The interface every backend provides: a planned topology, a started one, a channel per probe."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

from ..probing.channel import ProbeChannel
from ..probing.runner import HostWatch
from ..topology import Endpoint, Topology

Progress = Callable[[str], None]


class BackendError(Exception):
    """A cluster that cannot be used, with the one-line reason a user needs to fix it."""


class Backend(ABC):
    name: str

    @abstractmethod
    def plan(self) -> Topology:
        """Node and probe names, known before anything is deployed (pytest collects from this)."""

    @abstractmethod
    def start(self, progress: Progress) -> Topology:
        """Deploy the probes, wait until each answers, and return the topology with addresses."""

    @abstractmethod
    def channel(self, endpoint: Endpoint) -> ProbeChannel:
        """The control API of one probe."""

    @abstractmethod
    def close(self, hurry: Callable[[], bool] = lambda: False) -> list[str]:
        """Remove everything the run created, returning what could not be removed. Safe to call
        twice, and after a failed start. When ``hurry()`` turns true (the user pressed Ctrl-C during
        teardown), skip what is polite but slow (CNI DEL) and remove what remains directly."""

    def probe_concurrency(self, parallel_probes: int) -> int | None:
        """The connections each probe may run at once when ``parallel_probes`` are asked together,
        where the backend's probes share one machine's CPUs; None: the probes' own default (on a
        cluster each probe has its node's)."""
        return None

    def change_service(self, name: str, patch: dict | None) -> dict:
        """Apply a JSON merge ``patch`` to one of the run's Services (None: only read it) and
        return its spec as the API server now has it (checks that change Services at run time)."""
        raise BackendError(f"the {self.name} backend cannot change the run's Services")

    def reach_through_api(self, endpoint: Endpoint, timeout: float) -> dict:
        """A probe's health read through the API server's pod proxy (APISERVER-POD: the API
        server, not a probe, connects to the pod); see backends/kube/channel.py for the answer."""
        return {"ok": False, "error": "harness", "harness": True,
                "detail": f"the {self.name} backend has no API server to reach probes through"}

    def start_pod(self, name: str, node: str, role: str) -> str:
        """Create a probe pod named ``name`` on ``node`` whose role label is ``role`` (a check's
        Service selects it) and wait until it is Ready; its pod IP (backends/kube/pods.py)."""
        raise BackendError(f"the {self.name} backend cannot create pods while the run goes on")

    def delete_pod(self, name: str) -> None:
        """Delete a pod start_pod made, as ``kubectl delete pod`` would (it goes away with its
        grace period)."""
        raise BackendError(f"the {self.name} backend cannot delete pods while the run goes on")

    def blocking_policies(self) -> str | None:
        """The policies that may block the run's traffic, in words, or None: a failed item is then
        not judged (network-model.md: traffic a policy blocks is not a network failure)."""
        return None

    def lost_nodes(self, final: bool = False) -> dict[str, str]:
        """The tested nodes that went not Ready (or were deleted) since the run chose them, with
        why: a failure involving one is not judged. ``final``: look now (at the run's end), not
        only as often as is cheap. A lab's nodes are its own: none."""
        return {}

    def last_seen_ready(self, node: str) -> float:
        """When the backend last saw ``node`` Ready (time.monotonic()); a failure judged more than
        a node lifecycle grace period before it stays a failure. A lab's nodes: always."""
        return float("inf")

    def node_coverage(self, topology: Topology) -> dict:
        """The verdict's node coverage: nodes tested out of the cluster's, and each node left out
        with the reason (network-model.md). A lab tests every node it made."""
        return {"tested": len(topology.nodes), "in_cluster": len(topology.nodes), "excluded": []}

    def metadata(self) -> dict:
        return {"backend": self.name}

    def host_watch(self) -> HostWatch | None:
        """Counters of host-wide limits to read around each batch (the lab's; None elsewhere)."""
        return None

    def keep_logs(self, destination: Path) -> list[str]:
        """Copy the probes' logs to ``destination`` before close() removes them; return problems."""
        return []

"""Pods on the network, as a container runtime wires them: a namespace per pod, CNI ADD of the
loopback plugin and of the node's conflist (its hostPorts as portmap's capability), and the CNI
DEL each pod is owed at teardown.

Which pods a node gets and what their addresses mean is LabCluster's (and the lab kubelet's,
runtime_pods.py); this part only keeps each node's CNI runtime and each pod's sandbox, so wiring
at start-up and for a pod made later are one code path.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from ..base import BackendError
from . import conflists, netns
from .cni import CniError, CniRuntime, PodSandbox, delete_all, kill_running_plugins, pod_ips
from .cni_nodes import CniNodes
from .naming import RunNames

LOOPBACK = {"cniVersion": "1.0.0", "name": "loopback", "plugins": [{"type": "loopback"}]}
WIRING_WORKERS = 8  # nodes whose pods are wired at once (CNI ADDs on one node run in order, as kubelet's)


class PodWiring:
    def __init__(self, names: RunNames, families: tuple[str, ...], cni_path: tuple[str, ...],
                 cni_timeout: float, cni: CniNodes | None, stop: threading.Event) -> None:
        self.names = names
        self.families = families
        self.cni_path = cni_path
        self.cni_timeout = cni_timeout
        self.cni = cni  # a real CNI's node file systems, or None (the conflist alone)
        self.stop = stop  # set when the build is abandoned: no further pod is wired
        self.runtimes: dict[str, CniRuntime] = {}  # node -> its conflist's runtime
        self._sandboxes: list[tuple[str, PodSandbox]] = []  # every pod that got a namespace, in order
        self._capabilities: dict[str, dict | None] = {}  # container id -> its portmap arguments

    def runtime(self, conf: dict, node: str) -> CniRuntime:
        """A CNI runtime for the node, with the run's plugin path and per-call timeout."""
        return CniRuntime(conf, self.names.node(node), self.names.state_dir / "cni-cache",
                          self.cni_path, self.cni_timeout,
                          self.cni.node_fs(node) if self.cni is not None and conf is not LOOPBACK else None)

    def use(self, node: str, conf: dict) -> None:
        """The node's pods are wired by ``conf`` (a conflist read; CniError if a plugin is missing)."""
        self.runtimes[node] = self.runtime(conf, node)

    def load(self, conflist: Path, values: dict[str, dict[str, str]], reserved: dict[str, str]) -> None:
        """The user's conflist, its ${VARIABLES} filled per node from ``values``; refused in one
        line if it is unusable or its pod ranges overlap one another or a range in ``reserved``."""
        subnets = {}
        for node, filled in values.items():
            try:
                conf = conflists.load(conflist, filled, self.names.state_dir / "ipam" / node)
                self.use(node, conf)
            except (conflists.ConflistError, CniError) as exc:
                raise BackendError(str(exc)) from None
            subnets[node] = conflists.pod_subnets(conf)
        try:
            conflists.check_subnets(subnets, reserved)
        except conflists.ConflistError as exc:
            raise BackendError(f"CNI config {conflist}: {exc}") from None

    def plugins(self) -> list[str]:
        """The plugin types of the chain (the first node's: every node runs the same)."""
        first = next(iter(self.runtimes.values()), None)
        return [p["type"] for p in first.conflist["plugins"]] if first else []

    def wire(self, node: str, pod: str, namespace: str, port_mappings: list[dict] | None = None
             ) -> tuple[PodSandbox, list[str]]:
        """A namespace for the pod, wired by the node's CNI; the sandbox and its IPs, one per family."""
        sandbox = PodSandbox(f"{self.names.prefix}-{node}-{pod}", self.names.pod(node, pod), pod,
                             namespace=namespace)
        netns.create(sandbox.netns, record=self.names.registry)
        self._sandboxes.append((node, sandbox))
        try:
            loopback = self.runtime(LOOPBACK, node)
        except CniError as exc:  # the loopback plugin missing from the CNI path: one line, exit 4
            raise BackendError(f"lab: {node}: {exc}") from None
        loopback.add(PodSandbox(sandbox.container_id + "-lo", sandbox.netns, pod, namespace=namespace,
                                ifname="lo"))
        ports = {"portMappings": port_mappings} if port_mappings else None
        self._capabilities[sandbox.container_id] = ports
        return sandbox, pod_ips(self.runtimes[node].add(sandbox, ports), self.families)

    def wire_all(self, pods: dict[str, list[tuple[str, list[dict]]]], namespace: str
                 ) -> dict[tuple[str, str], list[str]]:
        """Every node's pods (node -> [(pod, its hostPorts)]), nodes in parallel; {(node, pod): IPs}.

        An interrupt (or one node's failure) must not leave workers wiring pods behind the
        teardown that follows: they stop before their next pod, and we wait for them."""
        def wire_node(node: str) -> dict[tuple[str, str], list[str]]:
            found = {}
            for pod, mappings in pods[node]:
                if self.stop.is_set():
                    break
                try:
                    found[(node, pod)] = self.wire(node, pod, namespace, mappings)[1]
                except CniError as exc:
                    raise BackendError(f"CNI ADD failed for {node}/{pod}: {exc}") from None
            return found

        wired: dict[tuple[str, str], list[str]] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, min(WIRING_WORKERS, len(pods))))
        try:
            for found in pool.map(wire_node, list(pods)):
                wired.update(found)
        except BaseException:
            self.stop.set()
            kill_running_plugins()  # a hung ADD would hold the interrupt for a whole CNI timeout
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return wired

    def unwire(self, node: str, sandbox: PodSandbox) -> str | None:
        """CNI DEL and the namespace removed; what went wrong, or None."""
        problem = None
        try:
            self.runtimes[node].delete(sandbox, self._capabilities.pop(sandbox.container_id, None))
        except CniError as exc:
            problem = f"CNI DEL: {exc}"
        try:
            netns.remove(sandbox.netns)
            netns.strike(self.names.registry, {sandbox.netns})
        except OSError as exc:
            problem = f"{problem + '; ' if problem else ''}namespace {sandbox.netns}: {exc}"
        if (node, sandbox) in self._sandboxes:
            self._sandboxes.remove((node, sandbox))
        return problem

    def delete_all(self, stop: Callable[[], bool]) -> list[str]:
        """The CNI DELs teardown owes, in parallel: every pod that got a namespace, while it and
        its node exist; what went wrong."""
        return delete_all(self._deletions(), stop=stop)

    def _deletions(self) -> Iterable[tuple[str, CniRuntime, PodSandbox, dict | None]]:
        jobs = []
        for node, sandbox in reversed(self._sandboxes):
            runtime = self.runtimes.get(node)
            if runtime and netns.exists(sandbox.netns) and netns.exists(runtime.node_netns):
                jobs.append((f"{node}/{sandbox.pod_name}", runtime, sandbox,
                             self._capabilities.get(sandbox.container_id)))
        return jobs

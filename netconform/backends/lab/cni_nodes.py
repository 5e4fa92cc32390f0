"""A real CNI on one running lab (cni_install.py says how it is installed): its manifest applied to
the lab's API server, each node's own copies of host paths (nodefs.py), the processes of its pods'
containers, and the wait until every node is set up and has its conflist.

The lab's kubelet (daemon_pods.py) starts those processes here; the cluster stops them with the
run, and reads each node's conflist from here to wire the pods.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from kubernetes import utils

from ..base import BackendError, Progress
from ..kube.api import KubeApi
from . import conflists, netns
from .cni_install import LabInstall
from .naming import CLUSTER_CIDR, RunNames
from .nodefs import NodeFs

LOG_TAIL = 600  # characters of a daemon's log quoted in an error
POLL = 0.2  # s between two looks at the nodes' ready files


class CniNodes:
    def __init__(self, install: LabInstall, names: RunNames, release: str) -> None:
        self.install = install
        self.names = names
        self.release = release
        self.processes: list[subprocess.Popen] = []  # every container started (start_process)
        self.ready_in: float | None = None  # s from the manifest applied to every node set up
        self._fs: dict[str, NodeFs] = {}
        self._logs: dict[int, Path] = {}  # pid -> its log
        self._routes: dict[str, list[str]] = {}  # node -> the pod CIDRs it must have a route to

    @property
    def logs(self) -> Path:
        return self.names.state_dir / "logs"

    def node_fs(self, node: str) -> NodeFs:
        """The node's own copies of host paths (nodefs.py), with /var/lib/cni among them: the
        plugins' own state (host-local's leases, flannel's saved delegate configs)."""
        if node not in self._fs:
            self._fs[node] = NodeFs(self.names.state_dir / "nodes" / node)
            self._fs[node].host("/var/lib/cni")
        return self._fs[node]

    def start_process(self, node: str, log_name: str, argv: list[str], mounts: dict[str, Path],
                      env: dict[str, str]) -> subprocess.Popen:
        """A container of the CNI's pod on ``node``: in the node's namespace, chrooted into a root
        with the node's paths and ``mounts``; stopped with the run (or with its pod)."""
        path = self.logs / f"{log_name}.log"
        with open(path, "ab") as log:
            process = subprocess.Popen(self.node_fs(node).command(self.names.node(node), argv, mounts),
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        self.processes.append(process)
        self._logs[process.pid] = path
        return process

    def log_tail(self, process: subprocess.Popen) -> str:
        """The end of a container's log (its last whole lines), for an error message."""
        try:
            text = self._logs[process.pid].read_text(errors="replace").strip()
        except (KeyError, OSError):
            return "(no log)"
        tail = text[-LOG_TAIL:]
        if len(text) > LOG_TAIL and "\n" in tail:
            tail = tail.split("\n", 1)[1]
        return " | ".join(tail.splitlines()) or "(no output)"

    def log_names(self) -> list[str]:
        """The file names of its containers' logs (kept with the run's report, under logs/)."""
        return sorted({path.name for path in self._logs.values()})

    def apply(self, api: KubeApi) -> list[dict]:
        """The install's objects (its manifest, edited for the lab) created in the API server."""
        objects = self.install.objects(CLUSTER_CIDR, self.release)
        for obj in objects:
            try:
                utils.create_from_dict(api.client, obj)
            except utils.FailToCreateError as exc:
                raise BackendError(f"lab: {self.install.name}: cannot create {obj['kind']} "
                                   f"{obj['metadata']['name']}: {exc.api_exceptions[0].reason}") from None
        return objects

    def wait_ready(self, api: KubeApi, routes: dict[str, list[str]], pod_problems: list[str],
                   timeout: float, progress: Progress) -> None:
        """Apply the manifest, then wait until every node has the install's ready files and a route
        to each pod CIDR ``routes`` names for it (the other nodes': the daemon has set the node
        up and learnt its peers, by VXLAN leases or BGP), within ``timeout``. ``pod_problems`` is
        the lab kubelet's list of what it could not run: a problem with one of the CNI's pods ends
        the wait at once, with it."""
        self._routes = routes
        nodes = list(routes)
        started = time.monotonic()
        objects = self.apply(api)
        name = self.install.name
        progress(f"lab: {name}: manifest applied ({len(objects)} objects); waiting for its daemon on "
                 f"{len(nodes)} node(s) (at most {timeout:.0f}s)")
        of_its_pods = tuple(f"pod {namespace}/" for namespace in
                            sorted({o["metadata"].get("namespace") for o in objects} - {None}))
        waiting = set(nodes)
        while waiting:
            waiting = {node for node in waiting if self.missing(node)}
            problems = [p for p in pod_problems if p.startswith(of_its_pods)]
            if waiting and problems:  # the pod names its node; the first node waiting may be another
                raise BackendError(f"lab: {name} did not get ready: {problems[0]} after "
                                   f"{time.monotonic() - started:.0f}s; its logs are kept with the run's")
            if waiting and time.monotonic() - started > timeout:
                node = sorted(waiting)[0]
                raise BackendError(f"lab: {name} did not get ready on {node}: no "
                                   f"{', '.join(self.missing(node))} after {time.monotonic() - started:.0f}s; "
                                   "its logs are kept with the run's")
            if waiting:
                time.sleep(POLL)
        self.ready_in = time.monotonic() - started
        progress(f"lab: {name} ready on {len(nodes)} node(s) in {self.ready_in:.1f}s")

    def wait_withdrawn(self, cidrs: list[str], timeout: float, progress: Progress) -> None:
        """Until no other node has a route to ``cidrs`` (its peers withdrew them), within ``timeout``."""
        started = time.monotonic()
        others = [node for node, wanted in self._routes.items() if set(cidrs) <= set(wanted)]
        while True:
            kept = [node for node in others
                    if not {f"route to {cidr}" for cidr in cidrs} <= set(self.missing(node))]
            if not kept:
                progress(f"lab: {', '.join(others)} lost their route(s) to {', '.join(cidrs)} in "
                         f"{time.monotonic() - started:.1f}s")
                return
            if time.monotonic() - started > timeout:
                raise BackendError(f"lab: {kept[0]} still routes to {', '.join(cidrs)} after {timeout:.0f}s")
            time.sleep(POLL)

    def wait_routed(self, timeout: float, progress: Progress) -> None:
        """Until every node has its routes to the other nodes' pods again, within ``timeout``."""
        started = time.monotonic()
        while missing := {node: gone for node in self._routes if (gone := self.missing(node))}:
            if time.monotonic() - started > timeout:
                node = sorted(missing)[0]
                raise BackendError(f"lab: {self.install.name} did not restore {node}'s "
                                   f"{', '.join(missing[node])} within {timeout:.0f}s")
            time.sleep(POLL)
        progress(f"lab: {self.install.name} routes every node again after {time.monotonic() - started:.1f}s")

    def missing(self, node: str) -> list[str]:
        """What the node does not have yet: ready files, routes to the other nodes' pods."""
        fs = self.node_fs(node)
        found = [path for path in self.install.ready_files
                 if not (fs.directory / "fs" / path.lstrip("/")).is_file()]
        wanted = self._routes.get(node, [])
        if wanted:
            table = netns.run(self.names.node(node), ["ip", "-o", "route", "show"]).stdout.split("\n")
            have = {line.split()[0] for line in table if line.strip()}
            found += [f"route to {cidr}" for cidr in wanted if cidr not in have]
        return found

    def conflist(self, node: str) -> dict:
        """The node's network configuration, as its install wrote it into /etc/cni/net.d."""
        try:
            return conflists.load_dir(self.node_fs(node).directory / "fs" / "etc" / "cni" / "net.d")
        except conflists.ConflistError as exc:
            raise BackendError(f"lab: {self.install.name} on {node}: {exc}") from None

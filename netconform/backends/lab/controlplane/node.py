"""The control-plane node: a namespace of its own on the lab's underlay, running etcd,
kube-apiserver, kube-controller-manager and kube-scheduler, as a kind control-plane node does.

The harness in the root namespace reaches the API server through two relays (relay.py) and never
by a route or address of its own. The namespace is recorded as the run's (netns.create), its
processes go with it when clean-up removes it, and the one relay in the root namespace is recorded
as the run's process (cleanup.record_process), so a run killed at any point leaves nothing that
the next run's sweep or ``--cleanup-only`` does not remove.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ....upstream import DEFAULT_RELEASE, NotBuilt, binary
from ....upstream.releases import get as pinned_release
from ...base import BackendError, Progress
from .. import cleanup, netns
from ..naming import (CONTROL_PLANE_IP, CONTROL_PLANE_IP6, UNDERLAY, UNDERLAY6, UNDERLAY_GATEWAY,
                      UNDERLAY_GATEWAY6, RunNames, in_families)
from ..underlay import Port, Underlay
from . import components, kubeconfig, processes, readiness
from .pki import Authority, Credential, service_account_keys
from .processes import Process, StartError

RELAY = Path(__file__).with_name("relay.py")
ADMIN = ("kubernetes-admin", ("system:masters",))
APISERVER_KUBELET_CLIENT = ("kube-apiserver-kubelet-client", ("system:masters",))
RELAY_START_TIMEOUT = 10.0
STOP_ORDER = (  # names and seconds after SIGTERM before SIGKILL; the run's data is thrown away anyway
    ({"relay-root", "relay-control-plane", "kube-controller-manager", "kube-scheduler"}, 2.0),
    ({"kube-apiserver"}, 5.0),
    ({"etcd"}, 2.0),
)


@dataclass(frozen=True)
class ControlPlaneSpec:
    release: str = DEFAULT_RELEASE
    ready_timeout: float = 60.0
    python: str = sys.executable  # runs the relays
    families: tuple[str, ...] = ("ipv4",)  # the cluster's (components.Layout)

    @property
    def has_ipv6(self) -> bool:  # the control plane's underlay port has an IPv6 address too
        return "ipv6" in self.families


class ControlPlane:
    def __init__(self, names: RunNames, underlay: Underlay, spec: ControlPlaneSpec | None = None) -> None:
        self.names = names
        self.underlay = underlay
        self.spec = spec or ControlPlaneSpec()
        primary = in_families(self.spec.families, CONTROL_PLANE_IP, CONTROL_PLANE_IP6)[0]
        self.layout = components.Layout(names.state_dir / "control-plane", primary, self.spec.families,
                                        (CONTROL_PLANE_IP, *([CONTROL_PLANE_IP6] if self.spec.has_ipv6 else [])))
        self.server: str | None = None  # https://127.0.0.1:PORT, the relay, once started
        self.started_in: float | None = None  # seconds from start() to ready
        self._processes: list[Process] = []  # in the control-plane namespace
        self._relay: Process | None = None  # in the root namespace
        self._authority: Authority | None = None
        self._admin: Credential | None = None
        self._abandoned = threading.Event()  # set by abandon(): start() stops at its next step

    def abandon(self) -> None:
        """Make a start() under way in another thread give up at its next step (a process about
        to start, a readiness poll), so that teardown does not race it."""
        self._abandoned.set()

    def _check_abandoned(self) -> None:
        if self._abandoned.is_set():
            raise BackendError("control plane: start abandoned (the run is being torn down)")

    @property
    def netns(self) -> str:
        return self.names.control_plane

    @property
    def admin_kubeconfig(self) -> Path:
        return self.layout.kubeconfig("admin")

    @property
    def version(self) -> str:
        """The Kubernetes version the release pins, as /version reports it (v1.37.2)."""
        return pinned_release(self.spec.release).kubernetes

    # --- start ---

    def start(self, progress: Progress) -> None:
        """Bring the node up and wait, within spec.ready_timeout, until every component is ready.
        Whatever fails, stop() and the run's clean-up remove what was made."""
        started = time.monotonic()
        binaries = self._binaries()
        self._make_files()
        progress(f"control plane: certificates and kubeconfigs in {self.layout.root} "
                 f"({time.monotonic() - started:.1f}s)")
        self._join_underlay()
        deadline = started + self.spec.ready_timeout
        self._start_components(binaries, ["etcd", "kube-apiserver"])
        self._start_relays()
        admin = self._admin_client()
        self._wait(admin, ["kube-apiserver"], deadline, progress, started)
        self._start_components(binaries, ["kube-controller-manager", "kube-scheduler"])
        self._wait(admin, ["kube-controller-manager", "kube-scheduler"], deadline, progress, started)
        self.started_in = time.monotonic() - started
        progress(f"control plane: {self.version} up in {self.started_in:.1f}s in {self.netns} "
                 f"({CONTROL_PLANE_IP}); API server at {self.server} (kubeconfig {self.admin_kubeconfig})")

    def _start_components(self, binaries: dict[str, Path], names: Sequence[str]) -> None:
        for component in components.all_components(self.layout):
            if component.name in names:
                self._check_abandoned()
                self._processes.append(processes.start(
                    component.name, [str(binaries[component.name]), *component.flags],
                    self.layout.logs, netns=self.netns,
                    env={**processes.ENV, "HOME": str(self.layout.root)}))

    def _wait(self, admin: readiness.Client, names: Sequence[str], deadline: float, progress: Progress,
              started: float) -> None:
        readiness.wait(admin, names, self._processes, deadline, self.spec.ready_timeout, progress,
                       started, abandoned=self._abandoned.is_set)

    def _binaries(self) -> dict[str, Path]:
        try:
            return {c.name: binary(c.name, self.spec.release) for c in components.all_components(self.layout)}
        except NotBuilt as exc:
            raise BackendError(f"control plane: {exc}") from None
        except KeyError as exc:  # a release that is not pinned
            raise BackendError(f"control plane: {exc.args[0]}") from None

    def _make_files(self) -> None:
        """The PKI, the service-account keys and the components' kubeconfigs, all in the state dir."""
        for directory in (self.layout.root, self.layout.pki, self.layout.logs):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca = self._authority = Authority.create()
        ca.credential.write(self.layout.pki, "ca")
        ca.server("kube-apiserver", self.layout.apiserver_names()).write(self.layout.pki, "apiserver")
        ca.client(*APISERVER_KUBELET_CLIENT).write(self.layout.pki, "apiserver-kubelet-client")
        self._admin = ca.client(*ADMIN)
        self._admin.write(self.layout.pki, "admin")
        service_account_keys(self.layout.pki)
        for name, (user, groups) in components.CLIENTS.items():
            kubeconfig.write(self.layout.kubeconfig(name), components.LOCAL_APISERVER,
                             ca.credential.cert, user, ca.client(user, groups))

    def _join_underlay(self) -> None:
        self.underlay.attach([Port(self.names.control_plane_port, self.netns)])
        prefix = UNDERLAY.split("/")[1]
        commands = ["link set lo up", f"addr add {CONTROL_PLANE_IP}/{prefix} dev eth0",
                    "link set eth0 up", f"route add default via {UNDERLAY_GATEWAY}"]
        if self.spec.has_ipv6:
            commands += [f"addr add {CONTROL_PLANE_IP6}/{UNDERLAY6.split('/')[1]} dev eth0 nodad",
                         f"route add default via {UNDERLAY_GATEWAY6}"]
        netns.ip_batch(self.netns, commands)

    def _start_relays(self) -> None:
        """The relay in the namespace, then the one in the root namespace, recorded as the run's
        as soon as it has a pid; the API server's address is the port the root one took."""
        socket = self.layout.socket
        self._check_abandoned()
        inner = processes.start("relay-control-plane", [
            self.spec.python, str(RELAY), "--listen", f"unix:{socket}",
            "--connect", f"tcp:127.0.0.1:{components.APISERVER_PORT}"], self.layout.logs,
            netns=self.netns, announce=True)
        self._processes.append(inner)
        outer = processes.start("relay-root", [
            self.spec.python, str(RELAY), "--listen", "tcp:127.0.0.1:0", "--connect", f"unix:{socket}",
            "--while", str(self.layout.root)], self.layout.logs, announce=True)
        self._relay = outer
        cleanup.record_process(self.names.state_dir, outer.pid)
        self._check_abandoned()
        try:
            processes.announced(inner, RELAY_START_TIMEOUT)
            address = processes.announced(outer, RELAY_START_TIMEOUT).removeprefix("listening on tcp:")
        except StartError as exc:
            raise BackendError(f"control plane: {exc}") from None
        self.server = f"https://{address}"

    def _admin_client(self) -> readiness.Client:
        """Write the admin kubeconfig (the relay's address is known now); a client as admin."""
        kubeconfig.write(self.admin_kubeconfig, self.server, self._authority.credential.cert, ADMIN[0],
                         self._admin)
        return readiness.admin_client(self.server, self.layout.cert("ca"), self.layout.cert("admin"),
                                      self.layout.key("admin"))

    # --- use ---

    def kubeconfig_for(self, path: Path, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig for a user of one's own, so a test binds exactly the RBAC it wants: the API
        server sees ``user`` in ``groups`` (and system:authenticated), with no rights until bound."""
        if self.server is None or self._authority is None:
            raise BackendError("control plane: not started")
        return kubeconfig.write(path, self.server, self._authority.credential.cert, user,
                                self._authority.client(user, groups))

    @property
    def server_in_lab(self) -> str:
        """How processes inside the lab (a node's kube-proxy) reach the API server: its underlay
        address, which the certificate names."""
        return f"https://{CONTROL_PLANE_IP}:{components.APISERVER_PORT}"

    def kubeconfig_in_lab(self, path: Path, user: str, groups: Sequence[str] = ()) -> Path:
        """As kubeconfig_for, for a process inside the lab: the server is server_in_lab."""
        if self._authority is None:
            raise BackendError("control plane: not started")
        return kubeconfig.write(path, self.server_in_lab, self._authority.credential.cert, user,
                                self._authority.client(user, groups))

    @property
    def relay_pid(self) -> int | None:
        """The run's one process in the root namespace, recorded as the run's (cleanup.py)."""
        return self._relay.pid if self._relay else None

    def exited(self) -> str | None:
        """One line naming a component whose process has ended, with the end of its log; None
        while all run. A component that dies mid-run (e.g. the controller manager losing its
        leader Lease) leaves the cluster without its controllers: a wait on them names it."""
        for process in self._processes:
            if not process.running():
                return (f"control plane: {process.name} exited with code {process.popen.returncode}: "
                        f"{process.tail()[-400:]}")
        return None

    def memory(self) -> dict[str, int]:
        """Resident memory of each running process, in bytes."""
        processes_now = [*self._processes, *([self._relay] if self._relay else [])]
        return {p.name: rss for p in processes_now if (rss := p.rss()) is not None}

    # --- stop ---

    def stop(self) -> list[str]:
        """Stop the processes, clients before the API server before etcd: each one ends in about a
        second when what it talks to is still there, while an API server whose etcd is gone retries
        for much longer. SIGTERM, then SIGKILL after the stage's grace. Returns what did not end.
        The namespace itself is removed with the run's others (cleanup.remove_run), which also stops
        anything left in it."""
        everything = [*([self._relay] if self._relay else []), *self._processes]
        problems = []
        for names, grace in STOP_ORDER:
            problems += processes.stop([p for p in everything if p.name in names], grace)
        problems += processes.stop(everything, 0.0)  # anything of no stage (none today)
        for process in everything:
            if process.popen.stdout:
                process.popen.stdout.close()
        self._processes, self._relay = [], None
        return [f"control plane: {problem}" for problem in problems]

"""The lab kubelet's runtime for pods made while the run goes on (a check's backends that come and go).

It watches the run's namespace (or, when the suite deploys its probes through the API as on a live
cluster, every namespace), as kubelet watches the pods bound to its node, and for each new pod
bound to a lab node does what kubelet and a container runtime do: a network namespace wired by the
node's CNI (loopback, then the conflist, with CNI_ARGS naming the pod, and its hostPorts as the
portMappings capability), or the node's own namespace for a hostNetwork pod; the containers started
as the image contract below says, with the resolv.conf its dnsPolicy asks for; the readiness probe
(the probe's health, asked on its control socket); the status reported (podIP, Ready). For a pod being deleted it does the reverse (processes
stopped, CNI DEL, namespace removed) and then the final delete with grace period 0, which tells the
API server the pod is gone, as kubelet's status manager does.

The pods the lab makes at start-up are wired by cluster.py before the API server is up; the watch
leaves them alone (``known``).

Images are a contract. Two run:
- the probe image (objects.IMAGE, what --probe-image names): its entrypoint probes/netprobe.py run
  by the lab's Python (-I -S) with the container's args;
- the stock Python image of the agent's ConfigMap delivery (manifests.STOCK_PYTHON): its command
  ``python [-I] [-S] [-u] FILE`` runs the lab's Python with those flags and FILE, which must lie in
  one of the pod's volumes (the ConfigMap's: so the lab runs exactly the code the ConfigMap holds);
  a FILE outside them, or absent, is the container's crash, as on a node.
Args have $(VAR) expanded from the container's env (plain values, and the fieldRefs spec.nodeName,
metadata.name and status.podIP), and a path under a volume's mountPath names the lab's directory of
that volume instead (the process runs without a root filesystem of its own). The volumes the
contract has are Secrets (the run's probe token) and ConfigMaps (the agent): their keys are written
as files with the volume's defaultMode; any other kind, or one that cannot be read, leaves the pod
waiting with CreateContainerConfigError. A pod with any other image cannot start: its container
waits with reason ErrImagePull and a message naming the images the lab runs, as a failed pull
would look.

Every API call is bounded; the watch is re-made every WATCH_SECONDS (and after any error, after a
pause), so stopping never waits longer than that.
"""
from __future__ import annotations

import base64
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from ...probing.channel import ProbeUnavailable
from ..kube.api import KubeApi
from ..kube.manifests import AGENT_SOURCE, STOCK_PYTHON
from .objects import IMAGE

if TYPE_CHECKING:  # the cluster that owns the namespaces, the CNI runtimes and the processes
    from .cluster import LabCluster

WATCH_SECONDS = 2  # the server ends each watch after this long; the loop then lists and watches again
CALL_TIMEOUT = (2.0, 5.0)  # connect, read: one list or status call
READY_POLL = 0.1  # s between two health asks of a starting pod


@dataclass
class RunningPod:
    uid: str
    node: str
    started: threading.Event = field(default_factory=threading.Event)  # set once starting ended
    stopping: bool = False
    processes: list = field(default_factory=list)
    sandbox: object = None


class RuntimePods:
    def __init__(self, cluster: "LabCluster", api: KubeApi, namespace: str | None, nodes: set[str],
                 known: set[tuple[str, str]], ready_timeout: float) -> None:
        self.cluster = cluster
        self.api = api
        self.namespace = namespace  # None: every namespace
        self.nodes = nodes
        self.known = set(known)  # (namespace, name) of the pods the lab runs itself
        self.ready_timeout = ready_timeout
        self.errors: list[str] = []  # what went wrong, for the run's metadata (never raised)
        self._running: dict[tuple[str, str], RunningPod] = {}
        self._done: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.daemons = None  # a CNI install's pods (daemon_pods.DaemonPods), when the lab has one

    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._spawn(self._watch, "lab-kubelet-pods")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and wait for pods being started or removed (their processes and sandboxes
        are the cluster's, which teardown removes anyway)."""
        self._stop.set()
        deadline = time.monotonic() + timeout  # for all of them: one hung start costs it once
        for thread in list(self._threads):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _spawn(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # --- the watch ---

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                lister, scope = ((self.api.core.list_namespaced_pod, (self.namespace,)) if self.namespace
                                 else (self.api.core.list_pod_for_all_namespaces, ()))
                listing = self.api.call("list pods", lister, *scope, _request_timeout=CALL_TIMEOUT)
                for pod in listing.items:
                    self._handle(pod)
                stream = watch.Watch()
                for event in stream.stream(lister, *scope,
                                           resource_version=listing.metadata.resource_version,
                                           timeout_seconds=WATCH_SECONDS,
                                           _request_timeout=(CALL_TIMEOUT[0], WATCH_SECONDS + 5)):
                    if self._stop.is_set():
                        stream.stop()
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._handle(event["object"])
            except Exception as exc:  # noqa: BLE001 - a lost watch (410 Gone, a timeout): list again
                self._note(f"pod watch: {type(exc).__name__}: {exc}")
                self._stop.wait(1.0)

    def _handle(self, pod) -> None:
        key, node = (pod.metadata.namespace, pod.metadata.name), pod.spec.node_name
        if key in self.known or node not in self.nodes:
            return
        name = pod.metadata.name
        with self._lock:
            state = self._running.get(key)
            if pod.metadata.deletion_timestamp:
                if state is not None and not state.stopping:
                    state.stopping = True
                    self._spawn(self._remove, f"remove-{name}", key, state)
                elif state is None and key not in self._done:  # deleted before it started
                    self._done.add(key)
                    self._spawn(self._finish_delete, f"delete-{name}", key, pod.metadata.uid)
                return
            if state is None and key not in self._done:
                state = RunningPod(pod.metadata.uid, node)
                self._running[key] = state
                self._spawn(self._run, f"run-{name}", pod, state)

    # --- a pod's life ---

    def _run(self, pod, state: RunningPod) -> None:
        name, namespace, node = pod.metadata.name, pod.metadata.namespace, state.node
        try:
            if self.daemons is not None and self.daemons.runs(pod):
                self._run_daemon(pod, state)
                return
            images = sorted({c.image for c in pod.spec.containers} - {IMAGE, STOCK_PYTHON})
            if images:
                self._waiting(pod, "ErrImagePull", f"image {', '.join(images)} is not one the lab "
                              f"runs (it runs {IMAGE} and {STOCK_PYTHON})")
                return
            if pod.spec.host_network:
                where, ip = self.cluster.names.node(node), self.cluster.node_address(node)
            else:
                state.sandbox, ip = self.cluster.wire_pod(node, f"{name}-{state.uid[:5]}", namespace,
                                                          port_mappings(pod))
                where = state.sandbox.netns
            resolv = self.cluster.pod_resolv_conf(namespace, node) \
                if (pod.spec.dns_policy or "ClusterFirst") in ("ClusterFirst", "ClusterFirstWithHostNet") and \
                (not pod.spec.host_network or pod.spec.dns_policy == "ClusterFirstWithHostNet") else None
            try:
                volumes = self._volumes(pod, state)
            except UnsupportedVolume as exc:
                self._waiting(pod, "CreateContainerConfigError", str(exc))
                return
            for container in pod.spec.containers:
                mounts = {m.mount_path: volumes[m.name] for m in container.volume_mounts or []}
                primary = ip if isinstance(ip, str) else ip[0]  # $(POD_IP): status.podIP, the primary's
                args = [in_volumes(expand(arg, container, pod, primary), mounts) for arg in container.args or []]
                try:
                    how = entrypoint(container, mounts)
                except CannotRun as exc:
                    self._waiting(pod, "CrashLoopBackOff", f"container {container.name}: {exc}")
                    return
                state.processes.append(self.cluster.start_container(where, resolv, name, container.name,
                                                                    args, *how))
            if not self._wait_healthy(name, container_names(pod)):
                self._waiting(pod, "CrashLoopBackOff", f"its probe did not answer within "
                              f"{self.ready_timeout:.0f}s")
                return
            try:
                self.cluster.kubelet.pod_running(namespace, name, node, ip, container_names(pod))
            except Exception as exc:  # noqa: BLE001 - it runs; the kubelet posts its status again
                self._note(f"pod {namespace}/{name} on {node}: its status, posted again at the next look: {exc}")
        except Exception as exc:  # noqa: BLE001 - the pod's failure, reported on the pod
            self._note(f"pod {namespace}/{name} on {node}: {exc}")
            self._waiting(pod, "CreateContainerError", f"the lab could not start it: {exc}")
        finally:
            state.started.set()

    def _run_daemon(self, pod, state: RunningPod) -> None:
        from .daemon_pods import PodFailed
        try:
            ip = self.daemons.run(pod, state)
        except PodFailed as exc:
            self._note(f"pod {pod.metadata.namespace}/{pod.metadata.name} on {state.node}: {exc}")
            self._waiting(pod, exc.reason, exc.message)
            return
        self.cluster.kubelet.pod_running(pod.metadata.namespace, pod.metadata.name, state.node, ip,
                                         container_names(pod))

    def _volumes(self, pod, state: "RunningPod") -> dict[str, Path]:
        """Each volume of the pod as a directory of the lab's (volume name -> directory). The lab
        kubelet supports the kinds the probes' contract uses: a Secret and a ConfigMap, their keys
        as files with the volume's defaultMode. A volume of another kind, or one whose object
        cannot be read, is the pod's error, as kubelet's failed mount would be."""
        found: dict[str, Path] = {}
        for volume in pod.spec.volumes or []:
            files, mode = self.volume_contents(volume, pod.metadata.namespace)
            directory = self.cluster.volume_dir(pod.metadata.namespace, pod.metadata.name, state.uid, volume.name)
            for key, value in files.items():
                path = directory / key
                path.touch(mode=0o600)
                path.write_bytes(value)
                path.chmod(mode)
            found[volume.name] = directory
        return found

    def volume_contents(self, volume, namespace: str) -> tuple[dict[str, bytes], int]:
        """The files of a Secret or ConfigMap volume (key -> content), and their mode."""
        files = self._volume_files(volume, namespace)
        source = volume.secret or volume.config_map
        return files, source.default_mode if source.default_mode is not None else 0o644

    def _volume_files(self, volume, namespace: str) -> dict[str, bytes]:
        if volume.secret is not None:
            kind, name, read = "Secret", volume.secret.secret_name, self.api.core.read_namespaced_secret
        elif volume.config_map is not None:
            kind, name, read = "ConfigMap", volume.config_map.name, self.api.core.read_namespaced_config_map
        else:
            kinds = [k for k, v in volume.to_dict().items() if v is not None and k != "name"]
            raise UnsupportedVolume(f"volume {volume.name} ({', '.join(kinds) or 'no source'}): "
                                    "the lab's kubelet mounts only secret and configMap volumes")
        try:
            found = self.api.call(f"read {kind} {name}", read, name, namespace, _request_timeout=CALL_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - absent, forbidden: the mount fails
            raise UnsupportedVolume(f"volume {volume.name}: {kind} {name} cannot be read: "
                                    f"{getattr(exc, 'reason', None) or exc}") from None
        if kind == "Secret":
            return {key: base64.b64decode(value) for key, value in (found.data or {}).items()}
        return {**{key: value.encode() for key, value in (found.data or {}).items()},
                **{key: base64.b64decode(value) for key, value in (found.binary_data or {}).items()}}

    def _wait_healthy(self, name: str, containers: list[str]) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                for container in containers:
                    self.cluster.runtime_channel(name, container).call("healthz", timeout=2)
                return True
            except ProbeUnavailable:
                self._stop.wait(READY_POLL)
        return False

    def _remove(self, key: tuple[str, str], state: RunningPod) -> None:
        namespace, name = key
        state.started.wait(self.ready_timeout + 10)
        for process in state.processes:
            self.cluster.stop_process(process)
        if state.sandbox is not None:
            problem = self.cluster.unwire_pod(state.node, state.sandbox)
            if problem:
                self._note(f"pod {name}: {problem}")
        shutil.rmtree(self.cluster.volume_dir(namespace, name, state.uid), ignore_errors=True)
        self._finish_delete(key, state.uid)
        self.cluster.kubelet.pod_gone(namespace, name)
        with self._lock:
            self._running.pop(key, None)
            self._done.add(key)

    def _finish_delete(self, key: tuple[str, str], uid: str) -> None:
        """The final delete (grace period 0, for this pod's uid only), as kubelet's once its
        containers are gone."""
        namespace, name = key
        try:
            self.api.call(f"delete Pod {name}", self.api.core.delete_namespaced_pod, name, namespace,
                          # in the body: a DELETE with a body takes its options from it alone
                          body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                          _request_timeout=CALL_TIMEOUT)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or another pod of that name now
                self._note(f"pod {name}: final delete: {exc.status} {exc.reason}")
        except Exception as exc:  # noqa: BLE001 - the namespace goes with the run anyway
            self._note(f"pod {name}: final delete: {exc}")

    def _waiting(self, pod, reason: str, message: str) -> None:
        """Report the pod's containers waiting, as kubelet does for a pod that cannot start."""
        status = {"phase": "Pending", "containerStatuses": [
            {"name": c, "ready": False, "restartCount": 0, "image": image, "imageID": "",
             "state": {"waiting": {"reason": reason, "message": message}}}
            for c, image in ((c.name, c.image) for c in pod.spec.containers)]}
        try:
            self.api.call(f"patch the status of pod {pod.metadata.name}",
                          self.api.core.patch_namespaced_pod_status, pod.metadata.name, pod.metadata.namespace,
                          {"status": status}, _request_timeout=CALL_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the creator's wait times out, naming the pod
            self._note(f"pod {pod.metadata.name}: status: {exc}")

    def _note(self, problem: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(problem)


def port_mappings(pod) -> list[dict]:
    """The pod's hostPorts as the portmap plugin's capability argument, as kubelet hands them over
    (a hostIP stays as given)."""
    found = []
    for container in pod.spec.containers:
        for port in container.ports or []:
            if port.host_port:
                mapping = {"hostPort": port.host_port, "containerPort": port.container_port,
                           "protocol": (port.protocol or "TCP").lower()}
                if port.host_ip:
                    mapping["hostIP"] = port.host_ip
                found.append(mapping)
    return found


def container_names(pod) -> list[str]:
    return [c.name for c in pod.spec.containers]


class UnsupportedVolume(Exception):
    pass


class CannotRun(Exception):
    """A container the lab cannot start as its image would: a crash on a node."""


PYTHON_FLAGS = ("-I", "-S", "-u")  # what the stock image's python may be told, the lab's Python too


def entrypoint(container, mounts: dict[str, Path]) -> tuple[Path, tuple[str, ...]]:
    """(the agent file, the Python flags) a container runs: the probe image's entrypoint, or, on
    the stock Python image, the file its ``python [flags] FILE`` command names, which must be in
    one of its volumes (the lab has no image filesystem to find it in)."""
    if container.image != STOCK_PYTHON:
        return AGENT_SOURCE, ("-I", "-S")
    command = list(container.command or [])
    if len(command) < 2 or command[0] not in ("python", "python3") or \
            not all(flag in PYTHON_FLAGS for flag in command[1:-1]):
        raise CannotRun(f"command {command}: on {STOCK_PYTHON} the lab runs `python "
                        f"[{' '.join(PYTHON_FLAGS)}] FILE` alone")
    script = Path(in_volumes(command[-1], mounts))
    if script == Path(command[-1]) or not script.is_file():
        raise CannotRun(f"python: can't open file {command[-1]!r} (not in any of the pod's volumes)")
    return script, tuple(command[1:-1])


def in_volumes(arg: str, mounts: dict[str, Path]) -> str:
    """An arg naming a path under a volume's mountPath (``/var/run/netprobe/token``, or
    ``--token-file=/var/run/netprobe/token``) names the lab's directory of that volume instead: the
    probe image's contract, since the lab runs its entrypoint without a root filesystem of its own."""
    head, sep, path = arg.partition("=") if arg.startswith("-") and "=" in arg else ("", "", arg)
    for mount_path, directory in mounts.items():
        prefix = mount_path.rstrip("/")
        if path == prefix or path.startswith(prefix + "/"):
            return head + sep + str(directory) + path[len(prefix):]
    return arg


_VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(arg: str, container, pod, pod_ip: str | None = None) -> str:
    """$(VAR) in an arg, as kubelet expands it from the container's env (the downward API's pod
    IP: ``pod_ip``, the node's for a hostNetwork pod); an unknown one stays."""
    values = {}
    for env in container.env or []:
        if env.value is not None:
            values[env.name] = env.value
        elif env.value_from and env.value_from.field_ref:
            path = env.value_from.field_ref.field_path
            found = {"spec.nodeName": pod.spec.node_name, "metadata.name": pod.metadata.name,
                     "metadata.namespace": pod.metadata.namespace, "status.podIP": pod_ip}.get(path)
            if found is not None:
                values[env.name] = found
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), arg)

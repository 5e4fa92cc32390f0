"""The lab kubelet's part for a CNI's DaemonSet pods: what kubelet and a container runtime do for
them on a node, with the pinned upstream builds standing for the images (cni_install.py).

For one pod bound to a lab node, in order, as kubelet does:

- its volumes: a hostPath is the node's own copy of that host path (nodefs.py), a ConfigMap or
  Secret its keys as files, and the projected service account volume the API server's admission
  adds (a token bound to the pod from the TokenRequest API, the cluster's CA from
  ``kube-root-ca.crt``, the namespace);
- its init containers, one after the other: each is one of the install's copy commands (``cp -f
  /flannel /opt/cni/bin/flannel``: a file of the image, or of a volume, onto a hostPath), which the
  lab's kubelet does itself, or a shell script (kube-router's ``sh -c``), run to its end with the
  host's shell and tools standing for the image's userland;
- its containers: the image's file the command (or the image's ENTRYPOINT) names is the upstream
  build, started in the node's network namespace (the pods are hostNetwork), chrooted into a root
  where each volume is mounted at its mountPath and the image's files at theirs (under
  ``/.netconform/image`` where that path is in the host's shared ``/usr`` and the like), with the
  container's environment and the
  in-cluster one (``KUBERNETES_SERVICE_HOST``: the ``kubernetes`` Service, which the node's
  kube-proxy serves);
- its readiness probe (httpGet, asked from the node as kubelet asks it), then Running and Ready.

A fault may kill a daemon's containers (SIGKILL) and start them again (kill, restart).

Anything else (a pod network, another volume kind, a command that is not an image's binary) is the
pod's failure, reported on the pod as kubelet would (CreateContainerConfigError, CrashLoopBackOff).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import netns
from .naming import KUBERNETES_SERVICE_IP
from .nodefs import image_path
from .runtime_pods import CannotRun, UnsupportedVolume, expand

if TYPE_CHECKING:
    from .cluster import LabCluster
    from .cni_nodes import CniNodes
    from .runtime_pods import RunningPod, RuntimePods

TOKEN_SECONDS = 3607  # what the API server's admission asks for a projected token
SHARED_HOST_PATHS = ("/lib/modules", "/sys", "/proc", "/dev")  # read from the host itself
READY_POLL = 0.5
CALL_TIMEOUT = (2.0, 5.0)


class PodFailed(Exception):
    """The pod cannot run: (reason, message) as kubelet reports a waiting container."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


class DaemonPods:
    def __init__(self, cluster: "LabCluster", pods: "RuntimePods", cni: "CniNodes") -> None:
        self.cluster = cluster
        self.pods = pods
        self.api = pods.api
        self.cni = cni
        self.install = cni.install
        # node -> its daemon's containers, each [container, pod, ip, volumes, state, process]: what
        # it takes to kill one and start it again (a fault's agent_killed)
        self._agents: dict[str, list[list]] = {}
        self._lock = threading.Lock()

    def runs(self, pod) -> bool:
        """Whether every image of the pod is one of the install's."""
        images = {c.image for c in [*(pod.spec.init_containers or []), *pod.spec.containers]}
        return all(self.install.image_files(image, self.cni.release) is not None for image in images)

    def run(self, pod, state: "RunningPod") -> str:
        """Run the pod on its node; its IP (the node's). PodFailed says why it cannot."""
        node = state.node
        if not pod.spec.host_network:
            raise PodFailed("CreateContainerError", "the lab runs a CNI's own pods on the host "
                            "network only (they wire the pod network, so none exists yet)")
        ip = self.cluster.node_address(node)
        volumes = self._volumes(pod, state)
        for container in pod.spec.init_containers or []:
            if _command(container)[:1] and _command(container)[0] in HOST_SHELLS:
                self._run_to_completion(container, pod, node, ip, volumes)
            else:
                self._copy(container, pod, volumes)
        for container in pod.spec.containers:
            process = self._start(container, pod, node, ip, volumes)
            state.processes.append(process)
            with self._lock:
                self._agents.setdefault(node, []).append([container, pod, ip, volumes, state, process])
        self._wait_ready(pod, node, ip, state)
        return ip

    # --- a fault's agent killed, and started again ---

    def kill(self, node: str) -> int:
        """SIGKILL every container of the CNI's daemon on ``node`` (as an OOM kill would: no
        clean-up of its own); how many were killed."""
        with self._lock:
            agents = list(self._agents.get(node, []))
        for agent in agents:
            process = agent[5]
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: the daemon under the wrappers
                except ProcessLookupError:
                    pass
            process.wait(timeout=10)
        return len(agents)

    def restart(self, node: str) -> None:
        """Start the daemon's containers on ``node`` again, as kubelet restarts a killed one."""
        with self._lock:
            agents = list(self._agents.get(node, []))
        for agent in agents:
            container, pod, ip, volumes, state, old = agent
            if old.poll() is None:
                continue
            agent[5] = self._start(container, pod, node, ip, volumes)
            state.processes[:] = [agent[5] if p is old else p for p in state.processes]

    # --- volumes ---

    def _volumes(self, pod, state: "RunningPod") -> dict[str, Path]:
        found: dict[str, Path] = {}
        fs = self.cni.node_fs(state.node)
        for volume in pod.spec.volumes or []:
            try:
                if volume.host_path is not None:
                    path = volume.host_path.path
                    shared = any(path == s or path.startswith(s + "/") for s in SHARED_HOST_PATHS)
                    found[volume.name] = Path(path) if shared else fs.host(path, volume.host_path.type or "")
                    continue
                files, mode = (self._projected(volume, pod), 0o644) if volume.projected is not None \
                    else self.pods.volume_contents(volume, pod.metadata.namespace)
            except UnsupportedVolume as exc:
                raise PodFailed("CreateContainerConfigError", str(exc)) from None
            directory = self.cluster.volume_dir(pod.metadata.namespace, pod.metadata.name, state.uid, volume.name)
            for key, value in files.items():
                path = directory / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(mode=0o600)
                path.write_bytes(value)
                path.chmod(mode)
            found[volume.name] = directory
        return found

    def _projected(self, volume, pod) -> dict[str, bytes]:
        """The service account volume the ServiceAccount admission adds (kube-api-access-*)."""
        files: dict[str, bytes] = {}
        for source in volume.projected.sources or []:
            if source.service_account_token is not None:
                files[source.service_account_token.path] = self._token(pod, source.service_account_token)
            elif source.config_map is not None:
                data = self._config_map(source.config_map.name, pod.metadata.namespace)
                for item in source.config_map.items or [{"key": k, "path": k} for k in data]:
                    key, path = (item["key"], item["path"]) if isinstance(item, dict) else (item.key, item.path)
                    files[path] = data[key].encode()
            elif source.downward_api is not None:
                for item in source.downward_api.items or []:
                    field = item.field_ref.field_path if item.field_ref else None
                    value = {"metadata.namespace": pod.metadata.namespace,
                             "metadata.name": pod.metadata.name}.get(field)
                    if value is None:
                        raise UnsupportedVolume(f"volume {volume.name}: downwardAPI {field} is not one "
                                                "the lab's kubelet fills")
                    files[item.path] = value.encode()
            else:
                raise UnsupportedVolume(f"volume {volume.name}: a projected source the lab's kubelet "
                                        "does not fill")
        return files

    def _token(self, pod, source) -> bytes:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [source.audience] if source.audience else [],
                         "expirationSeconds": source.expiration_seconds or TOKEN_SECONDS,
                         "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name,
                                            "uid": pod.metadata.uid}}}
        account = pod.spec.service_account_name or "default"
        try:
            answer = self.api.call(f"request a token for {account}",
                                   self.api.core.create_namespaced_service_account_token, account,
                                   pod.metadata.namespace, body, _request_timeout=CALL_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the mount fails, as kubelet's would
            raise UnsupportedVolume(f"service account token for {account}: {getattr(exc, 'reason', None) or exc}") from None
        return answer.status.token.encode()

    def _config_map(self, name: str, namespace: str, wait: float = 20.0) -> dict[str, str]:
        """A ConfigMap's data; kube-root-ca.crt is published into a new namespace by the
        controller manager a moment after it is made, so its absence is waited out a while."""
        deadline = time.monotonic() + wait
        while True:
            try:
                found = self.api.call(f"read ConfigMap {name}", self.api.core.read_namespaced_config_map,
                                      name, namespace, _request_timeout=CALL_TIMEOUT)
                return dict(found.data or {})
            except Exception as exc:  # noqa: BLE001 - absent for now, or for good
                if time.monotonic() > deadline:
                    raise UnsupportedVolume(f"ConfigMap {namespace}/{name}: {getattr(exc, 'reason', None) or exc}") from None
                time.sleep(0.5)

    def _mounts(self, container, volumes: dict[str, Path]) -> dict[str, Path]:
        mounts = {}
        for mount in container.volume_mounts or []:
            if mount.sub_path:
                raise PodFailed("CreateContainerConfigError", f"container {container.name}: subPath "
                                "mounts are not supported by the lab's kubelet")
            mounts[mount.mount_path.rstrip("/") or "/"] = volumes[mount.name]
        return mounts

    # --- init containers ---

    def _run_to_completion(self, container, pod, node: str, ip: str, volumes: dict[str, Path]) -> None:
        """An init container that runs a shell script: with the host's shell and tools (the
        image's userland), in the pod's root, until it exits; anything but 0 is the pod's failure."""
        process = self._start(container, pod, node, ip, volumes, shell=True)
        try:
            code = process.wait(timeout=self.pods.ready_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
            raise PodFailed("CrashLoopBackOff", f"init container {container.name} did not end within "
                            f"{self.pods.ready_timeout:.0f}s: {self.cni.log_tail(process)}") from None
        if code != 0:
            raise PodFailed("CrashLoopBackOff", f"init container {container.name} exited with code {exit_code(code)}: "
                            f"{self.cni.log_tail(process)}")

    def _copy(self, container, pod, volumes: dict[str, Path]) -> None:
        """An init container that copies one file onto the node (the install's copy commands)."""
        argv = [expand(a, container, pod) for a in _command(container)]
        paths = [a for a in argv[1:] if not a.startswith("-")]
        if not argv or argv[0] not in self.install.copy_commands or len(paths) != 2 or \
                any(a not in ("-f",) for a in argv[1:] if a.startswith("-")):
            raise PodFailed("CrashLoopBackOff", f"init container {container.name}: {argv} is not a copy "
                            f"the lab's kubelet does ({', '.join(self.install.copy_commands)} SRC DST)")
        files = self.install.image_files(container.image, self.cni.release) or {}
        mounts = self._mounts(container, volumes)
        source = files.get(paths[0]) or _under(paths[0], mounts)
        target = _under(paths[1], mounts)
        if source is None or not source.is_file():
            raise PodFailed("CrashLoopBackOff", f"init container {container.name}: {paths[0]}: no such file")
        if target is None:
            raise PodFailed("CrashLoopBackOff", f"init container {container.name}: {paths[1]} is not on "
                            "one of its volumes, so the copy would be lost with the container")
        if target.is_dir():
            target = target / Path(paths[0]).name
        partial = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, partial)
        partial.chmod(source.stat().st_mode & 0o777)
        os.replace(partial, target)

    # --- containers ---

    def _start(self, container, pod, node: str, ip: str, volumes: dict[str, Path], shell: bool = False):
        """A container's process; ``shell``: an init container's script may run the host's shell."""
        files = self.install.image_files(container.image, self.cni.release) or {}
        argv = [expand(a, container, pod, ip) for a in _command(container, self.install.entrypoints)]
        if shell and argv[:1] and argv[0] in HOST_SHELLS:
            pass  # the image's userland is the host's
        elif not argv or argv[0] not in files:
            raise PodFailed("CrashLoopBackOff", f"container {container.name}: command {argv[:1]} is not a "
                            f"binary of {container.image} the lab has ({', '.join(files) or 'none'})")
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "HOSTNAME": node, "KUBERNETES_SERVICE_HOST": KUBERNETES_SERVICE_IP,
               "KUBERNETES_SERVICE_PORT": "443", "KUBERNETES_SERVICE_PORT_HTTPS": "443"}
        for variable in container.env or []:
            value = variable.value if variable.value is not None else _field(variable, pod, node, ip)
            if value is not None:
                env[variable.name] = value
        mounts = {**self._mounts(container, volumes), **{image_path(path): source for path, source in files.items()}}
        if argv[0] in files:
            argv[0] = image_path(argv[0])
        return self.cni.start_process(node, f"{pod.metadata.namespace}_{pod.metadata.name}_{container.name}",
                                      argv, mounts, env)

    def _wait_ready(self, pod, node: str, ip: str, state: "RunningPod") -> None:
        """Until every container's readiness probe (httpGet) passes, asked from the node."""
        deadline = time.monotonic() + self.pods.ready_timeout
        checks = []
        for container in pod.spec.containers:
            probe = container.readiness_probe
            if probe is None:
                continue
            if probe.http_get is None:
                raise PodFailed("CrashLoopBackOff", f"container {container.name}: only httpGet readiness "
                                "probes are asked by the lab's kubelet")
            port = probe.http_get.port
            if isinstance(port, str) and not port.isdigit():
                port = next((p.container_port for p in container.ports or [] if p.name == port), None)
                if port is None:
                    raise PodFailed("CrashLoopBackOff", f"container {container.name}: readiness port "
                                    f"{probe.http_get.port} names no port")
            checks.append(f"http://{ip}:{port}{probe.http_get.path or '/'}")
        while True:
            for process, container in zip(state.processes, pod.spec.containers):
                if process.poll() is not None:
                    raise PodFailed("CrashLoopBackOff", f"container {container.name} exited with code "
                                    f"{exit_code(process.returncode)}: {self.cni.log_tail(process)}")
            if all(netns.http_get(self.cluster.names.node(node), url, timeout=1.0, limit=4096)[0] == 200
                   for url in checks):
                return
            if time.monotonic() > deadline or self.pods.stopping():
                raise PodFailed("CrashLoopBackOff", f"not ready after {self.pods.ready_timeout:.0f}s "
                                f"({', '.join(checks)}): {self.cni.log_tail(state.processes[0])}")
            time.sleep(READY_POLL)


def exit_code(returncode: int) -> int:
    """A container's exit code as kubelet reports it: 128 + the signal for one killed by it."""
    return 128 - returncode if returncode < 0 else returncode


HOST_SHELLS = ("/bin/sh", "sh", "/bin/bash")  # an image's shell: the host's, in the pod's root


def _command(container, entrypoints: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """What the container runs: its command (else the image's ENTRYPOINT) and its args."""
    command = container.command or list((entrypoints or {}).get(container.image, ()))
    return [*command, *(container.args or [])]


def _under(path: str, mounts: dict[str, Path]) -> Path | None:
    """The lab's file for ``path`` in a container whose volumes are ``mounts``, or None."""
    for mount_path, directory in sorted(mounts.items(), key=lambda m: -len(m[0])):
        prefix = mount_path.rstrip("/")
        if path == prefix or path.startswith(prefix + "/"):
            return directory / path[len(prefix):].lstrip("/") if path != prefix else directory
    return None


def _field(variable, pod, node: str, ip: str) -> str | None:
    """A downward API value of the container's environment (fieldRef)."""
    ref = variable.value_from.field_ref if variable.value_from else None
    if ref is None:
        return None
    return {"metadata.name": pod.metadata.name, "metadata.namespace": pod.metadata.namespace,
            "spec.nodeName": node, "status.podIP": ip, "status.hostIP": ip,
            "spec.serviceAccountName": pod.spec.service_account_name}.get(ref.field_path)

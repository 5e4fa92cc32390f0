"""The probe processes the lab runs: one per probe container of the plan, in its pod's namespace
(its node's for a hostNetwork probe, the outside network's for the outside client), and the
containers the lab's runtime starts for pods made later (runtime_pods.py).

Each is the probe agent run by the lab's Python, with the pod's resolv.conf and an image's
nsswitch.conf bind-mounted in the private mount namespace ``ip netns exec`` makes, answering the
lab on a Unix socket of its own with the run's token. The fault ``localhost-split`` moves duo's
second containers into a namespace of their own (``split``), which is where they start until it is
reverted.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from tenacity import RetryCallState, retry, retry_if_exception_type, stop_after_delay, wait_fixed

from ...probing.channel import ProbeUnavailable, UnixSocketChannel
from ...topology import CONTAINER, HOST, OUTSIDE, POD, Endpoint, Topology
from ..base import BackendError, Progress
from ..kube.manifests import AGENT_SOURCE, CONTROL_PORT
from . import netns
from .naming import RunNames
from .pod_dns import PodResolvConfs

PROBE_SCRIPT = AGENT_SOURCE  # probes/netprobe.py


class _NotReady(Exception):
    pass


class ProbeFleet:
    def __init__(self, names: RunNames, python: str, ready_timeout: float, logs_kept_in: Path | None,
                 resolv: PodResolvConfs, token: str) -> None:
        self.names = names
        self.python = python
        self.ready_timeout = ready_timeout
        self.logs_kept_in = logs_kept_in
        self.resolv = resolv
        self.token = token  # every probe wants it on its control API
        self.processes: list[subprocess.Popen] = []
        self.split: set[str] = set()  # injected faults that keep duo's containers apart

    @property
    def state_dir(self) -> Path:
        return self.names.state_dir

    @property
    def token_file(self) -> Path:
        """The run's probe token, as each probe the lab starts reads it (a live run's Secret)."""
        return self.state_dir / "probe-token"

    def write_token(self) -> None:
        self.token_file.touch(mode=0o600)
        self.token_file.write_text(self.token)

    def socket_path(self, endpoint: Endpoint) -> Path:
        return self.state_dir / "sockets" / f"{endpoint.name.replace('/', '_')}.sock"

    def channel(self, endpoint: Endpoint) -> UnixSocketChannel:
        return UnixSocketChannel(endpoint.name, str(self.socket_path(endpoint)), self.token)

    def runtime_socket(self, pod: str, container: str) -> Path:
        return self.state_dir / "sockets" / f"rt_{pod}_{container}.sock"

    def runtime_channel(self, pod: str, container: str) -> UnixSocketChannel:
        return UnixSocketChannel(f"{pod}/{container}", str(self.runtime_socket(pod, container)), self.token)

    # --- where each probe runs ---

    def namespace_of(self, endpoint: Endpoint) -> str:
        if endpoint.kind == HOST:
            return self.names.node(endpoint.node)
        if endpoint.kind == OUTSIDE:
            return self.names.outside
        if endpoint.kind == CONTAINER and endpoint.role.endswith("/c2") and self.split:
            return self._split_netns(endpoint.node)
        return self.names.pod(endpoint.node, endpoint.pod.split("/", 1)[1])

    def _split_netns(self, node: str) -> str:
        """Fault localhost-split: a namespace of its own (loopback only) for duo's second container."""
        name = self.names.pod(node, "duo-split")
        if not netns.exists(name):
            netns.create(name, record=self.names.registry)
            netns.ip_batch(name, ["link set lo up"])
        return name

    # --- start, stop ---

    def start_all(self, live: Topology) -> None:
        for endpoint in live.probes():
            self.start(endpoint)

    def start(self, endpoint: Endpoint) -> None:
        self.spawn(self.namespace_of(endpoint), None if endpoint.kind == OUTSIDE else self.resolv.path(endpoint.node),
                   endpoint.name.replace('/', '_'),
                   ["serve", "--name", endpoint.name, "--port", str(endpoint.port),
                    "--control", f"unix:{self.socket_path(endpoint)}", "--token-file", str(self.token_file),
                    # a pod's probe is also reached at its pod IP, by the API server's pod proxy
                    # (no host: every address, in each family; it starts before it has any)
                    *(["--control", f"tcp::{CONTROL_PORT}"] if endpoint.kind == POD else [])])

    def spawn(self, where: str, resolv_conf: Path | None, log_name: str, args: list[str],
              script: Path = PROBE_SCRIPT, flags: tuple[str, ...] = ("-I", "-S")) -> subprocess.Popen:
        """The probe agent ``script`` with ``args``, in namespace ``where``, run by the lab's Python
        with ``flags`` (-I -S: the standard library alone, as the stock image on a cluster runs
        it); with ``resolv_conf``, seeing that file as its /etc/resolv.conf (the one kubelet
        writes for the pod)."""
        log = open(self.state_dir / "logs" / f"{log_name}.log", "ab")
        # Pods (and the hostNetwork probe, dnsPolicy ClusterFirstWithHostNet) see the resolv.conf
        # kubelet writes, and the nsswitch.conf of a container image (hosts: files dns, whatever
        # the machine's says), bind-mounted in the private mount namespace `ip netns exec` makes.
        dns = [] if resolv_conf is None else [
            "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && mount --bind "$1" /etc/nsswitch.conf '
            '&& shift && exec "$@"', str(resolv_conf), str(self.resolv.nsswitch())]
        with log:
            process = subprocess.Popen(
                ["ip", "netns", "exec", where, *dns, self.python, *flags, str(script), *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # Ctrl-C reaches the harness, which stops them in order
        self.processes.append(process)
        return process

    def stop(self, name: str) -> None:
        """The probe process(es) of the endpoint ``name`` stopped."""
        for process in [p for p in self.processes if p.args[p.args.index("--name") + 1] == name]:
            stop_process(process)
            self.processes.remove(process)

    def restart_split_containers(self, live: Topology) -> None:
        """duo's second containers, started again where namespace_of now puts them."""
        for endpoint in live.probes():
            if endpoint.kind == CONTAINER and endpoint.role.endswith("/c2"):
                self.stop(endpoint.name)
                self.start(endpoint)
        self.wait_ready(live, lambda message: None)

    # --- readiness ---

    def wait_ready(self, live: Topology, progress: Progress) -> None:
        """Poll every probe's health endpoint until all answer, a probe dies, or time runs out."""
        waiting = {e.name: e for e in live.probes()}
        total = len(waiting)
        progress(f"lab: waiting for {total} probes (at most {self.ready_timeout:.0f}s)")

        def still_waiting(state: RetryCallState) -> None:
            if state.attempt_number % 20 == 0:
                progress(f"lab: {total - len(waiting)}/{total} probes ready")

        @retry(stop=stop_after_delay(self.ready_timeout), wait=wait_fixed(0.1),
               retry=retry_if_exception_type(_NotReady), after=still_waiting, reraise=True)
        def poll() -> None:
            for process in self.processes:
                if process.poll() is not None:
                    name = process.args[process.args.index("--name") + 1]
                    raise BackendError(f"probe {name} exited with code {process.returncode}: "
                                       f"{self.log_tail(name)}")
            for name, endpoint in list(waiting.items()):
                try:
                    self.channel(endpoint).call("healthz", timeout=2)
                    del waiting[name]
                except ProbeUnavailable:
                    pass
            if waiting:
                raise _NotReady()

        try:
            poll()
        except _NotReady:
            raise BackendError(f"{len(waiting)} probe(s) not ready after "
                               f"{self.ready_timeout:.0f}s: {', '.join(sorted(waiting))}; "
                               f"their logs are kept in {self.logs_kept_in or self.state_dir / 'logs'}"
                               ) from None
        progress(f"lab: {total}/{total} probes ready")

    def log_tail(self, name: str) -> str:
        log = self.state_dir / "logs" / f"{name.replace('/', '_')}.log"
        try:
            return log.read_text(errors="replace").strip()[-800:] or "(no output)"
        except OSError:
            return "(no log)"


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 3 s."""
    process.terminate()
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=3)


"""The Service proxy of every lab node: upstream kube-proxy, one process in each node's namespace.

It runs as kind runs it (one per node, the node's name as ``hostnameOverride``, ``clusterCIDR`` the
pods' range), talks to the API server on the control plane's underlay address as
``system:kube-proxy`` (bound to ``system:node-proxier`` by the API server's default policy), and
leaves every host-wide setting alone: the conntrack limits and timeouts are 0 ("do not touch"), the
OOM score is left as it is. What it changes lives in the node's namespace (its tables,
``route_localnet``), so clean-up removes it with the namespace.

Readiness is the rules themselves: a node's proxy is ready when its tables send each Service's
ClusterIP to exactly the endpoints the API lists (and reject the ones without endpoints), read
back from the node's tables in either mode (proxyrules.py). A lab fault that acts on kube-proxy's behaviour
does it through its configuration (``settings``), as a misconfigured cluster would.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import yaml

from ...topology import Topology
from ..base import BackendError, Progress
from . import netns, proxyrules
from .proxyrules import MODES, missing
from .controlplane import processes
from .controlplane.processes import Process

HEALTHZ_PORT = 10256
METRICS_PORT = 10249  # on the node's loopback: the harness reads it from inside the namespace
POLL = 0.2
MIN_SYNC_PERIOD = "1s"


@dataclass(frozen=True)
class ProxySpec:
    mode: str = "iptables"  # or "nftables" (MODES)
    cluster_cidr: str = "10.244.0.0/16"
    settings: dict = field(default_factory=dict)  # KubeProxyConfiguration fields a fault overrides
    family: str = "ipv4"  # the cluster's primary family: the rules the lab reads to know it synced


def configuration(spec: ProxySpec, node: str, kubeconfig: Path) -> dict:
    """The KubeProxyConfiguration of one node (v1alpha1, the version kubeadm writes)."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node, "mode": spec.mode, "clusterCIDR": spec.cluster_cidr,
        "bindAddress": "0.0.0.0",
        "healthzBindAddress": f"0.0.0.0:{HEALTHZ_PORT}", "metricsBindAddress": f"127.0.0.1:{METRICS_PORT}",
        # 0 = leave the host's value: the conntrack table and its timeouts are shared by every
        # namespace of the machine, and the run raises what it needs itself (hostlimits.py)
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s", "udpTimeout": "0s", "udpStreamTimeout": "0s"},
        "oomScoreAdj": 0,
        # minSyncPeriod as upstream's default (and kubeadm's, kind's): changes that come within a
        # second are programmed in one sync. With 0s every endpoint change made every node's
        # kube-proxy rewrite its rules at once, 51 of them on two cores on a 50-node lab.
        "iptables": {"syncPeriod": "30s", "minSyncPeriod": MIN_SYNC_PERIOD},
        "nftables": {"syncPeriod": "30s", "minSyncPeriod": MIN_SYNC_PERIOD},
    }
    return merged(config, spec.settings)


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` laid over it, nested mappings merged key by key (a fault sets
    ``iptables.masqueradeAll`` without losing ``iptables.syncPeriod``)."""
    result = dict(base)
    for key, value in overrides.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and \
            isinstance(result.get(key), dict) else value
    return result


class NodeProxies:
    """Start one kube-proxy per node, wait until each has programmed the run's Services, stop them."""

    def __init__(self, binary: Path, spec: ProxySpec, directory: Path) -> None:
        self.binary = binary
        self.spec = spec
        self.directory = directory  # configs and logs, in the run's state directory
        self.processes: dict[str, Process] = {}  # node name -> its kube-proxy
        self.started_at = 0.0  # when the running kube-proxies were started (epoch seconds)
        self._nodes: dict[str, str] = {}
        self._kubeconfig: Path | None = None

    def start(self, nodes: dict[str, str], kubeconfig: Path) -> None:
        """``nodes``: node name -> its namespace. ``kubeconfig``: as system:kube-proxy."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._nodes, self._kubeconfig = dict(nodes), kubeconfig
        self.started_at = time.time()
        for node, namespace in nodes.items():
            path = self.directory / f"{node}.yaml"
            path.write_text(yaml.safe_dump(configuration(self.spec, node, kubeconfig)))
            self.processes[node] = processes.start(
                f"kube-proxy-{node}", [str(self.binary), f"--config={path}", "--v=1"],
                self.directory, netns=namespace)

    def restart(self, settings: dict) -> None:
        """Stop every kube-proxy and start it again with ``settings`` (a fault's, or none to put
        the configuration back), as a changed ConfigMap and a rollout of the DaemonSet would."""
        problems = self.stop()
        if problems:
            raise BackendError("; ".join(problems))
        self.spec = replace(self.spec, settings=dict(settings))
        self.start(self._nodes, self._kubeconfig)

    def wait_synced(self, live: Topology, namespaces: dict[str, str], namespace: str,
                    timeout: float, progress: Progress,
                    others: dict[str, set[str]] | None = None,
                    control_plane_down: Callable[[], str | None] = lambda: None) -> float:
        """Wait until every node's kube-proxy has written its rules since it started (its sync
        metric says when: after a restart the old rules are still there and look right) and they
        match ``live``'s Services in each family the cluster has (a dual-stack run that waited for
        IPv4 alone saw its first IPv6 Service connections refused); return the seconds it took.
        ``control_plane_down`` names a control-plane component that has exited: without it the
        endpoints kube-proxy waits for never come, and that is said at once.)"""
        started = time.monotonic()
        deadline = started + timeout
        waiting = dict(namespaces)
        # A node's rules are read again only once its kube-proxy has synced again (a family's
        # sync stamp changed): rules change only then, and reading every node's iptables and
        # ip6tables five times a second is a core's worth of work on a 50-node lab.
        read_at: dict[str, tuple[float, ...]] = {}
        views = {family: live.in_family(family) for family in live.cluster_families}
        while True:
            for node, process in self.processes.items():
                if not process.running():
                    raise BackendError(f"kube-proxy on {node} exited with code "
                                       f"{process.popen.returncode}: {process.tail()}")
            if (down := control_plane_down()) is not None:
                raise BackendError(down)
            for node in list(waiting):
                if not netns.exists(waiting[node]):
                    raise BackendError(f"the namespace of {node} ({waiting[node]}) is gone: its "
                                       "kube-proxy cannot be asked whether it is in step")
                stamps = sync_stamps(waiting[node])
                if min(stamps, default=0.0) <= self.started_at or read_at.get(node) == stamps:
                    continue
                read_at[node] = stamps
                if not self._lacking(live, namespace, waiting[node], others, node, views):
                    del waiting[node]
            if not waiting:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                node = sorted(waiting)[0]
                lacking = self._lacking(live, namespace, waiting[node], others, node)
                raise BackendError(
                    f"kube-proxy on {len(waiting)} node(s) ({', '.join(sorted(waiting))}) had not "
                    f"programmed the run's Services after {timeout:.0f}s; {node} lacks "
                    f"{'; '.join(lacking[:3])}; its log: {self.processes[node].tail()[-600:]}")
            time.sleep(POLL)

    def _lacking(self, live: Topology, namespace: str, node_ns: str, others: dict[str, set[str]] | None,
                 node: str, views: dict[str, Topology] | None = None) -> list[str]:
        """What the node's rules lack of ``live``'s Services, family by family (``others``, the
        kube-dns endpoints, are the primary family's)."""
        lacking = []
        for index, family in enumerate(live.cluster_families):
            rules = proxyrules.read(node_ns, self.spec.mode, family)
            view = views[family] if views else live.in_family(family)
            lacking += missing(view, namespace, rules, others if index == 0 else None, node)
        return lacking

    def wait_routed(self, namespaces: dict[str, str], nodes: list[str], service_port: str,
                    timeout: float) -> None:
        """Until the kube-proxy of each of ``nodes`` sends ``service_port`` (``ns/svc:port``, as
        its rules' comments name it) somewhere."""
        deadline = time.monotonic() + timeout
        waiting = list(nodes)
        while waiting:
            waiting = [n for n in waiting
                       if not proxyrules.routes(self._read(namespaces[n]), service_port)]
            if waiting and time.monotonic() > deadline:
                raise BackendError(f"kube-proxy on {', '.join(waiting)} does not route {service_port} "
                                   f"after {timeout:.0f}s: {self.processes[waiting[0]].tail()[-600:]}")
            if waiting:
                time.sleep(POLL)

    def _read(self, namespace: str) -> proxyrules.Programmed:
        return proxyrules.read(namespace, self.spec.mode, self.spec.family)

    def rules_text(self, namespace: str) -> str:
        """kube-proxy's tables on one node as text (iptables-save, or its nftables table)."""
        return proxyrules.dump(namespace, self.spec.mode, self.spec.family)

    def signal(self, sig: int) -> None:
        """Send every kube-proxy ``sig`` (a fault's SIGSTOP, its revert's SIGCONT)."""
        for process in self.processes.values():
            processes.send(process, sig)

    def stop(self) -> list[str]:
        problems = processes.stop(list(self.processes.values()), 2.0)
        for process in self.processes.values():
            if process.popen.stdout:
                process.popen.stdout.close()
        self.processes = {}
        return [f"kube-proxy: {problem}" for problem in problems]

    def memory(self) -> dict[str, int]:
        return {node: rss for node, p in self.processes.items() if (rss := p.rss()) is not None}


SYNC_METRIC = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"


def last_sync(namespace: str) -> float:
    """When the kube-proxy of a node last wrote its rules for every IP family (epoch seconds; 0
    before its first sync or when it does not answer). Its metric, set only after a sync that
    succeeded; not its healthz, which says healthy (and "lastUpdated": now) while it starts."""
    return min(sync_stamps(namespace), default=0.0)


def sync_stamps(namespace: str) -> tuple[float, ...]:
    """Each IP family's last-sync timestamp of the node's kube-proxy (empty: none yet, or no
    answer); any of them changes when that family's rules are written again."""
    status, body = netns.http_get(namespace, f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=1.0,
                                  limit=1 << 20)
    return stamps_in(body.decode(errors="replace")) if status == 200 else ()


def sync_time(metrics: str) -> float:
    """The oldest of the per-family last-sync timestamps in kube-proxy's metrics text, or 0."""
    return min(stamps_in(metrics), default=0.0)  # every family's rules written


def stamps_in(metrics: str) -> tuple[float, ...]:
    stamps = []
    for line in metrics.splitlines():
        if line.startswith((SYNC_METRIC + " ", SYNC_METRIC + "{")):  # one per IP family in 1.37
            try:
                stamps.append(float(line.rsplit(None, 1)[1]))
            except (IndexError, ValueError):
                return ()
    return tuple(stamps)

"""Build and tear down the lab: a world namespace, node namespaces, pods wired by real CNI plugins.

    world ns:  bridge nc<id>br ── veth ── node ns (node_network.py: eth0 172.18.0.x, routes to other pod CIDRs)
    node ns:   CNI plugins run here, as a container runtime runs them on a node; probes of
               hostNetwork pods and the node agent run here too
    pod ns:    eth0 from the CNI chain (pod_wiring.py); one probe per container
    control-plane ns: etcd, kube-apiserver, kube-controller-manager, kube-scheduler (controlplane/)
    outside ns: a client that is neither node nor pod, and the DNS resolver upstream of the cluster

The run's objects (namespace, pods, Services) live in the lab's real API server; the lab is the
kubelet of its nodes (kubelet.py) and each node runs the upstream kube-proxy (proxy.py), so the
Services the checks use are programmed by kube-proxy from real EndpointSlices. CoreDNS serves
cluster DNS behind kube-dns (addons.py); every probe pod gets the resolv.conf kubelet would write.
"""
from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from kubernetes.client.exceptions import ApiException

from ...probing.channel import UnixSocketChannel
from ...plan import probe_plan
from ...services import host_ports, hostport_role, picked_backends
from ...topology import IN_POD_NETWORK, KUBERNETES_SERVICE, OUTSIDE, Endpoint, Topology, family_of
from ...upstream import DEFAULT_RELEASE, NotBuilt, binary, releases
from ..base import BackendError, Progress
from ..kube.api import KubeApi, status_message
from ..kube.channel import reach_through_api
from ..kube import pods
from ..kube.manifests import CONTROL_PORT
from ..kube.services_ready import wait_endpoint_slices
from . import addons, cleanup, hostlimits, preflight
from .cni import PLUGIN_DIRS, CniError, PodSandbox
from .cni_install import INSTALLS
from .cni_nodes import CniNodes
from .daemon_pods import DaemonPods
from .controlplane.node import ControlPlane, ControlPlaneSpec
from .fault_injector import FaultInjector
from .faults import Fault
from .kubelet import LabKubelet, host_node_info
from .naming import (CLUSTER_CIDR, CLUSTER_CIDR6, CONTROL_PLANE_IP, CONTROL_PLANE_IP6, OUTSIDE_IP,
                     OUTSIDE_IP6, SERVICE_CIDR, SERVICE_CIDR6, UNDERLAY, UNDERLAY6, RunNames, in_families,
                     pod_cidr, pod_cidr6)
from .node_network import NodeNetwork
from .pod_wiring import PodWiring
from .objects import RunObjects, endpoint_slices_for_lab, render_for_lab
from .runtime_pods import RuntimePods
from .proxy import NodeProxies, ProxySpec
from .underlay import Underlay
from .pod_dns import PodResolvConfs
from .probe_fleet import PROBE_SCRIPT, ProbeFleet, stop_process

DNS_POD = "coredns"  # the pod name (per node) of the CoreDNS replicas in the lab's namespaces
PROXY_SYNC_BASE, PROXY_SYNC_PER_NODE = 60.0, 2.0  # s: LabSpec.proxy_sync_timeout
CONTROL_PLANE_NODE = "control-plane"  # the Node of the control plane's namespace
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"  # its label and taint, as kubeadm's


@dataclass
class LabSpec:
    conflist: Path
    nodes: int = 3
    pods_per_node: int = 2
    ready_timeout: float = 60.0
    faults: tuple[Fault, ...] = ()
    python: str = sys.executable
    overlay: str = "routes"  # between nodes, with a conflist alone: interconnects/ ("routes", "vxlan")
    cni_path: tuple[str, ...] = PLUGIN_DIRS  # where plugins are looked up, as CNI_PATH
    cni_timeout: float = 20.0  # seconds one plugin call may take
    logs_kept_in: Path | None = None  # where the probes' logs are copied before teardown removes them
    release: str = DEFAULT_RELEASE  # the pinned upstream release the control plane and kube-proxy run
    proxy_mode: str = "iptables"
    # seconds for every kube-proxy to program the run's Services (None: PROXY_SYNC_BASE plus
    # PROXY_SYNC_PER_NODE for each node and family: every node's kube-proxy shares the machine's
    # cores with all the others, and each family is a proxier of its own)
    proxy_sync_timeout: float | None = None
    # The lab makes the run's objects and probes itself (True), or is only the cluster (control
    # plane, nodes, kube-proxy, CoreDNS) into which the kube backend deploys them through the API
    # server, as into a live cluster (False: --backend=kube on the lab)
    objects: bool = True
    # A real CNI installed from its upstream manifest (cni_install.py: "flannel"); None: the
    # conflist alone, with the lab's own routes or VXLAN between nodes
    install: str | None = None
    # The IP families the cluster is built with: ("ipv4",), ("ipv4", "ipv6") dual-stack
    # (--ip-family=dual): every address, route, pod range and Service in both, IPv4 primary; or
    # ("ipv6",) IPv6-only (--ip-family=ipv6): nodes' InternalIPs, pods and Services in IPv6 alone.
    # The underlay carries both families whenever the cluster has IPv6, as a kind cluster's
    # Docker network does: the lab's own plumbing (the control plane's address for kube-proxy)
    # stays on IPv4, the cluster's addresses are its families' alone
    families: tuple[str, ...] = ("ipv4",)

    def __post_init__(self) -> None:
        if self.proxy_sync_timeout is None:
            self.proxy_sync_timeout = PROXY_SYNC_BASE + PROXY_SYNC_PER_NODE * self.nodes * len(self.families)

    @property
    def has_ipv6(self) -> bool:
        return "ipv6" in self.families

    @property
    def dual(self) -> bool:
        """Both families: a conflist gets ${POD_CIDR_V6} beside ${POD_CIDR}."""
        return len(self.families) == 2


def plan(spec: LabSpec) -> Topology:
    """The lab's names: node-N with the probes every backend deploys, and the outside client."""
    planned = probe_plan([f"node-{i}" for i in range(1, spec.nodes + 1)], spec.pods_per_node,
                         outside=True)
    return replace(planned, families=spec.families, cluster_families=spec.families)


class LabCluster:
    def __init__(self, spec: LabSpec, names: RunNames | None = None) -> None:
        if not 1 <= spec.nodes <= 200:
            raise BackendError(f"--lab-nodes must be between 1 and 200, not {spec.nodes}")
        if not 1 <= spec.pods_per_node <= 26:
            raise BackendError(f"--lab-pods-per-node must be between 1 and 26, not "
                               f"{spec.pods_per_node}")
        self.spec = spec
        self.names = names or RunNames.new()
        self.topology = plan(spec)
        self._stop_building = threading.Event()  # set when the build is abandoned
        self.underlay = Underlay(self.names)
        self.control_plane = ControlPlane(self.names, self.underlay,
                                          ControlPlaneSpec(spec.release, spec.ready_timeout, spec.python,
                                                           families=spec.families))
        self.api: KubeApi | None = None
        self.kubelet: LabKubelet | None = None
        self.proxies: NodeProxies | None = None
        self.dns: addons.ClusterDns | None = None
        self._dns_ips: dict[str, str] = {}  # node -> the IP of the CoreDNS pod on it
        self._dns_all_ips: dict[str, list[str]] = {}  # node -> its IPs, one per family
        self._dns_ready: list[str] = []  # the nodes whose CoreDNS pod passed its readiness probe
        self.timings: dict[str, float] = {}  # phase -> seconds, for the report and the README
        self._pods: dict[str, dict] = {}
        self._objects: list[dict] = []  # the run's objects as rendered (a runtime pod's template)
        self.runtime_pods: RuntimePods | None = None  # the kubelet's part for pods made later
        self.probe_token = secrets.token_urlsafe(32)  # every probe wants it on its control API
        # the lab's parts, each with one job
        self.resolv = PodResolvConfs(self.state_dir / "dns", self.names.prefix,
                                     [n.name for n in self.topology.nodes],
                                     addons.dns_addresses(spec.families).dns)
        self.probes = ProbeFleet(self.names, spec.python, spec.ready_timeout, spec.logs_kept_in,
                                 self.resolv, self.probe_token)
        self.injector = FaultInjector(self)
        # a real CNI installed from its manifest (cni_nodes.py), or None: the conflist alone
        self.cni = CniNodes(INSTALLS[spec.install], self.names, spec.release) if spec.install else None
        self.network = NodeNetwork(self.names, [n.name for n in self.topology.nodes], spec.families,
                                   spec.overlay, cni_routed=self.cni is not None)
        self.wiring = PodWiring(self.names, spec.families, spec.cni_path, spec.cni_timeout, self.cni,
                                self._stop_building)

    # --- paths ---

    @property
    def state_dir(self) -> Path:
        return self.names.state_dir

    def socket_path(self, endpoint: Endpoint) -> Path:
        return self.probes.socket_path(endpoint)

    def channel(self, endpoint: Endpoint) -> UnixSocketChannel:
        return self.probes.channel(endpoint)

    # --- build ---

    def build(self, progress: Progress) -> Topology:
        started = time.monotonic()
        self._preflight()
        self._write_owner()  # before anything exists that another run's clean-up could see
        removed = cleanup.remove_stale_runs()
        if removed:
            progress(f"lab: removed leftovers of {len(removed)} earlier run(s): {', '.join(removed)}")
        hostlimits.reserve(self.names.prefix, hostlimits.estimate(self.topology), progress)
        self._build_world()
        progress(f"lab: {self.names.prefix}: world and {self.spec.nodes} node namespaces up")
        # The control plane starts while the CNI wires the pods: neither needs the other yet.
        control_plane = threading.Thread(target=self._start_control_plane, args=(progress,),
                                         name="control-plane", daemon=True)
        self._control_plane_thread = control_plane  # before it runs: teardown must see it
        control_plane.start()
        if self.cni is None:  # the conflist alone: pods are wired while the control plane starts
            pod_ips = self._wire_and_start(progress)
        control_plane.join(self.spec.ready_timeout + 30)
        if self.api is None:
            raise self._control_plane_error or BackendError("lab: the control plane did not start")
        self.network.route_pods_from(self.control_plane.netns)  # the API server answers pods directly
        if self.cni is not None:  # the CNI's daemons first: they make the pod network
            self._register_nodes()
            self._start_proxies()  # a CNI's daemons reach the API server by the kubernetes Service:
            # only once every node's kube-proxy routes it, as for CoreDNS (_report_dns). Started
            # sooner, flannel's first request met "no route to host" on a loaded machine and
            # exited (CrashLoopBackOff, which ends the wait for the CNI at once)
            self.proxies.wait_routed(self.node_namespaces(), [n.name for n in self.topology.nodes],
                                     "default/kubernetes:https", self.spec.proxy_sync_timeout)
            self._install_cni(progress)
            pod_ips = self._wire_and_start(progress)
        live = self._register(pod_ips)
        self._report_pods(live)
        if self.proxies is None:
            # Only now, with every object made, every pod Ready and the EndpointSlice controller
            # done with them: each node's kube-proxy then writes the run's Services in one sync.
            # Started before, each Service, EndpointSlice and pod status made every node's
            # kube-proxy rewrite its rules (at most once a second, and about 0.1 s of CPU each):
            # 51 of them in two families saturated two cores for minutes at 50 nodes, and late
            # heartbeats took every node's pods out of their Services.
            self.timings["endpoint_slices_ready"] = round(wait_endpoint_slices(
                self.api, self.names.prefix, live, self.spec.proxy_sync_timeout, progress), 2)
            self._start_proxies()
        self._report_dns(progress)
        synced = self.proxies.wait_synced(live, self.proxied_namespaces(), self.names.prefix,
                                          self.spec.proxy_sync_timeout, progress,
                                          others=self.dns_endpoints(),
                                          control_plane_down=self.control_plane.exited)
        self.timings["kube_proxy_synced"] = round(synced, 2)
        progress(f"lab: kube-proxy ({self.spec.proxy_mode} mode) on {self.spec.nodes} node(s) "
                 f"programmed {len(live.services)} Services in {synced:.1f}s")
        if self.spec.objects:  # else once the kube backend has made the run's objects
            self._inject_faults(live, progress)
        live.meta.update(self.metadata())
        self.timings["lab_up"] = round(time.monotonic() - started, 2)
        progress(f"lab: ready in {time.monotonic() - started:.1f}s")
        return live

    def _wire_and_start(self, progress: Progress) -> dict[str, str]:
        """Every pod wired by the CNI, and the lab's own probes started and answering."""
        pod_ips = self._wire_pods()
        chain = " → ".join(self.metadata()["cni_plugins"])
        progress(f"lab: {len(pod_ips)} pods wired by CNI ({chain})")
        if self.spec.objects:
            self.probes.start_all(self.topology)  # they need no address; the control plane may still start
            self.probes.wait_ready(self.topology, progress)
        return pod_ips

    def _install_cni(self, progress: Progress) -> None:
        """The CNI's daemon ready on every node (cni_nodes.py), and each node's conflist read
        from that node's /etc/cni/net.d, as containerd reads it."""
        self.runtime_pods.daemons = DaemonPods(self, self.runtime_pods, self.cni)
        cidrs = {n.name: pod_cidr(i) for i, n in enumerate(self.topology.nodes, 1)}
        routes = {node: [cidr for other, cidr in cidrs.items() if other != node] for node in cidrs}
        self.cni.wait_ready(self.api, routes, self.runtime_pods.errors, self.spec.ready_timeout, progress)
        for node in cidrs:
            try:
                self.wiring.use(node, self.cni.conflist(node))
            except CniError as exc:
                raise BackendError(f"lab: {self.cni.install.name} on {node}: {exc}") from None

    _control_plane_error: BaseException | None = None
    _control_plane_thread: threading.Thread | None = None

    def _start_control_plane(self, progress: Progress) -> None:
        """In a thread: start the control plane and connect to it as admin; any failure is kept
        for build() to raise (an interrupt in the main thread leaves it to teardown)."""
        try:
            self.control_plane.start(progress)
            if not self._stop_building.is_set():
                api = KubeApi(self.control_plane.admin_kubeconfig)
                if self._stop_building.is_set():  # teardown began meanwhile and will not see it
                    api.close()
                else:
                    self.api = api
        except BaseException as exc:  # noqa: BLE001 - re-raised by build()
            self._control_plane_error = exc

    def _wire_pods(self) -> dict[str, str | list[str]]:
        """Every pod of every node wired (nodes in parallel); {node/pod: its IP, or IPs with IPv6}.
        The CoreDNS pod of a node is wired with the probes, and its IPs kept apart."""
        holder = hostport_role(self.topology)
        pods: dict[str, list[tuple[str, list[dict]]]] = {}
        for index, node in enumerate(self.topology.nodes, 1):
            names = sorted({e.pod.split("/", 1)[1] for e in self.topology.endpoints
                            if e.node == node.name and e.kind in IN_POD_NETWORK}) if self.spec.objects else []
            # as kubelet hands a pod's hostPorts to the CNI: portmap's capability arguments
            pods[node.name] = [(pod, [{**{k: v for k, v in m.items() if k != "protocol"},
                                       "protocol": m["protocol"].lower()}
                                      for m in host_ports(pod, holder, self.network.node_ips(index)[0])])
                               for pod in names]
            if node.name in self.dns.nodes:
                pods[node.name].append((DNS_POD, []))
        pod_ips: dict[str, str | list[str]] = {}
        for (node, pod), ips in self.wiring.wire_all(pods, self.names.prefix).items():
            if pod == DNS_POD:
                self._dns_ips[node] = ips[0]
                self._dns_all_ips[node] = ips
            else:
                pod_ips[f"{node}/{pod}"] = ips if self.spec.has_ipv6 else ips[0]
        return pod_ips

    def _register(self, pod_ips: dict[str, str]) -> Topology:
        """The run's objects in the API server and the nodes registered; returns
        the topology with the addresses the cluster gave (ClusterIPs are the API server's)."""
        node_ips = {n.name: self.network.node_ips(i) for i, n in enumerate(self.topology.nodes, 1)}
        objects = None
        cluster_ips = {}
        if self.spec.objects:
            self._objects = render_for_lab(self.names.run_id, self.names.prefix, self.topology,
                                           self.spec.pods_per_node)
            objects = RunObjects(self.api, self._objects, self.probe_token)
            cluster_ips = objects.create_services()
        cluster_ips[KUBERNETES_SERVICE] = self.api.core.read_namespaced_service(
            KUBERNETES_SERVICE, "default").spec.cluster_ip  # the API server's own, as a pod sees it
        self._register_nodes()
        nodes = [n.name for n in self.topology.nodes]
        if objects:
            self.runtime_pods.known |= {(self.names.prefix, p["metadata"]["name"]) for p in objects.pods(nodes)}
            self._pods = objects.create_pods(nodes)
            pods.label_backends(self.api, self.names.prefix, [self._pods[name]["metadata"]["name"]
                                                              for name in picked_backends(self.topology)])
        self.runtime_pods.known |= {(addons.NAMESPACE, name) for name in self.dns.pod_names().values()}
        self.dns.create(self.api)
        if not objects:
            return Topology([replace(n, ip=node_ips[n.name][0], addresses=tuple(
                                 (family_of(ip), ip) for ip in node_ips[n.name])) for n in self.topology.nodes], [],
                            {"namespace": None, "kubernetes_service_ip": cluster_ips[KUBERNETES_SERVICE]}, {})
        outside = in_families(self.spec.families, OUTSIDE_IP, OUTSIDE_IP6)
        live = self.topology.with_addresses(pod_ips, node_ips, cluster_ips,
                                            {e.name: outside for e in self.topology.of_kind(OUTSIDE)})
        objects.create_endpoint_slices(endpoint_slices_for_lab(
            self.names.run_id, self.names.prefix, live, self.spec.pods_per_node))
        return live

    def _register_nodes(self) -> None:
        """The nodes registered by the lab's kubelet, and the kubelet's watch of the pods bound to
        them (once: a CNI install does it before the pods are wired)."""
        if self.kubelet is not None:
            return
        self.kubelet = LabKubelet(self.api, self.control_plane.version, host_node_info())
        for index, node in enumerate(self.topology.nodes, 1):
            self.kubelet.register(node.name, self.network.node_ips(index), self.network.pod_cidrs(index),
                                  {"netconform.io/lab": self.names.prefix})
        # the control-plane node, as kubeadm registers it (tainted: no workload lands there), so
        # the cluster has one as every kubeadm or kind cluster has; its kube-proxy runs beside the
        # API server (_start_proxies), as on kind's control-plane node
        self.kubelet.register(CONTROL_PLANE_NODE, in_families(self.spec.families, CONTROL_PLANE_IP, CONTROL_PLANE_IP6),
                              self.network.pod_cidrs(0),
                              {"netconform.io/lab": self.names.prefix, CONTROL_PLANE_ROLE: ""},
                              [{"key": CONTROL_PLANE_ROLE, "effect": "NoSchedule"}])
        self.kubelet.start_heartbeats()
        # The pods the lab makes itself are known (added as they are made) and left alone; in the
        # run's namespace it runs the ones made later, and with no objects of its own (the kube
        # backend's) or with a CNI install (its DaemonSet's), every pod bound to its nodes.
        scope = self.names.prefix if self.spec.objects and self.cni is None else None
        self.runtime_pods = RuntimePods(self, self.api, scope, {n.name for n in self.topology.nodes},
                                        set(), self.spec.ready_timeout)
        self.runtime_pods.start()

    def _start_proxies(self) -> None:
        try:
            kube_proxy = binary("kube-proxy", self.spec.release)
        except NotBuilt as exc:
            raise BackendError(f"lab: {exc}") from None
        cluster_cidr = ",".join(in_families(self.spec.families, CLUSTER_CIDR, CLUSTER_CIDR6))
        self.proxies = NodeProxies(kube_proxy, ProxySpec(self.spec.proxy_mode, cluster_cidr,
                                                         family=self.spec.families[0]),
                                   self.state_dir / "logs")
        kubeconfig = self.control_plane.kubeconfig_in_lab(self.state_dir / "kube-proxy.kubeconfig",
                                                          "system:kube-proxy")
        self.proxies.start(self.proxied_namespaces(), kubeconfig)

    def _report_dns(self, progress: Progress) -> None:
        """Start CoreDNS once its nodes' kube-proxy routes the ``kubernetes`` Service (before that
        its first connection to the API server would wait out a SYN retransmission); report Ready
        the pods whose readiness probe passes from their node, so kube-dns gets those endpoints."""
        self.proxies.wait_routed(self.node_namespaces(), self.dns.nodes, "default/kubernetes:https",
                                 self.spec.proxy_sync_timeout)
        self.dns.start(self.api, {node: self.names.pod(node, DNS_POD) for node in self.dns.nodes},
                       self.control_plane.layout.cert("ca"))
        ready = self.dns.wait_ready(self.node_namespaces(),
                                    {n: self.names.pod(n, DNS_POD) for n in self.dns.nodes},
                                    self._dns_ips, self.spec.ready_timeout, progress)
        for node in ready:
            self.kubelet.pod_running(addons.NAMESPACE, self.dns.pods[node].metadata.name, node,
                                     self._dns_all_ips[node], ["coredns"])
        self._dns_ready = ready
        self.timings["coredns_ready"] = round(self.dns.started_in or 0.0, 2)

    def dns_endpoints(self) -> dict[str, set[str]]:
        """kube-dns's ports as kube-proxy names them, each to reach every CoreDNS pod."""
        ips = {self._dns_ips[node] for node in self._dns_ready}
        return {f"{addons.NAMESPACE}/kube-dns:{port}": ips for port in ("dns", "dns-tcp")}

    def node_namespaces(self) -> dict[str, str]:
        return {n.name: self.names.node(n.name) for n in self.topology.nodes}

    def proxied_namespaces(self) -> dict[str, str]:
        """Where a kube-proxy runs: every worker, and the control-plane node."""
        return {**self.node_namespaces(), CONTROL_PLANE_NODE: self.control_plane.netns}

    def _report_pods(self, live: Topology) -> None:
        """Every pod's probes answer: the lab kubelet reports them Running and Ready, all at once
        as the kubelets of the nodes would (kubelet.py says what one at a time cost at 50 nodes)."""
        by_pod: dict[str, Endpoint] = {}
        for endpoint in live.endpoints:
            by_pod.setdefault(endpoint.pod, endpoint)  # a pod's first endpoint carries its IPs
        reports = []
        for name, pod in self._pods.items():
            node = pod["spec"]["nodeName"]
            endpoint = live.endpoint(f"{node}/host") if pod["spec"].get("hostNetwork") else by_pod[name]
            ips = [ip for _, ip in endpoint.addresses] or [endpoint.ip]
            reports.append((self.names.prefix, pod["metadata"]["name"], node, ips,
                            [c["name"] for c in pod["spec"]["containers"]]))
        self.kubelet.pods_running(reports)

    def _preflight(self) -> None:
        """Before anything exists, in one line each (exit 4): the host's tools and the upstream
        builds the lab runs (preflight.py), and the conflist filled in for every node."""
        preflight.check_host(self.spec.release, self.cni.install if self.cni else None)
        preflight.check_memory(len(self.topology.probes()), self.spec.nodes)
        if self.cni is not None:
            return  # the CNI's own install writes each node's conflist (_install_cni)
        # IPv6-only: ${POD_CIDR} is the node's IPv6 range (and ${NODE_IP} its IPv6 address)
        self.wiring.load(self.spec.conflist, {
            node.name: {"POD_CIDR": self.network.pod_cidrs(index)[0],
                        "NODE_IP": self.network.node_ips(index)[0],
                        "NODE_NAME": node.name, **({"POD_CIDR_V6": pod_cidr6(index)} if self.spec.dual else {})}
            for index, node in enumerate(self.topology.nodes, 1)}, {
            "the lab underlay": UNDERLAY, "the Service range": SERVICE_CIDR,
            **({"the lab's IPv6 underlay": UNDERLAY6, "the IPv6 Service range": SERVICE_CIDR6}
               if self.spec.has_ipv6 else {})})

    def _write_owner(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "sockets").mkdir(exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        cleanup.write_owner(self.state_dir)
        self.probes.write_token()

    def _build_world(self) -> None:
        """The underlay with every node wired (node_network.py), and the DNS upstream outside."""
        self.network.build(self.underlay)  # CoreDNS forwards to the resolver in the outside namespace
        self.dns = addons.ClusterDns(binary("coredns", self.spec.release), self.state_dir / "dns",
                                     [n.name for n in self.topology.nodes],
                                     releases.get(self.spec.release).coredns,
                                     addons.dns_addresses(self.spec.families))
        self.dns.start_upstream(self.names.outside)
        self.resolv.write_all()

    def sync_and_inject(self, live: Topology, chosen: tuple[Fault, ...], progress: Progress) -> None:
        """After the kube backend made the run's objects (--backend=kube): wait until every
        kube-proxy programs them (always: the first checks would otherwise race it), then inject
        ``chosen``."""
        self.proxies.wait_synced(live, self.proxied_namespaces(), self.names.prefix,
                                 self.spec.proxy_sync_timeout, progress, others=self.dns_endpoints(),
                                 control_plane_down=self.control_plane.exited)
        for fault in chosen:
            self.inject(fault, live, progress)

    def _inject_faults(self, live: Topology, progress: Progress) -> None:
        """After kube-proxy's first sync: a rule inserted now comes before its jumps, which it only
        adds when they are missing."""
        for fault in self.spec.faults:
            self.inject(fault, live, progress)

    # --- faults on a running lab ---

    def inject(self, fault: Fault, live: Topology, progress: Progress = lambda message: None) -> None:
        """Break the running lab as ``fault`` says (fault_injector.py)."""
        self.injector.inject(fault, live, progress)

    def revert(self, fault: Fault, live: Topology, progress: Progress = lambda message: None) -> None:
        """Take an injected fault back (fault_injector.py)."""
        self.injector.revert(fault, live, progress)

    def reach_through_api(self, endpoint: Endpoint, timeout: float) -> dict:
        """APISERVER-POD: the lab's API server reaches a pod's probe at its pod IP through its pod
        proxy, as on a live cluster (the control plane routes to the pod CIDRs via the nodes)."""
        pod = self._pods[endpoint.name]["metadata"]["name"]
        return reach_through_api(self.api, self.names.prefix, pod, CONTROL_PORT, timeout)

    def change_service(self, name: str, patch: dict | None) -> dict:
        """One of the run's Services read, or changed by a JSON merge patch; its spec as now."""
        return self.service(self.names.prefix, name, patch)

    def service(self, namespace: str, name: str, patch: dict | None = None) -> dict:
        try:
            return self.api.service_spec(namespace, name, patch)
        except ApiException as exc:
            raise BackendError(f"lab: cannot {'read' if patch is None else 'patch'} Service "
                               f"{namespace}/{name}: {status_message(exc)}") from None

    # --- the lab kubelet's runtime, for pods made while the run goes on (runtime_pods.py) ---

    def wire_pod(self, node: str, pod: str, namespace: str | None = None,
                 port_mappings: list[dict] | None = None) -> tuple[PodSandbox, str | list[str]]:
        """A namespace for the pod, wired by the node's CNI (loopback, then the conflist, with its
        hostPorts as portmap's capability); its IP (its IPs, one per family, with IPv6)."""
        sandbox, ips = self.wiring.wire(node, pod, namespace or self.names.prefix, port_mappings)
        return sandbox, (ips if self.spec.has_ipv6 else ips[0])

    def node_address(self, node: str) -> str | list[str]:
        """The node's address (one per family on a dual-stack lab), a hostNetwork pod's IPs."""
        ips = self.network.node_ips(self.network.index(node))
        return ips if self.spec.has_ipv6 else ips[0]

    def pod_resolv_conf(self, namespace: str, node: str) -> Path:
        """The resolv.conf kubelet writes for a ClusterFirst pod of ``namespace`` (pod_dns.py)."""
        return self.resolv.for_namespace(namespace, node)

    def unwire_pod(self, node: str, sandbox: PodSandbox) -> str | None:
        """CNI DEL and the namespace removed; what went wrong, or None."""
        return self.wiring.unwire(node, sandbox)

    def volume_dir(self, namespace: str, pod: str, uid: str, volume: str | None = None) -> Path:
        """Where the lab kubelet keeps a pod's volumes (root only; gone with the state directory),
        or one of them, made on the way."""
        directory = self.state_dir / "volumes" / f"{namespace}_{pod}_{uid[:8]}"
        if volume is None:
            return directory
        (directory / volume).mkdir(mode=0o700, parents=True, exist_ok=True)
        return directory / volume

    def runtime_socket(self, pod: str, container: str) -> Path:
        return self.probes.runtime_socket(pod, container)

    def runtime_channel(self, pod: str, container: str) -> UnixSocketChannel:
        return self.probes.runtime_channel(pod, container)

    def start_container(self, where: str, resolv_conf: Path | None, pod: str, container: str,
                        args: list[str], script: Path = PROBE_SCRIPT,
                        flags: tuple[str, ...] = ("-I", "-S")) -> subprocess.Popen:
        """The agent ``script`` (the probe image's entrypoint, or the file a stock Python is told
        to run) with the container's args, in namespace ``where`` (the pod's, or the node's for a
        hostNetwork pod); the lab reaches it on a control socket of its own."""
        return self.probes.spawn(where, resolv_conf, f"rt_{pod}_{container}",
                                 [*args, "--control", f"unix:{self.runtime_socket(pod, container)}"],
                                 script, flags)

    def stop_process(self, process: subprocess.Popen) -> None:
        stop_process(process)
        for running in (self.probes.processes, self.cni.processes if self.cni else []):
            if process in running:
                running.remove(process)

    def start_pod(self, name: str, node: str, role: str) -> str:
        """A probe pod made through the API server while the run goes on; its IP once Ready."""
        return pods.start_pod(self.api, self.names.prefix, pods.probe_pod(self._objects, name, node, role),
                              self.spec.ready_timeout)

    def delete_pod(self, name: str) -> None:
        pods.delete_pod(self.api, self.names.prefix, name)

    def metadata(self) -> dict:
        meta = {"lab_prefix": self.names.prefix, "namespace": self.names.prefix,
                "kubernetes_service_ip": addons.dns_addresses(self.spec.families).kubernetes,
                "cluster_dns": addons.dns_addresses(self.spec.families).dns,
                "lab_nodes": self.spec.nodes, "lab_control_plane_node": CONTROL_PLANE_NODE,
                "overlay": self.cni.install.name if self.cni else self.spec.overlay,
                "lab_pods_per_node": self.spec.pods_per_node,
                "conflist": "each node's /etc/cni/net.d, as the CNI's install wrote it" if self.cni
                else str(self.spec.conflist),
                "cni_plugins": self.wiring.plugins(), "lab_faults": [f.name for f in self.spec.faults],
                "kubernetes_version": self.control_plane.version,
                "proxy_mode": self.spec.proxy_mode, "lab_timings": dict(self.timings),
                "lab_kubelet_missed_heartbeats": self.kubelet.missed_heartbeats if self.kubelet else 0,
                "lab_kubelet_nodes_mended": dict(self.kubelet.mended) if self.kubelet else {},
                "lab_kubelet_pod_problems": list(self.runtime_pods.errors) if self.runtime_pods else []}
        if self.cni is not None:
            install = self.cni.install
            meta["lab_cni_install"] = {"cni": install.name, "components": {
                c: self._component_version(c) for c in sorted(install.components())},
                "changed_from_upstream": list(install.changes)}
            meta["lab_cni_logs"] = [f"logs/{name}" for name in self.cni.log_names()]
            if self.cni.ready_in is not None:
                meta["lab_timings"][f"{install.name}_ready"] = round(self.cni.ready_in, 2)
        if self.control_plane.started_in is not None:
            meta["lab_timings"]["control_plane_up"] = round(self.control_plane.started_in, 2)
        return meta

    def _component_version(self, name: str) -> str:
        from ...upstream.components import COMPONENTS
        return COMPONENTS[name].version(releases.get(self.spec.release))

    def memory(self) -> dict[str, int]:
        """Resident bytes of the upstream processes serving the lab (the control plane's, each
        node's kube-proxy), for the README's figures."""
        return {**self.control_plane.memory(), **(self.dns.memory() if self.dns else {}),
                **{f"kube-proxy {n}": rss for n, rss in (self.proxies.memory() if self.proxies else {}).items()}}

    # --- teardown ---

    def teardown(self, hurry: Callable[[], bool] = lambda: False) -> list[str]:
        """Stop probes, CNI DEL every pod, delete every namespace and file of the run.

        Works from any point of a failed build; returns what could not be removed cleanly. In a
        hurry (an interrupted run, Ctrl-C during teardown) CNI DEL is skipped: what the plugins
        would release (IPAM files, portmap rules, veths) lives in the run's own namespaces and
        state directory, which are removed anyway.
        """
        problems = []
        self._stop_building.set()
        self.control_plane.abandon()  # a start still under way in its thread stops at its next step
        if self._control_plane_thread is not None:
            self._control_plane_thread.join(timeout=15)
        if self.runtime_pods:
            self.runtime_pods.stop()
        if self.kubelet:
            self.kubelet.stop()
        daemons = self.cni.processes if self.cni else []
        for process in [*self.probes.processes, *daemons]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.probes.processes, *daemons]:
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=3)
        if self.dns:
            problems += self.dns.stop()
        if hurry():
            problems.append("CNI DEL skipped for every pod: teardown was asked to hurry")
        else:
            problems += self.wiring.delete_all(stop=hurry)
        if self.proxies:
            problems += self.proxies.stop()
        if self.api:
            self.api.close()
        problems += self.control_plane.stop()
        problems += cleanup.remove_run(self.names.prefix)
        problems += hostlimits.release(self.names.prefix)
        return problems

"""A live cluster as a Backend: deploy the probes into a fresh namespace, find them, reach them
through the API server, delete the namespace at the end."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from kubernetes.client import V1Namespace
from kubernetes.client.exceptions import ApiException

from ...plan import DUO_CONTAINERS, probe_plan
from ...probing.channel import ProbeChannel
from ...profiles import Profile
from ...services import picked_backends
from ...topology import (IP_FAMILY_CHOICES, KUBERNETES_SERVICE, NODEPORT, STANDALONE, Endpoint, Topology,
                         family_of)
from ..base import Backend, BackendError, Progress
from .api import KubeApi, status_message
from . import channels
from .channel import PodProxyChannel, reach_through_api
from .exec_channel import ExecChannel
from .cni import verify_cni
from . import pods, policies, services_ready
from .policies import allow_all_policy
from .discovery import cluster_facts
from . import admission, hostports, lease
from .hostports import HostPorts, with_host_ports
from .manifests import (AGENT_COMMAND, AGENT_CONFIGMAP, CONTROL_PORT, HOST_ECHO_PORT, IMAGE_AGENT_COMMAND, MANAGED_BY, TOKEN_DIR,
                        DeploySpec, render, render_endpoint_slices, render_namespace, run_setup)
from .nodes import ClusterNode, NodeChoice, lost, select_nodes, with_families
from .readiness import wait_ready

NODE_PORT_RANGE = range(30000, 32768)
NAMESPACE_GONE_BOUND = 60.0  # s close() waits for the run's namespace to be gone
LOST_NODE_LOOK = 10.0  # s between looks at the tested nodes' Ready conditions while items are judged
NODE_PORT_TRIES = 5  # a nodePort another run took between our list and our create: chosen again
RUN_LABEL = "netconform.io/run"  # as manifests.DeploySpec.labels puts it on the run's namespace


@dataclass
class KubeOptions:
    kubeconfig: Path | None = None
    context: str | None = None
    image: str | None = None  # None: the agent by ConfigMap on a stock Python (manifests.STOCK_PYTHON)
    image_pull_secret: str | None = None  # [namespace/]name of a Secret to copy into the run
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict] = field(default_factory=list)
    namespace_prefix: str = "netconform"
    keep: bool = False
    ready_timeout: float = 180.0
    pods_per_node: int = 2
    ip_family: str | None = None  # --ip-family: what the user expects the cluster to have (None: as found)
    image_registry: str | None = None  # --image-registry: pull the probes' image from this mirror
    allow_policy: bool = False  # --allow-policy: an allow-all NetworkPolicy in the run's namespace
    channel: str = "auto"  # --channel: how the harness reaches the probes (proxy, exec, or auto)


class KubeBackend(Backend):
    name = "kube"

    def __init__(self, profile: Profile, options: KubeOptions, run_id: str | None = None) -> None:
        self.profile = profile
        self.options = options
        self.run_id = run_id or secrets.token_hex(3)
        self.namespace = f"{options.namespace_prefix}-{self.run_id}"
        self.api: KubeApi | None = None
        self.nodes: list[ClusterNode] = []
        self._choice: NodeChoice | None = None  # the chosen nodes, and why each other is not
        self.policies: policies.PolicyScan | None = None  # read before the first check
        self.created = False
        self._planned: Topology | None = None
        self._channels: dict[str, tuple[str, int, str]] = {}  # endpoint name -> (pod, control port, container)
        self.channel_kind = "proxy"  # how the probes are reached: "proxy" or "exec" (channels.py)
        self.channel_reason = ""  # why (auto's choice)
        self._meta: dict = {}
        self._node_items: list = []  # the chosen nodes' Node objects, for what they report of themselves
        self._objects: list[dict] = []  # the run's objects as rendered (a pod made later is one of them)
        self._deleted = False  # its namespace was deleted at close (and is waited for)
        self._setup_requests: dict[str, int] = {}  # the API requests made before the first check
        self.token = secrets.token_urlsafe(32)  # the probes answer only requests that carry it
        self.ports = HostPorts()  # the ports this run takes on every node (hostports.py)
        self.lease: lease.RunLease | None = None  # renewed while the run lives (--cleanup-only reads it)
        self._node_ports: dict[str, int] = {}  # Service name -> its nodePort
        self._lost: dict[str, str] = {}  # tested nodes gone not Ready during the run -> why (sticky)
        self._chosen_at = 0.0  # monotonic time the nodes were chosen (all Ready)
        self._looked_at_nodes = 0.0  # monotonic time of the last look
        self._seen_ready: dict[str, float] = {}  # tested node -> monotonic time a look last saw it Ready

    def _connect(self) -> KubeApi:
        if self.api is None:
            self.api = KubeApi(self.options.kubeconfig, self.options.context)
        return self.api

    def plan(self) -> Topology:
        if self._planned is None:
            api = self._connect()
            items = api.call("list nodes", api.core.list_node).items
            self._choice = select_nodes(items, self.options.node_selector, self.options.tolerations)
            self._chosen_at = time.monotonic()  # every chosen node was Ready then
            self.nodes = self._choice.chosen
            chosen = {n.name for n in self.nodes}
            self._node_items = [item for item in items if item.metadata.name in chosen]
            planned = probe_plan([n.name for n in self.nodes], self.options.pods_per_node,
                                 outside=False, host_port=HOST_ECHO_PORT)
            self._planned = with_families(planned, self._node_items, self.nodes)
            expected = IP_FAMILY_CHOICES.get(self.options.ip_family)
            if expected and expected != self._planned.cluster_families:
                raise BackendError(
                    f"--ip-family={self.options.ip_family} expects {' and '.join(expected)}, but the "
                    f"chosen nodes' InternalIPs are {' and '.join(self._planned.cluster_families)} "
                    f"({', '.join(n.name + ' ' + ' '.join(n.internal_ips) for n in self.nodes[:3])})")
        return self._planned

    def start(self, progress: Progress) -> Topology:
        planned, api = self.plan(), self._connect()
        found = verify_cni(api, self.profile)
        progress(f"kube: {api.host}: {len(self.nodes)} nodes; CNI {self.profile.name}"
                 f"{f' (DaemonSet {found})' if found else ''}")
        if self._choice.excluded:
            progress(f"kube: {len(self._choice.excluded)} node(s) excluded: {self._choice.listed()}")
        node_ports = self._node_ports = self._free_node_ports(planned)
        held = self._held_host_ports()
        spec = DeploySpec(self.run_id, self.namespace, self.options.image, self.options.pods_per_node,
                          self.options.node_selector, self.options.tolerations,
                          self.options.image_pull_secret.rpartition("/")[2]
                          if self.options.image_pull_secret else None, self.options.image_registry,
                          host_ports=self._free_host_ports(held))
        node_ips = {n.name: n.internal_ip for n in self.nodes}
        self._deploy([render_namespace(spec)], progress)
        self.lease = lease.RunLease(api, self.namespace, self.run_id)
        self.lease.create()
        spec = replace(spec, host_ports=self._settle_host_ports(spec.host_ports, held, progress))
        self.ports = spec.host_ports
        progress(f"kube: host ports {self.ports.claim} (hostPort, shared hostPort, the host probe's echo "
                 f"and control), claimed in {self.namespace}'s annotation {hostports.CLAIM}")
        planned = with_host_ports(planned, self.ports)
        self._objects = render(spec, planned, node_ports, node_ips)
        _, *rest = self._objects
        allow = [allow_all_policy(self.namespace, spec.labels)] if self.options.allow_policy else []
        self._deploy([*allow, *run_setup(spec, self.token), *rest], progress)
        node_ports = self._node_ports  # as created: one another run took meanwhile was chosen again
        roles = self.options.pods_per_node + 2  # probe pods, duo, host
        standalone = len(planned.of_kind(STANDALONE))  # the pod with a hostname, the hostPort sharers
        ready = wait_ready(api, self.namespace, roles * len(self.nodes) + standalone, self.options.ready_timeout,
                           progress, keep=self.options.keep)
        live = self._discover(planned, ready, node_ports)
        picked = picked_backends(live)
        self.channel_kind, self.channel_reason = channels.choose(self.options.channel, live, self._channel_of, progress)
        pods.label_backends(api, self.namespace, [self._channels[name][0] for name in picked])
        progress(f"kube: {len(picked)} pods labelled as the Services' backends")
        self._deploy(render_endpoint_slices(spec, live), progress)
        # before the waits for the Services: under a default-deny, what they wait for is named
        self.policies = policies.scan(api, self.namespace, self.options.allow_policy)
        self._say_policies(progress)
        services_ready.wait_endpoint_slices(api, self.namespace, live, self.options.ready_timeout, progress)
        services_ready.wait_services_answer(live, self.channel, progress)
        self._setup_requests = dict(api.requests)  # what the checks ask comes after these
        self._meta = {"api_server": api.host, "namespace": self.namespace, "cni_daemonset": found,
                      "probe_image": spec.pulled_image if self.options.image else
                      f"{spec.pulled_image} (the agent by ConfigMap {AGENT_CONFIGMAP})",
                      "host_ports": self.ports.claim, "channel": self.channel_kind,
                      **({"channel_reason": self.channel_reason} if self.channel_reason else {}),
                      **cluster_facts(api, self._node_items, found), **self.policies.metadata()}
        return live

    def _say_policies(self, progress: Progress) -> None:
        scan = self.policies
        if scan.blocking:
            progress(f"kube: {len(scan.blocking)} policy(ies) may block the run's traffic: "
                     f"{policies.describe(scan.blocking)}; a failed item is an error naming them, not a "
                     f"network failure{' (--allow-policy lifts the namespaced ones)' if scan.liftable else ''}")
        for unreadable in scan.unreadable:
            progress(f"kube: cannot list {unreadable}: such policies, if any, are unknown to this run")

    def lost_nodes(self, final: bool = False) -> dict[str, str]:
        """The tested nodes that went not Ready during the run: looked at every LOST_NODE_LOOK s
        at most (and at once when ``final``), and remembered once seen (its failures before it
        came back are suspect too). An API server that does not answer leaves what was known."""
        if self.api is None or not self.nodes or self._deleted:
            return dict(self._lost)
        if final or time.monotonic() - self._looked_at_nodes >= LOST_NODE_LOOK:
            self._looked_at_nodes = time.monotonic()
            try:
                items = self.api.call("list nodes", self.api.core.list_node, resource_version="0",
                                      _request_timeout=(3.0, 10.0)).items  # "0": the API server's cache
            except (BackendError, ApiException):
                return dict(self._lost)
            gone = lost(items, {n.name for n in self.nodes})
            for name, why in gone.items():
                self._lost.setdefault(name, why)
            self._seen_ready.update({n.name: self._looked_at_nodes for n in self.nodes if n.name not in gone})
        return dict(self._lost)

    def last_seen_ready(self, node: str) -> float:
        """When a look last saw ``node`` Ready (monotonic): the run chose it Ready, so at worst then."""
        return self._seen_ready.get(node, self._chosen_at)

    def blocking_policies(self) -> str | None:
        if not self.policies or not self.policies.blocking:
            return None
        return (f"{policies.describe(self.policies.blocking)} may block this traffic, and traffic a policy "
                f"blocks is not a network failure"
                f"{'; --allow-policy lifts the namespaced ones' if self.policies.liftable else ''}")

    def _held_host_ports(self) -> set[int]:
        """The ports pods on the chosen nodes hold there (hostPorts, hostNetwork ports)."""
        api = self._connect()
        pods_now = api.call("list pods", api.core.list_pod_for_all_namespaces, resource_version="0",
                            field_selector="status.phase!=Succeeded,status.phase!=Failed").items
        return hostports.declared_ports(pods_now, {n.name for n in self.nodes})

    def _run_namespaces(self) -> list:
        return run_namespaces(self._connect())

    def _free_host_ports(self, held: set[int]) -> HostPorts:
        """A block of host ports no pod on the chosen nodes holds and no other run claims."""
        claimed = list(hostports.claims(self._run_namespaces(), self.namespace).values())
        block = hostports.choose(held, claimed)
        if block is None:
            raise BackendError(f"no free block of host ports: all {hostports.BLOCKS} are held by pods on "
                               f"the chosen nodes or claimed by other runs ({len(claimed)} run namespaces "
                               f"carry {hostports.CLAIM}); --cleanup-only removes those of dead runs")
        return block

    def _settle_host_ports(self, mine: HostPorts, held: set[int], progress: Progress) -> HostPorts:
        """Keep the claimed block, or move off one another run has settled on, once every run made
        earlier has settled its own (hostports.ahead); then mark it settled. Bounded: an earlier
        run that never settles counts as settled after hostports.SETTLE_BOUND s."""
        patience = time.monotonic() + hostports.SETTLE_BOUND
        said = False
        while True:
            runs = self._run_namespaces()
            own = next((ns for ns in runs if ns.metadata.name == self.namespace), None)
            if own is None:
                raise BackendError(f"namespace {self.namespace} vanished while the run chose its host ports")
            waiting, final = hostports.ahead(own, runs, patient=time.monotonic() < patience)
            if not waiting and not hostports.overlaps(mine, final):
                break
            if not waiting:
                moved = hostports.choose(held, list(hostports.claims(runs, self.namespace).values()))
                if moved is None:
                    raise BackendError(f"no free block of host ports: another run claimed {mine.claim} "
                                       f"first, and all {hostports.BLOCKS} blocks are taken")
                progress(f"kube: host ports {mine.claim} were claimed by an earlier run; this run takes "
                         f"{moved.claim}")
                self._annotate({hostports.CLAIM: moved.claim})
                mine = moved
                continue
            if not said:
                progress(f"kube: waiting for {', '.join(waiting)} to settle {'its' if len(waiting) == 1 else 'their'} "
                         f"host ports (made at the same time as this run; at most "
                         f"{hostports.SETTLE_BOUND:.0f} s, then taken as settled)")
                said = True
            time.sleep(0.5)
        self._annotate({hostports.SETTLED: "true"})
        return mine

    def _annotate(self, annotations: dict[str, str]) -> None:
        api = self._connect()
        try:
            api.call("annotate the run's namespace", api.core.patch_namespace, self.namespace,
                     {"metadata": {"annotations": annotations}})
        except ApiException as exc:
            raise BackendError(f"cannot annotate namespace {self.namespace}: {status_message(exc)}") from None

    def _used_node_ports(self) -> set[int]:
        """The nodePorts every Service of the cluster holds now."""
        api = self._connect()
        return {p.node_port for s in api.call("list Services", api.core.list_service_for_all_namespaces).items
                for p in (s.spec.ports or []) if p.node_port}

    def _free_node_ports(self, planned: Topology) -> dict[str, int]:
        """The services' preferred NodePorts where free, else the first free ones: TCP and UDP of
        a Service share one nodePort, which only an explicit choice guarantees."""
        used = self._used_node_ports()
        chosen = {}
        for service in planned.services.values():
            if service.node_port:
                port = service.node_port if service.node_port not in used else \
                    next(p for p in NODE_PORT_RANGE if p not in used)
                used.add(port)
                chosen[service.name] = port
        return chosen

    def _deploy(self, objects: list[dict], progress: Progress) -> None:
        api = self._connect()
        create = {"Namespace": lambda o: api.core.create_namespace(o),
                  "DaemonSet": lambda o: api.apps.create_namespaced_daemon_set(self.namespace, o),
                  "Pod": lambda o: api.core.create_namespaced_pod(self.namespace, o),
                  "Secret": lambda o: api.core.create_namespaced_secret(self.namespace, o),
                  "ConfigMap": lambda o: api.core.create_namespaced_config_map(self.namespace, o),
                  "Service": lambda o: api.core.create_namespaced_service(self.namespace, o),
                  "EndpointSlice": lambda o: api.discovery.create_namespaced_endpoint_slice(self.namespace, o),
                  "NetworkPolicy": lambda o: api.custom.create_namespaced_custom_object(
                      "networking.k8s.io", "v1", self.namespace, "networkpolicies", o)}
        for obj in objects:
            what = f"create {obj['kind']} {obj['metadata']['name']}"
            for attempt in range(1, NODE_PORT_TRIES + 1):
                try:
                    api.call(what, create[obj["kind"]], obj)
                    break
                except ApiException as exc:
                    if attempt == NODE_PORT_TRIES or not self._node_port_taken(obj, exc):
                        raise BackendError(f"cannot {what} in {self.namespace}: "
                                           f"{admission.naming(status_message(exc))}") from None
            if obj["kind"] == "Namespace":
                self.created = True
                self._copy_pull_secret()
        progress(f"kube: namespace {self.namespace}: {len(objects)} objects created")

    def _node_port_taken(self, obj: dict, exc: ApiException) -> bool:
        """A Service's nodePort another run (or anyone) took since the run chose it: choose it
        again among the free ones and say so (True: try the create once more)."""
        if obj["kind"] != "Service" or exc.status != 422 or "already allocated" not in status_message(exc):
            return False
        used = self._used_node_ports()
        mine = {p for name, p in self._node_ports.items() if name != obj["metadata"]["name"]}
        port = next((p for p in NODE_PORT_RANGE if p not in used | mine), None)
        if port is None:
            return False
        for entry in obj["spec"]["ports"]:
            if "nodePort" in entry:
                entry["nodePort"] = port
        self._node_ports[obj["metadata"]["name"]] = port
        return True

    def _copy_pull_secret(self) -> None:
        if not self.options.image_pull_secret:
            return
        api = self._connect()
        source_ns, _, name = self.options.image_pull_secret.rpartition("/")
        try:
            secret = api.call("read the image pull secret", api.core.read_namespaced_secret,
                              name, source_ns or "default")
            api.call("copy the image pull secret", api.core.create_namespaced_secret, self.namespace,
                     {"apiVersion": "v1", "kind": "Secret", "type": secret.type, "data": secret.data,
                      "metadata": {"name": name, "namespace": self.namespace}})
        except ApiException as exc:
            raise BackendError(f"--image-pull-secret {self.options.image_pull_secret}: "
                               f"{status_message(exc)}") from None

    def _discover(self, planned: Topology, pods: list, node_ports: dict[str, int]) -> Topology:
        """Addresses from the API: pod IPs, node InternalIPs, ClusterIPs; and each probe's pod."""
        api = self._connect()
        pod_ips = {}
        for pod in pods:
            role, node = pod.metadata.labels["netconform.io/role"], pod.spec.node_name
            # every family's address (status.podIPs, the primary first), or the one podIP
            pod_ips[f"{node}/{role}"] = [p.ip for p in pod.status.pod_ips or []] or pod.status.pod_ip
            if role == "host":
                self._channels[f"{node}/host"] = (pod.metadata.name, self.ports.host_control, "probe")
            elif role == "duo":
                for index, (container, _) in enumerate(DUO_CONTAINERS):
                    self._channels[f"{node}/duo/{container}"] = (pod.metadata.name, CONTROL_PORT + index, container)
            else:
                self._channels[f"{node}/{role}"] = (pod.metadata.name, CONTROL_PORT, "probe")
        missing = sorted({e.name for e in planned.probes()} - set(self._channels))
        if missing:
            raise BackendError(f"no ready probe pod for {', '.join(missing)}")
        services = api.call("list Services", api.core.list_namespaced_service, self.namespace).items
        cluster_ips = {s.metadata.name: s.spec.cluster_ips or s.spec.cluster_ip for s in services
                       if s.spec.cluster_ip not in (None, "None")}  # headless and ExternalName: none
        cluster_ips[KUBERNETES_SERVICE] = self._kubernetes_service_ip()  # the API server's own
        live = planned.with_addresses(pod_ips, {n.name: list(n.internal_ips) or n.internal_ip for n in self.nodes},
                                      cluster_ips)
        live.meta.update(namespace=self.namespace, kubernetes_service_ip=cluster_ips[KUBERNETES_SERVICE])
        live.endpoints = [replace(e, port=node_ports[e.serves]) if e.kind == NODEPORT else e
                          for e in live.endpoints]
        live.services = {name: replace(s, node_port=node_ports.get(name))
                         for name, s in live.services.items()}
        # every probe has an address in each family the checks run in (a pod without its IPv6
        # podIP on a dual-stack cluster would make every IPv6 item of it an error): said at once
        lacking = [f"{e.name} ({family})" for e in live.probes() for family in live.families
                   if e.kind != "outside" and not e.address_in(family) and not
                   (not e.addresses and e.ip and family_of(e.ip) == family)]
        if lacking:
            raise BackendError(f"the checks run in {' and '.join(live.families)} (the nodes' InternalIPs), "
                               f"but the cluster gave no address in that family to {', '.join(lacking[:3])}"
                               f"{f' and {len(lacking) - 3} more' if len(lacking) > 3 else ''}")
        return live

    def _kubernetes_service_ip(self) -> str | None:
        """The ClusterIP of default/kubernetes (DNS-SVC resolves ``kubernetes.default``); None
        when it cannot be read (the DNS items then say so, as errors)."""
        api = self._connect()
        try:
            return api.call("read Service default/kubernetes", api.core.read_namespaced_service,
                            "kubernetes", "default").spec.cluster_ip
        except ApiException:
            return None

    def change_service(self, name: str, patch: dict | None) -> dict:
        try:
            return self._connect().service_spec(self.namespace, name, patch)
        except ApiException as exc:
            raise BackendError(f"cannot change Service {self.namespace}/{name}: {status_message(exc)}") from None

    def start_pod(self, name: str, node: str, role: str) -> str:
        return pods.start_pod(self._connect(), self.namespace, pods.probe_pod(self._objects, name, node, role),
                              self.options.ready_timeout)

    def delete_pod(self, name: str) -> None:
        pods.delete_pod(self._connect(), self.namespace, name)

    def channel(self, endpoint: Endpoint) -> ProbeChannel:
        return self._channel_of(endpoint, self.channel_kind)

    def _channel_of(self, endpoint: Endpoint, kind: str) -> ProbeChannel:
        pod, port, container = self._channels[endpoint.name]
        if kind == "exec":
            agent = AGENT_COMMAND if self.options.image is None else IMAGE_AGENT_COMMAND
            return ExecChannel(endpoint.name, self._connect(), self.namespace, pod, container, port, agent,
                               f"{TOKEN_DIR}/token")
        return PodProxyChannel(endpoint.name, self._connect(), self.namespace, pod, port, self.token)

    def reach_through_api(self, endpoint: Endpoint, timeout: float) -> dict:
        pod, port, _ = self._channels[endpoint.name]
        return reach_through_api(self._connect(), self.namespace, pod, port, timeout)

    def close(self, hurry=lambda: False) -> list[str]:
        """Delete the run's namespace (everything in it goes with it), unless --keep, and wait
        (bounded; not when asked to hurry) until it is gone: the next run on the cluster would
        otherwise find this one's pods still holding the probes' hostPorts. Then let the API
        client's connections go."""
        try:
            if self.lease is not None:
                self.lease.release()  # the run is over: a namespace kept with --keep is not a live run
            problems = self._delete_namespace()
            if not problems and self._deleted and not hurry():
                problems = self._wait_namespace_gone(hurry)
            return problems
        finally:
            if self.api is not None:
                self.api.close()

    def _wait_namespace_gone(self, hurry) -> list[str]:
        deadline = time.monotonic() + NAMESPACE_GONE_BOUND
        while time.monotonic() < deadline and not hurry():
            try:
                self.api.call("read the namespace", self.api.core.read_namespace, self.namespace,
                              _request_timeout=(2.0, 5.0))
            except ApiException as exc:
                if exc.status == 404:
                    return []
            except BackendError:
                pass  # one lost answer: ask again
            time.sleep(0.5)
        return [] if hurry() else [f"namespace {self.namespace} still terminating after "
                                   f"{NAMESPACE_GONE_BOUND:.0f}s; the cluster removes it on its own"]

    def _delete_namespace(self) -> list[str]:
        if not self.created or self.api is None:
            return []
        self.created = False
        if self.options.keep:
            return []
        try:
            self._deleted = True
            self.api.call("delete the namespace", self.api.core.delete_namespace, self.namespace,
                          propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                return [f"namespace {self.namespace}: {status_message(exc)}"]
        except BackendError as exc:
            return [f"namespace {self.namespace}: {exc}"]
        return []

    def node_coverage(self, topology: Topology) -> dict:
        return self._choice.coverage() if self._choice is not None else super().node_coverage(topology)

    def metadata(self) -> dict:
        meta = {"backend": self.name, "cni": self.profile.name, **self._meta,
                **(self.lease.metadata() if self.lease else {})}
        if self.api is not None:
            meta["api_requests"] = dict(self.api.requests)
            meta["api_requests_setup"] = dict(self._setup_requests)
        return meta


def cleanup_runs(options: KubeOptions) -> tuple[list[str], list[str]]:
    """--cleanup-only: delete the namespaces of runs that are over (kept with --keep, or crashed),
    found by their labels: their Lease released or expired, or none made within a lease time of
    the namespace. A live run's namespace is left, with why. Returns (deleted, left)."""
    with KubeApi(options.kubeconfig, options.context) as api:
        runs = run_namespaces(api)
        deleted, left = [], []
        at = api.server_time()  # the server's clock: the Leases' times are its own
        if at is None:
            raise BackendError(f"the API server at {api.host} gave no time (no Date header): without it "
                               "a live run cannot be told from a dead one, so nothing was deleted")
        for namespace in runs:
            name = namespace.metadata.name
            alive = lease.liveness(namespace, _lease_of(api, name), at)
            if alive:
                left.append(f"{name} ({alive})")
                continue
            try:
                api.call(f"delete namespace {name}", api.core.delete_namespace, name,
                         propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    raise BackendError(f"cannot delete namespace {name}: {status_message(exc)}") from None
            deleted.append(name)
    return deleted, left


def _lease_of(api: KubeApi, namespace: str):
    """The run's Lease in ``namespace``, or None when it has none."""
    try:
        return api.call(f"read Lease {namespace}/{lease.NAME}", api.coordination.read_namespaced_lease,
                        lease.NAME, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise BackendError(f"cannot read Lease {namespace}/{lease.NAME}: {status_message(exc)}") from None


def run_namespaces(api: KubeApi) -> list:
    """Every run's namespace on the cluster, live or not, found by the run labels."""
    return [ns for ns in api.call("list namespaces", api.core.list_namespace, label_selector=MANAGED_BY).items
            if _run_namespace(ns)]


def _run_namespace(namespace: V1Namespace) -> bool:
    """A namespace a run created: both run labels, and named <prefix>-<run id> after the run label,
    so a namespace someone merely labelled managed-by=netconform is not deleted."""
    labels = namespace.metadata.labels or {}
    run_id = labels.get(RUN_LABEL)
    return bool(run_id) and namespace.metadata.name.endswith(f"-{run_id}")

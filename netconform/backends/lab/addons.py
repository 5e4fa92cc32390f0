"""Cluster DNS on the lab, as a kubeadm cluster has it, and the resolver outside the cluster.

kubeadm's CoreDNS objects (its RBAC, its Corefile in a ConfigMap, the ``kube-dns`` Service and
its Deployment: ``manifests/kube/addons/coredns.yaml.j2``, copied from the pinned kubeadm source)
are created in the API server. The Deployment's pods are bound to the first nodes, one per node
(its anti-affinity spreads them so), and the lab runs them with the pinned CoreDNS build; the
EndpointSlice controller and kube-proxy then serve them behind ``kube-dns`` like any pods.

A CoreDNS container runs as kubelet would run it: in its pod's network namespace, chrooted into a
root of its own holding what its pod spec gives it (the ConfigMap at /etc/coredns, a projected
service-account token bound to the pod, /etc/resolv.conf of dnsPolicy Default: the node's) and
the in-cluster environment (KUBERNETES_SERVICE_HOST/PORT: it reaches the API server through the
``kubernetes`` Service, as in any cluster). The binary is bind-mounted into that root inside the
mount namespace ``ip netns exec`` makes, so the mount ends with the process.

The node's resolv.conf names the *upstream*: a second CoreDNS in the outside namespace, serving a
test zone (``netconform.test``) from a zone file and answering NXDOMAIN for every other name, as
a resolver of the internet does for a name that does not exist, so that
``forward . /etc/resolv.conf`` and ExternalName targets resolve with no internet and no DNS
answered by netconform code.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml
from kubernetes.client.exceptions import ApiException

from ...profiles import MANIFESTS
from ...services import EXTERNAL_NAME
from ..base import BackendError, Progress
from ..kube.api import KubeApi, status_message
from . import netns
from .controlplane import processes
from .naming import KUBERNETES_SERVICE_IP, KUBERNETES_SERVICE_IP6, OUTSIDE_IP, OUTSIDE_IP6
from .objects import bound_pod

DNS_IP = "10.96.0.10"  # kubeadm's: the tenth address of the Service range
DNS_IP6 = "fd00:10:96::a"  # the same in an IPv6-only lab's Service range


@dataclass(frozen=True)
class DnsAddresses:
    """The addresses cluster DNS is reached at and reaches, in the cluster's primary family: the
    kube-dns ClusterIP, the ``kubernetes`` Service CoreDNS talks to, the upstream it forwards to."""

    dns: str = DNS_IP
    kubernetes: str = KUBERNETES_SERVICE_IP
    upstream: str = OUTSIDE_IP


IPV4_DNS = DnsAddresses()
IPV6_DNS = DnsAddresses(DNS_IP6, KUBERNETES_SERVICE_IP6, OUTSIDE_IP6)


def dns_addresses(families: tuple[str, ...]) -> DnsAddresses:
    return IPV4_DNS if families[0] == "ipv4" else IPV6_DNS
DOMAIN = "cluster.local"
NAMESPACE = "kube-system"
TEST_ZONE = EXTERNAL_NAME.split(".", 1)[1]  # the zone of the ExternalName Service's target
REPLICAS = 2  # kubeadm's
READY_PORT = 8181  # the `ready` plugin: 200 once the kubernetes plugin has synced with the API
STOP_GRACE = 0.2  # s
UNREACHED_GRACE = 5.0  # s a node may fail to reach its ready CoreDNS pod before it is left not Ready
TEMPLATE = MANIFESTS / "kube" / "addons" / "coredns.yaml.j2"
TOKEN_SECONDS = 3600
UPSTREAM_COREFILE = f"""{TEST_ZONE}:53 {{
    errors
    file /etc/coredns/db.{TEST_ZONE}
}}
.:53 {{
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""
ZONE = f"""$ORIGIN {TEST_ZONE}.
@        3600 IN SOA ns.{TEST_ZONE}. hostmaster.{TEST_ZONE}. 1 7200 3600 1209600 3600
@        3600 IN NS  ns.{TEST_ZONE}.
ns       3600 IN A   {OUTSIDE_IP}
{EXTERNAL_NAME.split(".")[0]:<8} 3600 IN A   {OUTSIDE_IP}
"""


def render(replicas: int, image: str, domain: str = DOMAIN, dns_ip: str = DNS_IP) -> list[dict]:
    """kubeadm's CoreDNS objects, filled in as kubeadm fills them."""
    text = jinja2.Template(TEMPLATE.read_text(), undefined=jinja2.StrictUndefined).render(
        dns_ip=dns_ip, dns_domain=domain, deployment_name="coredns", replicas=replicas, image=image,
        control_plane_taint_key="node-role.kubernetes.io/control-plane")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def cluster_first(namespace: str, domain: str = DOMAIN, search: list[str] | None = None,
                  nameserver: str = DNS_IP) -> str:
    """The resolv.conf kubelet writes for dnsPolicy ClusterFirst (and ClusterFirstWithHostNet)."""
    search = search if search is not None else [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]
    return f"search {' '.join(search)}\nnameserver {nameserver}\noptions ndots:5\n"


def node_resolv_conf(upstream: str = OUTSIDE_IP) -> str:
    """The lab nodes' resolv.conf (dnsPolicy Default gives it to CoreDNS): the upstream."""
    return f"nameserver {upstream}\n"


def chroot_command(binary: Path, root: Path, args: list[str]) -> list[str]:
    """Run ``binary`` as ``/<name>`` in ``root`` (bind-mounted there in the caller's private mount
    namespace, which ``ip netns exec`` provides)."""
    inside = f"/{binary.name}"
    return ["sh", "-c", 'mount --bind "$0" "$1$2" && root="$1" && shift && exec chroot "$root" "$@"',
            str(binary), str(root), inside, *args]


class ClusterDns:
    """CoreDNS behind kube-dns on the first nodes, and the upstream resolver outside."""

    def __init__(self, binary: Path, directory: Path, nodes: list[str], version: str,
                 addresses: DnsAddresses = IPV4_DNS) -> None:
        self.addresses = addresses
        self.binary = binary
        self.directory = directory  # roots and logs, in the run's state directory
        self.nodes = nodes[:REPLICAS]  # where the pods run
        self.objects = render(len(self.nodes), f"registry.k8s.io/coredns/coredns:{version}",
                              dns_ip=addresses.dns)
        self.processes: dict[str, processes.Process] = {}
        self.pods: dict[str, dict] = {}  # node -> the pod created there
        self.started_in: float | None = None

    @property
    def corefile(self) -> str:
        return next(o for o in self.objects if o["kind"] == "ConfigMap")["data"]["Corefile"]

    def _root(self, name: str, files: dict[str, str]) -> Path:
        root = self.directory / name / "root"
        for relative, content in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)  # a token among them: readable by root only, like the lab's keys
            path.write_text(content)
        (root / self.binary.name).touch()  # the mount point of the binary
        return root

    def start_upstream(self, outside_netns: str) -> None:
        """The resolver outside the cluster, serving the test zone on the outside client's IP."""
        self.directory.mkdir(parents=True, exist_ok=True)
        root = self._root("upstream", {"etc/coredns/Corefile": UPSTREAM_COREFILE,
                                       f"etc/coredns/db.{TEST_ZONE}": ZONE})
        self.processes["upstream"] = processes.start(
            "dns-upstream", chroot_command(self.binary, root, ["-conf", "/etc/coredns/Corefile"]),
            self.directory, netns=outside_netns)

    def create(self, api: KubeApi) -> None:
        """kubeadm's objects (a Deployment's pods are made here, bound to their nodes)."""
        for obj in self.objects:
            body = copy.deepcopy(obj)
            body["metadata"].pop("resourceVersion", None)  # kubeadm's update guard; a create refuses it
            if obj["kind"] == "Deployment":
                continue  # its ReplicaSet's pods are the lab's to make and run (below)
            _create(api, body)
        deployment = next(o for o in self.objects if o["kind"] == "Deployment")
        for node, name in self.pod_names().items():
            self.pods[node] = _create(api, bound_pod(deployment, name, node))

    def pod_names(self) -> dict[str, str]:
        """node -> the name of the CoreDNS pod create() makes there."""
        deployment = next(o for o in self.objects if o["kind"] == "Deployment")
        return {node: f"{deployment['metadata']['name']}-{node}" for node in self.nodes}

    def start(self, api: KubeApi, pod_netns: dict[str, str], ca_cert: Path) -> None:
        """Run each pod's container: its root, a token bound to the pod, the in-cluster env."""
        started = time.monotonic()
        for node in self.nodes:
            pod = self.pods[node]
            name = pod.metadata.name
            token = _token(api, name, pod.metadata.uid)
            secrets = "var/run/secrets/kubernetes.io/serviceaccount"
            root = self._root(name, {"etc/coredns/Corefile": self.corefile,
                                     "etc/resolv.conf": node_resolv_conf(self.addresses.upstream),
                                     f"{secrets}/token": token, f"{secrets}/namespace": NAMESPACE,
                                     f"{secrets}/ca.crt": Path(ca_cert).read_text()})
            env = {**processes.ENV, "KUBERNETES_SERVICE_HOST": self.addresses.kubernetes,
                   "KUBERNETES_SERVICE_PORT": "443"}
            self.processes[node] = processes.start(
                name, chroot_command(self.binary, root, ["-conf", "/etc/coredns/Corefile"]),
                self.directory, netns=pod_netns[node], env=env)
        self._started = started

    def wait_ready(self, node_netns: dict[str, str], pod_netns: dict[str, str], pod_ips: dict[str, str],
                   timeout: float, progress: Progress) -> list[str]:
        """The nodes whose CoreDNS pod passes its readiness probe, asked from the node as kubelet
        asks it. CoreDNS must get ready (asked inside its pod) within ``timeout``, or the lab
        failed (an error), unless its pod cannot reach the API server through the ``kubernetes``
        Service for UNREACHED_GRACE: that, like a node that cannot reach its own ready pod, is the
        network's doing (POD-APISERVER's, NODE-POD's). Such a pod stays not Ready, as kubelet would
        leave it, and the DNS rows judge a kube-dns without it."""
        deadline = time.monotonic() + timeout
        waiting, ready, serving, cut_off = set(self.nodes), [], {}, {}
        while waiting:
            for node in sorted(waiting):
                process = self.processes[node]
                if not process.running():
                    raise BackendError(f"CoreDNS on {node} exited with code {process.popen.returncode}: "
                                       f"{process.tail()[-600:]}")
                status, _ = netns.http_get(node_netns[node], f"http://{pod_ips[node]}:{READY_PORT}/ready",
                                           timeout=1.0, limit=4096)
                if status == 200:
                    waiting.discard(node)
                    ready.append(node)
                elif node not in serving and netns.http_get(
                        pod_netns[node], f"http://127.0.0.1:{READY_PORT}/ready", timeout=1.0, limit=4096)[0] == 200:
                    serving[node] = time.monotonic()
                elif node in serving and time.monotonic() - serving[node] > UNREACHED_GRACE:
                    waiting.discard(node)
                    progress(f"lab: CoreDNS on {node} is ready, but {node} cannot reach it "
                             f"({pod_ips[node]}:{READY_PORT}): the pod stays not Ready")
                elif node not in serving and not netns.tcp_connects(pod_netns[node], self.addresses.kubernetes, 443):
                    cut_off.setdefault(node, time.monotonic())
                    if time.monotonic() - cut_off[node] > UNREACHED_GRACE:
                        waiting.discard(node)
                        progress(f"lab: CoreDNS on {node} cannot reach the API server through the "
                                 f"kubernetes Service ({self.addresses.kubernetes}:443) from its pod: it "
                                 "stays not Ready")
                else:
                    cut_off.pop(node, None)
            if waiting and time.monotonic() > deadline:
                node = sorted(waiting)[0]
                raise BackendError(f"CoreDNS on {node} not ready after {timeout:.0f}s: "
                                   f"{self.processes[node].tail()[-600:]}")
            if waiting:
                time.sleep(0.1)
        self.started_in = time.monotonic() - self._started
        progress(f"lab: CoreDNS {len(ready)}/{len(self.nodes)} pod(s) ready behind kube-dns ({DNS_IP}) "
                 f"in {self.started_in:.1f}s")
        return sorted(ready)

    def stop(self) -> list[str]:
        """SIGTERM, then SIGKILL after STOP_GRACE: CoreDNS's lameduck (5 s of still answering while
        a load balancer takes it out) serves nobody when the whole lab goes."""
        problems = processes.stop(list(self.processes.values()), STOP_GRACE)
        self.processes = {}
        return [f"CoreDNS: {problem}" for problem in problems]

    def memory(self) -> dict[str, int]:
        return {f"CoreDNS {name}": rss for name, p in self.processes.items() if (rss := p.rss()) is not None}


def _create(api: KubeApi, body: dict):
    kind, name = body["kind"], body["metadata"]["name"]
    namespace = body["metadata"].get("namespace")
    creators = {
        "ServiceAccount": lambda: api.core.create_namespaced_service_account(namespace, body),
        "ClusterRole": lambda: api.rbac.create_cluster_role(body),
        "ClusterRoleBinding": lambda: api.rbac.create_cluster_role_binding(body),
        "ConfigMap": lambda: api.core.create_namespaced_config_map(namespace, body),
        "Service": lambda: api.core.create_namespaced_service(namespace, body),
        "Pod": lambda: api.core.create_namespaced_pod(namespace, body),
    }
    try:
        return api.call(f"create {kind} {name}", creators[kind])
    except ApiException as exc:
        raise BackendError(f"lab: cannot create {kind} {name}: {status_message(exc)}") from None


def _token(api: KubeApi, pod: str, uid: str) -> str:
    """A token for ServiceAccount coredns bound to its pod, as kubelet's projected volume holds."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": [], "expirationSeconds": TOKEN_SECONDS,
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}}}
    try:
        answer = api.call("request a token for coredns", api.core.create_namespaced_service_account_token,
                          "coredns", NAMESPACE, body)
    except ApiException as exc:
        raise BackendError(f"lab: cannot request a token for coredns: {status_message(exc)}") from None
    return answer.status.token

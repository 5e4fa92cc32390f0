"""The control plane's components and their flags, as kubeadm and local-up-cluster set them.

Every component runs in the control-plane namespace, which is a node of the lab with nothing else in
it, so the ports are the well-known ones and collide with no other run: etcd on 127.0.0.1:2379 (plain
HTTP, on the namespace's loopback only, as envtest runs it), the API server on 6443 of every address
of the node (its underlay address for the lab, loopback for the components and the relay), the
controller manager and scheduler serving their health on loopback.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..naming import (CLUSTER_CIDR, CLUSTER_CIDR6, KUBERNETES_SERVICE_IP, KUBERNETES_SERVICE_IP6, SERVICE_CIDR,
                      SERVICE_CIDR6, in_families)

ETCD_URL = "http://127.0.0.1:2379"
ETCD_PEER_URL = "http://127.0.0.1:2380"
APISERVER_PORT = 6443
LOCAL_APISERVER = f"https://127.0.0.1:{APISERVER_PORT}"  # how the components reach the API server
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
NODE_CIDR_MASK_SIZE = 24  # each node's podCIDR is a /24 of CLUSTER_CIDR, as the lab's nodes use
NODE_CIDR_MASK_SIZE6 = 64  # and its IPv6 one a /64 of CLUSTER_CIDR6
UNUSED_CONTROLLERS = (
    "persistentvolume-attach-detach-controller", "persistentvolume-binder-controller",
    "persistentvolume-expander-controller", "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller", "ephemeral-volume-controller",
    "volumeattributesclass-protection-controller", "resourcequota-controller",
    "horizontal-pod-autoscaler-controller", "resourceclaim-controller", "cronjob-controller",
    "job-controller", "ttl-after-finished-controller", "statefulset-controller",
    "disruption-controller", "replicationcontroller-controller",
    "storage-version-migrator-controller", "validatingadmissionpolicy-status-controller",
)
"""Controllers the lab has no use for (volumes, quotas, autoscaling, batch workloads): building
them is most of the controller manager's start (each gets its own service account's token, the
volume plugins load, the quota monitor discovers every resource), about 5 s of the lab's set-up on
2 cores. Every controller a network check relies on stays: EndpointSlices (and their mirroring),
Endpoints, namespaces, service accounts and their tokens, node lifecycle and IPAM, the garbage
collector, DaemonSets, Deployments and ReplicaSets, certificates, the root CA publisher."""
NODE_MONITOR_GRACE_PERIOD = "50s"
"""How long a node may go without a heartbeat (its Lease renewed, or its Ready condition updated)
before the node lifecycle controller marks it Unknown (not Ready): upstream's default since 1.32.
The lab had 20 s, to report a stopped lab kubelet sooner; on a 100-node lab every endpoint change
made 202 kube-proxies resync and saturated the machine for seconds, renewals came late, every
node went Unknown at once ("master disruption mode") and its pods not ready, which changed the
endpoints again: the lab never settled."""


@dataclass(frozen=True)
class Layout:
    """Where one control plane keeps its files (all in the run's state directory) and the address
    it has on the underlay."""

    root: Path
    address: str  # in the cluster's primary family: the `kubernetes` Service's endpoint
    # the cluster's families: Service and pod ranges in each, the primary's first
    families: tuple[str, ...] = ("ipv4",)
    # every address it has on the underlay: the lab's processes reach it at the IPv4 one, whatever
    # the cluster's families
    underlay_addresses: tuple[str, ...] = ()

    @property
    def service_range(self) -> str:
        return ",".join(in_families(self.families, SERVICE_CIDR, SERVICE_CIDR6))

    @property
    def node_cidr_flags(self) -> tuple[str, ...]:
        """The cluster's pod range and each node's share of it, as kube-controller-manager's flags."""
        if len(self.families) == 1:
            return (f"--cluster-cidr={in_families(self.families, CLUSTER_CIDR, CLUSTER_CIDR6)[0]}",
                    f"--node-cidr-mask-size={NODE_CIDR_MASK_SIZE if self.families == ('ipv4',) else NODE_CIDR_MASK_SIZE6}")
        return (f"--cluster-cidr={CLUSTER_CIDR},{CLUSTER_CIDR6}",
                f"--node-cidr-mask-size-ipv4={NODE_CIDR_MASK_SIZE}",
                f"--node-cidr-mask-size-ipv6={NODE_CIDR_MASK_SIZE6}")

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def socket(self) -> Path:
        """The Unix socket that joins the two relays (see relay.py)."""
        return self.root / "apiserver.sock"

    def kubeconfig(self, user: str) -> Path:
        return self.root / f"{user}.kubeconfig"

    def cert(self, stem: str) -> str:
        return str(self.pki / f"{stem}.crt")

    def key(self, stem: str) -> str:
        return str(self.pki / f"{stem}.key")

    def apiserver_names(self) -> list[str]:
        """The names the API server's certificate holds: how the lab (underlay address), the
        relay and components (loopback) and pods (the `kubernetes` Service) reach it."""
        return [*dict.fromkeys([self.address, *self.underlay_addresses]), "127.0.0.1", KUBERNETES_SERVICE_IP,
                KUBERNETES_SERVICE_IP6, "localhost", "kubernetes",
                "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]


@dataclass(frozen=True)
class Component:
    """One process of the control plane: its binary's name in the upstream cache and its flags."""

    name: str
    flags: tuple[str, ...]


def etcd(layout: Layout) -> Component:
    """One member on the namespace's loopback; no fsync, as envtest runs it: the lab's state is
    thrown away with the run, and fsync on a busy CI disk costs seconds per write."""
    return Component("etcd", (
        "--name=control-plane", f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={ETCD_URL}", f"--advertise-client-urls={ETCD_URL}",
        f"--listen-peer-urls={ETCD_PEER_URL}", f"--initial-advertise-peer-urls={ETCD_PEER_URL}",
        f"--initial-cluster=control-plane={ETCD_PEER_URL}", "--unsafe-no-fsync",
        "--log-level=warn"))


def kube_apiserver(layout: Layout) -> Component:
    """Node and RBAC authorization with NodeRestriction, as kubeadm; the default (lease) endpoint
    reconciler is kept, so the `kubernetes` Service has this server as its endpoint and pods reach
    the API through it. Nodes are reached by their InternalIP: lab nodes have no DNS names."""
    return Component("kube-apiserver", (
        f"--etcd-servers={ETCD_URL}", f"--secure-port={APISERVER_PORT}",
        f"--advertise-address={layout.address}", "--bind-address=0.0.0.0",
        f"--tls-cert-file={layout.cert('apiserver')}", f"--tls-private-key-file={layout.key('apiserver')}",
        f"--client-ca-file={layout.cert('ca')}", f"--cert-dir={layout.root / 'apiserver-certs'}",
        f"--kubelet-client-certificate={layout.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={layout.key('apiserver-kubelet-client')}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-cluster-ip-range={layout.service_range}",
        "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={layout.pki / 'sa.pub'}",
        f"--service-account-signing-key-file={layout.pki / 'sa.key'}",
        "--allow-privileged=true", "--profiling=false", "--v=1"))


# Leader election as kubeadm sets it, but with the slack a large lab on two cores needs: at 100
# nodes the controller manager's Lease renewal waited behind its own EndpointSlice writes (the
# client's rate limiter, 20 requests a second by default), missed its 10 s deadline, and the
# process exited ("leaderelection lost"), leaving the cluster without controllers. One instance
# runs, so nothing waits for a longer Lease; and the API rate is raised as large clusters raise it.
LEADER_ELECTION = ("--leader-elect-lease-duration=60s", "--leader-elect-renew-deadline=45s",
                   "--leader-elect-retry-period=5s")
API_RATE = ("--kube-api-qps=200", "--kube-api-burst=400")


def kube_controller_manager(layout: Layout) -> Component:
    """Every default controller (EndpointSlices, namespace deletion, node lifecycle, node IPAM, …)
    with a service account each, CSR signing by the run's CA, and a short node grace period."""
    kubeconfig = layout.kubeconfig("kube-controller-manager")
    return Component("kube-controller-manager", (
        f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1",
        f"--service-account-private-key-file={layout.pki / 'sa.key'}",
        f"--root-ca-file={layout.cert('ca')}", "--use-service-account-credentials",
        f"--cluster-signing-cert-file={layout.cert('ca')}", f"--cluster-signing-key-file={layout.key('ca')}",
        f"--controllers=*,bootstrap-signer-controller,token-cleaner-controller,"
        f"{','.join('-' + name for name in UNUSED_CONTROLLERS)}",
        "--allocate-node-cidrs", *layout.node_cidr_flags, f"--service-cluster-ip-range={layout.service_range}",
        f"--node-monitor-grace-period={NODE_MONITOR_GRACE_PERIOD}", "--cluster-name=netconform-lab",
        *LEADER_ELECTION, *API_RATE, "--profiling=false", "--v=1"))


def kube_scheduler(layout: Layout) -> Component:
    kubeconfig = layout.kubeconfig("kube-scheduler")
    return Component("kube-scheduler", (
        f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1", *LEADER_ELECTION,
        "--profiling=false", "--v=1"))


CLIENTS = {  # each component that talks to the API server: its user and groups, as kubeadm names them
    "kube-controller-manager": ("system:kube-controller-manager", ()),
    "kube-scheduler": ("system:kube-scheduler", ()),
}


def all_components(layout: Layout) -> list[Component]:
    """In start order: each may start before the one it talks to is ready (they retry)."""
    return [etcd(layout), kube_apiserver(layout), kube_controller_manager(layout), kube_scheduler(layout)]

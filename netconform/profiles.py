"""CNI profiles: what ``--cni=NAME`` means, and which deviations from the model are known.

A known deviation turns the affected items into xfail (known) or xpass (fixed): never a silent
pass, never a surprise failure. Lab profiles also name the conflist that wires their pods.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


@dataclass(frozen=True)
class Deviation:
    requirement: str
    reason: str
    link: str


@dataclass(frozen=True)
class Profile:
    name: str
    backend: str  # "lab" or "kube"
    description: str
    conflist: Path | None = None  # lab profiles: the CNI configuration of every node
    daemonsets: tuple[str, ...] = ()  # live clusters: "namespace/name" of the CNI's node agent
    overlay: str = "routes"  # lab: how nodes reach each other's pod CIDRs, "routes" or "vxlan"
    deviations: tuple[Deviation, ...] = field(default_factory=tuple)
    # A live-cluster CNI the lab can also run for real, installed from its upstream manifest
    # (backends/lab/cni_install.py): with no kubeconfig named, --cni=NAME runs on the lab
    lab_install: str | None = None
    # The managed service whose own CNI this is (EKS, AKS, GKE, OpenShift…): it runs only there,
    # so neither the lab nor the nightly kind matrix can run it; --cni still checks it is the one
    managed: str | None = None

    def on_lab(self, kubeconfig_named: bool) -> bool:
        """Whether a run of this profile is on the lab: a lab profile's always; a live-cluster
        CNI's that the lab installs when no kubeconfig is named (--kubeconfig, --context or
        $KUBECONFIG)."""
        return self.backend == "lab" or (self.lab_install is not None and not kubeconfig_named)

    def deviation(self, requirement_id: str) -> Deviation | None:
        return next((d for d in self.deviations if d.requirement == requirement_id), None)


KUBE_ROUTER_HAIRPIN = Deviation(
    "SVC-HAIRPIN", "kube-router: hairpin mode is off by default; a pod cannot reach itself through "
    "its Service unless the Service is annotated kube-router.io/service.hairpin or "
    "--hairpin-mode=true is set", "https://www.kube-router.io/docs/user-guide/#hairpin-mode")

KUBE_ROUTER_ACCEPTS_BEFORE_REJECT = Deviation(
    "SVC-NO-ENDPOINTS", "kube-router inserts 'ACCEPT' rules for traffic from and to kube-bridge at the "
    "top of the filter FORWARD chain (enableForwarding), ahead of kube-proxy's iptables-mode jump to the "
    "reject rules of Services without endpoints: a pod's connection to such a Service times out instead "
    "of being refused (kube-proxy's nftables mode rejects in a table of its own, which those rules do "
    "not skip)", "https://github.com/cloudnativelabs/kube-router/pull/596")

FLANNEL_MASQUERADES_TO_NODES = Deviation(
    "SVC-HOSTNET-ENDPOINTS", "flannel with --ip-masq (its release manifest's setting) masquerades pod "
    "traffic to every address outside the pod network, the nodes' own included: a hostNetwork backend "
    "on another node sees the client's node IP, not the pod's",
    "https://github.com/flannel-io/flannel/issues/964")

PROFILES: dict[str, Profile] = {p.name: p for p in [
    Profile("bridge", "lab", "CNI bridge plugin, one Linux bridge per node, host-local IPAM, "
            "routes between nodes as kubenet sets them", MANIFESTS / "lab" / "bridge.conflist"),
    Profile("ptp", "lab", "CNI ptp plugin, a veth pair and a host route per pod, host-local IPAM",
            MANIFESTS / "lab" / "ptp.conflist"),
    Profile("vxlan", "lab", "CNI bridge plugin (MTU 1450) over a VXLAN overlay between nodes, as "
            "flannel's vxlan backend sets it up", MANIFESTS / "lab" / "vxlan.conflist", overlay="vxlan"),
    Profile("kindnet", "kube", "kind's default CNI", daemonsets=("kube-system/kindnet",)),
    Profile("calico", "kube", "Calico", daemonsets=("kube-system/calico-node",
                                                    "calico-system/calico-node")),
    Profile("cilium", "kube", "Cilium", daemonsets=("kube-system/cilium",)),
    Profile("flannel", "kube", "Flannel (VXLAN); on the lab, v0.28.10 from its release manifest",
            daemonsets=("kube-flannel/kube-flannel-ds", "kube-system/kube-flannel-ds"),
            deviations=(FLANNEL_MASQUERADES_TO_NODES,), lab_install="flannel"),
    Profile("antrea", "kube", "Antrea", daemonsets=("kube-system/antrea-agent",)),
    Profile("kube-router", "kube", "kube-router (BGP between nodes, kube-proxy kept); on the lab, "
            "v2.1.0 from its kubeadm manifest", daemonsets=("kube-system/kube-router",),
            deviations=(KUBE_ROUTER_HAIRPIN, KUBE_ROUTER_ACCEPTS_BEFORE_REJECT), lab_install="kube-router"),
    # managed clusters' own CNIs, told apart by their node agent's DaemonSet, as each vendor names it
    Profile("aws-vpc-cni", "kube", "Amazon VPC CNI (EKS): pods get VPC addresses from the node's ENIs",
            daemonsets=("kube-system/aws-node",), managed="Amazon EKS"),
    Profile("azure-cni", "kube", "Azure CNI (AKS), with its Container Networking Service",
            daemonsets=("kube-system/azure-cns", "kube-system/azure-cni"), managed="Azure AKS"),
    Profile("gke-dataplane-v2", "kube", "GKE Dataplane V2 (Cilium-based, eBPF, no kube-proxy)",
            daemonsets=("kube-system/anetd",), managed="Google GKE"),
    Profile("ovn-kubernetes", "kube", "OVN-Kubernetes (OpenShift's default, and upstream)",
            daemonsets=("ovn-kubernetes/ovnkube-node", "openshift-ovn-kubernetes/ovnkube-node"),
            managed="OpenShift"),
    Profile("other", "kube", "any CNI: the run does not check which one the cluster runs"),
]}


class UnknownProfile(ValueError):
    pass


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        lab = sorted(n for n, p in PROFILES.items() if p.backend == "lab")
        kube = sorted(n for n, p in PROFILES.items() if p.backend == "kube")
        raise UnknownProfile(f"unknown --cni {name!r}; known profiles: {', '.join(lab)} (lab); "
                             f"{', '.join(kube)} (live clusters)") from None


def custom_lab_profile(conflist: Path) -> Profile:
    """--lab-cni-conf FILE: any conflist a user supplies, with no known deviations."""
    return Profile(conflist.stem, "lab", f"user conflist {conflist}", conflist)

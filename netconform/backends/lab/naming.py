"""Every name the lab creates carries the run's prefix, so runs never collide. What a run owns is
found by its record in its state directory (see cleanup.py), never by a name alone."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

NETNS_PREFIX = "netconform-"
STATE_ROOT = Path("/run/netconform")
RUN_PREFIX = re.compile(r"netconform-([0-9a-f]{6})")  # a run's prefix, and its state directory's name
NAMESPACE_RECORD = "namespaces"  # in the state directory: every namespace the run created, one a line
UNDERLAY = "172.18.0.0/24"  # like kind's docker network; it exists only inside the world namespace


@dataclass(frozen=True)
class RunNames:
    run_id: str

    @classmethod
    def new(cls) -> "RunNames":
        return cls(secrets.token_hex(3))

    @property
    def prefix(self) -> str:
        return f"{NETNS_PREFIX}{self.run_id}"

    @property
    def world(self) -> str:
        return f"{self.prefix}-world"

    def node(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def pod(self, node: str, pod: str) -> str:
        return f"{self.prefix}-{node}-{pod}"

    @property
    def outside(self) -> str:
        return f"{self.prefix}-outside"

    @property
    def underlay_bridge(self) -> str:
        return f"nc{self.run_id}br"

    def underlay_port(self, index: int) -> str:
        return f"nc{self.run_id}n{index}"  # at most 15 characters, the kernel's limit

    @property
    def control_plane(self) -> str:
        return f"{self.prefix}-control-plane"

    @property
    def control_plane_port(self) -> str:
        return f"nc{self.run_id}cp"

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.prefix

    @property
    def registry(self) -> Path:
        """Where the run records its namespaces before creating them: clean-up removes only these."""
        return self.state_dir / NAMESPACE_RECORD


def node_ip(index: int) -> str:
    """node-1 is 172.18.0.2, as in a kind cluster (.1 is the gateway nobody uses here)."""
    return f"172.18.0.{index + 1}"


def pod_cidr(index: int) -> str:
    return f"10.244.{index}.0/24"


CLUSTER_CIDR = "10.244.0.0/16"
UNDERLAY_GATEWAY = "172.18.0.1"  # the nodes' default route: nobody answers there, as on a real
# network where traffic for unknown addresses leaves the node and is lost
OUTSIDE_IP = "172.18.0.250"  # a client on the node network that is neither a node nor a pod
CONTROL_PLANE_IP = "172.18.0.240"  # above the last possible node (node-200 is .201), below OUTSIDE_IP
SERVICE_CIDR = "10.96.0.0/12"  # Kubernetes' default Service range; the lab's ClusterIPs are in it
KUBERNETES_SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: the first address of the range


def cluster_ip(index: int) -> str:
    return f"10.96.0.{10 + index}"


# IPv6, for a dual-stack lab (--ip-family=dual): the same plan in a unique local prefix, each
# address the IPv4 one's counterpart (node-1 is fd00:18::2 as it is 172.18.0.2)
UNDERLAY6 = "fd00:18::/64"
UNDERLAY_GATEWAY6 = "fd00:18::1"
OUTSIDE_IP6 = "fd00:18::fa"
CONTROL_PLANE_IP6 = "fd00:18::f0"
CLUSTER_CIDR6 = "fd00:10:244::/56"  # a /64 per node: node-N's is fd00:10:244:N::/64
SERVICE_CIDR6 = "fd00:10:96::/112"


KUBERNETES_SERVICE_IP6 = "fd00:10:96::1"  # the `kubernetes` Service of an IPv6-only lab


def in_families(families: tuple[str, ...], ipv4: str, ipv6: str) -> list[str]:
    """One value per family of ``families``, in their order (the primary's first)."""
    return [ipv4 if family == "ipv4" else ipv6 for family in families]


def node_ip6(index: int) -> str:
    return f"fd00:18::{index + 1:x}"


def pod_cidr6(index: int) -> str:
    return f"fd00:10:244:{index:x}::/64"


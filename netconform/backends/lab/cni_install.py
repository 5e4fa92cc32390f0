"""A real CNI on the lab, installed from its upstream manifest as on any cluster.

A lab profile with an install (``--cni=flannel``, ``--cni=kube-router``) brings up the nodes with no pod network of their
own (no routes, no overlay between them), then does what a user of that CNI does: applies its
pinned release manifest (Namespace, RBAC, ConfigMap, DaemonSet) to the lab's API server with the
edits its documentation asks for (the pod network equal to the cluster CIDR). The DaemonSet
controller makes one pod per node, and the lab's kubelet (runtime_pods.py) runs each: the init
containers' copies into the node's own ``/opt/cni/bin`` and ``/etc/cni/net.d`` (nodefs.py), the
daemon itself as the pinned upstream build, in the node's network namespace, with the pod's
volumes, its service account token and the in-cluster environment. The pods' networks are wired
only once every node's daemon is ready and has written the conflist, which the lab then reads from
the node's ``/etc/cni/net.d`` as containerd does.

What the lab changes from the upstream install, and why, is said per CNI here and in the README.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ...upstream import DEFAULT_RELEASE
from ...upstream.build import binary, kept_source


@dataclass(frozen=True)
class LabInstall:
    """How the lab installs one CNI.

    ``manifest`` is (the upstream component whose source holds it, its file name); ``images``
    maps each image the manifest runs to its files that are upstream binaries of ours (path in the
    image -> component); ``copy_commands`` are the commands an init container runs only to copy a
    file onto the node, which the lab's kubelet does itself; ``ready_files`` are node paths whose
    presence says the daemon has set its node up; ``edit`` edits the manifest's objects as the
    CNI's documentation asks a user to (the cluster CIDR).
    """

    name: str
    manifest: tuple[str, str]
    images: dict[str, dict[str, str]]
    copy_commands: tuple[str, ...]
    ready_files: tuple[str, ...]
    edit: Callable[[list[dict], str], None]
    changes: tuple[str, ...] = field(default_factory=tuple)  # what differs from upstream, and why
    entrypoints: dict[str, tuple[str, ...]] = field(default_factory=dict)  # image -> its ENTRYPOINT
    host_tools: tuple[str, ...] = ()  # commands the daemon runs that the host must have (ipset)

    def objects(self, cluster_cidr: str, release: str = DEFAULT_RELEASE) -> list[dict]:
        """The manifest's objects, edited for the lab."""
        path = kept_source(*self.manifest, release=release)
        objects = [o for o in yaml.safe_load_all(path.read_text()) if o]
        objects = copy.deepcopy(objects)
        self.edit(objects, cluster_cidr)
        return objects

    def image_files(self, image: str, release: str = DEFAULT_RELEASE) -> dict[str, Path] | None:
        """The image's files that are binaries of ours, or None for an image this install does
        not run."""
        files = self.images.get(image)
        if files is None:
            return None
        return {inside: binary(component, release) for inside, component in files.items()}

    def components(self) -> set[str]:
        return {self.manifest[0], *(c for files in self.images.values() for c in files.values())}


def config_map(objects: list[dict], name: str) -> dict:
    found = [o for o in objects if o.get("kind") == "ConfigMap" and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise ValueError(f"the manifest has {len(found)} ConfigMap(s) named {name}, not one")
    return found[0]


def daemonset(objects: list[dict]) -> dict:
    found = [o for o in objects if o.get("kind") == "DaemonSet"]
    if len(found) != 1:
        raise ValueError(f"the manifest has {len(found)} DaemonSets, not one")
    return found[0]


FLANNEL_CNI_VERSION = "0.4.0"  # the newest CNI spec containernetworking/plugins v0.9.1 speaks


def _edit_flannel(objects: list[dict], cluster_cidr: str) -> None:
    """kube-flannel.yml as flannel's docs tell a kubeadm user to apply it: net-conf.json's Network
    is the cluster's pod CIDR. And the conflist's cniVersion is the one the lab's flannel plugin
    speaks (containernetworking/plugins v0.9.1's: 0.4.0; flannel-io/cni-plugin speaks 1.0.0)."""
    data = config_map(objects, "kube-flannel-cfg")["data"]
    net = json.loads(data["net-conf.json"])
    net["Network"] = cluster_cidr
    data["net-conf.json"] = json.dumps(net, indent=2) + "\n"
    conf = json.loads(data["cni-conf.json"])
    conf["cniVersion"] = FLANNEL_CNI_VERSION
    data["cni-conf.json"] = json.dumps(conf, indent=2) + "\n"


FLANNEL = LabInstall(
    name="flannel",
    manifest=("flanneld", "kube-flannel.yml"),
    images={"ghcr.io/flannel-io/flannel:v0.28.10": {"/opt/bin/flanneld": "flanneld"},
            "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3": {"/flannel": "flannel-cni"}},
    copy_commands=("cp", "/opt/bin/install-conf"),
    ready_files=("/run/flannel/subnet.env", "/etc/cni/net.d/10-flannel.conflist"),
    edit=_edit_flannel,
    changes=(
        "the flannel CNI plugin is containernetworking/plugins v0.9.1's, the code flannel-io/cni-plugin "
        "was split from: the Go module proxy serves no version of flannel-io/cni-plugin",
        f"the conflist says cniVersion {FLANNEL_CNI_VERSION}, the newest that plugin speaks (upstream: 1.0.0)",
        "flanneld is built with the Tencent Cloud VPC client replaced by a stand-in that fails (the "
        "proxy does not serve it); only the tencent-vpc backend needs it",
        "the init containers' copies (cp, install-conf) are done by the lab's kubelet",
        "the DaemonSet's pod on the control-plane node stays Pending: the lab's control plane reaches "
        "the pods by routes of its own",
    ),
)

PORTMAP = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


# How long a node's BGP peers keep its routes once its session ends (the manifest turns graceful
# restart on; kube-router's default time is 90 s). v2.1.0's --bgp-holdtime applies to external peers
# only: between nodes GoBGP's 90 s hold time stays.
GRACEFUL_RESTART_TIME = "10s"


def _edit_kube_router(objects: list[dict], cluster_cidr: str) -> None:
    """kubeadm-kuberouter.yaml with its network policy controller off (the issue's choice: on only
    when asked for), a short graceful restart time, and portmap chained after bridge, as its own
    hostport manifest (kubeadm-kuberouter-all-features-hostport.yaml) does: hostPort is a MUST row.
    Its pod CIDRs are the nodes' spec.podCIDR, inside ``cluster_cidr`` already."""
    container = daemonset(objects)["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["--run-firewall=false" if a == "--run-firewall=true" else a for a in container["args"]]
    container["args"].append(f"--bgp-graceful-restart-time={GRACEFUL_RESTART_TIME}")
    data = config_map(objects, "kube-router-cfg")["data"]
    conf = json.loads(data["cni-conf.json"])
    conf["plugins"].append(dict(PORTMAP))
    data["cni-conf.json"] = json.dumps(conf, indent=2) + "\n"


KUBE_ROUTER = LabInstall(
    name="kube-router",
    manifest=("kube-router", "kubeadm-kuberouter.yaml"),
    images={"docker.io/cloudnativelabs/kube-router": {"/usr/local/bin/kube-router": "kube-router"}},
    entrypoints={"docker.io/cloudnativelabs/kube-router": ("/usr/local/bin/kube-router",)},
    copy_commands=(),
    ready_files=("/etc/cni/net.d/10-kuberouter.conflist",),
    edit=_edit_kube_router,
    host_tools=("ipset",),
    changes=(
        "v2.1.0, the only version the Go module proxy serves here; the manifest names the image "
        "untagged (latest), which the lab runs as that build",
        "--run-firewall=false: the network policy controller is off unless asked for",
        f"--bgp-graceful-restart-time={GRACEFUL_RESTART_TIME} (default 90s): a node whose agent or BGP "
        "session is gone loses its routes on the other nodes within seconds, so the faults that do it are "
        "seen in a short run",
        "portmap chained after bridge, as kube-router's own hostport manifest does (hostPort is a MUST row)",
        "the init container's script runs with the host's shell and tools in the pod's root",
        "the DaemonSet's pod on the control-plane node stays Pending: the lab's control plane reaches "
        "the pods by routes of its own",
    ),
)

INSTALLS: dict[str, LabInstall] = {i.name: i for i in (FLANNEL, KUBE_ROUTER)}

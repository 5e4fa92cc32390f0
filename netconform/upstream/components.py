"""The upstream binaries netconform builds, and which wrapper module and Go package makes each.

Everything specific to one component lives here: its Go package, the module that pins it, the
version of it a release pins, the command that makes it print its own version and how to read that
output. ``build.py`` and the version checks only walk this table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from netconform.upstream.releases import Release


@dataclass(frozen=True)
class Component:
    """One binary. ``module`` names its wrapper module family (``kubernetes``, ``etcd``,
    ``coredns``, ``flannel``, ``cni-plugins``); ``version_args`` make the binary print its
    version, and ``version_pattern`` captures that version from the output.

    A CNI's parts are pinned by a version of their own (``pinned``), the same whatever Kubernetes
    release the lab runs. ``cgo`` builds with cgo and links statically, as the upstream Makefile
    does where a part needs C (flanneld's UDP backend). ``keep`` names files of the upstream
    source (the module the go.sum pins) that are copied next to the binary: a CNI's own install
    manifest, which the lab deploys.
    """

    name: str
    module: str
    package: str
    version_args: tuple[str, ...]
    version_pattern: str
    pinned: str | None = None
    upstream: str | None = None  # the upstream module that ``keep`` files come from
    cgo: bool = False
    keep: tuple[str, ...] = ()

    def version(self, release: Release) -> str:
        """The upstream version of this component in ``release`` (the cache is keyed by it)."""
        if self.pinned:
            return self.pinned
        return {"kubernetes": release.kubernetes, "etcd": release.etcd,
                "coredns": release.coredns}[self.module]

    def module_dir_name(self, release: Release) -> str:
        """The wrapper module's directory under ``modules/``: ``kubernetes-v1.37.2``."""
        return f"{self.module}-{self.version(release)}"

    def expected_report(self, release: Release) -> str:
        """What ``version_pattern`` must capture: etcd and CoreDNS print their version without the
        leading ``v``; the Kubernetes binaries print the tag itself."""
        v = self.version(release)
        return v if self.module == "kubernetes" else v.removeprefix("v")

    def reported_version(self, output: str) -> str | None:
        """The version the binary printed, or None when its output does not say."""
        m = re.search(self.version_pattern, output, re.M)
        return m[1] if m else None


def _kube(name: str) -> Component:
    return Component(name, "kubernetes", f"k8s.io/kubernetes/cmd/{name}", ("--version",),
                     r"^Kubernetes (\S+)$")


# Flannel as its release manifest (Documentation/kube-flannel.yml) runs it. Its CNI plugin,
# flannel-io/cni-plugin, is not served by the Go module proxy this project builds from: the lab
# uses the flannel plugin of containernetworking/plugins v0.9.1, the code flannel-io/cni-plugin was
# split from (README, "Flannel on the lab").
FLANNEL = "v0.28.10"
FLANNEL_CNI = "v0.9.1"
# kube-router: v2.1.0 is the only version the Go module proxy serves here (README, "Real CNIs").
KUBE_ROUTER = "v2.1.0"

COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        _kube("kube-apiserver"),
        _kube("kube-controller-manager"),
        _kube("kube-scheduler"),
        _kube("kube-proxy"),
        Component("kubectl", "kubernetes", "k8s.io/kubernetes/cmd/kubectl", ("version", "--client"),
                  r"^Client Version: (\S+)$"),
        Component("etcd", "etcd", "go.etcd.io/etcd/server/v3", ("--version",),
                  r"^etcd Version: (\S+)$"),
        Component("coredns", "coredns", "github.com/coredns/coredns", ("-version",),
                  r"^CoreDNS-(\S+)$"),
        Component("flanneld", "flannel", "github.com/flannel-io/flannel", ("--version",),
                  r"^v(\S+)$", pinned=FLANNEL, upstream="github.com/flannel-io/flannel", cgo=True,
                  keep=("Documentation/kube-flannel.yml",)),
        Component("flannel-cni", "cni-plugins", "github.com/containernetworking/plugins/plugins/meta/flannel",
                  (), r"^CNI flannel plugin v(\S+)$", pinned=FLANNEL_CNI),
        Component("kube-router", "kube-router", "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",
                  ("--version",), r" version v([^,\s]+),", pinned=KUBE_ROUTER,
                  upstream="github.com/cloudnativelabs/kube-router/v2",
                  keep=("daemonset/kubeadm-kuberouter.yaml",)),
    )
}

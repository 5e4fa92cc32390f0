"""How each binary is built: the go build flags, the version stamps, and a digest of it all.

The Kubernetes binaries are built as upstream's ``hack/lib/golang.sh`` builds them for a release
(``CGO_ENABLED=0``, ``-trimpath``, tags ``selinux,notest,grpcnotrace``, ``-ldflags "all=... -s
-w"``) with the version variables ``hack/lib/version.sh`` sets, under both
``k8s.io/component-base/version`` and ``k8s.io/client-go/pkg/version``. Without them the binaries
call themselves ``v0.0.0-master`` and their feature gates follow the wrong version. The module
proxy gives no commit for k8s.io/kubernetes, so ``gitCommit`` is set empty (the source default would
print an unexpanded ``$Format:%H$``) and ``gitTreeState`` is ``archive``, upstream's value for an
exported tree. CoreDNS gets ``coremain.GitCommit`` as its Makefile sets it; etcd's version is a
constant in its source, and its ``GitSHA`` stays unset (the proxy does not give it).

The digest covers everything that decides the bytes of a binary except the Go toolchain (the
module files, package, flags): a cached binary whose record carries another digest is rebuilt.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from netconform.upstream.components import Component
from netconform.upstream.releases import Release, semver

KUBERNETES_TAGS = "selinux,notest,grpcnotrace"
VERSION_PACKAGES = ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version")
STRIP = "-s -w"
# Where a CNI's Makefile stamps its version (flannel's TAG, the CNI plugins' build_linux.sh).
VERSION_VARIABLE = {"flannel": "github.com/flannel-io/flannel/pkg/version.Version",
                    "cni-plugins": "github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion",
                    "kube-router": "github.com/cloudnativelabs/kube-router/v2/pkg/version.Version"}


def kubernetes_version_vars(release: Release) -> dict[str, str]:
    """The version variables upstream stamps, in the order ``hack/lib/version.sh`` adds them."""
    major, minor, _ = semver(release.kubernetes)
    return {"buildDate": release.tag_date, "gitCommit": "", "gitTreeState": "archive",
            "gitVersion": release.kubernetes, "gitMajor": str(major), "gitMinor": str(minor)}


def kubernetes_ldflags(release: Release) -> str:
    """``-ldflags`` for a Kubernetes binary: ``all=`` so the stamps reach the dependency packages
    that hold the variables."""
    flags = [f"-X '{pkg}.{key}={val}'"
             for key, val in kubernetes_version_vars(release).items() for pkg in VERSION_PACKAGES]
    return "all=" + " ".join(flags) + " " + STRIP


def coredns_ldflags(release: Release) -> str:
    """CoreDNS's Makefile: ``-s -w -X coremain.GitCommit=$(git describe --always)``, which on its
    (lightweight) release tags is the abbreviated commit; without a known commit, none."""
    if not release.coredns_commit:
        return STRIP
    return f"{STRIP} -X github.com/coredns/coredns/coremain.GitCommit={release.coredns_commit[:7]}"


@dataclass(frozen=True)
class Recipe:
    """The ``go build`` of one component of one release, run inside its wrapper module."""

    component: Component
    release: Release
    flags: tuple[str, ...]

    def go_args(self, output: Path) -> list[str]:
        """The go command line writing the binary to ``output``."""
        return ["build", *self.flags, "-o", str(output), self.component.package]

    def digest(self, module_dir: Path) -> str:
        """sha256 over the flags, the package, cgo, and every file of the wrapper module (go.mod,
        go.sum, and a stand-in module it replaces one with)."""
        cgo = ["cgo"] if self.component.cgo else []
        h = hashlib.sha256(json.dumps([self.component.package, self.flags, *cgo]).encode())
        for name in ("go.mod", "go.sum"):
            h.update((module_dir / name).read_bytes())
        for path in sorted(p for p in module_dir.rglob("*") if p.is_file()):
            if path.name not in ("go.mod", "go.sum") or path.parent != module_dir:
                h.update(str(path.relative_to(module_dir)).encode())
                h.update(path.read_bytes())
        return h.hexdigest()


def recipe(component: Component, release: Release) -> Recipe:
    """The build of ``component`` as upstream builds it for ``release``."""
    flags: list[str] = ["-trimpath"]
    if component.module == "kubernetes":
        flags += ["-tags", KUBERNETES_TAGS, "-ldflags", kubernetes_ldflags(release)]
    elif component.module == "coredns":
        flags += ["-ldflags", coredns_ldflags(release)]
    elif component.module in VERSION_VARIABLE:
        static = ' -extldflags "-static"' if component.cgo else ""
        flags += ["-ldflags", f"{STRIP} -X {VERSION_VARIABLE[component.module]}={component.pinned}{static}"]
    else:
        flags += ["-ldflags", STRIP]
    return Recipe(component, release, tuple(flags))

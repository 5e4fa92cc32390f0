"""What the lab needs from the host before it creates anything: root, the commands it runs, and
the upstream builds (the control plane, kube-proxy, CoreDNS, a real CNI's daemons). Each missing
piece is one line naming what to install or build, and the run exits 4 with nothing to clean up.
"""
from __future__ import annotations

import os
import shutil

from ...upstream import NotBuilt, binary
from ..base import BackendError
from .cni_install import LabInstall

UPSTREAM_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy",
                       "coredns")
# command -> why the lab runs it (every one is in the Debian package of the same name but ip's)
HOST_COMMANDS = {
    "ip": ("iproute2", "namespaces, links, addresses and routes"),
    "conntrack": ("conntrack", "a fault's revert forgets flows with it"),
    "nft": ("nftables", "kube-proxy's nftables mode, and faults' own tables"),
}


def check_host(release: str, install: LabInstall | None) -> None:
    if os.geteuid() != 0:
        raise BackendError("the lab needs root: it creates network namespaces "
                           "(run the suite as root, e.g. with sudo)")
    for command, (package, _why) in HOST_COMMANDS.items():
        if shutil.which(command) is None:
            raise BackendError(f"the lab needs the '{command}' command (Debian package {package})")
    for component in (*UPSTREAM_COMPONENTS, *sorted(install.components() if install else ())):
        try:
            binary(component, release)
        except NotBuilt as exc:
            raise BackendError(f"lab: {exc}") from None
    for tool in install.host_tools if install else ():
        if shutil.which(tool) is None:
            raise BackendError(f"lab: {install.name} runs the '{tool}' command: install it "
                               f"(Debian package {tool})")

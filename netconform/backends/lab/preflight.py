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


# Memory each process takes from the machine (its proportional share, PSS: resident size counts
# the pages of python and kube-proxy that all of them share once each), measured on a 50-node
# dual-stack lab: a probe 17.5 MB (RSS 28), a node's kube-proxy 17 MB (RSS 51) and about as much
# again of the kernel's (its rules, the namespaces); the control plane and the harness about 1 GB.
# With a margin: a lab the machine cannot hold is refused, not swapped to death.
PROBE_MB, NODE_MB, BASE_MB = 20, 40, 1536


def check_memory(probes: int, nodes: int, free: int | None = None) -> None:
    """Refuse, in one line, a lab whose processes would need more memory than the machine has
    free (``free``: bytes, read from /proc/meminfo when not given)."""
    need = (probes * PROBE_MB + nodes * NODE_MB + BASE_MB) * 2**20
    if free is None:
        fields = dict(line.split(":", 1) for line in open("/proc/meminfo").read().splitlines() if ":" in line)
        free = int(fields.get("MemAvailable", "0 kB").split()[0]) * 1024
    if free and need > free:
        raise BackendError(f"lab: {nodes} nodes with {probes} probe processes need about {need / 2**30:.1f} GiB, "
                           f"and this machine has {free / 2**30:.1f} GiB available: use fewer nodes or pods per node")


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

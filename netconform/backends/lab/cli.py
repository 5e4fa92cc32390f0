"""The lab backend's command line: its options, their checks, how a lab run is made (the lab
itself, or the live path on the lab's own cluster), ``--lab-fault list`` and its --cleanup-only."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ... import options as opts
from ...options import bounded, path_value, range_help
from ...profiles import Profile
from ...topology import IP_FAMILY_CHOICES
from ...upstream.releases import DEFAULT_RELEASE, RELEASES
from ..base import Backend

PROXY_MODES = ("iptables", "nftables")  # the lab's kube-proxy modes (proxy.py)


IPV6_SYSCTLS = Path("/proc/sys/net/ipv6")  # absent when the kernel has IPv6 off (ipv6.disable=1)


def lab_family(config: pytest.Config, profile: Profile) -> str:
    """--ip-family, or the lab's default: dual-stack where the lab can build it (a conflist with
    routes between nodes, a kernel with IPv6), IPv4 otherwise (vxlan, the real CNIs)."""
    chosen = config.getoption("ip_family")
    if chosen:
        return chosen
    if not carries_ipv6(profile) or not IPV6_SYSCTLS.is_dir():
        return "ipv4"
    return "dual"


def carries_ipv6(profile: Profile) -> bool:
    """Whether the lab builds IPv6 with this profile: a conflist alone (the real CNIs are built in
    IPv4), between nodes by a way that carries IPv6 (interconnects/)."""
    from .interconnects import INTERCONNECTS
    return not profile.lab_install and "ipv6" in INTERCONNECTS[profile.overlay].families


class LabPlugin:
    name = "lab"
    group = "netconform-lab"

    def add_options(self, parser: pytest.Parser) -> None:
        lab = parser.getgroup(self.group, "the embedded lab backend")
        lab.addoption("--lab-nodes", type=bounded(int, opts.LAB_NODES), default=3, metavar="N",
                      help=range_help("lab nodes, default 3", opts.LAB_NODES))
        lab.addoption("--lab-pods-per-node", type=bounded(int, opts.LAB_PODS_PER_NODE), default=2,
                      metavar="N", help=range_help("single-container probe pods per node, default 2",
                                                   opts.LAB_PODS_PER_NODE))
        lab.addoption("--lab-cni-conf", type=path_value, metavar="FILE",
                      help="run the lab with this CNI conflist instead of a profile's, named after the "
                           "file (${POD_CIDR}, ${NODE_IP}, ${NODE_NAME} are filled in per node); not "
                           "together with --cni")
        lab.addoption("--lab-cni-path", default="/opt/cni/bin:/usr/lib/cni", metavar="DIR[:DIR…]",
                      help="where the CNI plugins are looked up, like CNI_PATH "
                           "(default /opt/cni/bin:/usr/lib/cni)")
        lab.addoption("--lab-cni-timeout", type=bounded(float, opts.CNI_TIMEOUT, " s"), default=20.0,
                      metavar="SECONDS", help=range_help("how long one CNI plugin call may take, default 20",
                                                         opts.CNI_TIMEOUT, " s"))
        lab.addoption("--lab-release", choices=sorted(RELEASES, key=lambda r: [int(x) for x in r.split(".")]),
                      default=DEFAULT_RELEASE, metavar="MINOR",
                      help=f"the pinned Kubernetes release the lab's control plane and kube-proxy run: "
                           f"{', '.join(sorted(RELEASES))} (default {DEFAULT_RELEASE}); built with "
                           "'python3 -m netconform.upstream build --release MINOR'")
        lab.addoption("--lab-proxy", choices=PROXY_MODES, default=PROXY_MODES[0],
                      help="the mode every lab node's kube-proxy runs in: iptables (default) or nftables")
        lab.addoption("--lab-ready-timeout", type=bounded(float, opts.READY_TIMEOUT, " s"), default=60.0,
                      metavar="SECONDS", help=range_help("how long probes may take to start, default 60",
                                                         opts.READY_TIMEOUT, " s"))
        lab.addoption("--lab-fault", action="append", default=[], metavar="NAME",
                      help="inject a named fault after the lab is built (repeatable); "
                           "'--lab-fault list' prints every fault and what it breaks")

    def check(self, config: pytest.Config, profile: Profile) -> None:
        from ..kube.cli import KUBE
        self.faults(config, profile)
        KUBE.refuse_live_options(config)
        if config.getoption("allow_policy") and config.getoption("backend") != "kube":
            raise ValueError("--allow-policy adds a NetworkPolicy to a live run's namespace: on the lab "
                             "it needs --backend=kube (the lab's own backend makes no namespace of pods)")
        family = config.getoption("ip_family")  # as given: the default is chosen to be buildable
        if family in ("dual", "ipv6") and not carries_ipv6(profile):
            kind = "dual-stack" if family == "dual" else "IPv6-only"
            raise ValueError(f"--ip-family={family}: the lab builds {kind} clusters with a conflist and "
                             f"routes between nodes (bridge, ptp, --lab-cni-conf), not with "
                             f"{profile.name} in this version")
        if profile.backend == "lab" and (config.getoption("kubeconfig") or config.getoption("context")):
            raise ValueError(f"--kubeconfig/--context name a live cluster, but --cni={profile.name} is a "
                             "lab profile; on a live cluster name its CNI (kindnet, calico, cilium, "
                             "flannel, antrea, kube-router) or --cni=other")

    def faults(self, config: pytest.Config, profile: Profile) -> tuple:
        """The --lab-fault faults, each one the lab's proxy mode and CNI have a mechanism for."""
        from .faults import cni_refusal, family_refusal, fault, mode_refusal
        chosen = tuple(fault(name) for name in dict.fromkeys(config.getoption("lab_fault")))
        mode = config.getoption("lab_proxy")
        for unable in (f for f in chosen if mode not in f.modes):
            raise ValueError(mode_refusal(unable, mode))
        for refusal in filter(None, (cni_refusal(f, profile.lab_install) for f in chosen)):
            raise ValueError(refusal)
        families = IP_FAMILY_CHOICES[lab_family(config, profile)]
        for refusal in filter(None, (family_refusal(f, families) for f in chosen)):
            raise ValueError(refusal)
        return chosen

    def make(self, config: pytest.Config, profile: Profile, report_dir: Path) -> Backend:
        from .backend import LabBackend
        opt = config.getoption
        lab = LabBackend(profile, opt("lab_nodes"), opt("lab_pods_per_node"), opt("lab_ready_timeout"),
                         self.faults(config, profile),
                         cni_path=tuple(d for d in opt("lab_cni_path").split(":") if d),
                         cni_timeout=opt("lab_cni_timeout"), logs_kept_in=report_dir / "logs",
                         release=opt("lab_release"), proxy_mode=opt("lab_proxy"),
                         families=IP_FAMILY_CHOICES[lab_family(config, profile)])
        if opt("backend") == "kube":  # the live path, on a lab that is only the cluster
            from .through_api import LabThroughApi
            return LabThroughApi(lab, allow_policy=opt("allow_policy"))
        return lab

    def cleanup(self, config: pytest.Config) -> int:
        from . import cleanup, hostlimits
        if os.geteuid() != 0:
            print("netconform: --cleanup-only needs root (lab namespaces belong to root)")
            return 4
        removed = cleanup.remove_stale_runs()
        hostlimits.release("")  # a run that died after removing its state but before releasing its raise
        alive, foreign = cleanup.live_runs(), cleanup.unrecorded_namespaces()
        print(f"netconform: removed {len(removed)} stale lab run(s){': ' if removed else ''}"
              f"{', '.join(removed)}")
        if alive:
            print(f"netconform: left {len(alive)} run(s) whose owner is still alive: {', '.join(alive)}")
        if foreign:
            print(f"netconform: left {len(foreign)} namespace(s) that no netconform run recorded: "
                  f"{', '.join(foreign[:10])}"
                  f"{f' and {len(foreign) - 10} more' if len(foreign) > 10 else ''}")
        return 0

    def command(self, config: pytest.Config) -> int | None:
        """``--lab-fault list``: every fault and what it breaks."""
        if "list" in config.getoption("lab_fault"):
            from . import faults
            print(faults.listing())
            return 0
        return None


LAB = LabPlugin()

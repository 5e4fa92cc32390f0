"""The live-cluster backend's command line: its options, their checks, and its --cleanup-only."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ... import options as opts
from ...options import bounded, path_value, range_help
from ...profiles import Profile
from ..base import Backend, BackendError

LIVE_ONLY = {"probe_image": "--probe-image", "image_pull_secret": "--image-pull-secret",
             "image_registry": "--image-registry",
             "node_selector": "--node-selector", "tolerations": "--tolerations",
             "keep": "--keep"}  # options the lab's own cluster has no use for
LIVE_DEFAULTS = {"namespace_prefix": ("--namespace-prefix", "netconform"), "channel": ("--channel", "auto"),
                 "ready_timeout": ("--ready-timeout", 180.0)}


class KubePlugin:
    name = "kube"
    group = "netconform-kube"

    def add_options(self, parser: pytest.Parser) -> None:
        kube = parser.getgroup(self.group, "live clusters (a --cni that is not a lab profile)")
        kube.addoption("--kubeconfig", type=path_value, metavar="FILE",
                       help="kubeconfig (default: $KUBECONFIG, then ~/.kube/config)")
        kube.addoption("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
        kube.addoption("--probe-image", metavar="IMAGE", default=None,
                       help="an image built from probes/Dockerfile, run as it is (default: the agent in a "
                            "ConfigMap, run by a stock Python image pinned by digest)")
        kube.addoption("--image-registry", metavar="HOST[:PORT][/PATH]", default=None,
                       help="pull the probes' image from this mirror, same path and digest (list what "
                            "to copy there: python -m netconform images)")
        kube.addoption("--image-pull-secret", metavar="[NAMESPACE/]NAME",
                       help="a Secret to copy into the run's namespace and pull the probe image with")
        kube.addoption("--node-selector", metavar="KEY=VALUE[,…]", help="test only the nodes with these labels")
        kube.addoption("--tolerations", metavar="KEY[=VALUE]:EFFECT[,…]|all",
                       help="taints the probes tolerate (e.g. node-role.kubernetes.io/control-plane:NoSchedule)")
        kube.addoption("--allow-policy", action="store_true",
                       help="add an allow-all NetworkPolicy to the run's namespace, so that namespaced "
                            "NetworkPolicies there cannot block its traffic (the admin tiers still can)")
        kube.addoption("--channel", choices=("auto", "proxy", "exec"), default="auto",
                       help="how the harness reaches the probes: the API server's pod proxy, exec into "
                            "them (where the control plane cannot reach pod IPs), or auto (default: the "
                            "proxy if it answers, else exec)")
        kube.addoption("--namespace-prefix", default="netconform", metavar="PREFIX",
                       help="the run's namespace is PREFIX-<run id> (default netconform)")
        kube.addoption("--keep", action="store_true",
                       help="leave the run's namespace in place for debugging (remove it with --cleanup-only)")
        kube.addoption("--ready-timeout", type=bounded(float, opts.READY_TIMEOUT, " s"), default=180.0,
                       metavar="SECONDS", help=range_help("how long the probe pods may take to become "
                                                          "Ready, default 180", opts.READY_TIMEOUT, " s"))

    def names_a_cluster(self, config: pytest.Config) -> bool:
        return bool(config.getoption("kubeconfig") or config.getoption("context") or os.environ.get("KUBECONFIG"))

    def check(self, config: pytest.Config, profile: Profile) -> None:
        self.options(config)  # bad --node-selector or --tolerations: fail before anything
        if config.getoption("lab_fault"):
            raise ValueError("--lab-fault injects faults into the lab; a live cluster has its own")

    def refuse_live_options(self, config: pytest.Config) -> None:
        """On the lab (its own backend, or --backend=kube): the lab makes its cluster, its image and
        its namespace; the options that choose those on a live cluster would be silently ignored,
        so they are refused."""
        words = [str(arg) for arg in config.invocation_params.args]
        flags = [*LIVE_ONLY.values(), *(flag for flag, _ in LIVE_DEFAULTS.values())]
        given = [flag for flag in flags if any(w == flag or w.startswith(f"{flag}=") for w in words)]
        given += [flag for key, flag in LIVE_ONLY.items() if config.getoption(key) and flag not in given]
        given += [flag for key, (flag, default) in LIVE_DEFAULTS.items()
                  if config.getoption(key) != default and flag not in given]
        if given:  # given at all, even at its default or empty: the user meant something by it
            raise ValueError(f"{', '.join(given)}: live-cluster option(s); on the lab they "
                             "would be ignored (the lab's image, namespace and nodes are its "
                             "own; --lab-ready-timeout bounds its probes)")

    def options(self, config: pytest.Config):
        from .backend import KubeOptions
        from .images import check_registry
        from .manifests import parse_node_selector, parse_tolerations
        opt = config.getoption
        registry = opt("image_registry")
        return KubeOptions(opt("kubeconfig"), opt("context"), opt("probe_image"),
                           opt("image_pull_secret"), parse_node_selector(opt("node_selector")),
                           parse_tolerations(opt("tolerations")), opt("namespace_prefix"), opt("keep"),
                           opt("ready_timeout"), ip_family=opt("ip_family"),
                           image_registry=check_registry(registry) if registry is not None else None,
                           allow_policy=opt("allow_policy"), channel=opt("channel"))

    def make(self, config: pytest.Config, profile: Profile, report_dir: Path) -> Backend:
        from .backend import KubeBackend
        return KubeBackend(profile, self.options(config))

    def cleanup(self, config: pytest.Config) -> int:
        from .backend import cleanup_runs
        try:
            removed, live = cleanup_runs(self.options(config))
        except (BackendError, ValueError) as exc:
            print(f"netconform: {exc}")
            return 4
        print(f"netconform: deleted {len(removed)} namespace(s) left by earlier runs"
              f"{': ' + ', '.join(removed) if removed else ''}")
        if live:
            print(f"netconform: left {len(live)} run(s) that may still be running: {', '.join(live)}")
        return 0

    def command(self, config: pytest.Config) -> int | None:
        return None


KUBE = KubePlugin()

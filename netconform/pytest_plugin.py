"""The pytest side of netconform: options, one item per case, the cluster fixture, the reports."""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

import pytest

from . import cmdline
from . import options as opts
from .backends.base import Backend, BackendError
from .checks import INSPECT, Case
from .options import bounded, path_value, range_help
from .profiles import PROFILES, Profile, UnknownProfile, custom_lab_profile, profile
from .pytest_run import NetconformRun
from .requirements import CATALOG, LEVELS
from .session import Conformance, Judgement
from .topology import FAMILIES, IP_FAMILY_CHOICES
from .upstream.releases import DEFAULT_RELEASE, RELEASES

PROXY_MODES = ("iptables", "nftables")  # the lab's kube-proxy modes (backends/lab/proxy.py)

RUN = pytest.StashKey["NetconformRun"]()
REPORT_LOCK = pytest.StashKey[object]()
DEFAULT_CNI = "bridge"
OPTION_GROUPS = ("netconform", "netconform-kube", "netconform-lab")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform", "Kubernetes network model conformance")
    group.addoption("--cni", default=None, metavar="NAME",
                    help=f"CNI profile to test: lab profiles {_names('lab')} (default: {DEFAULT_CNI}, "
                         f"on the lab); live-cluster profiles {_names('kube')} ({_lab_installs()}: "
                         "installed for real on the lab when no kubeconfig is named)")
    group.addoption("--report-dir", metavar="DIR", type=path_value,
                    help="where results.json, report.html and the probe logs go (default: "
                         "reports/<cni>); created and tested for writing before the run")
    group.addoption("--probe-timeout", type=bounded(float, opts.PROBE_TIMEOUT, " s"), default=2.0,
                    metavar="SECONDS", help=range_help("timeout of one connection attempt, default 2",
                                                       opts.PROBE_TIMEOUT, " s"))
    group.addoption("--probe-attempts", type=bounded(int, opts.PROBE_ATTEMPTS), default=2, metavar="N",
                    help=range_help("attempts per connection; a pass after a retry is reported flaky, "
                                    "default 2", opts.PROBE_ATTEMPTS))
    group.addoption("--not-applicable", action="append", default=[], metavar="ID=REASON",
                    help="declare a requirement not applicable to this cluster, with the reason "
                         "(repeatable); the verdict lists it")
    group.addoption("--ip-family", choices=tuple(IP_FAMILY_CHOICES), default=None,
                    help="the IP families you expect the cluster to have: ipv4, ipv6 or dual; on a live "
                         "cluster a different answer from its nodes is an error (default: as found). The "
                         "lab builds ipv4 in this version")
    group.addoption("--fail-on", choices=("must", "should", "may"), default="must",
                    help="the lowest level whose failure makes the exit code 1 (default must)")
    group.addoption("--cleanup-only", action="store_true",
                    help="remove what earlier runs left behind (lab namespaces, state; with "
                         "--kubeconfig: the cluster's run namespaces) and exit")
    kube = parser.getgroup("netconform-kube", "live clusters (a --cni that is not a lab profile)")
    group.addoption("--backend", choices=("lab", "kube"), default=None,
                    help="how the suite meets the cluster: 'lab' (the lab makes the run's pods and "
                         "objects itself) or 'kube' (through the API server, as on a live cluster; "
                         "with a lab profile, on a lab that is only the cluster). Default: the "
                         "--cni profile's (lab for bridge, ptp, vxlan; kube for the others)")
    kube.addoption("--kubeconfig", type=path_value, metavar="FILE",
                   help="kubeconfig (default: $KUBECONFIG, then ~/.kube/config)")
    kube.addoption("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
    kube.addoption("--probe-image", metavar="IMAGE", default=None,
                   help="an image built from probes/Dockerfile, run as it is (default: the agent in a "
                        "ConfigMap, run by a stock Python image pinned by digest)")
    kube.addoption("--image-pull-secret", metavar="[NAMESPACE/]NAME",
                   help="a Secret to copy into the run's namespace and pull the probe image with")
    kube.addoption("--node-selector", metavar="KEY=VALUE[,…]", help="test only the nodes with these labels")
    kube.addoption("--tolerations", metavar="KEY[=VALUE]:EFFECT[,…]|all",
                   help="taints the probes tolerate (e.g. node-role.kubernetes.io/control-plane:NoSchedule)")
    kube.addoption("--namespace-prefix", default="netconform", metavar="PREFIX",
                   help="the run's namespace is PREFIX-<run id> (default netconform)")
    kube.addoption("--keep", action="store_true",
                   help="leave the run's namespace in place for debugging (remove it with --cleanup-only)")
    kube.addoption("--ready-timeout", type=bounded(float, opts.READY_TIMEOUT, " s"), default=180.0,
                   metavar="SECONDS", help=range_help("how long the probe pods may take to become "
                                                      "Ready, default 180", opts.READY_TIMEOUT, " s"))
    lab = parser.getgroup("netconform-lab", "the embedded lab backend")
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


def _on_lab(config: pytest.Config, chosen: Profile) -> bool:
    """Whether the run is on the lab (Profile.on_lab): a kubeconfig is named by --kubeconfig,
    --context or $KUBECONFIG."""
    named = bool(config.getoption("kubeconfig") or config.getoption("context") or os.environ.get("KUBECONFIG"))
    return chosen.on_lab(named)


def _lab_installs() -> str:
    return ", ".join(name for name, p in PROFILES.items() if p.lab_install)


def _names(backend: str) -> str:
    return ", ".join(name for name, p in PROFILES.items() if p.backend == backend)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if "list" in config.getoption("lab_fault"):
        from .backends.lab import faults
        print(faults.listing())
        return 0
    if not config.getoption("cleanup_only"):
        return None
    if _is_kube(config):
        return _cleanup_kube(config)
    from .backends.lab import cleanup
    if os.geteuid() != 0:
        print("netconform: --cleanup-only needs root (lab namespaces belong to root)")
        return 4
    from .backends.lab import hostlimits
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


def pytest_configure(config: pytest.Config) -> None:
    for req in CATALOG.values():
        config.addinivalue_line("markers", f"{req.id}: {req.level} — {req.title}")
    for level in LEVELS:
        config.addinivalue_line("markers", f"{level}: every requirement of level {level}")
    for family in FAMILIES:
        config.addinivalue_line("markers", f"{family}: every item in the {family} family")
    try:
        _refuse_parallel_suites(config)
        chosen = _profile(config)
        _lab_faults(config)
        not_applicable = _not_applicable(config.getoption("not_applicable"))
        lab = _on_lab(config, chosen)
        if config.getoption("backend") == "lab" and not lab:
            raise ValueError(f"--backend=lab with --cni={chosen.name}: the lab runs the lab profiles "
                             f"({_names('lab')}) and, with no kubeconfig named, {_lab_installs()}; "
                             f"{chosen.name} is tested on a live cluster here (--backend=kube)")
        if config.getoption("backend") == "kube" and lab:
            _refuse_live_options(config)
        if lab and config.getoption("ip_family") not in (None, "ipv4"):
            raise ValueError(f"--ip-family={config.getoption('ip_family')}: the lab builds IPv4 clusters only "
                             "in this version (an IPv6 or dual-stack lab is not implemented yet)")
        if not lab:
            _kube_options(config)  # bad --node-selector or --tolerations: fail before anything
            if config.getoption("lab_fault"):
                raise ValueError("--lab-fault injects faults into the lab; a live cluster has its own")
        elif chosen.backend == "lab" and (config.getoption("kubeconfig") or config.getoption("context")):
            raise ValueError(f"--kubeconfig/--context name a live cluster, but --cni={chosen.name} is a "
                             "lab profile; on a live cluster name its CNI (kindnet, calico, cilium, "
                             "flannel, antrea, kube-router) or --cni=other")
        report_dir = config.getoption("report_dir") or Path(config.rootpath) / "reports" / chosen.name
        # A pytest-xdist worker (the own tests run on two) shares its controller's directory
        if not (config.option.collectonly or config.option.help or hasattr(config, "workerinput")):
            _check_writable(report_dir)
            config.stash[REPORT_LOCK] = _lock_report_dir(report_dir)
    except (UnknownProfile, ValueError) as exc:
        raise pytest.UsageError(f"netconform: {exc}") from None
    try:
        backend = _backend(config, chosen, report_dir)
    except BackendError as exc:  # options that cannot go together, found by the backend
        raise pytest.UsageError(f"netconform: {exc}") from None
    run = config.stash[RUN] = NetconformRun(config, chosen, backend, report_dir, not_applicable)
    config.pluginmanager.register(run, "netconform-run")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]):
    """``--report-dir DIR`` must mean what ``--report-dir=DIR`` means. pytest picks its rootdir and
    ini file before it knows this plugin's options, so an existing DIR given as a separate word
    is taken for a test path and moves the rootdir (other config, other items). When that
    happens, start again with the option and its value joined: same rootdir, same items."""
    args = list(early_config.invocation_params.args)
    options = cmdline.value_options(parser, OPTION_GROUPS)
    if cmdline.moves_rootdir(args, options):
        cmdline.restart_with(early_config, cmdline.join_option_values(args, options))


def _refuse_parallel_suites(config: pytest.Config) -> None:
    """pytest-xdist (``-n``) is there for netconform's own tests; a conformance run is one run of
    one cluster, and each worker would build (or deploy to) it again."""
    distributed = config.getoption("numprocesses", None) or config.getoption("tx", None) or \
        config.getoption("dist", "no") != "no"
    if not distributed or hasattr(config, "workerinput"):
        return
    suites = (Path(config.rootpath) / "suites").resolve()
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path == suites or suites in path.parents or path in suites.parents:
            raise ValueError("-n/--numprocesses (or -d/--dist/--tx) runs netconform's own tests in "
                             "parallel; a conformance run is one run of one cluster: run the suites "
                             "without it")


LIVE_ONLY = {"probe_image": "--probe-image", "image_pull_secret": "--image-pull-secret",
             "node_selector": "--node-selector", "tolerations": "--tolerations",
             "keep": "--keep"}  # options the lab's own cluster has no use for
LIVE_DEFAULTS = {"namespace_prefix": ("--namespace-prefix", "netconform"),
                 "ready_timeout": ("--ready-timeout", 180.0)}


def _refuse_live_options(config: pytest.Config) -> None:
    """--backend=kube on the lab: the lab makes its cluster, its image and its namespace; the
    options that choose those on a live cluster would be silently ignored, so they are refused."""
    given = [flag for key, flag in LIVE_ONLY.items() if config.getoption(key)]
    given += [flag for key, (flag, default) in LIVE_DEFAULTS.items() if config.getoption(key) != default]
    if given:
        raise ValueError(f"{', '.join(given)} choose(s) things on a live cluster; with --backend=kube on "
                         "the lab they would be ignored (the lab's image, namespace and nodes are its "
                         "own; --lab-ready-timeout bounds its probes)")


def _not_applicable(declared: list[str]) -> dict[str, str]:
    found = {}
    for text in declared:
        rid, _, reason = text.partition("=")
        if rid not in CATALOG:
            raise ValueError(f"--not-applicable {text!r}: unknown requirement {rid!r}")
        if not reason.strip():
            raise ValueError(f"--not-applicable {rid}: give the reason, as {rid}=REASON")
        found[rid] = reason.strip()
    return found


def _check_writable(report_dir: Path) -> None:
    """Found before the run, not after it: a report directory that cannot be written loses the run."""
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=report_dir, prefix=".netconform-write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"--report-dir {report_dir}: cannot write there: "
                         f"{exc.strerror or exc}") from None


def _lock_report_dir(report_dir: Path):
    """One run per report directory at a time: two would overwrite each other's results.json,
    report.html and logs, and the verdict left there would be the last writer's, not yours."""
    handle = open(report_dir / ".netconform.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ValueError(f"--report-dir {report_dir}: another netconform run is writing there now; "
                         "give this one a report directory of its own") from None
    return handle  # held (open) until this process ends


def _backend(config: pytest.Config, chosen: Profile, report_dir: Path) -> Backend:
    opt = config.getoption
    if not _on_lab(config, chosen):
        from .backends.kube.backend import KubeBackend
        return KubeBackend(chosen, _kube_options(config))
    from .backends.lab.backend import LabBackend
    lab = LabBackend(chosen, opt("lab_nodes"), opt("lab_pods_per_node"), opt("lab_ready_timeout"),
                     _lab_faults(config), cni_path=tuple(d for d in opt("lab_cni_path").split(":") if d),
                     cni_timeout=opt("lab_cni_timeout"), logs_kept_in=report_dir / "logs",
                     release=opt("lab_release"), proxy_mode=opt("lab_proxy"))
    if opt("backend") == "kube":  # the live path, on a lab that is only the cluster
        from .backends.lab.through_api import LabThroughApi
        return LabThroughApi(lab)
    return lab


def _profile(config: pytest.Config) -> Profile:
    conf = config.getoption("lab_cni_conf")
    if conf is not None:
        if config.getoption("cni") is not None:
            raise ValueError("--cni and --lab-cni-conf both name the CNI: give one (a lab run with "
                             "--lab-cni-conf is named after the file)")
        if conf.is_dir():
            raise ValueError(f"--lab-cni-conf {conf} is a directory; give the conflist file")
        if conf.exists() and not conf.is_file():
            raise ValueError(f"--lab-cni-conf {conf} is not a regular file")
        if not conf.is_file():
            raise ValueError(f"--lab-cni-conf {conf}: no such file")
        return custom_lab_profile(conf.resolve())
    chosen = config.getoption("cni")
    return profile(DEFAULT_CNI if chosen is None else chosen)


def _is_kube(config: pytest.Config) -> bool:
    """Whether --cleanup-only cleans a live cluster: a named kubeconfig or context says so, as does a
    live-cluster --cni (which reads $KUBECONFIG); anything else is the lab."""
    if config.getoption("kubeconfig") or config.getoption("context"):
        return True
    chosen = config.getoption("cni")
    try:
        return not _on_lab(config, profile(DEFAULT_CNI if chosen is None else chosen))
    except UnknownProfile:
        return False


def _kube_options(config: pytest.Config):
    from .backends.kube.backend import KubeOptions
    from .backends.kube.manifests import parse_node_selector, parse_tolerations
    opt = config.getoption
    return KubeOptions(opt("kubeconfig"), opt("context"), opt("probe_image"),
                       opt("image_pull_secret"), parse_node_selector(opt("node_selector")),
                       parse_tolerations(opt("tolerations")), opt("namespace_prefix"), opt("keep"),
                       opt("ready_timeout"), ip_family=opt("ip_family"))


def _cleanup_kube(config: pytest.Config) -> int:
    from .backends.kube.backend import cleanup_runs
    try:
        removed = cleanup_runs(_kube_options(config))
    except (BackendError, ValueError) as exc:
        print(f"netconform: {exc}")
        return 4
    print(f"netconform: deleted {len(removed)} namespace(s) left by earlier runs"
          f"{': ' if removed else ''}{', '.join(removed)}")
    return 0


def _lab_faults(config: pytest.Config) -> tuple:
    from .backends.lab.faults import cni_refusal, fault, mode_refusal
    chosen = tuple(fault(name) for name in dict.fromkeys(config.getoption("lab_fault")))
    mode = config.getoption("lab_proxy")
    for unable in (f for f in chosen if mode not in f.modes):
        raise ValueError(mode_refusal(unable, mode))
    if chosen:
        install = _profile(config).lab_install
        for refusal in filter(None, (cni_refusal(f, install) for f in chosen)):
            raise ValueError(refusal)
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    spec = getattr(metafunc.function, "netconform_check", None)
    if spec is None:
        return
    run: NetconformRun = metafunc.config.stash[RUN]
    deviation = run.profile.deviation(spec.requirement)
    marks = []
    if deviation:
        marks.append(pytest.mark.xfail(reason=f"known deviation of {run.profile.name}: "
                                              f"{deviation.reason} ({deviation.link})", strict=False))
    topology = run.planned()
    missing = spec.missing(topology)
    cases = [] if missing else spec.cases(topology)
    params = [pytest.param(c, id=c.id, marks=[*marks, getattr(pytest.mark, c.family)])
              for c in cases] or [pytest.param(
        Case(spec.requirement, INSPECT, "none", None), id="none", marks=pytest.mark.skip(
            reason=missing or "this cluster offers no pair to check"))]
    metafunc.parametrize("netconform_case", params)


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest) -> Conformance:
    """The started cluster (started by the run before the first item, see pytest_runtestloop)."""
    run: NetconformRun = request.config.stash[RUN]
    run.start()
    return run.conformance


@pytest.fixture
def netconform_judgement(request: pytest.FixtureRequest, conformance: Conformance,
                         netconform_case: Case) -> Judgement:
    """Probe and judge the item's case during set-up: when the harness could not do its part
    (a probe that cannot be asked, a host limit hit), the item is an error, not a failure."""
    judgement = conformance.judge(request.function.netconform_check, netconform_case)
    if judgement.harness_error:
        pytest.fail(f"harness error, the network was not judged: {judgement.message}", pytrace=False)
    return judgement

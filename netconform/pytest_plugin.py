"""The pytest side of netconform: options, one item per case, the cluster fixture, the reports."""
from __future__ import annotations

import fcntl
import tempfile
from pathlib import Path

import pytest

from . import cmdline
from . import options as opts
from .backends import registry
from .backends.base import BackendError
from .checks import INSPECT, Case
from .options import bounded, path_value, range_help
from .pair_plan import AUTO, PAIR_MODES, SAMPLE_ABOVE
from .profiles import PROFILES, Profile, UnknownProfile, custom_lab_profile, profile
from .pytest_run import NetconformRun
from .report import baseline as compared
from .requirements import CATALOG, LEVELS
from .session import Conformance, Judgement
from .topology import FAMILIES, IP_FAMILY_CHOICES

RUN = pytest.StashKey["NetconformRun"]()
REPORT_LOCK = pytest.StashKey[object]()
DEFAULT_CNI = "bridge"
OPTION_GROUPS = ("netconform", *(p.group for p in registry.plugins().values()))


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
                    help="the IP families of the cluster: ipv4, ipv6 or dual. On the lab, what it builds "
                         "(default: dual where it can, with bridge, ptp or --lab-cni-conf; ipv4 otherwise); "
                         "on a live cluster, what you expect its nodes to have (a different answer is an "
                         "error; default: as found)")
    group.addoption("--pairs", choices=PAIR_MODES, default=AUTO,
                    help="which pairs between nodes are probed: all, or a deterministic sample that "
                         "keeps every ordered node pair, every pod in each role and every same-node "
                         f"pair (auto, the default: a sample above {SAMPLE_ABOVE} nodes)")
    group.addoption("--pairs-seed", type=bounded(int, opts.PAIRS_SEED), default=0, metavar="N",
                    help=range_help("the sample's seed: the same seed, the same pairs (default 0)",
                                    opts.PAIRS_SEED))
    group.addoption("--peers-per-node", type=bounded(int, opts.PEERS_PER_NODE), default=None, metavar="N",
                    help=range_help("with the sample: peer nodes per node as source (and as "
                                    "destination) instead of every other node; raised to the pods "
                                    "per node, so every pod is tested in each role; implies --pairs=sample "
                                    "under auto", opts.PEERS_PER_NODE))
    group.addoption("--baseline", metavar="RESULTS_JSON", type=path_value, default=None,
                    help="an earlier run's results.json: the terminal, results.json and the report "
                         "name the items that fail now and passed then (new failures), the fixed "
                         "ones and the unchanged ones")
    group.addoption("--fail-on", choices=("must", "should", "may"), default="must",
                    help="the lowest level whose failure makes the exit code 1 (default must)")
    group.addoption("--cleanup-only", action="store_true",
                    help="remove what earlier runs left behind (lab namespaces, state; with "
                         "--kubeconfig: the cluster's run namespaces) and exit")
    group.addoption("--backend", choices=tuple(registry.plugins()), default=None,
                    help="how the suite meets the cluster: 'lab' (the lab makes the run's pods and "
                         "objects itself) or 'kube' (through the API server, as on a live cluster; "
                         "with a lab profile, on a lab that is only the cluster). Default: the "
                         "--cni profile's (lab for bridge, ptp, vxlan; kube for the others)")
    for plugin in registry.plugins().values():  # each backend owns its options
        plugin.add_options(parser)


def _on_lab(config: pytest.Config, chosen: Profile) -> bool:
    return registry.on_lab(config, chosen)


def _lab_installs() -> str:
    return ", ".join(name for name, p in PROFILES.items() if p.lab_install)


def _names(backend: str) -> str:
    return ", ".join(name for name, p in PROFILES.items() if p.backend == backend)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    for plugin in registry.plugins().values():  # a backend's own command (--lab-fault list)
        code = plugin.command(config)
        if code is not None:
            return code
    if not config.getoption("cleanup_only"):
        return None
    return registry.plugins()["kube" if _is_kube(config) else "lab"].cleanup(config)


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
        not_applicable = _not_applicable(config.getoption("not_applicable"))
        earlier = compared.load(config.getoption("baseline")) if config.getoption("baseline") else None
        plugin = registry.backend_of(config, chosen)
        if config.getoption("backend") == "lab" and plugin.name != "lab":
            raise ValueError(f"--backend=lab with --cni={chosen.name}: the lab runs the lab profiles "
                             f"({_names('lab')}) and, with no kubeconfig named, {_lab_installs()}; "
                             f"{chosen.name} is tested on a live cluster here (--backend=kube)")
        plugin.check(config, chosen)
        report_dir = config.getoption("report_dir") or Path(config.rootpath) / "reports" / chosen.name
        # A pytest-xdist worker (the own tests run on two) shares its controller's directory
        if not (config.option.collectonly or config.option.help or hasattr(config, "workerinput")):
            _check_writable(report_dir)
            config.stash[REPORT_LOCK] = _lock_report_dir(report_dir)
    except (UnknownProfile, ValueError) as exc:
        raise pytest.UsageError(f"netconform: {exc}") from None
    try:
        backend = plugin.make(config, chosen, report_dir)
    except BackendError as exc:  # options that cannot go together, found by the backend
        raise pytest.UsageError(f"netconform: {exc}") from None
    run = config.stash[RUN] = NetconformRun(config, chosen, backend, report_dir, not_applicable, earlier)
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
    run.plan_items(metafunc.definition.nodeid, spec.requirement, max(1, len(cases)),
                   None if missing else spec.coverage(topology))
    params = [pytest.param(c, id=c.id, marks=[*marks, getattr(pytest.mark, c.family)])
              for c in cases] or [pytest.param(
        Case(spec.requirement, INSPECT, "none", None, topology.families[0]), id="none", marks=pytest.mark.skip(
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

"""The pytest side of netconform: options, one item per case, the cluster fixture, the reports."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from .backends.base import Backend, BackendError
from .checks import Case
from .probing.runner import ProbeSettings
from .profiles import Profile, UnknownProfile, custom_lab_profile, profile
from .report import html, results
from .requirements import CATALOG, LEVELS
from .session import Conformance
from .topology import Topology

RUN = pytest.StashKey["NetconformRun"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform", "Kubernetes network model conformance")
    group.addoption("--cni", default="bridge", metavar="NAME",
                    help="CNI profile to test: lab profiles bridge, ptp (default: bridge, on the lab); "
                         "live-cluster profiles kindnet, calico, cilium, flannel, antrea, kube-router, "
                         "other")
    group.addoption("--report-dir", metavar="DIR", type=Path,
                    help="where results.json and report.html go (default: reports/<cni>)")
    group.addoption("--probe-timeout", type=float, default=2.0, metavar="SECONDS",
                    help="timeout of one connection attempt (default 2)")
    group.addoption("--probe-attempts", type=int, default=2, metavar="N",
                    help="attempts per connection; a pass after a retry is reported flaky (default 2)")
    group.addoption("--cleanup-only", action="store_true",
                    help="remove what earlier runs left behind (lab namespaces, state) and exit")
    kube = parser.getgroup("netconform-kube", "live clusters (a --cni that is not a lab profile)")
    kube.addoption("--kubeconfig", type=Path, metavar="FILE",
                   help="kubeconfig (default: $KUBECONFIG, then ~/.kube/config)")
    kube.addoption("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
    kube.addoption("--probe-image", metavar="IMAGE", default=None,
                   help="the probe image (default: the published image built from probes/Dockerfile)")
    kube.addoption("--image-pull-secret", metavar="[NAMESPACE/]NAME",
                   help="a Secret to copy into the run's namespace and pull the probe image with")
    kube.addoption("--node-selector", metavar="KEY=VALUE[,…]", help="test only the nodes with these labels")
    kube.addoption("--tolerations", metavar="KEY[=VALUE]:EFFECT[,…]|all",
                   help="taints the probes tolerate (e.g. node-role.kubernetes.io/control-plane:NoSchedule)")
    kube.addoption("--namespace-prefix", default="netconform", metavar="PREFIX",
                   help="the run's namespace is PREFIX-<run id> (default netconform)")
    kube.addoption("--keep", action="store_true",
                   help="leave the run's namespace in place for debugging (remove it with --cleanup-only)")
    kube.addoption("--ready-timeout", type=float, default=180.0, metavar="SECONDS",
                   help="how long the probe pods may take to become Ready (default 180)")
    lab = parser.getgroup("netconform-lab", "the embedded lab backend")
    lab.addoption("--lab-nodes", type=int, default=3, metavar="N", help="lab nodes (default 3)")
    lab.addoption("--lab-pods-per-node", type=int, default=2, metavar="N",
                  help="single-container probe pods per node (default 2)")
    lab.addoption("--lab-cni-conf", type=Path, metavar="FILE",
                  help="run the lab with this CNI conflist instead of the profile's "
                       "(${POD_CIDR}, ${NODE_IP}, ${NODE_NAME} are filled in per node)")
    lab.addoption("--lab-ready-timeout", type=float, default=60.0, metavar="SECONDS",
                  help="how long probes may take to start (default 60)")
    lab.addoption("--lab-fault", action="append", default=[], metavar="NAME",
                  help="inject a named fault after the lab is built (repeatable); "
                       "'--lab-fault list' prints every fault and what it breaks")


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
        return 2
    removed = cleanup.remove_stale_runs()
    alive = sorted(cleanup.run_prefixes())
    print(f"netconform: removed {len(removed)} stale lab run(s){': ' if removed else ''}"
          f"{', '.join(removed)}")
    if alive:
        print(f"netconform: left {len(alive)} run(s) whose owner is still alive: {', '.join(alive)}")
    return 0


def pytest_configure(config: pytest.Config) -> None:
    for req in CATALOG.values():
        config.addinivalue_line("markers", f"{req.id}: {req.level} — {req.title}")
    for level in LEVELS:
        config.addinivalue_line("markers", f"{level}: every requirement of level {level}")
    try:
        chosen = _profile(config)
        _lab_faults(config)
        if chosen.backend == "kube":
            _kube_options(config)  # bad --node-selector or --tolerations: fail before anything
            if config.getoption("lab_fault"):
                raise ValueError("--lab-fault injects faults into the lab; a live cluster has its own")
        elif config.getoption("kubeconfig") or config.getoption("context"):
            raise ValueError(f"--cni={chosen.name} is a lab profile; on a live cluster name its CNI "
                             "(kindnet, calico, cilium, flannel, antrea, kube-router) or --cni=other")
    except (UnknownProfile, ValueError) as exc:
        raise pytest.UsageError(f"netconform: {exc}") from None
    run = config.stash[RUN] = NetconformRun(config, chosen)
    config.pluginmanager.register(run, "netconform-run")


def _profile(config: pytest.Config) -> Profile:
    conf = config.getoption("lab_cni_conf")
    if conf is not None:
        if not conf.is_file():
            raise ValueError(f"--lab-cni-conf {conf}: no such file")
        return custom_lab_profile(conf.resolve())
    return profile(config.getoption("cni"))


def _is_kube(config: pytest.Config) -> bool:
    try:
        return profile(config.getoption("cni")).backend == "kube"
    except UnknownProfile:
        return False


def _kube_options(config: pytest.Config):
    from .backends.kube.backend import DEFAULT_IMAGE, KubeOptions
    from .backends.kube.manifests import parse_node_selector, parse_tolerations
    opt = config.getoption
    return KubeOptions(opt("kubeconfig"), opt("context"), opt("probe_image") or DEFAULT_IMAGE,
                       opt("image_pull_secret"), parse_node_selector(opt("node_selector")),
                       parse_tolerations(opt("tolerations")), opt("namespace_prefix"), opt("keep"),
                       opt("ready_timeout"))


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
    from .backends.lab.faults import fault
    return tuple(fault(name) for name in dict.fromkeys(config.getoption("lab_fault")))


class NetconformRun:
    """The plugin's state for one pytest session."""

    def __init__(self, config: pytest.Config, chosen: Profile) -> None:
        self.config = config
        self.profile = chosen
        self.backend = self._backend()
        self.cases: dict[str, Case] = {}  # pytest nodeid -> case
        self.deviations: dict[str, str] = {}  # pytest nodeid -> deviation text
        self.records: dict[str, results.ItemRecord] = {}
        self._planned: Topology | None = None
        self.conformance = Conformance(
            self.backend, ProbeSettings(config.getoption("probe_timeout"),
                                        max(1, config.getoption("probe_attempts"))), self.progress)
        self.document: dict | None = None

    def _backend(self) -> Backend:
        opt = self.config.getoption
        if self.profile.backend == "kube":
            from .backends.kube.backend import KubeBackend
            return KubeBackend(self.profile, _kube_options(self.config))
        from .backends.lab.backend import LabBackend
        return LabBackend(self.profile, opt("lab_nodes"), opt("lab_pods_per_node"),
                          opt("lab_ready_timeout"), _lab_faults(self.config))

    def planned(self) -> Topology:
        if self._planned is None:
            try:
                self._planned = self.backend.plan()
            except BackendError as exc:
                raise pytest.UsageError(f"netconform: {exc}") from None
        return self._planned

    def progress(self, message: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"netconform {message}")
        else:
            reporter.write_line(f"netconform {message}")

    @property
    def report_dir(self) -> Path:
        chosen = self.config.getoption("report_dir")
        return chosen or Path(self.config.rootpath) / "reports" / self.profile.name

    def start(self) -> None:
        """Bring the cluster up; a cluster that cannot start ends the run with its one reason."""
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            self.conformance.start()
        except BackendError as exc:
            raise pytest.UsageError(f"netconform: {exc}") from None

    # --- hooks of this run (the object is registered as a plugin) ---

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Start the cluster before the first item, so progress and errors come before the dots."""
        if self.cases and not session.config.option.collectonly and session.items:
            if any(item.nodeid in self.cases for item in session.items):
                self.start()

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> None:
        """Plan before collecting: a cluster that cannot be planned is one usage error, not one
        collection error per suite module."""
        self.planned()

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            callspec = getattr(item, "callspec", None)
            if callspec is not None and isinstance(callspec.params.get("netconform_case"), Case):
                self.cases[item.nodeid] = callspec.params["netconform_case"]
                xfail = item.get_closest_marker("xfail")
                if xfail is not None:
                    self.deviations[item.nodeid] = xfail.kwargs.get("reason")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.cases:
            return
        outcome = _outcome(report)
        if outcome is None:
            return
        previous = self.records.get(report.nodeid)
        if previous is None or (previous.outcome == "passed" and outcome != "passed"):
            self.records[report.nodeid] = self.conformance.record(
                self.cases[report.nodeid], report.nodeid, outcome, report.duration,
                self.deviations.get(report.nodeid))

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        """Tear the cluster down, then write results.json and report.html."""
        if self.conformance.runner is None:
            self.conformance.close()
            return
        meta = self.conformance.metadata()
        problems = self.conformance.close()
        meta["phases"] = dict(self.conformance.phases)
        meta["interrupted"] = exitstatus == pytest.ExitCode.INTERRUPTED
        if problems:
            meta["cleanup_problems"] = problems
        self.document = results.build(meta, list(self.records.values()))
        results.write(self.report_dir / "results.json", self.document)
        html.write(self.report_dir / "report.html", self.document)

    def pytest_unconfigure(self) -> None:
        self.conformance.close()  # a second line of defence: closing twice is a no-op

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.document is None:
            return
        tr = terminalreporter
        tr.section("netconform conformance")
        for row in self.document["summary"]:
            if row["total"]:
                tr.write_line(f"{row['id']:<18} {row['level']:<7} {row['verdict']:<16} "
                              f"{row['passed']}/{row['total']} passed")
        ok = self.document["conformant"]
        tr.write_line(f"{self.profile.name} on {self.backend.name}: "
                      f"{'CONFORMANT' if ok else 'NOT CONFORMANT (a MUST requirement failed)'}",
                      green=ok, red=not ok)
        tr.write_line(f"report: {self.report_dir / 'report.html'}")
        tr.write_line(f"results: {self.report_dir / 'results.json'}")


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
    cases = spec.cases(run.planned())
    params = [pytest.param(c, id=c.id, marks=marks) for c in cases] or [pytest.param(
        None, id="none", marks=pytest.mark.skip(reason=f"{spec.requirement}: this cluster offers no "
                                                        "pair to check (e.g. no client outside it)"))]
    metafunc.parametrize("netconform_case", params)


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest) -> Conformance:
    """The started cluster (started by the run before the first item, see pytest_runtestloop)."""
    run: NetconformRun = request.config.stash[RUN]
    run.start()
    return run.conformance


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _outcome(report: pytest.TestReport) -> str | None:
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            return "xfailed" if report.skipped else "xpassed"
        return report.outcome
    if report.when == "setup" and not report.passed:
        return "skipped" if report.skipped else "error"
    if report.when == "teardown" and report.failed:
        return "error"
    return None

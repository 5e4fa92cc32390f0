"""One pytest session of netconform: the cluster, one record per item, and the run's one verdict.

Registered as a plugin by pytest_plugin.pytest_configure. The verdict itself is computed by
netconform.verdict from counts this class gathers: what was collected, what was selected, what ran,
and whether (and where) the run was interrupted.
"""
from __future__ import annotations

import signal
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from .backends.base import Backend, BackendError
from .checks import Case
from .options import MAX_ITEMS
from .pair_plan import ALL, PairPlan
from .probing.runner import ProbeSettings
from .profiles import Profile
from .report import baseline as compared, html, results
from .session import Conformance
from .topology import POD, Topology
from .verdict import Selection

INTERRUPTED_BY: list[str] = []  # the signal that stopped the run, set by the handler below


class NetconformRun:
    """The plugin's state for one pytest session."""

    def __init__(self, config: pytest.Config, chosen: Profile, backend: Backend,
                 report_dir: Path, not_applicable: dict[str, str], baseline: dict | None = None) -> None:
        self.config = config
        self.baseline = baseline  # --baseline: an earlier run's document, read before this one began
        self.profile = chosen
        self.backend = backend
        self.report_dir = report_dir
        self.not_applicable = not_applicable
        # test function's nodeid -> (requirement, items it parametrizes): counted as each test
        # function is parametrized, before node ids, --lf, -k or -m leave any of its items out
        self.generated: dict[str, tuple[str, int]] = {}
        self.pairs: dict[str, tuple[str, tuple[int, int]]] = {}  # nodeid -> (requirement, coverage)
        self.cases: dict[str, Case] = {}  # pytest nodeid -> case, of every collected item
        self.selected: dict[str, Case] = {}  # of the items left after -k, -m and node ids
        self.deviations: dict[str, str] = {}  # pytest nodeid -> deviation text
        self.records: dict[str, results.ItemRecord] = {}
        self.running: str | None = None  # the item under way, named when the run is interrupted
        self.start_failed = False
        self._planned: Topology | None = None
        settings = ProbeSettings(config.getoption("probe_timeout"), config.getoption("probe_attempts"))
        settings.concurrency = backend.probe_concurrency(settings.parallel_probes) or settings.concurrency
        self.conformance = Conformance(backend, settings, self.progress)
        self.document: dict | None = None

    def planned(self) -> Topology:
        """The topology to collect from; refused before collection when it would make more items
        than a run can hold (items grow with the square of the pods)."""
        if self._planned is None:
            try:
                planned = self.backend.plan()
            except BackendError as exc:
                raise pytest.UsageError(f"netconform: {exc}") from None
            options = self.config.getoption
            if options("pairs") == ALL and options("peers_per_node") is not None:
                raise pytest.UsageError("netconform: --peers-per-node chooses a sample of the pairs; "
                                        "--pairs=all probes every one")
            plan = PairPlan.for_cluster(options("pairs"), len(planned.nodes), options("pairs_seed"),
                                        options("peers_per_node"))
            planned = replace(planned, pairs=plan)
            self.conformance.pairs = plan  # the started cluster's pairs are chosen the same way
            estimate = estimated_items(planned)
            if estimate > MAX_ITEMS:
                raise pytest.UsageError(
                    f"netconform: {len(planned.nodes)} nodes with {len(planned.of_kind(POD))} probe pods "
                    f"make about {estimate:,} items, more than {MAX_ITEMS:,} a run can hold: use fewer "
                    "nodes or pods per node" + _fewer_pairs_hint(plan, len(planned.nodes), len(planned.of_kind(POD))))
            self._planned = planned
        return self._planned

    def plan_items(self, function: str, requirement: str, items: int,
                   pairs: tuple[int, int] | None = None) -> None:
        """A test function's items, and its check's (pairs tested, pairs that exist)."""
        self.generated[function] = (requirement, items)
        if pairs is not None:
            self.pairs[function] = (requirement, pairs)

    def coverage(self) -> dict:
        """The pair plan and, per requirement, the pairs its selected items test (distinct
        source and destination, over every protocol and family) out of the pairs that exist, as
        results.json and the report state them: a selection (-m, -k, node ids, --lf) tests fewer."""
        per: dict[str, dict[str, int]] = {}
        for requirement, (_planned, exist) in self.pairs.values():
            per.setdefault(requirement, {"tested": 0, "exist": 0})["exist"] += exist
        tested: dict[str, set] = {}
        for case in self.selected.values():
            tested.setdefault(case.requirement, set()).add((case.source, case.destination))
        for requirement, row in per.items():
            row["tested"] = min(len(tested.get(requirement, ())), row["exist"])
        plan = self._planned.pairs if self._planned is not None else PairPlan()
        return {"pairs": plan.mode, "seed": plan.seed if plan.samples else None,
                "peers_per_node": plan.peers, "description": plan.describe(),
                "tested": sum(r["tested"] for r in per.values()), "exist": sum(r["exist"] for r in per.values()),
                "requirements": per, "nodes": self.backend.node_coverage(self.conformance.topology or self.planned())}

    def planned_counts(self) -> dict[str, int]:
        """Items per requirement the collected test functions make: what a full run of them checks.
        Counted from the checks themselves, so a selection by node id (which drops items before
        any hook sees them) is seen as a selection, never as the whole requirement."""
        counts: Counter = Counter()
        for requirement, items in self.generated.values():
            counts[requirement] += items
        for case in self.cases.values():  # never fewer than were collected
            counts.setdefault(case.requirement, 0)
        collected = Counter(c.requirement for c in self.cases.values())
        return {rid: max(counts[rid], collected[rid]) for rid in counts}

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

    def start(self) -> None:
        """Bring the cluster up; a cluster that cannot start ends the run with its one reason."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _interrupt)
        try:
            self.conformance.start()
        except BackendError as exc:
            self.start_failed = True
            raise pytest.UsageError(f"netconform: {exc}") from None

    # --- hooks of this run (the object is registered as a plugin) ---

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> None:
        """Plan before collecting: a cluster that cannot be planned is one usage error, not one
        collection error per suite module."""
        self.planned()

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Every collected case, before -k and -m deselect any: what the run could have checked."""
        for item in items:
            callspec = getattr(item, "callspec", None)
            if callspec is not None and isinstance(callspec.params.get("netconform_case"), Case):
                case = callspec.params["netconform_case"]
                self.cases[item.nodeid] = case
                reason = self.not_applicable.get(case.requirement)
                if reason is not None:
                    item.add_marker(pytest.mark.skip(reason=f"declared not applicable: {reason}"))
                xfail = item.get_closest_marker("xfail")
                if xfail is not None:
                    self.deviations[item.nodeid] = xfail.kwargs.get("reason")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = {item.nodeid: self.cases[item.nodeid] for item in session.items
                         if item.nodeid in self.cases}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Start the cluster before the first item, so progress and errors come before the dots."""
        if self.selected and not session.config.option.collectonly:
            self.start()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.running = self.cases[nodeid].full_id if nodeid in self.cases else nodeid.split("::")[-1]

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
                self.deviations.get(report.nodeid), _why(report))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Tear the cluster down, then write results.json and report.html, and end with the
        verdict's exit code (0 CONFORMANT, 1 NOT CONFORMANT, 2 INCOMPLETE)."""
        if self.cases:  # from here on, an interrupt asks teardown to hurry instead of killing it
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, _count_press)
        interrupted = self._interruption(exitstatus)
        if interrupted:  # a user who stops a run wants it stopped, not a page (or a line) per failure
            self.config.option.tbstyle = "no"
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.reportchars = ""
        if (not self.cases or self.start_failed or self.config.option.collectonly
                or exitstatus == pytest.ExitCode.USAGE_ERROR):  # not a conformance run, or none began
            self.conformance.close(self.report_dir / "logs" if self.start_failed else None)
            return
        lost = self.conformance.judged_again_for_lost_nodes(self.records, self.cases)
        meta = self.conformance.metadata()
        if lost:
            meta["lost_nodes"] = lost
            self.progress(f"nodes that went not Ready during the run: "
                          f"{'; '.join(f'{n} ({why})' for n, why in sorted(lost.items()))}; "
                          f"the failures involving them are errors, not judged")
        problems = self.conformance.close(self.report_dir / "logs",
                                          hurry=bool(interrupted) or PRESSES_AFTER_RUN[0] > 0)
        meta["phases"] = dict(self.conformance.phases)
        if problems:
            meta["cleanup_problems"] = problems
        selection = Selection(self.planned_counts(),
                              dict(Counter(c.requirement for c in self.selected.values())),
                              self.not_applicable, self._untested_families())
        self.document = results.build(meta, list(self.records.values()), selection, interrupted,
                                      self.config.getoption("fail_on"), self.coverage())
        if self.baseline is not None:
            try:
                self.document["baseline"] = compared.compare(self.baseline, self.document,
                                                             self.config.getoption("baseline"))
            except Exception as exc:  # noqa: BLE001 - the run's own results are never lost to it
                self.document["meta"]["baseline_error"] = f"{exc.__class__.__name__}: {exc}"
                self.progress(f"--baseline: not compared ({exc.__class__.__name__}: {exc})")
        self._write()
        _junit_property(self.config, "netconform_verdict", self.document["verdict"])
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                          pytest.ExitCode.INTERRUPTED, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = self.document["exit_code"]

    def _untested_families(self) -> tuple[str, ...]:
        """The families the cluster has (as found when it started, else as planned) that no item
        was collected for: a requirement holds only in every family, so none can pass."""
        if self._planned is None:
            return ()
        found = self.conformance.topology or self._planned
        return tuple(f for f in found.cluster_families if f not in self._planned.families)

    def _interruption(self, exitstatus: int) -> str | None:
        if exitstatus != pytest.ExitCode.INTERRUPTED:
            return None
        by = INTERRUPTED_BY[0] if INTERRUPTED_BY else "Ctrl-C (SIGINT)"
        if not self.conformance.runners:
            return f"by {by} while the cluster was being brought up"
        where = f"during {self.running}" if self.running else "before the first item"
        return f"by {by} {where}, after {len(self.records)} of {len(self.selected)} item(s)"

    def _write(self) -> None:
        """A report directory that became unusable during the run loses the files, not the verdict."""
        try:
            results.write(self.report_dir / "results.json", self.document)
            html.write(self.report_dir / "report.html", self.document)
        except OSError as exc:
            self.document.setdefault("meta", {})["report_error"] = str(exc)
            self.progress(f"could not write the report to {self.report_dir}: {exc}")

    def pytest_unconfigure(self) -> None:
        self.conformance.close()  # a second line of defence: closing twice is a no-op

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.document is None:
            return
        tr = terminalreporter
        tr.section("netconform conformance")
        for row in self.document["summary"]:
            if row["total"]:
                tr.write_line(f"{row['id']:<24} {row['level']:<7} {row['verdict']:<16} "
                              f"{row['passed']}/{row['total']} passed"
                              + (f"  ({row['note']})" if row["note"] and row["total"] else ""))
        word = self.document["verdict"]
        tr.write_line(f"{self.profile.name} on {self.backend.name}: {self.document['headline']}",
                      green=word == "CONFORMANT", red=word == "NOT CONFORMANT",
                      yellow=word == "INCOMPLETE", bold=True)
        for reason in self.document["verdict_reasons"]:
            tr.write_line(f"  {reason}")
        coverage = self.document.get("coverage")
        if coverage and coverage.get("nodes"):
            nodes = coverage["nodes"]
            tr.write_line(f"nodes: {nodes['tested']:,} of {nodes['in_cluster']:,} tested"
                          + (f"; excluded: {'; '.join(n['name'] + ' (' + n['reason'] + ')' for n in nodes['excluded'][:10])}"
                             + (f"; and {len(nodes['excluded']) - 10} more" if len(nodes["excluded"]) > 10 else "")
                             if nodes["excluded"] else ""))
        if coverage and coverage["exist"]:
            tr.write_line(f"pairs: {coverage['description']}: {coverage['tested']:,} of "
                          f"{coverage['exist']:,} pairs tested")
        for line in compared.lines(self.document["baseline"]) if self.document.get("baseline") else ():
            tr.write_line(line, red=line.startswith("  new failure"), green=line.startswith("  fixed"))
        problems = self.document["meta"].get("cleanup_problems", [])
        if problems:
            tr.write_line(f"teardown: {len(problems)} problem(s), first: {problems[0]}")
        if "report_error" not in self.document["meta"]:
            tr.write_line(f"report: {self.report_dir / 'report.html'}")
            tr.write_line(f"results: {self.report_dir / 'results.json'}")


def estimated_items(topology: Topology) -> int:
    """Items a full run collects, from the families that grow fastest: every ordered pod pair
    over three protocols (POD-POD-*) and again for MTU and UDP-LARGE, every node to every pod over three
    (HOSTNET-POD), every node and the outside client to every node's NodePort and hostPort over
    two (SVC-NODEPORT, HOSTPORT), every pod to every node's NodePort over two (POD-NODEPORT),
    the few per pod of the Service checks (SVC-MULTIPORT and SVC-ENDPOINTSLICE-MANUAL: 4 each,
    SVC-TYPE-CHANGE and SVC-PORT-PROTOCOLS: 2 each), and of the
    DNS checks (16 per pod, 2 per node's hostNetwork probe), the 3 shared hostPorts and DUAL-STACK's
    one per pod and node; all of it once per IP family the checks run in. With a sample of the
    pairs (pair_plan.py), one pair per pair of nodes (every one, or each node's peers) and every
    same-node pair. An upper bound, never an undercount."""
    pods, nodes = len(topology.of_kind(POD)), len(topology.nodes)
    pod_pairs, node_to_pods = pods * max(0, pods - 1), nodes * pods
    node_pairs, pods_to_nodes = (nodes + 1) * nodes, pods * nodes
    per_node = -(-pods // nodes) if nodes else 0
    if topology.pairs.samples and PairPlan.can_sample(nodes, per_node):  # else it keeps every pair
        peers = min(max(topology.pairs.peers or nodes - 1, per_node), max(nodes - 1, 0))
        pod_pairs = min(pod_pairs, nodes * peers + nodes * per_node * max(0, per_node - 1))
        node_to_pods = min(node_to_pods, nodes * peers + pods)
        node_pairs = min(node_pairs, nodes * (peers + 1) + nodes)
        pods_to_nodes = min(pods_to_nodes, nodes * peers + pods)
    per_family = (5 * pod_pairs + 3 * node_to_pods + 2 * 2 * node_pairs + 2 * pods_to_nodes
                  + 32 * pods + 16 * pods + 2 * nodes + 13 * pods + 3 + pods + nodes)
    return per_family * max(1, len(topology.families))


def _fewer_pairs_hint(plan: PairPlan, nodes: int, pods: int) -> str:
    """The pair option that would make fewer items, if one would: a sample needs more other
    nodes than pods per node (else it keeps every pair), and then fewer peers help."""
    if not PairPlan.can_sample(nodes, -(-pods // nodes) if nodes else 0):
        return ""
    return ", or --peers-per-node" if plan.samples else ", or --pairs=sample"


PRESSES_AFTER_RUN = [0]  # Ctrl-C / SIGTERM received once the items are done


def _count_press(signum, frame) -> None:
    """After the items, a signal cannot stop anything useful: teardown and the report take
    seconds, and a traceback in the middle of them would lose both. It makes teardown hurry."""
    PRESSES_AFTER_RUN[0] += 1


def _interrupt(signum, frame):
    """Ctrl-C, or SIGTERM (a CI runner cancelling a job), stops the run once; a second signal
    while it unwinds only asks teardown to hurry, instead of a traceback that loses the report."""
    if INTERRUPTED_BY:
        PRESSES_AFTER_RUN[0] += 1
        return
    INTERRUPTED_BY[:] = [f"{signal.Signals(signum).name}"]
    raise KeyboardInterrupt(f"signal {signum}")


def _junit_property(config: pytest.Config, name: str, value: str) -> None:
    """The verdict as a property of JUnit's test suite (--junitxml), for CI systems that read it."""
    try:
        from _pytest.junitxml import xml_key
    except ImportError:
        return
    xml = config.stash.get(xml_key, None)
    if xml is not None:
        xml.add_global_property(name, value)


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


def _why(report: pytest.TestReport) -> str:
    """A skip's reason, or the first line of an error, for items that have no verdict."""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed and report.when != "call":
        return (report.longreprtext or "").strip().splitlines()[-1][:500] if report.longreprtext else ""
    return ""

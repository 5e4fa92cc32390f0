"""One conformance run: the backend, the probing engine, and the record of every item.

Knows nothing of pytest: the plugin asks for a judgement per case and decides how to show it.
"""
from __future__ import annotations

import platform
import signal
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from . import __version__
from .backends.base import Backend, BackendError
from .checks import Case, Check
from .pair_plan import PairPlan
from .probing.cycle import PodControl
from .probing.runner import ProbeSettings, Runner
from .probing.verdicts import Verdict, not_judged_on_lost_nodes, not_judged_under_policy
from .report.results import ItemRecord
from .requirements import requirement
from .services import backend_nodes
from .topology import HOSTPORT, NODEPORT, SERVICE, Endpoint, Topology


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    message: str  # what a failing item says: the verdict's reason and the routes of its nodes

    @property
    def harness_error(self) -> bool:
        return not self.verdict.ok and self.verdict.harness


NODE_GRACE = 50.0  # s the node lifecycle controller waits after a node's last heartbeat (upstream's)


class Conformance:
    def __init__(self, backend: Backend, settings: ProbeSettings,
                 progress: Callable[[str], None]) -> None:
        self.backend = backend
        self.settings = settings
        self.progress = progress
        self.runners: dict[str, Runner] = {}  # one per IP family the checks run in
        self.topology: Topology | None = None
        self.pairs = PairPlan()  # set by the run from --pairs before collection
        self.verdicts: dict[str, tuple[Verdict, dict]] = {}
        self.judged_at: dict[str, float] = {}  # full id -> time.monotonic() of its verdict
        self.phases: dict[str, float] = {}
        self.started_at = time.time()
        self.starting = False  # the backend was asked to bring the cluster up
        self.closed = False

    def start(self) -> None:
        """Bring the cluster up once; a cluster that cannot come up raises BackendError."""
        if not self.runners:
            self.starting = True
            began = time.monotonic()
            # the pairs are chosen as they were planned (a pure function of the names and the plan)
            self.topology = replace(self.backend.start(self.progress), pairs=self.pairs)
            self.phases["setup"] = time.monotonic() - began
            reports: dict[str, dict] = {}  # the probes' self-reports hold every family: read once
            for family in self.topology.families:  # each family's checks see the cluster in it
                self.runners[family] = Runner(
                    self.topology.in_family(family), self.backend.channel, self.settings,
                    self.backend.host_watch(), self.backend.change_service, self.backend.reach_through_api,
                    PodControl(self.backend.start_pod, self.backend.delete_pod), reports=reports)
            self._probing_began = time.monotonic()

    @property
    def runner(self) -> Runner | None:
        """The runner of the first family (None before the cluster is up)."""
        return next(iter(self.runners.values()), None)

    def judge(self, spec: Check, case: Case) -> Judgement:
        """Probe (one batch per check and protocol, shared by its cases) and judge one case."""
        runner = self.runners[case.family]
        verdict = not_judged_under_policy(spec.verdict(runner.observe(spec, case)), self.backend.blocking_policies())
        self.judged_at[case.full_id] = time.monotonic()
        lost = self.backend.lost_nodes()  # a look every 10 s at most: when each node was last seen Ready
        if lost and not verdict.ok:
            verdict = not_judged_on_lost_nodes(verdict, self.involved_nodes(case), lost)
        evidence = {}
        if not verdict.ok and not verdict.harness:
            nodes = {self.topology.endpoint(case.source).node}
            if case.destination:
                nodes.add(self.topology.endpoint(case.destination).node)
            nodes &= {node.name for node in self.topology.nodes}  # not 'svc' or the outside
            evidence = {n: runner.node_evidence(n) for n in sorted(nodes)}
        self.verdicts[case.full_id] = (verdict, evidence)
        return Judgement(verdict, f"{case.full_id}: {verdict.reason}{_routes(evidence)}")

    def involved_nodes(self, case: Case) -> set[str]:
        """The nodes an item's traffic touches: its source's and destination's, and for a Service,
        NodePort or hostPort, the nodes of what it leads to."""
        nodes = set()
        for name in filter(None, (case.source, case.destination)):
            try:
                endpoint = self.topology.endpoint(name)
            except KeyError:  # not a probe or a target (a name a DNS check asks for)
                continue
            nodes.add(endpoint.node)
            if endpoint.kind in (SERVICE, NODEPORT, HOSTPORT) and endpoint.serves:
                service = self.topology.services.get(endpoint.serves)
                led_to = service.backends if service else (endpoint.serves,)
                nodes |= {b.split("/", 1)[0] for b in led_to}  # an endpoint's name: <node>/<role>
        return nodes & {node.name for node in self.topology.nodes}

    def judged_again_for_lost_nodes(self, records: dict[str, ItemRecord], cases: dict[str, Case]) -> dict:
        """At the run's end, one last look at the nodes: a node the cluster marked not Ready only
        after it failed items (the node lifecycle controller waits 40-50 s) makes those failures
        errors too, as judge() would have made them had it known; but not a failure judged more
        than NODE_GRACE before a look last saw the node Ready (it was up then). Returns the lost
        nodes."""
        lost = self.backend.lost_nodes(final=True) if self.topology is not None else {}
        for nodeid, record in records.items():
            if lost and record.outcome == "failed" and nodeid in cases:
                at = self.judged_at.get(cases[nodeid].full_id, float("inf"))
                lost_then = {node: why for node, why in lost.items()
                             if at >= self.backend.last_seen_ready(node) - NODE_GRACE}
                verdict = not_judged_on_lost_nodes(Verdict(False, record.kind, record.reason, record.observed),
                                                   self.involved_nodes(cases[nodeid]), lost_then)
                if verdict.harness:
                    records[nodeid] = replace(record, outcome="error", kind=verdict.kind, reason=verdict.reason,
                                              observed=verdict.observed)
        return lost

    def record(self, case: Case, nodeid: str, outcome: str, duration: float,
               deviation: str | None, why: str = "") -> ItemRecord:
        """The item's record; ``why`` is the reason pytest gave when there is no verdict (a skip,
        an error before probing)."""
        verdict, evidence = self.verdicts.get(case.full_id, (None, {}))
        return ItemRecord(
            id=case.full_id, nodeid=nodeid, requirement=case.requirement,
            level=requirement(case.requirement).level, protocol=case.protocol,
            source=self._describe(case.source, case.family),
            destination=self._describe(case.destination, case.family),
            outcome=outcome, flaky=bool(verdict and verdict.kind == "flaky"),
            kind=verdict.kind if verdict else ("error" if outcome == "error" else ""),
            reason=verdict.reason if verdict else why,
            observed=verdict.observed if verdict else {}, evidence=evidence,
            deviation=deviation, duration=round(duration, 4), family=case.family)

    def _describe(self, name: str | None, family: str) -> dict | None:
        """The endpoint's name, node and address in the item's family."""
        if name is None:
            return None
        node, ip = name.split("/", 1)[0], None
        if family in self.runners:
            try:
                endpoint: Endpoint = self.runners[family].topology.endpoint(name)
            except KeyError:  # the placeholder of a check with nothing to check here
                return {"name": name, "node": None, "ip": None}
            node, ip = endpoint.node, endpoint.ip
        return {"name": name, "node": node, "ip": ip}

    def metadata(self) -> dict:
        if self.runner is not None and "probing" not in self.phases:
            self.phases["probing"] = time.monotonic() - self._probing_began
        meta = self.backend.metadata()
        meta.update({
            "netconform": __version__, "python": sys.version.split()[0],
            "kernel": platform.release(), "started": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "nodes": [n.name for n in self.topology.nodes] if self.topology else [],
            # the families the items ran in, and the ones the cluster has (a gap: every row incomplete)
            "ip_families": list(self.topology.families) if self.topology else [],
            "cluster_ip_families": list(self.topology.cluster_families) if self.topology else [],
            # the nodes whose probes back the Services every client must reach each backend of
            # (at most services.MAX_BACKENDS, as upstream e2e)
            "service_backend_nodes": backend_nodes([n.name for n in self.topology.nodes]) if self.topology else [],
            "probe_timeout_s": self.settings.timeout, "probe_attempts": self.settings.attempts,
            "probe_concurrency": self.settings.concurrency, "parallel_probes": self.settings.parallel_probes,
            "control_requests": dict(sum((r.requests for r in self.runners.values()), Counter())),
            # the targets that flapped after a Service change and were settled again, per requirement
            "service_change_flaps": dict(sum((r.flaps for r in self.runners.values()), Counter())),
            "phases": dict(self.phases),
            # where the probing time went: the batches of each requirement, every family's, longest first
            "check_seconds": {req: round(seconds, 1) for req, seconds in sum(
                (r.batch_seconds for r in self.runners.values()), Counter()).most_common()},
        })
        return meta

    def close(self, keep_logs_in: Path | None = None, hurry: bool = False) -> list[str]:
        """Tear the cluster down, once. A first Ctrl-C (or SIGTERM) during teardown makes it hurry
        (skip what is polite but slow); a second stops it and says what is left and how to remove it."""
        if self.closed:
            return []
        self.closed = True
        began = time.monotonic()
        problems = self.backend.keep_logs(keep_logs_in) if keep_logs_in else []
        meta = self.backend.metadata()
        owned = meta.get("lab_prefix") or meta.get("namespace") or "this run's objects"
        with _teardown_signals() as presses:
            if self.starting:
                self.progress("tearing down (Ctrl-C: hurry; twice: stop and leave the rest to "
                              "--cleanup-only)")
            try:
                problems += self.backend.close(hurry=lambda: hurry or presses[0] > 0)
            except KeyboardInterrupt:
                problems.append(f"teardown stopped by a second interrupt: {owned} is left; the next "
                                "run removes it, or now: sudo ./run lab --cleanup-only (or pytest "
                                "--cleanup-only)")
                self.progress(problems[-1])
        self.phases["teardown"] = time.monotonic() - began
        return problems


def _routes(evidence: dict) -> str:
    lines = []
    for node, ev in evidence.items():
        routes = "; ".join(f"{r['dst']}" + (f" via {r['gateway']}" if r.get("gateway") else "")
                           + (f" dev {r['dev']}" if r.get("dev") else "")
                           for r in ev.get("routes", []) if r.get("family") == "ipv4")
        lines.append(f"\n  {node} routes: {routes or ev.get('error', 'none')}")
    return "".join(lines)


@contextmanager
def _teardown_signals():
    """Count Ctrl-C and SIGTERM during teardown instead of dying at once: the first asks teardown to
    hurry, the second raises KeyboardInterrupt. A Python handler, not SIG_IGN, so that the CNI
    plugins teardown starts get default signal handling (an ignored signal is inherited on exec)."""
    presses = [0]
    if threading.current_thread() is not threading.main_thread():
        yield presses
        return

    def pressed(signum, frame) -> None:
        presses[0] += 1
        if presses[0] > 1:
            raise KeyboardInterrupt(f"signal {signum} during teardown")

    previous = {sig: signal.signal(sig, pressed) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield presses
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["Conformance", "Judgement", "BackendError"]

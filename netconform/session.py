"""One conformance run: the backend, the probing engine, and the record of every item."""
from __future__ import annotations

import platform
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable

import pytest

from . import __version__
from .backends.base import Backend, BackendError
from .checks import Case, Check
from .probing.runner import ProbeSettings, Runner
from .probing.verdicts import Verdict
from .report.results import ItemRecord
from .requirements import requirement
from .topology import Endpoint, Topology


class Conformance:
    def __init__(self, backend: Backend, settings: ProbeSettings,
                 progress: Callable[[str], None]) -> None:
        self.backend = backend
        self.settings = settings
        self.progress = progress
        self.runner: Runner | None = None
        self.topology: Topology | None = None
        self.verdicts: dict[str, tuple[Verdict, dict]] = {}
        self.phases: dict[str, float] = {}
        self.started_at = time.time()
        self.closed = False

    def start(self) -> None:
        """Bring the cluster up once; a cluster that cannot come up raises BackendError."""
        if self.runner is None:
            began = time.monotonic()
            self.topology = self.backend.start(self.progress)
            self.phases["setup"] = time.monotonic() - began
            self.runner = Runner(self.topology, self.backend.channel, self.settings)
            self._probing_began = time.monotonic()

    def verify(self, spec: Check, case: Case) -> Verdict:
        verdict = spec.verdict(self.runner.observe(spec, case))
        evidence = {}
        if not verdict.ok:
            nodes = {self.topology.endpoint(case.source).node}
            if case.destination:
                nodes.add(self.topology.endpoint(case.destination).node)
            nodes &= {node.name for node in self.topology.nodes}  # not 'svc' or the outside
            evidence = {n: self.runner.node_evidence(n) for n in sorted(nodes)}
        self.verdicts[case.full_id] = (verdict, evidence)
        if not verdict.ok:
            pytest.fail(f"{case.full_id}: {verdict.reason}{_routes(evidence)}", pytrace=False)
        return verdict

    def record(self, case: Case, nodeid: str, outcome: str, duration: float,
               deviation: str | None) -> ItemRecord:
        verdict, evidence = self.verdicts.get(case.full_id, (None, {}))
        return ItemRecord(
            id=case.full_id, nodeid=nodeid, requirement=case.requirement,
            level=requirement(case.requirement).level, protocol=case.protocol,
            source=self._describe(case.source), destination=self._describe(case.destination),
            outcome=outcome, flaky=bool(verdict and verdict.kind == "flaky"),
            kind=verdict.kind if verdict else "", reason=verdict.reason if verdict else "",
            observed=verdict.observed if verdict else {}, evidence=evidence,
            deviation=deviation, duration=round(duration, 4))

    def _describe(self, name: str | None) -> dict | None:
        if name is None:
            return None
        node, ip = name.split("/", 1)[0], None
        if self.topology is not None:
            endpoint: Endpoint = self.topology.endpoint(name)
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
            "probe_timeout_s": self.settings.timeout, "probe_attempts": self.settings.attempts,
            "control_requests": dict(self.runner.requests) if self.runner else {},
            "phases": dict(self.phases),
        })
        return meta

    def close(self) -> list[str]:
        """Tear the cluster down, once, with Ctrl-C and SIGTERM held off until it is done."""
        if self.closed:
            return []
        self.closed = True
        began = time.monotonic()
        with _signals_held():
            problems = self.backend.close()
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
def _signals_held():
    """Ignore Ctrl-C and SIGTERM while tearing down: a second Ctrl-C must not strand a namespace."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["Conformance", "BackendError"]

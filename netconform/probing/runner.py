"""Runs checks as batches: one control request per source probe per (check, protocol).

The first item of a (check, protocol) triggers the whole batch for every pair of the check; later
items read their pair's result from the cache. So the number of control requests grows with the
number of probes, never with the number of pairs.
"""
from __future__ import annotations

import collections
import ipaddress
import math
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ..checks import INSPECT, Case, Check
from ..topology import Endpoint, Topology
from .channel import ProbeChannel, ProbeUnavailable


@dataclass
class ProbeSettings:
    timeout: float = 2.0  # seconds per connection attempt
    attempts: int = 2  # a pass after a retry is recorded as flaky, never as a plain pass
    concurrency: int = 64  # connections a probe runs at once
    parallel_probes: int = 16  # probes the harness asks at once


@dataclass
class Observation:
    """Everything a verdict may look at for one case."""

    case: Case
    check: Check
    source: Endpoint
    destination: Endpoint | None
    result: dict | None  # the probe's record of the connection (None for inspections)
    runner: "Runner"


class Runner:
    def __init__(self, topology: Topology, channel_for: Callable[[Endpoint], ProbeChannel],
                 settings: ProbeSettings | None = None) -> None:
        self.topology = topology
        self.channel_for = channel_for
        self.settings = settings or ProbeSettings()
        self.requests: collections.Counter[str] = collections.Counter()
        self._batches: dict[tuple, dict[str, dict]] = {}
        self._reports: dict[str, dict] = {}
        self._lock = threading.RLock()
        self._run_token = uuid.uuid4().hex[:8]

    # --- what verdicts ask for ---

    def observe(self, check: Check, case: Case) -> Observation:
        source = self.topology.endpoint(case.source)
        destination = self.topology.endpoint(case.destination) if case.destination else None
        result = None
        if case.protocol != INSPECT:
            result = self.batch(check, case.protocol)[case.id]
        return Observation(case, check, source, destination, result, self)

    def batch(self, check: Check, protocol: str) -> dict[str, dict]:
        with self._lock:
            key = (check, protocol)
            if key not in self._batches:
                self._batches[key] = self._run_batch(check, protocol)
            return self._batches[key]

    def report(self, endpoint: Endpoint) -> dict:
        """The probe's self-report (interfaces, addresses, MACs, routes), read once per run."""
        with self._lock:
            if endpoint.name not in self._reports:
                self.requests["self"] += 1
                try:
                    self._reports[endpoint.name] = self.channel_for(endpoint).call("self")
                except ProbeUnavailable as exc:
                    self._reports[endpoint.name] = {"error": str(exc), "interfaces": [],
                                                   "routes": []}
            return self._reports[endpoint.name]

    def addresses(self, endpoint: Endpoint) -> list[str]:
        """The endpoint's own addresses, read from inside its namespace (no loopback, no link-local)."""
        found = []
        for interface in self.report(endpoint)["interfaces"]:
            for cidr in interface["addresses"]:
                ip = ipaddress.ip_interface(cidr).ip
                if not (ip.is_loopback or ip.is_link_local):
                    found.append(str(ip))
        return found

    def node_addresses(self, node: str) -> list[str]:
        return self.addresses(self.topology.host_of(node))

    def node_evidence(self, node: str) -> dict:
        report = self.report(self.topology.host_of(node))
        return {"interfaces": report["interfaces"], "routes": report["routes"],
                **({"error": report["error"]} if "error" in report else {})}

    # --- mechanism ---

    def _run_batch(self, check: Check, protocol: str) -> dict[str, dict]:
        cases = check.cases(self.topology, protocol)
        targets: dict[str, list[dict]] = collections.defaultdict(list)
        for case in cases:
            destination = self.topology.endpoint(case.destination)
            targets[case.source].append({
                "id": case.id, "token": f"{self._run_token}:{case.full_id}",
                "ip": check.address(destination), "port": destination.port, "proto": protocol,
                "timeout": self.settings.timeout, "attempts": self.settings.attempts})
        results: dict[str, dict] = {}
        workers = max(1, min(self.settings.parallel_probes, len(targets)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for found in pool.map(lambda item: self._ask(*item), targets.items()):
                results.update(found)
        if protocol == "icmp":
            self._collect_icmp_sources(cases, targets, results)
        return results

    def _ask(self, source: str, targets: list[dict]) -> dict[str, dict]:
        """Send one source probe all its targets; a dead probe fails each of them, with the reason."""
        s = self.settings
        rounds = math.ceil(len(targets) / s.concurrency)
        bound = s.timeout * s.attempts * rounds + 10
        self.requests[targets[0]["proto"]] += 1
        try:
            answer = self.channel_for(self.topology.endpoint(source)).call(
                "probe", {"targets": targets, "concurrency": s.concurrency}, timeout=bound)
            return {r["id"]: r for r in answer["results"]}
        except ProbeUnavailable as exc:
            return {t["id"]: {"id": t["id"], "ok": False, "error": "probe unavailable",
                              "detail": str(exc), "seen": None, "responder": None,
                              "local": None, "attempts": 0, "errors": []} for t in targets}

    def _collect_icmp_sources(self, cases: list[Case], targets: dict[str, list[dict]],
                              results: dict[str, dict]) -> None:
        """ICMP has no echo server: ask each receiver which source its capture saw per token."""
        token_of = {t["id"]: t["token"] for batch in targets.values() for t in batch}
        by_receiver: dict[str, list[Case]] = collections.defaultdict(list)
        for case in cases:
            by_receiver[case.destination].append(case)
        for receiver, received in by_receiver.items():
            self.requests["icmp-seen"] += 1
            try:
                answer = self.channel_for(self.topology.endpoint(receiver)).call(
                    "icmp-seen", {"tokens": [token_of[c.id] for c in received]})
            except ProbeUnavailable as exc:
                answer = {"seen": {}, "error": str(exc)}
            for case in received:
                results[case.id]["seen"] = answer["seen"].get(token_of[case.id])
                if answer.get("error"):
                    results[case.id]["capture_error"] = answer["error"]

"""Runs checks as batches: one control request per source probe per (check, protocol).

The first item of a (check, protocol) triggers the whole batch for every pair of the check; later
items read their pair's result from the cache. So the number of control requests grows with the
number of probes, never with the number of pairs.
"""
from __future__ import annotations

import collections
import dataclasses
import ipaddress
import math
import threading
import time
import uuid
from types import MappingProxyType
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..checks import INSPECT, Case, Change, Check, Connection, DnsNames, Query
from ..topology import APISERVER, HOST, POD, PROBE_KINDS, Endpoint, Topology, family_of
from .channel import ProbeChannel, ProbeUnavailable
from .cycle import PodControl, run_cycle


ICMP_SEEN_ASKS, ICMP_SEEN_PAUSE = 4, 0.5  # a receiver is asked again for echoes its capture missed
VIA_API = "proxy"  # the pseudo-protocol of a check whose source is the API server (its pod proxy)
# s the cluster has, after a Service change, to answer the new way. It costs nothing where the
# cluster follows at once (a question ends at its first expected answer), so it is set for a slow
# one: 5 s once failed SVC-PORT-PROTOCOLS on a healthy lab under CI load (the EndpointSlice for a
# port put back came later), and upstream's e2e tests poll such changes for minutes
CHANGE_SETTLE = 20.0
ServiceChanger = Callable[[str, "dict | None"], dict]  # (Service, merge patch or None) -> its spec


@dataclass
class ProbeSettings:
    timeout: float = 2.0  # seconds per connection attempt
    attempts: int = 2  # a pass after a retry is recorded as flaky, never as a plain pass
    concurrency: int = 64  # connections a probe runs at once
    parallel_probes: int = 16  # probes the harness asks at once
    settle: float = CHANGE_SETTLE  # seconds a question of a Service-changing check may take to
    # get its expected answer (a fault judgement that expects failures may shorten it)
    cycle_within: float | None = None  # seconds a backend change may take to reach the clients
    # (None: the check's own, the specification's 30 s; a fault judgement may shorten it too)


@dataclass
class Observation:
    """Everything a verdict may look at for one case, gathered before it is judged: a verdict is a
    pure function of this, and asks nothing of the cluster."""

    case: Case
    check: Check
    source: Endpoint
    destination: Endpoint | None
    results: list[dict]  # the probe's record of each connection (none for inspections)
    topology: Topology
    # The self-reports (interfaces, addresses, routes) of the source, the destination and every
    # node's host probe, by endpoint name; one that could not be read carries "error"
    reports: Mapping[str, dict] = field(default_factory=dict)
    # The results of the other batches the check declares as its evidence, by (check, protocol)
    evidence: Mapping[tuple[Check, str], dict[str, dict]] = field(default_factory=dict)

    @property
    def result(self) -> dict | None:
        return self.results[0] if self.results else None

    def report(self, endpoint: Endpoint) -> dict:
        return self.reports.get(endpoint.name) or {
            "error": f"no self-report of {endpoint.name} was gathered", "interfaces": [], "routes": []}

    def addresses(self, endpoint: Endpoint) -> list[str]:
        """The endpoint's own addresses, as read from inside its namespace (no loopback, no link-local)."""
        return own_addresses(self.report(endpoint))

    def node_addresses(self, node: str) -> list[str]:
        return self.addresses(self.topology.host_of(node))


def own_addresses(report: dict) -> list[str]:
    found = []
    for interface in report["interfaces"]:
        for cidr in interface["addresses"]:
            ip = ipaddress.ip_interface(cidr).ip
            if not (ip.is_loopback or ip.is_link_local):
                found.append(str(ip))
    return found


@dataclass
class HostWatch:
    """Counters of limits the whole host shares (neighbour tables, conntrack), read around each
    batch: a limit hit while a batch ran makes that batch's failed connections harness errors,
    because the host, not the cluster's network, dropped them."""

    snapshot: Callable[[], object]
    exceeded: Callable[[object, object], str | None]  # (before, after) -> the reason, or None


class Runner:
    def __init__(self, topology: Topology, channel_for: Callable[[Endpoint], ProbeChannel],
                 settings: ProbeSettings | None = None, host: HostWatch | None = None,
                 services: ServiceChanger | None = None,
                 through_api: Callable[[Endpoint, float], dict] | None = None,
                 pods: PodControl | None = None, reports: dict[str, dict] | None = None) -> None:
        self.topology = topology  # as the checks of its family see the cluster (Topology.in_family)
        self.pods = pods  # creates and deletes backend pods while the run goes on (cycle.py)
        self.services = services  # reads (patch None) or changes one of the run's Services
        self.through_api = through_api  # asks a probe's health through the API server's pod proxy
        self.channel_for = channel_for
        self.settings = settings or ProbeSettings()
        self.host = host
        self.requests: collections.Counter[str] = collections.Counter()
        # requirement -> targets whose Service change flapped (answered, then not) and were settled
        # again (netprobe.probe_target): how often a proxy went back on a change it had followed
        self.flaps: collections.Counter[str] = collections.Counter()
        self._batches: dict[tuple, dict[str, dict]] = {}
        self.batch_seconds: collections.Counter[str] = collections.Counter()  # requirement -> time its batches took
        self._reports: dict[str, dict] = {} if reports is None else reports  # shared across families
        self._hosts_read = False  # every node's host probe has been asked for its self-report
        self._lock = threading.RLock()
        self._run_token = uuid.uuid4().hex[:8]

    # --- what verdicts ask for ---

    def observe(self, check: Check, case: Case) -> Observation:
        source = self.topology.endpoint(case.source)
        destination = self.topology.endpoint(case.destination) if case.destination else None
        results = []
        if case.protocol != INSPECT:
            made_by = check.judges_connections_of or check
            batch = self.batch(made_by, case.protocol)
            results = [batch[target_id] for target_id in self._target_ids(made_by, case)]
        evidence = {(other, protocol): self.batch(other, protocol) for other, protocol in check.evidence}
        return Observation(case, check, source, destination, results, self.topology,
                           self._reports_of(source, destination), evidence)

    def _reports_of(self, *endpoints: Endpoint | None) -> Mapping[str, dict]:
        """The self-reports a verdict may read: these endpoints', and every node's host probe's
        (a verdict names the node an address it saw belongs to), each read once per run. A
        read-only view: entries are only ever added, so what a verdict saw stays as it saw it."""
        with self._lock:
            if not self._hosts_read:
                for endpoint in self.topology.of_kind(HOST):
                    self.report(endpoint)
                self._hosts_read = True
        for endpoint in endpoints:
            if endpoint is not None and endpoint.kind in PROBE_KINDS:
                self.report(endpoint)
        return MappingProxyType(self._reports)

    def batch(self, check: Check, protocol: str) -> dict[str, dict]:
        with self._lock:
            key = (check, protocol)
            if key not in self._batches:
                began = time.monotonic()
                self._batches[key] = self._run_batch(check, protocol)
                self.batch_seconds[check.requirement] += time.monotonic() - began
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
        return own_addresses(self.report(endpoint))

    def mtu(self, endpoint: Endpoint) -> int:
        """The MTU of the interface that holds the endpoint's IP, read from inside (1500 if unknown)."""
        for interface in self.report(endpoint)["interfaces"]:
            if any(cidr.split("/")[0] == endpoint.ip for cidr in interface["addresses"]):
                return int(interface["mtu"])
        return 1500

    def node_addresses(self, node: str) -> list[str]:
        return self.addresses(self.topology.host_of(node))

    def dns_names(self) -> DnsNames | str:
        """The run's namespace and the cluster domain, the latter read from the search list of the
        first pod probe whose resolv.conf has ``<namespace>.svc.<domain>`` (kubelet's first
        entry); the reason, when none has."""
        namespace = self.topology.meta.get("namespace")
        if not namespace:
            return "the backend did not say which namespace the run's Services are in"
        prefix = f"{namespace}.svc."
        searched = []
        for endpoint in self.topology.of_kind(POD):
            search = self.report(endpoint).get("resolv_conf", {}).get("search", [])
            searched.append(f"{endpoint.name}: {' '.join(search) or 'none'}")
            domain = next((s[len(prefix):].rstrip(".") for s in search if s.startswith(prefix)), None)
            if domain and not self.topology.meta.get("kubernetes_service_ip"):
                return "the ClusterIP of the kubernetes Service (default/kubernetes) could not be read"
            if domain:  # the kubernetes Service's address in this runner's family (None: it has none)
                apiserver = next(iter(self.topology.of_kind(APISERVER)), None)
                return DnsNames(namespace, domain, apiserver.ip if apiserver and apiserver.ip else
                                self._kubernetes_ip_in_family())
        return (f"no probe's resolv.conf searches {prefix}<domain>, so the cluster domain is unknown "
                f"(search lists: {'; '.join(searched[:3]) or 'no pod probes'})")

    def _kubernetes_ip_in_family(self) -> str | None:
        ip = self.topology.meta["kubernetes_service_ip"]
        return ip if family_of(ip) in self.topology.families else None

    def node_evidence(self, node: str) -> dict:
        report = self.report(self.topology.host_of(node))
        return {"interfaces": report["interfaces"], "routes": report["routes"],
                **({"error": report["error"]} if "error" in report else {})}

    # --- mechanism ---

    def _target_ids(self, check: Check, case: Case) -> list[str]:
        if check.queries is None and check.rounds is None:
            return _target_ids(check, self.topology, case)
        batch = self.batch(check, case.protocol)  # a DNS item's questions: its id, then '@'
        return [i for i in batch if i == case.id or i.startswith(f"{case.id}@")]

    def _run_batch(self, check: Check, protocol: str) -> dict[str, dict]:
        if check.cycle is not None:
            cases = check.cases(self.topology, protocol)
            if self.pods is None:
                return _harness_errors(cases, "this backend cannot create pods while the run goes on")
            cycle = check.cycle if self.settings.cycle_within is None else \
                dataclasses.replace(check.cycle, within=self.settings.cycle_within)
            return run_cycle(cycle, cases, self.topology, self.channel_for, self.pods,
                             self._run_token, self.requests)
        if check.queries is not None or check.rounds is not None:
            return self._run_dns_batch(check, protocol)
        if protocol == VIA_API:
            return self._run_api_batch(check)
        cases = check.cases(self.topology, protocol)
        targets: dict[str, list[dict]] = collections.defaultdict(list)
        for case in cases:
            destination = self.topology.endpoint(case.destination)
            size = {"size": self.mtu(self.topology.endpoint(case.source))} if check.full_size else {}
            if check.payload:
                size = {"payload": check.payload}
            source_ip = check.bind(self.topology.endpoint(case.source), destination) if check.bind else None
            if source_ip and protocol == "tcp":
                size["source_ip"] = source_ip
            targets[case.source] += [{
                "id": target_id, "token": f"{self._run_token}:{case.requirement}[{target_id}]",
                "ip": check.address(destination), "port": destination.port, "proto": protocol,
                "timeout": self.settings.timeout, "attempts": self.settings.attempts, **size}
                for target_id in _target_ids(check, self.topology, case)]
        results: dict[str, dict] = {}
        before = self.host.snapshot() if self.host else None
        self._ask_all([targets], results)
        if protocol == "icmp":
            self._collect_icmp_sources(check, cases, targets, results)
        limit = self.host.exceeded(before, self.host.snapshot()) if self.host else None
        if limit:
            for result in results.values():
                if not result["ok"]:
                    result["harness_error"] = limit
        return results

    def _run_api_batch(self, check: Check) -> dict[str, dict]:
        """APISERVER-POD: the API server (the source) reaches each destination probe through its
        pod proxy, ``parallel_probes`` at once; each attempt bounded by the probe timeout."""
        cases = check.cases(self.topology, VIA_API)
        if self.through_api is None:
            return _harness_errors(cases, "this backend cannot reach probes through an API server")

        def reach(case: Case) -> dict:
            destination = self.topology.endpoint(case.destination)
            result = {"id": case.id, "ok": False, "error": None, "errors": [], "responder": None}
            for _ in range(self.settings.attempts):
                self.requests[VIA_API] += 1
                found = self.through_api(destination, self.settings.timeout)
                if found.get("harness"):
                    return {**_harness_errors([case], found["detail"])[case.id], "errors": result["errors"]}
                if found["ok"]:
                    result.update(ok=True, responder=found.get("responder"))
                    break
                result["errors"].append(found["error"])
                result["detail"] = found.get("detail")
            result["attempts"] = len(result["errors"]) + result["ok"]
            result["error"] = None if result["ok"] else result["errors"][-1]
            return result

        with ThreadPoolExecutor(max_workers=max(1, min(self.settings.parallel_probes, len(cases)))) as pool:
            return {r["id"]: r for r in pool.map(reach, cases)}

    def _run_dns_batch(self, check: Check, protocol: str) -> dict[str, dict]:
        """DNS questions, one request per source probe per round; each result keeps its question
        (the verdict compares the answers with what the question expects). A check with changes
        asks a round, changes a Service, asks the next round (each question given CHANGE_SETTLE
        to be answered the new way), and puts the Service back at the end."""
        cases = check.cases(self.topology, protocol)
        results: dict[str, dict] = {}
        names = self.dns_names()
        if isinstance(names, str):
            return _harness_errors(cases, names)
        if check.rounds is None:
            self._ask_round(cases, lambda src, dst: check.queries(self.topology, src, dst, names), "", results)
            return results
        if self.services is None and check.changes:
            return _harness_errors(cases, "this backend cannot change the run's Services")
        changes = [None, *check.changes]
        asking = list(cases)
        try:
            for change in changes:
                # the cases settled by the rounds so far are done
                asking = [c for c in asking if not (check.until is not None and check.until(c, results))
                          and not (check.stop_at_failure and self._failed_so_far(check, c, results))]
                if not asking:
                    break
                if change is not None and change.pause:
                    time.sleep(change.pause)
                if not check.changes:  # one round, nothing changed: it reads no Service
                    spec = {}
                elif change is None:
                    spec = self._change(check.changes[0].service, None)
                else:
                    spec = self._change(change.service, change.patch)
                # the first round settles too: the batch before (the other protocol's) may have
                # put the Service back a moment ago
                self._ask_round(asking, lambda src, dst, spec=spec: check.rounds(
                    self.topology, src, dst, names, spec, protocol),
                    f"{'initial' if change is None else change.label}/", results, settle=self.settings.settle)
        except ServiceChangeFailed as exc:  # the rounds it could not ask: the harness's failure
            for case in cases:
                results[f"{case.id}@change"] = {**_harness_errors([case], str(exc))[case.id],
                                                "id": f"{case.id}@change"}
        finally:
            if check.restore:
                try:
                    self._change(check.restore.service, check.restore.patch)
                except ServiceChangeFailed as exc:  # the next batch would start from another state
                    for case in cases:
                        results[f"{case.id}@restore"] = {**_harness_errors([case], str(exc))[case.id],
                                                         "id": f"{case.id}@restore"}
        return results

    def _failed_so_far(self, check: Check, case: Case, results: dict[str, dict]) -> bool:
        """Whether the case's verdict on its rounds so far is a failure (not a harness error)."""
        mine = [r for target_id, r in results.items() if target_id.startswith(f"{case.id}@")]
        if not mine:
            return False
        source = self.topology.endpoint(case.source)
        destination = self.topology.endpoint(case.destination) if case.destination else None
        verdict = check.verdict(Observation(case, check, source, destination, mine, self.topology,
                                            self._reports_of(source, destination)))
        return not verdict.ok and not verdict.harness

    def _change(self, service: str, patch: dict | None) -> dict:
        try:
            return self.services(service, patch)
        except Exception as exc:  # noqa: BLE001 - an API refusal or a lost connection: the harness's
            raise ServiceChangeFailed(service, patch, exc) from exc

    def _ask_round(self, cases: list[Case], asks: Callable[[Endpoint, Endpoint], list[Query | Connection]],
                   prefix: str, results: dict[str, dict], settle: float = 0.0) -> None:
        """One request per source probe with the questions and connections of every case; with
        ``settle``, each is tried again for that long until it gets the answer it expects (a
        question) or connects (a connection): the cluster following a change takes a moment.
        Connections with affinity expectations (``sticky``) go in two phases, each address's
        first alone; after a change, the cases whose groups do not behave as expected yet (one
        backend, or several) are asked again within ``settle``: no single connection can tell
        whether the proxy has applied an affinity switch."""
        deadline = None
        waiting = list(cases)
        while waiting:
            asked = self._ask_once(waiting, asks, prefix, results, settle)
            # the re-asks have ``settle`` from the end of the first pass: a slow first pass (a
            # fault's timeouts) must not leave the healthy cases no second look
            deadline = deadline or time.monotonic() + settle
            waiting = [case for case in waiting if not _groups_settled(case, asked, results)]
            if not waiting or time.monotonic() + 0.5 > deadline:
                return
            time.sleep(0.25)

    def _ask_once(self, cases: list[Case], asks: Callable[[Endpoint, Endpoint], list[Query | Connection]],
                  prefix: str, results: dict[str, dict], settle: float) -> dict[str, Query | Connection]:
        first: dict[str, list[dict]] = collections.defaultdict(list)
        rest: dict[str, list[dict]] = collections.defaultdict(list)
        asked: dict[str, Query | Connection] = {}
        group_first: dict[tuple, str] = {}  # (case, ip, port) of sticky connections -> the first's id
        group_of: dict[str, tuple] = {}  # a later sticky connection's id -> its group
        for case in cases:
            source, destination = self.topology.endpoint(case.source), self.topology.endpoint(case.destination)
            opened: set[tuple[str, int]] = set()
            for ask in asks(source, destination):
                target_id = f"{case.id}@{prefix}{ask.label}"
                if isinstance(ask, Query):
                    ask = dataclasses.replace(ask, settle=settle)
                asked[target_id] = ask
                target = {"id": target_id, "token": f"{self._run_token}:{case.requirement}[{target_id}]",
                          "proto": case.protocol, "timeout": self.settings.timeout,
                          "attempts": self.settings.attempts}
                alone = False
                if isinstance(ask, Connection):
                    alone = ask.sticky is not None and (ask.ip, ask.port) not in opened
                    # an affinity group's first connection settles the address; the rest need not
                    later = ask.sticky is not None and not alone
                    target.update(ip=ask.ip, port=ask.port, **({"settle": settle} if settle and not later else {}),
                                  **({} if ask.answered else {"unanswered": True}))
                    opened.add((ask.ip, ask.port))
                    if ask.sticky is not None:
                        group = (case.id, ask.ip, ask.port)
                        target["group"] = target_id.split("#")[0]  # the agent stops it at a failure
                        if alone:
                            group_first[group] = target_id
                        else:
                            group_of[target_id] = group
                else:
                    target["dns"] = ask.request()
                (first if alone else rest)[case.source].append(target)
        # connections with an affinity expectation go one after the other, as upstream's affinity
        # test makes them: a burst of UDP flows from one pod through a NodePort's SNAT can lose a
        # packet to the kernel's conntrack insertion race, which is not what the row is about
        sticky = any(isinstance(a, Connection) and a.sticky is not None for a in asked.values())
        if sticky:
            self._ask_all([dict(first)], results, one_at_a_time=True)
            rest = self._skip_failed_groups(rest, group_first, group_of, results)
        self._ask_all([phase for phase in ((dict(first), dict(rest)) if not sticky else (dict(rest),))
                       if phase], results, one_at_a_time=sticky)
        for target_id, ask in asked.items():
            kind = "connection" if isinstance(ask, Connection) else "query"
            results[target_id][kind] = dataclasses.asdict(ask)
        return asked

    @staticmethod
    def _skip_failed_groups(rest: dict[str, list[dict]], group_first: dict[tuple, str],
                            group_of: dict[str, tuple], results: dict[str, dict]) -> dict[str, list[dict]]:
        """The later connections of each affinity group whose first connection failed are not
        made: the item fails on that first one already, and each of them, one after the other,
        would wait out its own timeout (a NodePort that does not answer UDP costs seconds each).
        Each is recorded as not made, naming the connection that failed."""
        kept: dict[str, list[dict]] = {}
        for source, targets in rest.items():
            for target in targets:
                first_id = group_first.get(group_of.get(target["id"], ()))
                if first_id is not None and not results[first_id]["ok"]:
                    results[target["id"]] = {
                        "id": target["id"], "ok": False, "error": f"not made: {first_id} failed",
                        "errors": [], "attempts": 0, "seen": None, "responder": None, "local": None}
                else:
                    kept.setdefault(source, []).append(target)
        return kept

    def _ask_all(self, phases: list[dict[str, list[dict]]], results: dict[str, dict],
                 one_at_a_time: bool = False) -> None:
        """Ask every source probe its targets, phase after phase, ``parallel_probes`` at once;
        ``one_at_a_time``: each probe makes its connections one after the other."""
        workers = max(1, min(self.settings.parallel_probes, max((len(p) for p in phases), default=1)))
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            for phase in phases:
                for found in pool.map(lambda item: self._ask(*item, one_at_a_time), phase.items()):
                    results.update(found)
        except BaseException:  # an interrupt: do not wait for the requests in flight (teardown
            pool.shutdown(wait=False, cancel_futures=True)  # stops their probes, which ends them)
            raise
        pool.shutdown(wait=True)

    def _ask(self, source: str, targets: list[dict], one_at_a_time: bool = False) -> dict[str, dict]:
        """Send one source probe all its targets; a dead probe fails each of them, with the reason."""
        s = self.settings
        concurrency = 1 if one_at_a_time else s.concurrency
        rounds = math.ceil(len(targets) / concurrency)
        steps = 3 if any("dns" in t for t in targets) else 1  # a question, getaddrinfo, a connection
        settle = max((t.get("settle") or t.get("dns", {}).get("settle", 0) for t in targets), default=0)
        bound = s.timeout * s.attempts * rounds * steps + settle * rounds * (s.attempts + 1) + 10
        self.requests[targets[0]["proto"]] += 1
        try:
            answer = self.channel_for(self.topology.endpoint(source)).call(
                "probe", {"targets": targets, "concurrency": concurrency}, timeout=bound)
            requirement = {t["id"]: _requirement_of(t) for t in targets}
            flapped = collections.Counter(requirement.get(r["id"], "?") for r in answer["results"] if r.get("flapped"))
            if flapped:
                with self._lock:
                    self.flaps.update(flapped)
            return {r["id"]: r for r in answer["results"]}
        except ProbeUnavailable as exc:
            return {t["id"]: {"id": t["id"], "ok": False, "error": "probe unavailable",
                              "detail": str(exc), "seen": None, "responder": None,
                              "local": None, "attempts": 0, "errors": []} for t in targets}

    def _collect_icmp_sources(self, check: Check, cases: list[Case], targets: dict[str, list[dict]],
                              results: dict[str, dict]) -> None:
        """ICMP has no echo server: ask each receiver which source its capture saw per token."""
        token_of = {t["id"]: t["token"] for batch in targets.values() for t in batch}
        by_receiver: dict[str, list[str]] = collections.defaultdict(list)
        for case in cases:
            by_receiver[case.destination] += _target_ids(check, self.topology, case)
        for receiver, received in by_receiver.items():
            for attempt in range(ICMP_SEEN_ASKS):
                waiting = [t for t in received if results[t]["ok"] and not results[t].get("seen")]
                if attempt and not waiting:
                    break
                if attempt:  # the receiver's capture (a Python thread) may lag behind under load
                    time.sleep(ICMP_SEEN_PAUSE)
                asked = received if attempt == 0 else waiting
                self.requests["icmp-seen"] += 1
                try:
                    answer = self.channel_for(self.topology.endpoint(receiver)).call(
                        "icmp-seen", {"tokens": [token_of[t] for t in asked]})
                except ProbeUnavailable as exc:
                    answer = {"seen": {}, "error": str(exc)}
                for target_id in asked:
                    results[target_id]["seen"] = answer["seen"].get(token_of[target_id])
                    if answer.get("error"):
                        results[target_id]["capture_error"] = answer["error"]
            for target_id in received:
                if results[target_id]["ok"] and not results[target_id].get("seen") and \
                        not results[target_id].get("capture_error"):
                    results[target_id]["capture_error"] = (
                        f"the echo came back, so the packet arrived, but {receiver}'s capture "
                        f"had not logged it after {ICMP_SEEN_ASKS} asks")


def _requirement_of(target: dict) -> str:
    """The requirement a target is asked for, from its token ("<run>:<REQ>[<target id>]")."""
    return target["token"].split("[", 1)[0].rsplit(":", 1)[-1]


class ServiceChangeFailed(Exception):
    def __init__(self, service: str, patch: dict | None, cause: BaseException) -> None:
        what = "read" if patch is None else "change"
        super().__init__(f"could not {what} the Service {service}: {cause or type(cause).__name__}")


def _groups_settled(case: Case, asked: dict[str, Query | Connection], results: dict[str, dict]) -> bool:
    """Whether each address the case connected to with an affinity expectation answered as it
    expects: from one backend (sticky), or from more than one (not sticky). A mechanical look
    at who answered, for re-asking only; the verdict judges the last answers."""
    groups: dict[tuple[str, int, bool], set] = collections.defaultdict(set)
    failed: set[tuple[str, int, bool]] = set()
    for target_id, ask in asked.items():
        if target_id.startswith(f"{case.id}@") and isinstance(ask, Connection) and ask.sticky is not None:
            key = (ask.ip, ask.port, ask.sticky)
            groups[key].add(results[target_id].get("responder"))
            if not results[target_id].get("ok"):
                failed.add(key)  # connections that fail are the verdict's to judge, not to re-ask
    return all(key in failed or (len(responders) == 1) == key[2] for key, responders in groups.items())


def _harness_errors(cases: list[Case], reason: str) -> dict[str, dict]:
    return {c.id: {"id": c.id, "ok": False, "error": "harness", "harness_error": reason, "errors": []}
            for c in cases}


def _target_ids(check: Check, topology: Topology, case: Case) -> list[str]:
    """One connection per pair, or ``repeat`` numbered ones ('tcp/ipv4:a->b#0', 'tcp/ipv4:a->b#1', …)."""
    count = check.connections(topology, topology.endpoint(case.destination))
    return [case.id] if count == 1 else [f"{case.id}#{i}" for i in range(count)]

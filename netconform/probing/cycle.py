"""SVC-UDP-BACKEND-CHANGE: backend pods cycled while clients keep sending UDP from one fixed port.

As upstream's conntrack test (test/e2e/network/conntrack.go) does it: every client sends one
datagram each ``interval`` to the Service's ClusterIP from the same source port, so to conntrack all
of them are one flow; the Service has no endpoint when they start. Then:

1. a backend pod is created on the first node (through the backend, as ``kubectl run`` would) and,
   once Ready, the clients have ``within`` seconds to reach it;
2. a second backend is created on the last node, and once it is Ready the first is deleted: the
   clients have ``within`` seconds from that deletion to reach the second.

A proxy that leaves the conntrack entry of the first state in place (no endpoint: the datagrams go
nowhere; the deleted pod: they go to an address that is gone) keeps the flow where it was, and the
item fails. Phase 2 is skipped when phase 1 already failed for every client (the item fails on it).

Each datagram is one probe request from the client's probe (one attempt, waiting at most
``interval`` for the echo), so the timeline is the clients' own record: when each was sent, from
the start of the cycle, and which pod answered. The pods' times (Ready, deleted) are the harness's,
on the same clock. The result per case holds both; the verdict (service_verdicts.backend_followed)
judges them.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..checks import BackendCycle, Case
from ..topology import Endpoint, Topology
from .channel import ProbeChannel, ProbeUnavailable

FIRST, SECOND = "first", "second"


@dataclass
class PodControl:
    """What the backend offers a cycle: start a probe pod (name, node, role) and wait until it is
    Ready (its IP), and delete one."""

    start: Callable[[str, str, str], str]
    delete: Callable[[str], None]


class _Stream:
    """One client's datagrams, one request each, until stopped (or ``limit`` seconds)."""

    def __init__(self, case: Case, channel: ProbeChannel, target: dict, interval: float,
                 origin: float, limit: float) -> None:
        self.case = case
        self.channel = channel
        self.target = target
        self.interval = interval
        self.origin = origin
        self.limit = limit
        self.sent: list[dict] = []  # {"at": s from the origin, "responder": …, "error": …}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True, name=f"cycle-{case.source}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 15)

    def reached(self, responder: str) -> bool:
        return any(d["responder"] == responder for d in list(self.sent))

    def _send(self) -> None:
        number = 0
        while not self._stop.is_set() and time.monotonic() - self.origin < self.limit:
            began = time.monotonic()
            target = {**self.target, "id": f"{self.case.id}#{number}"}
            try:
                answer = self.channel.call("probe", {"targets": [target], "concurrency": 1},
                                           timeout=self.interval + 10)
                result = answer["results"][0]
                record = {"responder": result.get("responder") if result.get("ok") else None,
                          "error": result.get("error")}
            except (ProbeUnavailable, KeyError, IndexError, TypeError) as exc:
                record = {"responder": None, "error": "probe unavailable", "detail": str(exc)}
            self.sent.append({"at": round(began - self.origin, 3), **record})
            number += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))


def run_cycle(cycle: BackendCycle, cases: list[Case], topology: Topology,
              channel_for: Callable[[Endpoint], ProbeChannel], pods: PodControl, token: str,
              requests: dict | None = None) -> dict[str, dict]:
    """Cycle the backends while every case's source streams; one result per case (by case id)."""
    first_node, last_node = topology.nodes[0].name, topology.nodes[-1].name
    names = {FIRST: f"{cycle.service}-{token}-1", SECOND: f"{cycle.service}-{token}-2"}
    events: dict[str, dict] = {}
    origin = time.monotonic()
    limit = cycle.quiet + 4 * cycle.within + 600  # the pods' waits are bounded by the backend too
    streams = []
    for case in cases:
        source, service = topology.endpoint(case.source), topology.endpoint(case.destination)
        target = {"ip": service.ip, "port": service.port, "proto": "udp", "timeout": cycle.interval,
                  "attempts": 1, "source_port": cycle.source_port,
                  "token": f"{token}:{case.requirement}[{case.id}]"}
        streams.append(_Stream(case, channel_for(source), target, cycle.interval, origin, limit))
    problem = None
    created: list[str] = []
    try:
        for stream in streams:
            stream.start()
        time.sleep(cycle.quiet)
        problem = _phase(FIRST, first_node, names, cycle, pods, streams, events, created, origin)
        if problem is None and any(s.reached(_responder(events[FIRST])) for s in streams):
            problem = _phase(SECOND, last_node, names, cycle, pods, streams, events, created, origin)
    finally:
        for stream in streams:
            stream.stop()
        for name in created:  # the pods go whatever happened; a failed delete is noted
            if name not in {e.get("name") for e in events.values() if e.get("deleted_at") is not None}:
                try:
                    pods.delete(name)
                except Exception as exc:  # noqa: BLE001 - reported with the results
                    problem = problem or f"could not delete pod {name}: {exc}"
    if requests is not None:
        requests["udp"] = requests.get("udp", 0) + sum(len(s.sent) for s in streams)
    results = {}
    for stream in streams:
        result = {"id": stream.case.id, "ok": True, "error": None, "errors": [],
                  "cycle": {"pods": events, "datagrams": stream.sent, "within": cycle.within,
                            "interval": cycle.interval, "source_port": cycle.source_port}}
        if problem:
            result.update(ok=False, error="harness", harness_error=problem)
        results[stream.case.id] = result
    return results


def _phase(which: str, node: str, names: dict[str, str], cycle: BackendCycle, pods: PodControl,
           streams: list[_Stream], events: dict[str, dict], created: list[str], origin: float) -> str | None:
    """Start one pod (and, in phase 2, delete the first), then wait until every stream has
    reached it or ``within`` has passed. Returns the harness's problem, or None."""
    name = names[which]
    try:
        created.append(name)
        ip = pods.start(name, node, cycle.role)
    except Exception as exc:  # noqa: BLE001 - the backend could not do its part
        return f"could not start backend pod {name} on {node}: {exc}"
    events[which] = {"name": name, "node": node, "ip": ip,
                     "ready_at": round(time.monotonic() - origin, 3)}
    clock = events[which]["ready_at"]
    if which == SECOND:
        try:
            pods.delete(names[FIRST])
        except Exception as exc:  # noqa: BLE001
            return f"could not delete backend pod {names[FIRST]}: {exc}"
        events[FIRST]["deleted_at"] = clock = round(time.monotonic() - origin, 3)
    responder = _responder(events[which])
    deadline = origin + clock + cycle.within + cycle.interval  # the last datagram's echo too
    while time.monotonic() < deadline and not all(s.reached(responder) for s in streams):
        time.sleep(0.2)
    return None


def _responder(pod: dict) -> str:
    """The name the pod's probe answers with: ``<node>/<pod name>`` (kube/pods.py)."""
    return f"{pod['node']}/{pod['name']}"

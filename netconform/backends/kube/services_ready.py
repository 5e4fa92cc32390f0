"""Before the first check: the run's Services are in place, as far as the API and the probes can tell.

Pods that are Ready are not yet Services that work. The EndpointSlice controller lists a ready pod
a moment later, and each node's kube-proxy programs it a moment after that. Probing in between
is what a CI run once caught: DNS-SVC over UDP was refused three times ("no endpoints"), by a
cluster that was only slow. Two bounded waits close that gap:

- ``wait_endpoint_slices``: every Service with backends lists each backend's pod IP as ready, on
  every port. This is the control plane's part. If it never happens, the run cannot test the
  network, and a BackendError names the Service and what is missing.
- ``wait_services_answer``: one probe on each node reaches each of those Services' ClusterIP
  ports, TCP and UDP. This is the time kube-proxy takes. It is not a verdict: past the bound the
  run goes on, and the checks judge with evidence what still does not answer.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ...probing.channel import ChannelRefused, ProbeChannel, ProbeUnavailable
from ...topology import POD, Endpoint, Service, Topology
from ..base import BackendError, Progress
from .api import KubeApi

POLL = 0.5  # s between looks at the EndpointSlices, and between the probes' rounds
ANSWER_BOUND = 30.0  # s the probes wait for the Services to answer before the checks begin
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def listed_services(live: Topology) -> list[Service]:
    """The Services that must list ready backends before a check uses them. ExternalName Services
    have no endpoints, and a cycled Service has none until its check makes them."""
    return [s for s in live.services.values() if s.backends and not s.external_name and not s.cycled]


def missing_endpoints(live: Topology, slices: list) -> dict[str, list[str]]:
    """Service name -> what its EndpointSlices do not yet list as ready (``port: ip``)."""
    ready: dict[str, dict[str, set[str]]] = {}
    for item in slices:
        service = (item.metadata.labels or {}).get(SERVICE_NAME_LABEL)
        if not service:
            continue
        addresses = {address for endpoint in item.endpoints or []
                     if endpoint.conditions is None or endpoint.conditions.ready is not False
                     for address in endpoint.addresses or []}
        for port in item.ports or []:
            ready.setdefault(service, {}).setdefault(port.name or "", set()).update(addresses)
    lacking = {}
    for service in listed_services(live):
        expected = {live.endpoint(b).ip for b in service.backends}
        gaps = [f"{port}: {ip}" for port in service.port_names
                for ip in sorted(expected - ready.get(service.name, {}).get(port, set()))]
        if gaps:
            lacking[service.name] = gaps
    return lacking


def wait_endpoint_slices(api: KubeApi, namespace: str, live: Topology, timeout: float,
                         progress: Progress) -> float:
    """Until every Service with backends lists them as ready; return the seconds it took."""
    started = time.monotonic()
    while True:
        slices = api.call("list EndpointSlices", api.discovery.list_namespaced_endpoint_slice,
                          namespace).items
        lacking = missing_endpoints(live, slices)
        if not lacking:
            took = time.monotonic() - started
            progress(f"kube: EndpointSlices list the ready backends of {len(listed_services(live))} "
                     f"Services ({took:.1f}s)")
            return took
        if time.monotonic() - started > timeout:
            name = sorted(lacking)[0]
            raise BackendError(
                f"after {timeout:.0f}s the EndpointSlices of {len(lacking)} Service(s) "
                f"({', '.join(sorted(lacking))}) do not list their ready pods; {namespace}/{name} "
                f"lacks {'; '.join(lacking[name][:4])}. The cluster's EndpointSlice controller "
                "(kube-controller-manager) is not keeping up, and no Service check could mean anything")
        time.sleep(POLL)


def answer_targets(live: Topology) -> list[dict]:
    """One TCP and one UDP target per ClusterIP port of each Service that every node reaches
    (not internalTrafficPolicy Local: from a node without a backend it rightly answers nothing)."""
    targets = []
    for service in listed_services(live):
        if not service.proxied or service.internal_local or not service.cluster_ip:
            continue
        ports = [service.port] + ([service.second_port[0]] if service.second_port else [])
        targets += [{"id": f"{service.name}:{proto}/{port}", "ip": service.cluster_ip, "port": port,
                     "proto": proto, "timeout": 1.0, "attempts": 1}
                    for port in ports for proto in ("tcp", "udp")]
    return targets


def wait_services_answer(live: Topology, channel_for: Callable[[Endpoint], ProbeChannel],
                         progress: Progress, bound: float = ANSWER_BOUND) -> list[str]:
    """Until one probe pod per node reaches every ClusterIP port of ``answer_targets``; returns
    what still did not answer at the bound (the checks will say more), and says so."""
    targets = answer_targets(live)
    sources: dict[str, Endpoint] = {}
    for endpoint in live.of_kind(POD):
        sources.setdefault(endpoint.node, endpoint)
    if not targets or not sources:
        return []
    started = time.monotonic()
    waiting = {name: list(targets) for name in sorted(sources)}

    unavailable: dict[str, str] = {}

    def ask(node: str) -> tuple[str, list[dict]]:
        """The targets a node's probe still does not reach; none when the probe itself cannot be
        asked (nothing to wait for: its items will be errors that say why)."""
        try:
            answer = channel_for(sources[node]).call(
                "probe", {"targets": waiting[node], "concurrency": 16}, timeout=15.0)
            done = {r["id"] for r in answer["results"] if r.get("ok")}
        except ChannelRefused as exc:  # the credentials lack pods/proxy: no check could run
            raise BackendError(str(exc)) from None
        except (ProbeUnavailable, KeyError, TypeError) as exc:
            unavailable[node] = str(exc) or type(exc).__name__
            return node, []
        return node, [t for t in waiting[node] if t["id"] not in done]

    with ThreadPoolExecutor(max_workers=min(8, len(waiting)), thread_name_prefix="services-answer") as pool:
        while waiting:
            waiting = {node: rest for node, rest in pool.map(ask, list(waiting)) if rest}
            if not waiting or time.monotonic() - started > bound:
                break
            time.sleep(POLL)
    took = time.monotonic() - started
    if unavailable:
        node = sorted(unavailable)[0]
        progress(f"kube: the probes on {', '.join(sorted(unavailable))} could not be asked whether the "
                 f"Services answer ({node}: {unavailable[node][:200]})")
    if not waiting and not unavailable:
        progress(f"kube: every node's probe reaches the run's {len(targets)} Service ports ({took:.1f}s)")
        return []
    silent = [f"{node} -> {t['id']}" for node, rest in sorted(waiting.items()) for t in rest]
    if silent:
        progress(f"kube: after {took:.0f}s, {len(silent)} Service port(s) still do not answer "
                 f"(e.g. {', '.join(silent[:3])}); the checks go on and judge them")
    return silent

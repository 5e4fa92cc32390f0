"""Checks as data: which requirement, between which endpoints, over which protocols, judged how.

A suite module declares checks with :func:`check`; the pytest plugin turns each into one item per
(source, destination, protocol), and the probing engine runs each (check, protocol) as one batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import pytest

from .requirements import requirement
from .services import shared_protocol
from .topology import (APISERVER, CONTAINER, HOST, HOSTPORT, IPV4, NODEPORT, OUTSIDE, POD, SERVICE,
                       STANDALONE, Endpoint, Topology)

Pair = tuple[Endpoint, "Endpoint | None"]
INSPECT = "self"  # the pseudo-protocol of checks that read self-reports instead of connecting
SECOND_NODE, OUTSIDE_CLIENT = "a second node", "an outside client"  # what a check may need
BOTH_FAMILIES = "both IP families"


@dataclass(frozen=True)
class Case:
    """One pytest item: a check between two named endpoints over one protocol, in one IP family."""

    requirement: str
    protocol: str
    source: str
    destination: str | None
    family: str = IPV4

    @property
    def id(self) -> str:
        """The part in brackets of 'POD-POD-CROSS[tcp/ipv4:node-1/probe-a->node-2/probe-b]'
        ('POD-IP-SELF[ipv4:node-1/probe-a]' for an inspection)."""
        pair = self.source if self.destination is None else f"{self.source}->{self.destination}"
        return f"{self.family}:{pair}" if self.protocol == INSPECT else f"{self.protocol}/{self.family}:{pair}"

    @property
    def full_id(self) -> str:
        return f"{self.requirement}[{self.id}]"


@dataclass(frozen=True)
class DnsNames:
    """What the names of a DNS check are made of: the run's namespace, the cluster domain (read
    from a probe's resolv.conf) and the ClusterIP of the ``kubernetes`` Service."""

    namespace: str
    domain: str
    kubernetes_ip: str | None = None


@dataclass(frozen=True)
class Query:
    """One DNS question of a DNS check, asked by the source probe through its own resolver
    settings (``search``: the resolv.conf search list and ndots apply, as ``dig +search``)."""

    label: str  # its part of the target id: 'DNS-SVC[udp/ipv4:node-1/probe-a->svc/web@short]'
    name: str
    type: str = "A"
    search: bool = True
    expect: tuple[str, ...] = ()  # the records (as text) the verdict wants, in any order
    connect: int | None = None  # then connect through getaddrinfo to this port (the name connects)

    settle: float = 0.0  # s to keep asking until the answer is the expected one (after a change)

    def request(self) -> dict:
        """The agent's form of the question."""
        found = {"name": self.name, "type": self.type, "search": self.search}
        if self.settle:
            found.update(expect=list(self.expect), settle=self.settle)
        return {**found, "connect": self.connect} if self.connect else found


@dataclass(frozen=True)
class Connection:
    """One connection of a round (see Check.rounds) to an address the round learnt from the
    Service as changed (a NodePort the API server allocated), over the item's protocol."""

    label: str  # its part of the target id: 'SVC-TYPE-CHANGE[tcp/ipv4:…@nodeport/node-port]'
    ip: str
    port: int
    answered: bool = True  # False: it must get no answer (a reject or a timeout): a removed port
    why_unanswered: str = ""  # what the failure message says when it is answered all the same
    # With session affinity: True, the round's connections to this address all land on one
    # backend (the first is made alone, before the others); False, they reach more than one
    sticky: bool | None = None
    # The positive control of the round's unanswered connections: from the same client, over the
    # same protocol, to a Service that has the port. If it fails too, their silence proves
    # nothing: the item is an error, never a pass.
    control: bool = False


@dataclass(frozen=True)
class Change:
    """A change a check makes to one of the run's Services between two rounds of questions, as a
    user's ``kubectl patch`` would (a JSON merge patch; ``None`` removes a field)."""

    label: str  # the round after it: 'DNS-EXTERNALNAME[udp/ipv4:…@renamed/short]'
    service: str
    patch: dict | None = field(compare=False)  # a dict cannot be hashed; a check is (a batch key);
    # None: nothing changes, the round only comes later
    pause: float = 0.0  # s to wait before it (a round that must come after a timeout)


@dataclass(frozen=True)
class BackendCycle:
    """SVC-UDP-BACKEND-CHANGE, as upstream's conntrack test ("should be able to preserve UDP
    traffic when server pod cycles for a ClusterIP service"): each client sends one datagram
    every ``interval`` to the Service's ClusterIP from the fixed ``source_port``, starting
    ``quiet`` seconds before the Service has an endpoint; a backend pod is created on the first
    node; once the clients reach it, a second one is created on the last node and the first is
    deleted. The cluster has ``within`` seconds, from the first pod's readiness and from its
    deletion, to bring each client's datagrams to the pod that serves now (probing/cycle.py)."""

    service: str  # the Service whose selector names ``role``, and no pod of the run's
    role: str  # the role label the created pods carry
    source_port: int = 12345  # upstream's client: nc -u -p 12345
    interval: float = 1.0
    quiet: float = 2.0  # two datagrams, each refused or lost, before there is a backend
    within: float = 30.0


@dataclass(frozen=True)
class Check:
    requirement: str
    pairs: Callable[[Topology], list[Pair]]
    protocols: tuple[str, ...]
    verdict: Callable  # (Observation) -> Verdict, see netconform.probing.verdicts
    address: Callable[[Endpoint], str] = lambda endpoint: endpoint.ip
    # the address a TCP connection is made from, given (source, destination); None: the kernel's
    # choice (shared hostPorts bound to loopback: the node's own address, see services.py)
    bind: Callable[[Endpoint, Endpoint], str | None] | None = None
    repeat: int | Callable[[Topology, Endpoint], int] = 1  # connections per pair
    full_size: bool = False  # packets as large as the source interface's MTU, Don't Fragment set
    payload: int | None = None  # UDP datagrams of this many bytes (UDP-LARGE: larger than a packet)
    needs: tuple[str, ...] = ()  # what the topology must offer: "a second node", "an outside client"
    # DNS checks: the questions a source asks about a destination (the protocol is the transport)
    queries: Callable[[Topology, Endpoint, Endpoint, DnsNames], list[Query]] | None = None
    # Rounds of questions (and connections) with a Service change before each later one; each
    # round is made from the Service as the API server returned it: (topology, source,
    # destination, names, spec, protocol) -> questions and connections. After a change, the
    # cluster has a few seconds to follow it (runner.CHANGE_SETTLE). ``restore`` puts the
    # Service back after the last round.
    changes: tuple[Change, ...] = ()
    rounds: Callable[..., list["Query | Connection"]] | None = None
    restore: Change | None = None
    # A case whose results so far already settle it is asked no further rounds: (case, results)
    until: Callable[[Case, dict[str, dict]], bool] | None = None
    # A case its verdict already fails on the rounds so far (evidence about the network, not a
    # harness error) is asked no further rounds: for verdicts that judge each answer on its own, a
    # later round cannot undo a failure, and each failing question would wait out the settle
    # time after every change (a broken resolver made one run take more than ten minutes)
    stop_at_failure: bool = False
    # Backend pods created and deleted while the clients keep sending (SVC-UDP-BACKEND-CHANGE)
    cycle: BackendCycle | None = None
    # Other batches whose results the verdict reads, as (check, protocol): the runner runs them
    # and hands their results in with the observation (POD-IP-SELF: what its peers saw)
    evidence: tuple[tuple["Check", str], ...] = ()
    # The check whose connections this one judges instead of making its own: the same pairs,
    # protocols and repeats, looked at for another promise (SVC-SOURCE-IP reads the client address
    # SVC-CLUSTERIP's backends saw; at 50 nodes the same 878 connections per pod, made twice, took
    # 67 s of the run)
    judges_connections_of: "Check | None" = None
    # Run in the cluster's primary family only: what it checks exists in that family alone (the
    # kubernetes Service is single-stack; a hostPort bound to a hostIP binds that address alone)
    primary_family_only: bool = False

    def missing(self, topology: Topology) -> str | None:
        """Why this check cannot apply to the topology (its items are skipped with this reason)."""
        for need in self.needs:
            if need == SECOND_NODE and len(topology.nodes) < 2:
                return f"needs a second node; this cluster has {len(topology.nodes)}"
            if need == OUTSIDE_CLIENT and not topology.of_kind(OUTSIDE):
                return "needs a client outside the cluster's networks; this backend has none"
            if need == BOTH_FAMILIES and len(topology.cluster_families) < 2:
                return (f"needs a cluster of both IP families; this one has "
                        f"{' and '.join(topology.cluster_families)} alone")
        return None

    def connections(self, topology: Topology, destination: Endpoint) -> int:
        return self.repeat(topology, destination) if callable(self.repeat) else self.repeat

    def cases(self, topology: Topology, protocol: str | None = None) -> list[Case]:
        """One case per family the checks run in, protocol and pair the topology's pair plan
        chooses (pair_plan.py: all, or a sample of the pairs between nodes)."""
        pairs = self._chosen(topology)
        families = topology.families[:1] if self.primary_family_only else topology.families
        return [Case(self.requirement, proto, src.name, dst.name if dst else None, family)
                for family in families
                for proto in self.protocols if protocol in (None, proto)
                for src, dst in pairs]

    def coverage(self, topology: Topology) -> tuple[int, int]:
        """(pairs the plan tests, pairs that exist), per protocol and family alike."""
        return len(self._chosen(topology)), len(self.pairs(topology))

    def _chosen(self, topology: Topology) -> list[Pair]:
        """The pairs the topology's pair plan keeps: only a builder of pairs between every two
        nodes (between_nodes) is sampled; one that grows linearly (each pod asks about the next
        one, every pod about one pod) already tests every pod and is kept whole."""
        pairs = self.pairs(topology)
        if not getattr(self.pairs, "between_nodes", False):
            return pairs
        return topology.pairs.choose(pairs, [n.name for n in topology.nodes])


def check(requirement_id: str, pairs: Callable[[Topology], list[Pair]],
          protocols: Iterable[str], verdict: Callable, **options) -> Callable:
    """Declare a conformance check as a pytest test function (see suites/)."""
    level = requirement(requirement_id).level  # an unknown ID fails at import, not at run time
    spec = Check(requirement_id, pairs, tuple(protocols), verdict, **options)

    def test(netconform_case, netconform_judgement):
        """The case was probed and judged in set-up (where a harness failure is an error);
        here only the network's evidence decides."""
        if not netconform_judgement.verdict.ok:
            pytest.fail(netconform_judgement.message, pytrace=False)

    test.netconform_check = spec
    test.__doc__ = f"{requirement_id} ({level}): {requirement(requirement_id).rule}"
    return getattr(pytest.mark, level)(getattr(pytest.mark, requirement_id)(test))


# --- pair builders -------------------------------------------------------------------------------


def between_nodes(build: Callable[[Topology], list[Pair]]) -> Callable[[Topology], list[Pair]]:
    """Marks a builder whose pairs join every node to every node (they grow with the square of
    the nodes or pods): the pair plan may sample them (pair_plan.py)."""
    build.between_nodes = True
    return build


def pod_pairs(same_node: bool) -> Callable[[Topology], list[Pair]]:
    def build(topology: Topology) -> list[Pair]:
        pods = topology.of_kind(POD)
        return [(a, b) for a in pods for b in pods
                if a is not b and (a.node == b.node) == same_node]
    return between_nodes(build)


def host_to_pods(same_node_only: bool) -> Callable[[Topology], list[Pair]]:
    def build(topology: Topology) -> list[Pair]:
        return [(host, pod) for host in topology.of_kind(HOST) for pod in topology.of_kind(POD)
                if pod.node == host.node or not same_node_only]
    return between_nodes(build)


def each_pod(topology: Topology) -> list[Pair]:
    return [(pod, None) for pod in topology.of_kind(POD)]


def each_pod_and_node(topology: Topology) -> list[Pair]:
    """Every probe pod, and every node (by its hostNetwork probe)."""
    return [(e, None) for e in topology.of_kind(POD) + topology.of_kind(HOST)]


def containers_of_one_pod(both_ways: bool) -> Callable[[Topology], list[Pair]]:
    def build(topology: Topology) -> list[Pair]:
        containers = topology.of_kind(CONTAINER)
        return [(a, b) for a in containers for b in containers
                if a.pod == b.pod and (a.role < b.role or (both_ways and a is not b))]
    return build


def loopback(endpoint: Endpoint) -> str:
    """LOCALHOST's address in the family the endpoint is seen in: 127.0.0.1 or ::1."""
    return "::1" if endpoint.ip and ":" in endpoint.ip else "127.0.0.1"


def pods_to_api_server(topology: Topology) -> list[Pair]:
    """Every pod to the cluster's own ``kubernetes`` Service (POD-APISERVER)."""
    api = topology.of_kind(APISERVER)
    return [(pod, api[0]) for pod in topology.of_kind(POD)] if api else []


def api_server_to_pods(topology: Topology) -> list[Pair]:
    """The API server (through its pod proxy) to every pod (APISERVER-POD)."""
    api = topology.of_kind(APISERVER)
    return [(api[0], pod) for pod in topology.of_kind(POD)] if api else []


OTHERS, BACKENDS, ALL = "others", "backends", "all"  # pods_to_service's clients


def backend_pods(topology: Topology, service: str) -> set[str]:
    """The pods behind a Service (a backend's containers share its pod)."""
    return {topology.endpoint(b).pod for b in topology.services[service].backends}


def not_backing(topology: Topology, service: str, sources: list[Endpoint]) -> list[Endpoint]:
    """``sources`` less the Service's own backends: a backend's connection to its own Service may
    land on itself, which is hairpin traffic (SVC-HAIRPIN, a SHOULD), as upstream conformance keeps
    its clients apart from its backends. A MUST row must not turn red for a SHOULD behaviour. With
    one probe pod per node every probe pod is a backend: the first container of each node's duo
    pod (which backs only multiport and manual) is then the client instead."""
    behind = backend_pods(topology, service)
    others = [src for src in sources if src.kind != POD or src.pod not in behind]
    if any(src.kind == POD for src in others) or not any(src.kind == POD for src in sources):
        return others
    stand_ins = [e for e in topology.of_kind(CONTAINER) if e.role == "duo/c1" and e.pod not in behind]
    return [src for src in others if src.kind != POD] + stand_ins or sources


def pods_to_service(name: str, clients: str = OTHERS, sources: tuple[str, ...] = (POD,),
                    apart_from: tuple[str, ...] = ()) -> Callable[[Topology], list[Pair]]:
    """The endpoints of the ``sources`` kinds (the probe pods, or the hostNetwork probes) to the
    Service's ClusterIP: ``clients`` OTHERS are those that are not its backends (not_backing), nor
    backends of the ``apart_from`` Services (where the row's positive control connects), BACKENDS
    only its backends (SVC-HAIRPIN), ALL every one (DNS rows that only ask, never connect)."""
    def build(topology: Topology) -> list[Pair]:
        service = next(e for e in topology.of_kind(SERVICE) if e.serves == name)
        chosen = [src for src in topology.endpoints if src.kind in sources]
        if clients == OTHERS:
            for other in (name, *apart_from):
                chosen = not_backing(topology, other, chosen)
        elif clients == BACKENDS:
            chosen = [src for src in chosen if src.name in topology.services[name].backends]
        return [(src, service) for src in chosen]
    return build


def pods_to_each_port(name: str) -> Callable[[Topology], list[Pair]]:
    """Every pod to each port of a Service (one ClusterIP target per port)."""
    def build(topology: Topology) -> list[Pair]:
        targets = [e for e in topology.of_kind(SERVICE) if e.serves == name]
        return [(src, dst) for src in topology.of_kind(POD) for dst in targets]
    return build


def to_every_node(kind: str, serving: str | None = None,
                  sources: tuple[str, ...] = (HOST, OUTSIDE)) -> Callable[[Topology], list[Pair]]:
    """Node hosts and the outside client to every node's NodePort or hostPort target."""
    def build(topology: Topology) -> list[Pair]:
        targets = [e for e in topology.of_kind(kind) if serving in (None, e.serves)]
        chosen = [src for src in topology.endpoints if src.kind in sources]
        if kind == NODEPORT and serving is not None:
            chosen = not_backing(topology, serving, chosen)  # a NodePort landing on its client: hairpin
        return [(src, dst) for src in chosen for dst in targets]
    return between_nodes(build)


def nodeports(service: str, sources: tuple[str, ...] = (HOST, OUTSIDE)):
    return to_every_node(NODEPORT, service, sources)


def hostports(sources: tuple[str, ...] = (HOST, OUTSIDE)):
    """To the hostPort of the probe pod that holds one on every node."""
    def build(topology: Topology) -> list[Pair]:
        return [(src, dst) for src, dst in to_every_node(HOSTPORT, None, sources)(topology)
                if topology.endpoint(dst.serves).kind == POD]
    return between_nodes(build)


def shared_hostports(protocol: str) -> Callable[[Topology], list[Pair]]:
    """Its node's hostNetwork probe to each pod that shares a hostPort over ``protocol``."""
    def build(topology: Topology) -> list[Pair]:
        return [(topology.host_of(dst.node), dst) for dst in topology.of_kind(HOSTPORT)
                if topology.endpoint(dst.serves).kind == STANDALONE
                and shared_protocol(dst) == protocol.upper()]
    return build

"""The ports a run takes on every node, chosen per run so that two runs can share a cluster.

A live run's hostNetwork probe listens on the node itself (its echo and control ports), and its
HOSTPORT pods ask for hostPorts: a second run with the same numbers would find them taken (its host
probe cannot bind, the scheduler refuses its hostPort pods) and wait for pods that never start. So
each run takes a *block* of four ports: block 0 is the documented one (8088, 54323, 18080, 19000),
block k adds 10 x k to each. A block is free when no pod on the chosen nodes declares one of its
ports (a hostPort, or a hostNetwork container's port: the scheduler's own NodePorts check) and no
other run has claimed it. A run claims its block in an annotation on its namespace, made before any
pod. Two runs that start at once may pick the same block: the later namespace (creation time, then
name) waits until every earlier run has settled its block, moves off any it overlaps, and only then
settles its own and makes pods (``ahead``).

Ports that a node's own processes hold without a pod cannot be seen through the API; the blocks
stay off the well-known ones and the NodePort range. The shared hostPorts (upstream's 54323 and up)
are in Linux's ephemeral range, as upstream's test has them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ...services import HOSTPORT_PORT, SHARED_HOSTPORT, shared_protocol
from ...topology import HOST, HOSTPORT, Topology

CLAIM = "netconform.io/host-ports"  # the run namespace's annotation: its block, "8088,54323,18080,19000"
SETTLED = "netconform.io/host-ports-settled"  # "true" once the run keeps that block for good
SETTLE_BOUND = 30.0  # s a run waits for earlier ones to settle (one that never does is taken as settled)
BLOCKS = 50  # blocks 0..49: at most 50 runs at once on one cluster
STRIDE = 10


@dataclass(frozen=True)
class HostPorts:
    """One run's ports on every node."""
    hostport: int = HOSTPORT_PORT  # the hostPort of the holder pod on every node (HOSTPORT)
    shared: int = SHARED_HOSTPORT  # the hostPort three standalone pods share (HOSTPORT)
    host_echo: int = 18080  # the hostNetwork probe's echo port (TCP and UDP)
    host_control: int = 19000  # the hostNetwork probe's control API

    @classmethod
    def block(cls, index: int) -> "HostPorts":
        base = cls()
        return cls(*(port + STRIDE * index for port in base.ports))

    @property
    def ports(self) -> tuple[int, int, int, int]:
        return (self.hostport, self.shared, self.host_echo, self.host_control)

    @property
    def claim(self) -> str:
        return ",".join(map(str, self.ports))

    @classmethod
    def parse(cls, claim: str | None) -> "HostPorts | None":
        """The block a namespace's annotation claims; None when it claims none (or nonsense)."""
        try:
            ports = tuple(int(p) for p in (claim or "").split(","))
        except ValueError:
            return None
        return cls(*ports) if len(ports) == 4 else None


def declared_ports(pods: list, nodes: set[str]) -> set[int]:
    """The ports the pods on ``nodes`` hold on their node: hostPorts, and every port a hostNetwork
    pod's containers declare (its hostPort is its containerPort), of pods not yet finished."""
    held = set()
    for pod in pods:
        if pod.spec.node_name not in nodes or (pod.status and pod.status.phase in ("Succeeded", "Failed")):
            continue
        for container in [*(pod.spec.init_containers or []), *pod.spec.containers]:
            for port in container.ports or []:
                if port.host_port:
                    held.add(port.host_port)
                elif pod.spec.host_network:
                    held.add(port.container_port)
    return held


def claims(namespaces: list, own: str | None = None) -> dict[str, HostPorts]:
    """The blocks other runs' namespaces claim, by namespace name."""
    found = {}
    for ns in namespaces:
        claimed = HostPorts.parse((ns.metadata.annotations or {}).get(CLAIM))
        if claimed and ns.metadata.name != own:
            found[ns.metadata.name] = claimed
    return found


def choose(held: set[int], claimed: list[HostPorts]) -> HostPorts | None:
    """The first block none of whose ports is held or claimed; None when all are taken."""
    taken = held | {port for block in claimed for port in block.ports}
    return next((block for block in map(HostPorts.block, range(BLOCKS))
                 if not taken.intersection(block.ports)), None)


def ahead(own, namespaces: list, patient: bool = True) -> tuple[list[str], list[HostPorts]]:
    """What this run must wait for and keep off before it settles its block. Every other run's
    settled block is final: a settled run never moves, so this one moves off it. Of the runs made
    before this one (namespace creation time, then name), one still choosing (a claim, not yet
    SETTLED) is waited for while this run is ``patient`` (SETTLE_BOUND s of waiting) and was made
    at most SETTLE_BOUND s before this one (the API server's times, so no machine's clock counts);
    past that it counts as settled where it is. A run made after this one waits for it in turn, so
    two runs never settle on one block, whichever lists first."""
    def order(ns):
        return (ns.metadata.creation_timestamp, ns.metadata.name)
    waiting, final = [], []
    for ns in namespaces:
        annotations = ns.metadata.annotations or {}
        claimed = HostPorts.parse(annotations.get(CLAIM))
        if ns.metadata.name == own.metadata.name or claimed is None:
            continue
        if annotations.get(SETTLED) == "true":
            final.append(claimed)
        elif order(ns) < order(own):
            made, mine = ns.metadata.creation_timestamp, own.metadata.creation_timestamp
            recent = made is not None and mine is not None and (mine - made).total_seconds() < SETTLE_BOUND
            if patient and recent and not ns.metadata.deletion_timestamp:
                waiting.append(ns.metadata.name)
            else:
                final.append(claimed)
    return sorted(waiting), final


def overlaps(mine: HostPorts, others: list[HostPorts]) -> bool:
    return any(set(mine.ports) & set(other.ports) for other in others)


def with_host_ports(topology: Topology, ports: HostPorts) -> Topology:
    """The topology with this run's ports: the hostNetwork probes' echo port (and the Service
    whose endpoints they are), the holder's hostPort on every node and the shared hostPort."""
    def moved(endpoint):
        if endpoint.kind == HOST:
            return replace(endpoint, port=ports.host_echo)
        if endpoint.kind == HOSTPORT:
            return replace(endpoint, port=ports.shared if shared_protocol(endpoint) else ports.hostport)
        return endpoint
    services = {name: replace(s, target_port=ports.host_echo) if name == "hostnet" else s
                for name, s in topology.services.items()}
    return replace(topology, endpoints=[moved(e) for e in topology.endpoints], services=services)

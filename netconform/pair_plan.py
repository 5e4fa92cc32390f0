"""Which pairs of a check are probed: all of them, or a deterministic sample on large clusters.

Pairs between pods grow with the square of the pods (a 50-node lab with 2 probe pods per node has
9,800 ordered cross-node pod pairs per protocol and family), while what can break between two
nodes (a route, a tunnel, a NAT rule) breaks for every pod pair of those two nodes alike. The
specification (network-model.md, "sampling at scale") therefore allows a sample that still covers

- every ordered pair of nodes (or a stated number of peer nodes per node: each node is then the
  source of that many node pairs and the destination of as many),
- every node as source and as destination,
- every pod at least once as source and once as destination,
- every same-node pair (they are few, and where a bridge or its hairpin breaks),

and reports the coverage. The sample is a pure function of the pairs' names and the seed: the
plan made before collection and the one the runner makes on the started cluster are the same.

How one pod pair is chosen per node pair: the nodes are put in an order the seed shuffles; node
``i`` sends to the nodes ``i + s`` for each shift ``s`` (all of 1..N-1, or ``peers`` of them the
seed picks), so every node is also the destination of one node pair per shift. For the ``j``-th
shift the source node sends from its ``j``-th pod and the destination receives on its ``j``-th
(each node's pods rotated by a seeded offset): with at least as many shifts as pods per node, each
pod is a source and a destination at least once.
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

ALL, SAMPLE, AUTO = "all", "sample", "auto"
PAIR_MODES = (AUTO, ALL, SAMPLE)
# --pairs auto samples on clusters of more nodes than this (README, "Pairs at scale")
SAMPLE_ABOVE = 10
# ... and past this many ordered node pairs (50 nodes' 2,450), keeps this many in all: a stated
# number of peers per node (NODE_PAIRS // nodes), so a check's items grow linearly with the nodes
NODE_PAIRS = 50 * 49


@dataclass(frozen=True)
class PairPlan:
    mode: str = ALL  # ALL or SAMPLE (AUTO is resolved by for_cluster)
    seed: int = 0
    peers: int | None = None  # peer nodes per node as source; None: every other node

    @classmethod
    def for_cluster(cls, mode: str, nodes: int, seed: int = 0, peers: int | None = None) -> "PairPlan":
        """--pairs as given, AUTO resolved by the cluster's size (and, past NODE_PAIRS ordered
        node pairs, with a number of peers per node unless one is given)."""
        if mode == AUTO:
            if peers is None and nodes * (nodes - 1) > NODE_PAIRS:
                peers = max(1, NODE_PAIRS // nodes)
            mode = SAMPLE if nodes > SAMPLE_ABOVE or peers is not None else ALL
        return cls(mode, seed, peers)

    @property
    def samples(self) -> bool:
        return self.mode == SAMPLE

    @staticmethod
    def can_sample(nodes: int, per_node: int) -> bool:
        """Whether one pair per node pair can still give each of a node's ``per_node`` endpoints
        each role: it needs at least as many other nodes; else the plan keeps every pair."""
        return nodes >= 2 and per_node <= nodes - 1

    def describe(self) -> str:
        if not self.samples:
            return "every pair"
        peers = "every ordered node pair" if self.peers is None else f"{self.peers} peer node(s) per node"
        return f"a sample (seed {self.seed}): {peers}, every pod in each role, every same-node pair"

    def choose(self, pairs: Sequence[tuple], nodes: Sequence[str]) -> list[tuple]:
        """The pairs to probe, in their given order. ``pairs`` are (source, destination)
        endpoints; only those between two different nodes of ``nodes`` are sampled (a Service,
        the outside client, an inspection and a same-node pair are always kept)."""
        if not self.samples:
            return list(pairs)
        cluster = set(nodes)
        groups: dict[tuple[str, str], list[tuple]] = defaultdict(list)
        for pair in pairs:
            src, dst = pair
            if dst is not None and src.node in cluster and dst.node in cluster and src.node != dst.node:
                groups[(src.node, dst.node)].append(pair)
        if not groups:
            return list(pairs)
        chosen = self._choose_between_nodes(groups, sorted(cluster))
        if chosen is None:  # too few nodes to cover every pod with one pair per node pair
            return list(pairs)
        return [p for p in pairs if (p[1] is None or p[0].node == p[1].node
                                     or (p[0].node, p[1].node) not in groups or id(p) in chosen)]

    def _choose_between_nodes(self, groups: dict[tuple[str, str], list[tuple]], nodes: list[str]) -> set[int] | None:
        rng = random.Random(f"netconform-pairs-{self.seed}")
        order = list(nodes)
        rng.shuffle(order)
        count = len(order)
        if count < 2:
            return None
        sources = _roles(groups, 0)
        destinations = _roles(groups, 1)
        most = max(max(map(len, sources.values()), default=1), max(map(len, destinations.values()), default=1))
        wanted = count - 1 if self.peers is None else max(min(self.peers, count - 1), 1)
        wanted = max(wanted, min(most, count - 1))  # enough shifts for every pod in each role
        if not self.can_sample(count, most):
            return None
        shifts = list(range(1, count)) if wanted >= count - 1 else sorted(rng.sample(range(1, count), wanted))
        rotation = {node: rng.randrange(1 << 16) for node in order}
        chosen: set[int] = set()
        for i, node in enumerate(order):
            for j, shift in enumerate(shifts):
                other = order[(i + shift) % count]
                group = groups.get((node, other))
                if not group:
                    continue
                srcs, dsts = sources[node], destinations[other]
                src = srcs[(j + rotation[node]) % len(srcs)]
                dst = dsts[(j + rotation[other]) % len(dsts)]
                pick = next((p for p in group if p[0].name == src and p[1].name == dst),
                            group[(j + rotation[node]) % len(group)])
                chosen.add(id(pick))
        return chosen


def _roles(groups: dict[tuple[str, str], list[tuple]], side: int) -> dict[str, list[str]]:
    """Per node, the names of its endpoints on one side (0 source, 1 destination) of the pairs."""
    found: dict[str, set[str]] = defaultdict(set)
    for (src_node, dst_node), pairs in groups.items():
        for pair in pairs:
            found[src_node if side == 0 else dst_node].add(pair[side].name)
    return {node: sorted(names) for node, names in found.items()}

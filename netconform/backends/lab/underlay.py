"""The lab's node network: a bridge in the run's world namespace, and a veth from it to each
namespace that joins it (a node, the outside client, the control plane), whose end is its eth0.

The bridge is the only thing the world namespace holds, so nothing the lab sends reaches the host's
own network: the underlay (172.18.0.0/24, like kind's docker network) exists only in there. Every
namespace is recorded as the run's before it is created (netns.create), so clean-up finds it.
Addressing the eth0 ends is left to each joiner: a node routes other nodes' pods, the outside
client routes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from . import netns
from .naming import RunNames


@dataclass(frozen=True)
class Port:
    """A place on the bridge: ``name`` is the veth's end in the world namespace, and ``netns`` the
    namespace created to hold the other end as eth0."""

    name: str
    netns: str


class Underlay:
    def __init__(self, names: RunNames) -> None:
        self.names = names

    def create(self, ports: Sequence[Port] = ()) -> None:
        """Create the world namespace with its bridge, and attach ``ports`` in the same batch."""
        world, bridge = self.names.world, self.names.underlay_bridge
        netns.create(world, record=self.names.registry)
        self._wire(["link set lo up", f"link add {bridge} type bridge", f"link set {bridge} up"], ports)

    def attach(self, ports: Sequence[Port]) -> None:
        """Add namespaces to an underlay that exists, each with its eth0 on the bridge (down)."""
        self._wire([], ports)

    def _wire(self, commands: list[str], ports: Sequence[Port]) -> None:
        bridge = self.names.underlay_bridge
        for port in ports:
            netns.create(port.netns, record=self.names.registry)
            commands += [f"link add {port.name} type veth peer name eth0 netns {port.netns}",
                         f"link set {port.name} master {bridge} up"]
        if commands:
            netns.ip_batch(self.names.world, commands)

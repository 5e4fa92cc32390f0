"""How a node reaches the other nodes' pod ranges when no CNI daemon routes them (a conflist alone).

One module per way, each with an ``INTERCONNECT`` object the profiles name by ``overlay``
(profiles.py): adding a way (BGP, say) is one more module here and a profile that names it.

    routes.py  a route per other node's pod range via that node's underlay address (kubenet, a
               cloud route table), in each family the cluster has
    vxlan.py   a flannel-like overlay: one VTEP per node, static ARP and FDB entries (IPv4)

A real CNI installed from its manifest (cni_install.py) routes between the nodes itself, and the
lab then adds nothing (``CniRouted``).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Protocol


class Interconnect(Protocol):
    name: str
    families: tuple[str, ...]  # the IP families it carries between nodes

    def commands(self, index: int, others: list[int], families: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """Node ``index``'s `ip` commands and `bridge fdb` commands, to reach the ``others``' pods."""


class CniRouted:
    """A real CNI's daemons route between the nodes: the lab adds nothing."""
    name = "cni"
    families = ("ipv4",)  # the lab builds the real CNIs in IPv4

    def commands(self, index: int, others: list[int], families: tuple[str, ...]) -> tuple[list[str], list[str]]:
        return [], []


def _discover() -> dict[str, Interconnect]:
    found = {}
    for module in pkgutil.iter_modules(__path__):
        way = getattr(importlib.import_module(f"{__name__}.{module.name}"), "INTERCONNECT", None)
        if way is not None:
            found[way.name] = way
    return found


INTERCONNECTS: dict[str, Interconnect] = _discover()

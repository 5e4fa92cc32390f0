"""CNI profiles: what ``--cni=NAME`` means, and which deviations from the model are known.

A known deviation turns the affected items into xfail (known) or xpass (fixed): never a silent
pass, never a surprise failure. Lab profiles also name the conflist that wires their pods.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


@dataclass(frozen=True)
class Deviation:
    requirement: str
    reason: str
    link: str


@dataclass(frozen=True)
class Profile:
    name: str
    backend: str  # "lab" or "kube"
    description: str
    conflist: Path | None = None  # lab profiles: the CNI configuration of every node
    deviations: tuple[Deviation, ...] = field(default_factory=tuple)

    def deviation(self, requirement_id: str) -> Deviation | None:
        return next((d for d in self.deviations if d.requirement == requirement_id), None)


PROFILES: dict[str, Profile] = {p.name: p for p in [
    Profile("bridge", "lab", "CNI bridge plugin, one Linux bridge per node, host-local IPAM, "
            "routes between nodes as kubenet sets them", MANIFESTS / "lab" / "bridge.conflist"),
    Profile("ptp", "lab", "CNI ptp plugin, a veth pair and a host route per pod, host-local IPAM",
            MANIFESTS / "lab" / "ptp.conflist"),
]}


class UnknownProfile(ValueError):
    pass


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(f"unknown --cni {name!r}; known profiles: "
                             f"{', '.join(sorted(PROFILES))}") from None


def custom_lab_profile(conflist: Path) -> Profile:
    """--lab-cni-conf FILE: any conflist a user supplies, with no known deviations."""
    return Profile(conflist.stem, "lab", f"user conflist {conflist}", conflist)

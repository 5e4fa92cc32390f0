"""The interface every backend provides: a planned topology, a started one, a channel per probe."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

from ..probing.channel import ProbeChannel
from ..topology import Endpoint, Topology

Progress = Callable[[str], None]


class BackendError(Exception):
    """A cluster that cannot be used, with the one-line reason a user needs to fix it."""


class Backend(ABC):
    name: str

    @abstractmethod
    def plan(self) -> Topology:
        """Node and probe names, known before anything is deployed (pytest collects from this)."""

    @abstractmethod
    def start(self, progress: Progress) -> Topology:
        """Deploy the probes, wait until each answers, and return the topology with addresses."""

    @abstractmethod
    def channel(self, endpoint: Endpoint) -> ProbeChannel:
        """The control API of one probe."""

    @abstractmethod
    def close(self) -> None:
        """Remove everything the run created. Safe to call twice, and after a failed start."""

    def metadata(self) -> dict:
        return {"backend": self.name}

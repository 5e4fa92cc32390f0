"""The backends netconform can run on, each owning its command-line options, its checks of them,
how it is made, and its ``--cleanup-only`` (modelled on pytest-testinfra's backend registry): the
pytest plugin asks the registry and knows no backend's internals.

Which backend a run is on: the ``kube`` backend when a cluster is named (``--kubeconfig``,
``--context``, ``$KUBECONFIG``) or the profile is a live cluster's; the lab otherwise. A lab
profile's ``--backend=kube`` is the live path on the lab's own cluster, which the lab backend makes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pytest

from ..profiles import Profile
from .base import Backend


class BackendPlugin(Protocol):
    name: str  # as --backend names it
    group: str  # its option group's name (cmdline.py reads the values of every group's options)

    def add_options(self, parser: pytest.Parser) -> None: ...

    def check(self, config: pytest.Config, profile: Profile) -> None:
        """Bad input for this backend, as ValueError (one line, exit 4), before anything is made."""

    def make(self, config: pytest.Config, profile: Profile, report_dir: Path) -> Backend: ...

    def cleanup(self, config: pytest.Config) -> int:
        """--cleanup-only: remove what earlier runs left; the exit code."""

    def command(self, config: pytest.Config) -> int | None:
        """A command of its own that ends the session before any run (an exit code), or None."""


def plugins() -> dict[str, BackendPlugin]:
    """Every backend, by name; imported here so that the plugin's start-up stays light."""
    from .kube.cli import KUBE
    from .lab.cli import LAB
    return {LAB.name: LAB, KUBE.name: KUBE}


def names_a_cluster(config: pytest.Config) -> bool:
    """A kubeconfig named by --kubeconfig, --context or $KUBECONFIG: the run is on that cluster."""
    return plugins()["kube"].names_a_cluster(config)


def on_lab(config: pytest.Config, chosen: Profile) -> bool:
    """Whether the run is on the lab (Profile.on_lab)."""
    return chosen.on_lab(names_a_cluster(config))


def backend_of(config: pytest.Config, chosen: Profile) -> BackendPlugin:
    """The backend that makes this run's cluster: the lab's (which also serves --backend=kube on
    its own cluster), or the live cluster's."""
    return plugins()["lab" if on_lab(config, chosen) else "kube"]

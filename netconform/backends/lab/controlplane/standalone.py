"""A control plane alone on a world of its own: a lab run with an underlay and no worker nodes.

Tests of the kube backend against a real API server need nothing else, and a run of its own is
what makes it safe: the run is claimed (its owner file) before anything exists, every namespace and
root-namespace process is recorded, runs left by killed owners are swept first, and stop() removes
everything through the run's records, as a lab run's teardown does.
"""
from __future__ import annotations

import time

from ...base import Progress
from .. import cleanup
from ..naming import RunNames
from ..underlay import Underlay
from .node import ControlPlane, ControlPlaneSpec


class StandaloneControlPlane:
    def __init__(self, spec: ControlPlaneSpec | None = None, names: RunNames | None = None) -> None:
        self.names = names or RunNames.new()
        self.spec = spec or ControlPlaneSpec()
        self.control_plane: ControlPlane | None = None
        self.stopped_in: float | None = None  # seconds stop() took

    def start(self, progress: Progress) -> ControlPlane:
        """Claim the run, sweep dead ones, build the underlay and start the control plane on it;
        on any failure, remove what was made and raise."""
        state = self.names.state_dir
        state.mkdir(parents=True, exist_ok=True)
        cleanup.write_owner(state)
        removed = cleanup.remove_stale_runs()
        if removed:
            progress(f"lab: removed leftovers of {len(removed)} earlier run(s): {', '.join(removed)}")
        underlay = Underlay(self.names)
        self.control_plane = ControlPlane(self.names, underlay, self.spec)
        try:
            underlay.create()
            self.control_plane.start(progress)
        except BaseException:
            self.stop()
            raise
        return self.control_plane

    def stop(self) -> list[str]:
        """Stop the processes, remove the namespaces and the state directory; return problems."""
        started = time.monotonic()
        problems = self.control_plane.stop() if self.control_plane else []
        problems += cleanup.remove_run(self.names.prefix)
        self.stopped_in = time.monotonic() - started
        return problems

    def __enter__(self) -> "StandaloneControlPlane":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

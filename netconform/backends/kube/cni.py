"""Check that the cluster really runs the CNI named by --cni, by its node agent's DaemonSet."""
from __future__ import annotations

from ...profiles import PROFILES, Profile
from ..base import BackendError
from .api import KubeApi


def verify_cni(api: KubeApi, chosen: Profile) -> str | None:
    """Return the DaemonSet that shows the chosen CNI runs ("namespace/name"), or None for
    --cni=other; raise a BackendError that names what the cluster runs instead."""
    if not chosen.daemonsets:
        return None
    found = {f"{d.metadata.namespace}/{d.metadata.name}" for d in
             api.call("list DaemonSets", api.apps.list_daemon_set_for_all_namespaces).items}
    mine = next((d for d in chosen.daemonsets if d in found), None)
    if mine:
        return mine
    others = sorted(f"{p.name} (DaemonSet {d})" for p in PROFILES.values() if p is not chosen
                    for d in p.daemonsets if d in found)
    runs = f"this cluster runs {', '.join(others)}" if others else "no known CNI DaemonSet was found"
    raise BackendError(f"--cni={chosen.name}, but no DaemonSet {' or '.join(chosen.daemonsets)} "
                       f"exists: {runs}. Name the right profile, or use --cni=other to skip this check")

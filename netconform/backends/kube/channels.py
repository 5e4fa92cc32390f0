"""How the harness reaches the probes on a live cluster: ``--channel proxy|exec|auto``.

``proxy``: the API server's pod proxy (channel.py): one HTTP request per call, the API server
connecting to the pod IP. ``exec``: an exec of the agent's relay in the probe's container
(exec_channel.py), through the node's kubelet: for a control plane that cannot route to pod IPs
(managed control planes with overlay CNIs, private clusters). ``auto`` (the default) asks one probe
a request that probes nothing, through the proxy first and exec next, and keeps the first that
answers; the choice and why go to the progress and the results (``meta.channel``,
``meta.channel_reason``). When neither answers, the pod proxy is kept: what it then cannot carry
(a refusal stops the run at once, silence makes items errors) is the harness's, never a network
failure. Port-forward is not offered: exec covers the same clusters.
"""
from __future__ import annotations

from typing import Callable

from ...probing.channel import ProbeChannel, ProbeUnavailable
from ...topology import POD, Topology
from ..base import Progress

CHOICES = ("auto", "proxy", "exec")
NAMES = {"proxy": "the pod proxy", "exec": "exec"}
HEALTH = {"targets": []}  # a probe request with nothing to probe: the checks' own request, empty
HEALTH_TIMEOUT = 10.0  # s for each channel's answer


def choose(requested: str, live: Topology, channel_of: Callable[[object, str], ProbeChannel],
           progress: Progress) -> tuple[str, str]:
    """The channel to use and why."""
    if requested != "auto":
        return requested, f"--channel {requested}"
    probe = next(iter(live.of_kind(POD)), None) or next(iter(live.probes()))
    tried = []
    for kind in ("proxy", "exec"):
        try:
            channel_of(probe, kind).call("probe", HEALTH, timeout=HEALTH_TIMEOUT)
        except ProbeUnavailable as exc:
            tried.append(f"{NAMES[kind]}: {exc}")
            continue
        reason = "the pod proxy answered" if kind == "proxy" else \
            f"the pod proxy did not answer ({tried[0]}); exec did"
        if kind != "proxy":
            progress(f"kube: the probes are reached by exec: {reason}")
        return kind, reason
    reason = f"neither channel answered {probe.name} ({'; '.join(tried)}); the pod proxy is kept"
    progress(f"kube: {reason}: what it cannot carry makes the items errors")
    return "proxy", reason

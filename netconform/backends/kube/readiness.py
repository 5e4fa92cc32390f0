"""Wait until every probe pod is Ready, with a bound and progress; fail fast, naming the pod and
its node, when a pod cannot be scheduled, its image cannot be pulled, or it keeps crashing; and,
naming the policy, when admission refuses a DaemonSet's pods (admission.py)."""
from __future__ import annotations

from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from ..base import BackendError, Progress
from .admission import refused_daemonset_pods
from .api import KubeApi

FATAL_WAITING = {
    "ImagePullBackOff": "cannot pull its image",
    "ErrImagePull": "cannot pull its image",
    "InvalidImageName": "has an invalid image name",
    "CrashLoopBackOff": "keeps crashing",
    "CreateContainerConfigError": "cannot be configured",
}
POLL_SECONDS = 2.0


class _NotReady(Exception):
    pass


def pod_node(pod) -> str:
    """The node of a pod: spec.nodeName, or, before binding, the node a DaemonSet aimed it at."""
    if pod.spec.node_name:
        return pod.spec.node_name
    try:
        terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
        for term in terms.node_selector_terms:
            for field in term.match_fields or []:
                if field.key == "metadata.name":
                    return field.values[0]
    except AttributeError:
        pass
    return "(no node)"


def diagnose(pods: list, events: list) -> str | None:
    """The first fatal reason among the pods and the namespace's Warning events, or None."""
    for pod in pods:
        where = f"pod {pod.metadata.name} on node {pod_node(pod)}"
        for status in (pod.status.container_statuses or []) + (pod.status.init_container_statuses or []):
            waiting = status.state.waiting if status.state else None
            if waiting and waiting.reason in FATAL_WAITING:
                detail = f": {waiting.message}" if waiting.message else ""
                return (f"{where} {FATAL_WAITING[waiting.reason]} ({waiting.reason}, image "
                        f"{status.image}){detail}")
    refused = refused_daemonset_pods(events)
    if refused:
        return refused
    by_name = {pod.metadata.name: pod for pod in pods}
    for event in events:
        if event.type == "Warning" and event.reason == "FailedScheduling":
            pod = by_name.get(event.involved_object.name)
            node = pod_node(pod) if pod else "(unknown node)"
            return f"pod {event.involved_object.name} for node {node} cannot be scheduled: {event.message}"
    for pod in pods:
        scheduled = next((c for c in (pod.status.conditions or []) if c.type == "PodScheduled"), None)
        if scheduled and scheduled.status == "False" and scheduled.reason == "Unschedulable":
            return (f"pod {pod.metadata.name} for node {pod_node(pod)} cannot be scheduled: "
                    f"{scheduled.message}")
    return None


def _port_holders(api: KubeApi, namespace: str, reason: str) -> str:
    """When the scheduler finds the probes' hostPorts taken, the other runs' namespaces that may
    hold them (a run killed before its clean-up leaves its pods), and how to remove them."""
    if "free ports" not in reason:
        return ""
    from .manifests import MANAGED_BY  # the run label every run's namespace carries
    try:
        others = [ns.metadata.name for ns in api.call("list namespaces", api.core.list_namespace,
                                                       label_selector=MANAGED_BY).items
                  if ns.metadata.name != namespace]
    except Exception:  # noqa: BLE001 - a hint, not the error
        return ""
    if not others:
        return ""
    return (f". Other runs' namespaces may hold the probes' hostPorts: {', '.join(sorted(others))} "
            "(a run still going, or one killed before its clean-up; remove the latter with "
            "--cleanup-only --kubeconfig=…)")


def why_waiting(pod) -> str:
    """What a pod that is not Ready shows of itself: its phase and node, and each container that
    waits with its reason and message (kubelet's, or the lab kubelet's when it could not start
    it), or that it has no container status yet (no kubelet has taken it up)."""
    where = f"{pod.status.phase}{' on ' + pod.spec.node_name if pod.spec and pod.spec.node_name else ''}"
    statuses = (pod.status.init_container_statuses or []) + (pod.status.container_statuses or [])
    waits = []
    for status in statuses:
        waiting = status.state.waiting if status.state else None
        if waiting is not None:
            waits.append(f"{status.name} waiting {waiting.reason or ''}"
                         f"{': ' + waiting.message[:200] if waiting.message else ''}".rstrip())
    if not statuses and pod.spec and pod.spec.node_name:
        waits.append("no container status yet")
    return f"{pod.metadata.name} ({where}{'; ' + '; '.join(waits) if waits else ''})"


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def wait_ready(api: KubeApi, namespace: str, expected: int, timeout: float, progress: Progress,
               keep: bool = False) -> list:
    """Poll the namespace's pods until ``expected`` are Ready; return them."""
    progress(f"kube: waiting for {expected} probe pods in {namespace} (at most {timeout:.0f}s)")
    seen = {"ready": -1}

    @retry(stop=stop_after_delay(timeout), wait=wait_fixed(POLL_SECONDS),
           retry=retry_if_exception_type(_NotReady), reraise=True)
    def poll() -> list:
        pods = api.call("list the probe pods", api.core.list_namespaced_pod, namespace).items
        ready = [p for p in pods if is_ready(p) and p.metadata.deletion_timestamp is None]
        if len(ready) != seen["ready"]:
            seen["ready"] = len(ready)
            progress(f"kube: {len(ready)}/{expected} probe pods ready")
        if len(ready) >= expected:
            return ready
        events = api.call("read events", api.core.list_namespaced_event, namespace).items
        fatal = diagnose(pods, events)
        if fatal:
            raise BackendError(fatal + _port_holders(api, namespace, fatal))
        waiting = [why_waiting(p) for p in pods if not is_ready(p)][:5]
        raise _NotReady(f"{len(ready)}/{expected} ready; not ready: {', '.join(waiting) or 'none created'}")

    try:
        return poll()
    except _NotReady as exc:
        look = (f"it is kept: kubectl -n {namespace} get pods,events" if keep else
                "the run's namespace is deleted as it ends: add --keep to look at it with "
                f"kubectl -n {namespace} get pods,events")
        raise BackendError(f"probe pods not ready after {timeout:.0f}s ({exc}); {look}") from None

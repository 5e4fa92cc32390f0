"""Pods a check creates and deletes while the run goes on (SVC-UDP-BACKEND-CHANGE), made the same
way on the lab and on live clusters: through the API server. Whoever runs the node's pods (kubelet;
on the lab, the lab's kubelet) wires and starts them, and reports them Ready.

Each is a probe pod like the Services' backends (the backend role's DaemonSet template), bound to a
chosen node as a DaemonSet's pod is, with its own name, the role label the check's Service selects,
and no hostPort; its probe reports itself as ``<node>/<pod name>``, so a client can tell which of
the check's pods answered.
"""
from __future__ import annotations

import copy
import time

from kubernetes.client.exceptions import ApiException

from ...services import BACKEND_LABEL, BACKEND_ROLE
from ..base import BackendError
from .api import KubeApi, status_message
from .readiness import diagnose, is_ready, why_waiting

ROLE_LABEL = "netconform.io/role"
POLL = 0.25  # s between two reads of a starting pod


def probe_pod(objects: list[dict], name: str, node: str, role: str) -> dict:
    """The pod ``name`` on ``node``, from the run's rendered objects (the backend role's DaemonSet)."""
    daemonset = next((o for o in objects if o["kind"] == "DaemonSet"
                      and o["spec"]["template"]["metadata"]["labels"].get(ROLE_LABEL) == BACKEND_ROLE), None)
    if daemonset is None:
        raise BackendError(f"the run has no {BACKEND_ROLE} DaemonSet to make pod {name} from")
    template = copy.deepcopy(daemonset["spec"]["template"])
    labels = {**template["metadata"]["labels"], ROLE_LABEL: role}
    for container in template["spec"]["containers"]:
        container["args"] = [f"$(NODE_NAME)/{name}" if arg.endswith(f"/{BACKEND_ROLE}") else arg
                             for arg in container.get("args", [])]
        for port in container.get("ports", []):
            port.pop("hostPort", None)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": daemonset["metadata"]["namespace"], "labels": labels},
            "spec": {**template["spec"], "nodeName": node}}


def start_pod(api: KubeApi, namespace: str, body: dict, timeout: float) -> str:
    """Create the pod and wait until it is Ready; its pod IP. A pod that cannot start (its image,
    a crash) or is not Ready within ``timeout`` is a BackendError naming why."""
    name = body["metadata"]["name"]
    try:
        api.call(f"create Pod {name}", api.core.create_namespaced_pod, namespace, body)
    except ApiException as exc:
        raise BackendError(f"cannot create pod {namespace}/{name}: {status_message(exc)}") from None
    deadline = time.monotonic() + timeout
    pod = None
    while time.monotonic() < deadline:
        try:
            pod = api.call(f"read Pod {name}", api.core.read_namespaced_pod, name, namespace)
        except ApiException as exc:
            raise BackendError(f"cannot read pod {namespace}/{name}: {status_message(exc)}") from None
        if is_ready(pod) and pod.status.pod_ip:
            return pod.status.pod_ip
        fatal = diagnose([pod], [])
        if fatal:
            raise BackendError(fatal)
        time.sleep(POLL)
    state = why_waiting(pod) if pod is not None and pod.status else f"{name} (never read)"
    raise BackendError(f"pod {namespace}/{name} on {body['spec']['nodeName']} not Ready after "
                       f"{timeout:.0f}s: {state}")


def delete_pod(api: KubeApi, namespace: str, name: str) -> None:
    """Delete the pod with its own grace period, as ``kubectl delete pod`` does; gone already is fine."""
    try:
        api.call(f"delete Pod {name}", api.core.delete_namespaced_pod, name, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise BackendError(f"cannot delete pod {namespace}/{name}: {status_message(exc)}") from None


def label_backends(api: KubeApi, namespace: str, names: list[str]) -> None:
    """Label the picked backend pods (services.BACKEND_LABEL), which the picked Services' selectors
    name: their DaemonSet's template is every node's, so the run labels the chosen ones itself.
    The DaemonSet keeps the pods (its selector names run and role alone)."""
    patch = {"metadata": {"labels": {BACKEND_LABEL: "true"}}}
    for name in names:
        try:
            api.call(f"label Pod {name}", api.core.patch_namespaced_pod, name, namespace, patch)
        except ApiException as exc:
            raise BackendError(f"cannot label pod {namespace}/{name} as a Service backend: "
                               f"{status_message(exc)}") from None

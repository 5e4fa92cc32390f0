"""What was tested, named in the results: the Kubernetes version, the proxy and its mode, the CNI
and its version, and each node's OS, kernel and runtime, read from the cluster itself.

A verdict without these cannot be compared with another run. None of it is needed to probe, so
what cannot be read (a forbidden ConfigMap, a kube-proxy replacement) is said, never fatal.
"""
from __future__ import annotations

import yaml
from kubernetes.client.exceptions import ApiException

from ..base import BackendError
from .api import KubeApi

KUBE_PROXY_CONFIG = ("kube-system", "kube-proxy")  # kubeadm's ConfigMap, key config.conf
DEFAULT_PROXY_MODE = "iptables"  # kube-proxy's mode when its configuration leaves it empty (Linux)


def proxy_mode(api: KubeApi) -> str:
    """kube-proxy's mode from kubeadm's ConfigMap, or why it is unknown."""
    namespace, name = KUBE_PROXY_CONFIG
    try:
        config_map = api.call("read the kube-proxy ConfigMap", api.core.read_namespaced_config_map,
                              name, namespace)
    except ApiException as exc:
        return ("unknown (no kube-system/kube-proxy ConfigMap: kube-proxy replaced, or not "
                "installed by kubeadm)" if exc.status == 404 else f"unknown (HTTP {exc.status})")
    except BackendError as exc:
        return f"unknown ({exc})"
    text = (config_map.data or {}).get("config.conf")
    try:
        config = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        config = None
    if not isinstance(config, dict):
        return "unknown (kube-system/kube-proxy has no readable config.conf)"
    return config.get("mode") or DEFAULT_PROXY_MODE


def cni_image(api: KubeApi, daemonset: str | None) -> str | None:
    """The image (and so the version) of the CNI's node agent, e.g. quay.io/cilium/cilium:v1.18.2."""
    if not daemonset:
        return None
    namespace, name = daemonset.split("/", 1)
    try:
        found = api.call("read the CNI DaemonSet", api.apps.read_namespaced_daemon_set, name, namespace)
    except (ApiException, BackendError):
        return None
    containers = found.spec.template.spec.containers or []
    return containers[0].image if containers else None


def node_info(nodes: list) -> dict[str, dict]:
    """Per node (the items of a NodeList): OS image, kernel, container runtime and kubelet version."""
    found = {}
    for node in nodes:
        info = node.status.node_info if node.status else None
        if info is not None:
            found[node.metadata.name] = {"os": info.os_image, "kernel": info.kernel_version,
                                         "runtime": info.container_runtime_version,
                                         "kubelet": info.kubelet_version}
    return found


def cluster_facts(api: KubeApi, nodes: list, daemonset: str | None) -> dict:
    return {"kubernetes_version": api.server_version, "proxy_mode": proxy_mode(api),
            "cni_image": cni_image(api, daemonset), "node_info": node_info(nodes)}

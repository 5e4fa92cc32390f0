"""A fake API server whose cluster is a real lab: its Nodes are the lab's node namespaces, its pod
IPs and ClusterIPs are the lab's, and its pod proxy reaches the lab's real probes. The kube backend
then runs the real suites through the API, with real packets behind every verdict."""
from __future__ import annotations

from contextlib import contextmanager

from netconform.backends.lab.cluster import LabCluster, LabSpec
from netconform.profiles import profile

from .fakeapi import KINDNET, KUBE_PROXY_CONFIG, FakeApiServer, PodFate, World, node


@contextmanager
def lab_behind_api(nodes: int = 3, faults: tuple = ()):
    cluster = LabCluster(LabSpec(profile("bridge").conflist, nodes=nodes, faults=faults))
    try:
        live = cluster.build(lambda message: None)
        world = World(
            [node(n.name, n.ip) for n in live.nodes], existing=[KINDNET, KUBE_PROXY_CONFIG],
            fate=lambda role, node_name: PodFate("ready", _pod_ip(live, node_name, role)),
            cluster_ip=lambda name: live.services[name].cluster_ip,
            proxy=lambda pod, port, method, path, body: _forward(cluster, live, pod, port, method, path,
                                                                 body))
        with FakeApiServer(world) as api:
            yield api, live
    finally:
        cluster.teardown()


def _pod_ip(live, node_name: str, role: str) -> str | None:
    if role == "host":
        return None
    return live.endpoint(f"{node_name}/{'duo/c1' if role == 'duo' else role}").ip


def _forward(cluster, live, pod: dict, port: int, method: str, path: str, body):
    """The pod proxy: from (pod, port) to the lab probe that plays that container."""
    role, node_name = pod["metadata"]["labels"]["netconform.io/role"], pod["spec"]["nodeName"]
    name = f"{node_name}/{role}"
    if role == "duo":
        name += "/c2" if port == 9001 else "/c1"
    try:
        return cluster.channel(live.endpoint(name)).exchange(method, path, body, timeout=30)
    except OSError as exc:
        return 503, f"error trying to reach service: {exc}".encode()

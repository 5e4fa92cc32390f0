"""The lab kubelet's reports and mending, against a recording stand-in for the API (the real API
server's side of it is tests/lab/test_faults.py's stopped and resumed node)."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from netconform.backends.base import BackendError
from netconform.backends.lab.kubelet import WORKERS, LabKubelet


class Api:
    """Records each call; ``slow`` seconds per call; ``refuse`` names pods whose patch fails."""

    def __init__(self, nodes: dict[str, str], slow: float = 0.0, refuse: set[str] = frozenset()) -> None:
        self.ready = dict(nodes)  # node -> its Ready status on the server
        self.slow, self.refuse = slow, set(refuse)
        self.calls: list[tuple[str, tuple]] = []
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        self.core = SimpleNamespace(list_node=self.list_node, patch_node_status=self.patch_node_status,
                                    patch_namespaced_pod_status=self.patch_pod)

    def call(self, what, method, *args, **kwargs):
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.slow)
            return method(*args)
        finally:
            with self._lock:
                self.in_flight -= 1

    def list_node(self):
        return SimpleNamespace(items=[SimpleNamespace(
            metadata=SimpleNamespace(name=name),
            status=SimpleNamespace(conditions=[SimpleNamespace(type="Ready", status=status)]))
            for name, status in self.ready.items()])

    def patch_node_status(self, name, body):
        self.calls.append(("node", (name, body)))
        if any(c["type"] == "Ready" and c["status"] == "True" for c in body["status"]["conditions"]):
            self.ready[name] = "True"

    def patch_pod(self, name, namespace, body):
        self.calls.append(("pod", (namespace, name)))
        if name in self.refuse:
            from kubernetes.client.exceptions import ApiException
            raise ApiException(status=404, reason="Not Found")


def kubelet(api: Api) -> LabKubelet:
    lab = LabKubelet(api, "v1.37.2", {})
    lab.nodes = {name: ["172.18.0.2", "fd00:18::2"] for name in api.ready}
    return lab


def test_a_node_marked_unknown_is_posted_ready_again_with_its_pods_but_a_stopped_one_is_not():
    api = Api({"node-1": "Unknown", "node-2": "True", "node-3": "Unknown"})
    lab = kubelet(api)
    for node, pod in (("node-1", "a"), ("node-1", "b"), ("node-2", "c"), ("node-3", "d")):
        lab.pod_running("ns", pod, node, ["10.244.1.2"], ["probe"])
    lab.stop_node("node-3")
    api.calls.clear()
    lab._mend_nodes()
    assert api.ready == {"node-1": "True", "node-2": "True", "node-3": "Unknown"}
    assert [c for c in api.calls if c[0] == "pod"] == [("pod", ("ns", "a")), ("pod", ("ns", "b"))]
    node_patches = [body for kind, (name, body) in api.calls if kind == "node"]
    # the conditions alone: a dual-stack node's addresses sent again collide in the merge
    assert node_patches and all(set(body["status"]) == {"conditions"} for body in node_patches)
    assert {c["type"] for c in node_patches[0]["status"]["conditions"]} == {
        "Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    assert lab.mended == {"node-1": 1}
    lab.resume_node("node-3")
    lab._mend_nodes()
    assert api.ready["node-3"] == "True" and ("pod", ("ns", "d")) in api.calls
    assert lab.mended == {"node-1": 1, "node-3": 1}  # counted, not listed: a flapping node stays one entry


def test_a_pod_gone_is_not_posted_again_and_a_refused_one_does_not_stop_the_others():
    api = Api({"node-1": "Unknown"}, refuse={"a"})
    lab = kubelet(api)
    for pod in ("a", "b", "c"):
        lab.running[("ns", pod)] = ("node-1", ["10.244.1.2"], ["probe"])
    lab.pod_gone("ns", "c")
    lab._mend_nodes()
    assert [c for c in api.calls if c[0] == "pod"] == [("pod", ("ns", "a")), ("pod", ("ns", "b"))]


def test_many_pods_are_reported_at_once_and_a_refusal_is_raised_after_all_were_tried():
    api = Api({"node-1": "True"}, slow=0.05)
    lab = kubelet(api)
    pods = [("ns", f"p{i}", "node-1", ["10.244.1.2"], ["probe"]) for i in range(40)]
    started = time.monotonic()
    lab.pods_running(pods)
    assert time.monotonic() - started < 40 * 0.05 / 2  # not one after another
    assert api.most_in_flight == WORKERS
    assert len(lab.running) == 40
    api.refuse = {"p3"}
    with pytest.raises(BackendError, match="cannot patch the status of pod ns/p3"):
        lab.pods_running(pods)
    assert sum(1 for kind, _ in api.calls if kind == "pod") == 80  # every pod was tried again


def test_a_status_post_that_failed_is_posted_again_at_the_next_look_until_it_lands():
    api = Api({"node-1": "True"}, refuse={"a"})
    lab = kubelet(api)
    with pytest.raises(BackendError, match="pod ns/a"):
        lab.pod_running("ns", "a", "node-1", ["10.244.1.2"], ["probe"])
    lab.pod_running("ns", "b", "node-1", ["10.244.1.3"], ["probe"])
    assert lab.unposted == {("ns", "a")} and ("ns", "a") in lab.running  # it runs; its status is late
    api.calls.clear()
    lab._post_unposted()  # still refused: kept for the look after
    assert api.calls == [("pod", ("ns", "a"))] and lab.unposted == {("ns", "a")}
    api.refuse = set()
    lab._post_unposted()
    assert api.calls[-1] == ("pod", ("ns", "a")) and lab.unposted == set()
    lab._post_unposted()  # posted: not again
    assert len(api.calls) == 2
    api.refuse = {"c"}
    with pytest.raises(BackendError):
        lab.pod_running("ns", "c", "node-1", ["10.244.1.4"], ["probe"])
    lab.pod_gone("ns", "c")  # removed meanwhile: nothing to post
    api.calls.clear()
    lab._post_unposted()
    assert api.calls == [] and lab.unposted == set()

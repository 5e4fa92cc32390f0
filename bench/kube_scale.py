"""Live-cluster backend at 1,000 nodes and more: API requests, probe control requests, memory and time
per phase, against the in-process API fakes. Not a test; no root, no lab, no network namespace.

Why: a live cluster of 1,000 nodes cannot be had for a test, and what breaks first there is not the
network but the harness: a request per node where one list would do, a list per pod, a poll that
lists everything every 2 s. The fake API server (tests/kube/fakeapi.py, the one tests/kube/test_backend.py
drives the backend against) plays the cluster: every DaemonSet pod is Ready at once, every Service's
slices list them, and the pod proxy answers as a probe whose every target answers. So what is left
is what the backend itself asks, per phase of KubeBackend.plan/start/close, and how that grows:
issue 17's "API requests linear in nodes up to 5,000" is read off the last lines (requests per
node, and the requests each added node costs, across the sizes).

- API requests: KubeApi.requests (every request the harness's client made), by verb and resource.
  Pod-proxy requests (the harness asking a probe's control API through the API server) are counted
  apart as "control".
- Control requests per check: not measured here. A check's requests are made by the Runner, whose
  verdicts need probes that report themselves and connect (probes/netprobe.py); the fake's pod
  proxy only plays "every target answers". bench/scale.py --sizes counts them per check on the lab.
- Memory: tracemalloc's peak of the Python allocations of this process (the harness) from plan to
  close. The fake API server runs in a child process, so its store is not counted. Timings are taken
  with tracemalloc on (about 1.5-2x slower); --no-memory times without it.

    .tox/netconform/bin/python bench/kube_scale.py [--nodes 100 1000 5000] [--pods-per-node 2] [--no-memory]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from netconform.backends.kube import backend as kube_backend  # noqa: E402
from netconform.backends.kube import services_ready  # noqa: E402
from netconform.backends.kube.backend import KubeBackend, KubeOptions  # noqa: E402
from netconform.profiles import profile  # noqa: E402
from tests.kube.fakeapi import (KINDNET, KUBE_PROXY_CONFIG, TOKEN, FakeApiServer, World,  # noqa: E402
                                node)

# The phases of KubeBackend.start, each opened by the call that begins it (backend.py); "deploy"
# is the node ports, the rendering and the creation of the namespace, Secret, ConfigMap,
# DaemonSets, pods and Services; "discover" reads the pod IPs and ClusterIPs and creates the
# hand-made EndpointSlices; "facts" reads the versions for the report.
PHASES = ["plan", "cni", "deploy", "wait-ready", "discover", "slices-ready", "services-answer", "facts",
          "teardown"]


def nodes_of(count: int) -> list[dict]:
    """``count`` Ready worker nodes with distinct InternalIPs (172.18.0.0/16 holds 64,000)."""
    return [node(f"worker-{i:05d}", f"172.18.{i // 250}.{i % 250 + 2}") for i in range(count)]


def probe(pod: dict, port: int, method: str, rest: str, body: dict | None) -> tuple[int, bytes]:
    """The pod proxy to a probe whose every target answers (what wait_services_answer asks)."""
    if rest == "probe" and body:
        return 200, json.dumps({"results": [{"id": t["id"], "ok": True, "attempts": 1}
                                            for t in body.get("targets", [])]}).encode()
    return 200, json.dumps({"name": f"{pod['spec'].get('nodeName')}/{pod['metadata']['name']}"}).encode()


def _serve(count: int, pipe) -> None:
    """The child process: a fake cluster of ``count`` nodes, until it is terminated."""
    with FakeApiServer(World(nodes_of(count), existing=[KINDNET, KUBE_PROXY_CONFIG], proxy=probe)) as api:
        pipe.send(api.url)
        pipe.recv()  # the parent says stop (or goes away)


def verb_resource(key: str) -> str:
    """'GET /api/v1/namespaces/x/pods' -> 'list pods'; the pod proxy -> 'proxy pods'."""
    method, path = key.split(" ", 1)
    if "/proxy/" in path:
        return "proxy pods"
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        parts = parts[2:]
    elif parts[0] == "apis":
        parts = parts[3:]
    else:
        return f"{method.lower()} {path}"
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    named = len(parts) > 1
    verb = {"GET": "get" if named else "list", "POST": "create", "DELETE": "delete",
            "PATCH": "patch", "PUT": "update"}.get(method, method.lower())
    return f"{verb} {parts[0]}"


class Marks:
    """When each phase began, with the API requests made so far; the calls that open a phase are
    wrapped, not changed."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float, Counter]] = []
        self.api = None

    def mark(self, phase: str) -> None:
        self.marks.append((phase, time.monotonic(), Counter(self.api.requests if self.api else {})))

    def opening(self, phase: str, function):
        def wrapped(*args, **kwargs):
            self.mark(phase)
            return function(*args, **kwargs)
        return wrapped

    def phases(self) -> dict[str, tuple[float, Counter]]:
        """phase -> (seconds, requests made in it); the last mark is the end."""
        found = {}
        for (phase, began, before), (_, ended, after) in zip(self.marks, self.marks[1:]):
            seconds, requests = found.get(phase, (0.0, Counter()))
            found[phase] = (seconds + ended - began, requests + (after - before))
        return found


def measure(count: int, pods_per_node: int = 2, memory: bool = True) -> dict:
    """One size: plan, start and close the kube backend against a fake cluster of ``count`` nodes."""
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe()
    server = context.Process(target=_serve, args=(count, theirs), daemon=True)
    server.start()
    try:
        if not mine.poll(600):
            raise RuntimeError(f"the fake API server of {count} nodes did not start within 600s")
        url = mine.recv()
        with tempfile.TemporaryDirectory(prefix="netconform-kube-scale-") as tmp:
            kubeconfig = Path(tmp) / "kubeconfig"
            kubeconfig.write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config", "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "bench", "user": {"token": TOKEN}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "bench"}}]}))
            return _drive(count, kubeconfig, pods_per_node, memory)
    finally:
        mine.send("stop")
        server.join(30)
        if server.is_alive():
            server.terminate()
            server.join()


def _drive(count: int, kubeconfig: Path, pods_per_node: int, memory: bool) -> dict:
    kube = KubeBackend(profile("kindnet"), KubeOptions(kubeconfig=kubeconfig, pods_per_node=pods_per_node,
                                                        ready_timeout=600))
    marks = Marks()
    patches = [mock.patch.object(kube_backend, "verify_cni", marks.opening("cni", kube_backend.verify_cni)),
               mock.patch.object(KubeBackend, "_free_node_ports",
                                 marks.opening("deploy", KubeBackend._free_node_ports)),
               mock.patch.object(kube_backend, "wait_ready", marks.opening("wait-ready", kube_backend.wait_ready)),
               mock.patch.object(KubeBackend, "_discover", marks.opening("discover", KubeBackend._discover)),
               mock.patch.object(services_ready, "wait_endpoint_slices",
                                 marks.opening("slices-ready", services_ready.wait_endpoint_slices)),
               mock.patch.object(services_ready, "wait_services_answer",
                                 marks.opening("services-answer", services_ready.wait_services_answer)),
               mock.patch.object(kube_backend, "cluster_facts",
                                 marks.opening("facts", kube_backend.cluster_facts))]
    said: list[str] = []
    if memory:
        tracemalloc.start()
    began = time.monotonic()
    try:
        for patch in patches:
            patch.start()
        marks.mark("plan")
        kube.plan()
        marks.api = kube.api
        kube.start(said.append)
        marks.mark("teardown")
        problems = kube.close()
        marks.mark("end")
        if problems:
            raise RuntimeError(f"close: {problems}")
    finally:
        for patch in patches:
            patch.stop()
        peak = tracemalloc.get_traced_memory()[1] if memory else None
        if memory:
            tracemalloc.stop()
    wall = time.monotonic() - began
    requests = Counter(kube.api.requests)
    by_kind: Counter = Counter()
    for key, n in requests.items():
        by_kind[verb_resource(key)] += n
    control = by_kind["proxy pods"]
    return {"nodes": count, "requests": sum(requests.values()) - control, "control": control,
            "by_kind": by_kind, "peak": peak, "wall": wall, "phases": marks.phases(),
            "pods": len(kube._channels), "said": said}


def row(found: dict) -> str:
    phases = found["phases"]
    api_kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(found["by_kind"].items(), key=lambda kv: -kv[1])
                          if kind != "proxy pods")
    memory = f"{found['peak'] / 1e6:.0f} MB" if found["peak"] is not None else "-"
    times = " | ".join(f"{phases.get(p, (0.0,))[0]:.1f} s" for p in PHASES)
    return (f"| {found['nodes']:,} | {found['requests']:,} | {found['control']:,} | {api_kinds} | {memory} | "
            f"{times} | {found['wall']:.0f} s |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--pods-per-node", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="time without tracemalloc (no memory column)")
    args = parser.parse_args()
    measure(3, args.pods_per_node, memory=False)  # not counted: the client's first imports and calls
    print("| nodes | API requests | control (pod proxy) | API requests by verb and resource | harness peak "
          "(tracemalloc) | " + " | ".join(PHASES) + " | wall |")
    print("|---" * (6 + len(PHASES)) + "|")
    found = []
    for count in args.nodes:
        found.append(measure(count, args.pods_per_node, memory=not args.no_memory))
        print(row(found[-1]), flush=True)
    print("\nrequests per node: " + ", ".join(
        f"{f['nodes']:,} nodes: API {f['requests'] / f['nodes']:.3f}, control {f['control'] / f['nodes']:.3f}"
        for f in found))
    for small, large in zip(found, found[1:]):
        added = large["nodes"] - small["nodes"]
        print(f"each node added from {small['nodes']:,} to {large['nodes']:,}: API "
              f"{(large['requests'] - small['requests']) / added:.3f} requests, control "
              f"{(large['control'] - small['control']) / added:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

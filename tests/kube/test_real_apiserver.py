"""The kube backend against a real API server: the lab's control plane (upstream etcd,
kube-apiserver, kube-controller-manager and kube-scheduler in a namespace of their own), reached from
the root namespace through its relay only. Our manifests meet server-side validation, RBAC and
admission for real, and the DaemonSet controller and the scheduler place the probe pods on Nodes the
tests register; no kubelet runs them, so a run ends "not ready" at its bound.

What is measured (start time, memory, a run's wall time, teardown time) is printed (pytest -s)."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Iterator

import pytest
from kubernetes.client import CoordinationV1Api, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from netconform.backends.base import BackendError
from netconform.backends.kube.api import KubeApi
from netconform.backends.kube.manifests import MANAGED_BY, run_role
from netconform.backends.lab import cleanup
from netconform.backends.lab.controlplane import ControlPlane, ControlPlaneSpec, StandaloneControlPlane
from netconform.backends.lab.naming import CONTROL_PLANE_IP, SERVICE_CIDR

from ..lab.conftest import REPO, leftovers, needs_root
from .conftest import kube_command, run_kube_suite

pytestmark = needs_root

START_BOUND = 30.0  # seconds: the issue's goal for a whole lab, once built
READY_TIMEOUT = 5  # --ready-timeout of the runs whose probe pods no kubelet runs
RUN_BOUND = 60.0  # seconds a `pytest suites` run against the control plane may take, all told
TEARDOWN_BOUND = 15.0
LEASE_RENEWAL = 5.0  # seconds between the test nodes' heartbeats (kubelet: 10 s; lab grace: 20 s)
POD_SWEEP = 1.0  # seconds between looks for pods being deleted on the test's nodes
NODES = {f"lab-node-{i}": f"172.18.0.{i + 1}" for i in (1, 2, 3)}
PODS = 4 * len(NODES) + 4  # probe-a, probe-b, duo and host on every node; 4 standalone on the first
RESTRICTED = "netconform-restricted"
ERROR_NAMESPACE = re.compile(r"kubectl -n (netconform-[0-9a-f]{6}) ")


def lab_node(name: str, address: str) -> dict:
    """A Node as a kubelet registers it: InternalIP, capacity and allocatable, Ready."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    resources = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "kubernetes.io/os": "linux"}},
            "status": {"addresses": [{"type": "InternalIP", "address": address},
                                     {"type": "Hostname", "address": name}],
                       "capacity": resources, "allocatable": resources,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "registered by netconform's tests",
                                       "lastHeartbeatTime": now, "lastTransitionTime": now}]}}


class StandInKubelet:
    """The two things of a kubelet the API server relies on here, for the test's Nodes: renew each
    node's Lease, so the node lifecycle controller (50 s grace, as upstream's) keeps it Ready; and end
    the deletion of its pods (grace period 0, as KWOK does), so a deleted run's pods free their
    hostPorts and its namespace goes. Nothing runs the pods."""

    def __init__(self, api: KubeApi, nodes: list[str]) -> None:
        self.api, self.leases = api, CoordinationV1Api(api.client)
        self.nodes = nodes
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="stand-in-kubelet", daemon=True)

    def __enter__(self) -> "StandInKubelet":
        for name in self.nodes:
            self.leases.create_namespaced_lease("kube-node-lease", {
                "metadata": {"name": name},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": _now_micro()}})
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        renewed = time.monotonic()
        while not self.stopped.wait(POD_SWEEP):
            try:
                self._end_deletions()
                if time.monotonic() - renewed >= LEASE_RENEWAL:
                    renewed = time.monotonic()
                    for name in self.nodes:
                        self.leases.patch_namespaced_lease(name, "kube-node-lease",
                                                           {"spec": {"renewTime": _now_micro()}})
            except (ApiException, OSError):
                pass  # tried again next time round; only several missed renewals make a node Unknown

    def _end_deletions(self) -> None:
        for pod in self.api.core.list_pod_for_all_namespaces().items:
            if pod.metadata.deletion_timestamp and pod.spec.node_name in self.nodes:
                try:
                    self.api.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                                        grace_period_seconds=0)
                except ApiException as exc:
                    if exc.status != 404:
                        raise


def _now_micro() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout:.0f}s")


def namespace_phase(api: KubeApi, name: str) -> str:
    """The namespace's phase (Active, Terminating), or Gone."""
    try:
        return api.core.read_namespace(name).status.phase
    except ApiException as exc:
        if exc.status == 404:
            return "Gone"
        raise


def first_line(process: subprocess.Popen, timeout: float) -> str:
    """The first line of a process's output, or what it said before it ended or time ran out."""
    said, deadline = b"", time.monotonic() + timeout
    while b"\n" not in said and time.monotonic() < deadline:
        if select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            said += chunk
    return said.decode(errors="replace")


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ERROR")]


@pytest.fixture(scope="module")
def admin(control_plane: ControlPlane) -> Iterator[KubeApi]:
    with KubeApi(control_plane.admin_kubeconfig) as api:
        yield api


@pytest.fixture(scope="module")
def nodes(control_plane: ControlPlane, admin: KubeApi) -> Iterator[list[str]]:
    """Three Nodes registered as kubelets register them, kept by a stand-in kubelet while the module
    runs; ready once the node lifecycle controller has lifted its not-ready taint and node IPAM has
    given each a pod CIDR."""
    for name, address in NODES.items():
        admin.core.create_node(lab_node(name, address))
    with KubeApi(control_plane.admin_kubeconfig) as api, StandInKubelet(api, list(NODES)):
        wait_for(lambda: all(not n.spec.taints and n.spec.pod_cidr for n in admin.core.list_node().items),
                 30, "untainted Nodes with pod CIDRs")
        yield list(NODES)


def test_the_control_plane_comes_up_within_its_bound_at_the_pinned_version(control_plane):
    assert control_plane.started_in < START_BOUND
    assert control_plane.server.startswith("https://127.0.0.1:")
    with KubeApi(control_plane.admin_kubeconfig) as api:
        status, body = api.raw("GET", "/version")
    assert status == 200 and json.loads(body)["gitVersion"] == control_plane.version
    memory = {name: round(rss / 2**20) for name, rss in control_plane.memory().items()}
    assert set(memory) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                           "relay-root", "relay-control-plane"}
    print(f"\ncontrol plane {control_plane.version}: up in {control_plane.started_in:.1f}s; "
          f"RSS MiB {memory}, total {sum(memory.values())}")


def test_the_system_namespaces_exist_and_the_kubernetes_service_has_the_node_as_endpoint(admin):
    wait_for(lambda: {ns.metadata.name for ns in admin.core.list_namespace().items}
             >= {"default", "kube-system", "kube-node-lease"}, 10, "the system namespaces")
    status, body = admin.raw("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes")
    assert status == 200, body
    endpoints = json.loads(body)  # the default endpoint reconciler keeps it: pods reach the API
    assert [e["addresses"] for e in endpoints["endpoints"]] == [[CONTROL_PLANE_IP]]
    assert [p["port"] for p in endpoints["ports"]] == [6443]
    kubernetes = admin.core.read_namespaced_service("kubernetes", "default")
    assert ipaddress.ip_address(kubernetes.spec.cluster_ip) in ipaddress.ip_network(SERVICE_CIDR)


def test_the_harness_reaches_it_through_the_relay_alone(control_plane, admin):
    """KubeApi talks to 127.0.0.1 (the relay). The root namespace got no link, address or route of
    the run (a machine may have its own 172.18/16, e.g. docker's kind network: that is not ours);
    the relay is the run's one process recorded there."""
    assert admin.host == control_plane.server
    assert "kube-system" in {ns.metadata.name for ns in admin.core.list_namespace().items}
    ours = f"nc{control_plane.names.run_id}"
    links = ip_json("link")
    assert not [link["ifname"] for link in links if link["ifname"].startswith(ours)]
    assert CONTROL_PLANE_IP not in {a["local"] for link in ip_json("-4", "addr")
                                    for a in link.get("addr_info", [])}
    assert not [route for route in ip_json("-4", "route", "show", "table", "all")
                if route.get("dev", "").startswith(ours) or route.get("gateway") == CONTROL_PLANE_IP]
    assert [e["pid"] for e in cleanup.recorded_processes(control_plane.names.state_dir)] == \
        [control_plane.relay_pid]


def ip_json(*argv: str) -> list[dict]:
    """``ip -j ARGV`` in the root namespace."""
    return json.loads(subprocess.run(["ip", "-j", *argv], capture_output=True, text=True, timeout=10,
                                     check=True).stdout)


def test_a_run_creates_its_objects_for_real_and_ends_not_ready_at_its_bound(control_plane, nodes,
                                                                               admin, tmp_path):
    started = time.monotonic()
    run = run_kube_suite(tmp_path, control_plane.admin_kubeconfig, "--cni=other",
                         f"--ready-timeout={READY_TIMEOUT}", timeout=RUN_BOUND)
    took = time.monotonic() - started
    assert run.returncode == 4, run.output[-3000:]
    (error,) = error_lines(run.output)
    assert f"probe pods not ready after {READY_TIMEOUT}s (0/{PODS} ready" in error, run.output[-3000:]
    # The DaemonSet controller made the pods and the scheduler bound them to the Nodes.
    # … and no kubelet took them up: the error says they have no container status yet
    assert re.search(r"(probe-a|probe-b|duo|host)-\w+ \(Pending on lab-node-\d; no container status yet\)",
                     error), error
    assert f"kube: {control_plane.server}: {len(nodes)} nodes; CNI other" in run.output, run.output
    assert "objects created" in run.output
    namespace = ERROR_NAMESPACE.search(error).group(1)
    assert namespace_phase(admin, namespace) in ("Terminating", "Gone")
    print(f"\na run against the real API server ended not ready in {took:.1f}s "
          f"(--ready-timeout={READY_TIMEOUT})")


def test_a_run_without_a_permission_names_it(control_plane, nodes, admin, tmp_path):
    """The user may do everything a run needs except create DaemonSets: one line naming that
    permission and quoting the API server, exit 4, and the namespace it made is deleted."""
    rbac = RbacAuthorizationV1Api(admin.client)
    rules = run_role()["rules"]  # the README's permissions, but one
    for rule in rules:
        if rule["resources"] == ["daemonsets"]:
            rule["verbs"].remove("create")
    rbac.create_cluster_role({"metadata": {"name": RESTRICTED}, "rules": rules})
    rbac.create_cluster_role_binding({
        "metadata": {"name": RESTRICTED},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": RESTRICTED},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": RESTRICTED}]})
    kubeconfig = control_plane.kubeconfig_for(tmp_path / "restricted.kubeconfig", RESTRICTED,
                                              ["netconform-testers"])
    run = run_kube_suite(tmp_path, kubeconfig, "--cni=other", f"--ready-timeout={READY_TIMEOUT}",
                         timeout=RUN_BOUND)
    assert run.returncode == 4, run.output[-3000:]
    (error,) = error_lines(run.output)
    namespace = re.search(r'in the namespace "(netconform-[0-9a-f]{6})"', error)
    assert f"the API server at {control_plane.server} refused to create DaemonSet" in error, error
    assert (f'daemonsets.apps is forbidden: User "{RESTRICTED}" cannot create resource "daemonsets" '
            f'in API group "apps"') in error, error
    assert namespace and namespace_phase(admin, namespace.group(1)) in ("Terminating", "Gone")


def test_an_admission_policy_that_refuses_the_probe_pods_is_named_at_once(control_plane, nodes, admin, tmp_path):
    """Issue 23, admission: a ValidatingAdmissionPolicy (as a platform team writes one) refuses
    hostNetwork pods in the run's namespaces. The DaemonSet controller meets the refusal and says so
    only in a FailedCreate event; the run reads it and stops with one line naming the policy and
    what it refused, long before --ready-timeout, and deletes its namespace."""
    from kubernetes.client import AdmissionregistrationV1Api
    policies = AdmissionregistrationV1Api(admin.client)
    policies.create_validating_admission_policy({
        "metadata": {"name": "no-host-network"},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                         "operations": ["CREATE"], "resources": ["pods"]}]},
                 "validations": [{"expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
                                  "message": "hostNetwork is not allowed in this namespace"}]}})
    key, _, value = MANAGED_BY.partition("=")
    policies.create_validating_admission_policy_binding({
        "metadata": {"name": "no-host-network-for-runs"},
        "spec": {"policyName": "no-host-network", "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {key: value}}}}})
    try:
        time.sleep(2)  # the API server compiles the policy and learns the binding
        started = time.monotonic()
        run = run_kube_suite(tmp_path, control_plane.admin_kubeconfig, "--cni=other", "--ready-timeout=60",
                             timeout=RUN_BOUND)
        took = time.monotonic() - started
    finally:
        policies.delete_validating_admission_policy_binding("no-host-network-for-runs")
        policies.delete_validating_admission_policy("no-host-network")
    assert run.returncode == 4, run.output[-3000:]
    (error,) = error_lines(run.output)
    assert ("ValidatingAdmissionPolicy no-host-network (binding no-host-network-for-runs) refused the probe "
            "pods of DaemonSet host: ") in error, error
    assert "hostNetwork is not allowed in this namespace" in error, error
    assert took < 40, f"named after {took:.0f} s: it waited for pods that could never exist"
    print(f"\nan admission policy's refusal named after {took:.1f}s (--ready-timeout=60)")


def test_cleanup_only_deletes_the_run_namespaces_and_nothing_else(control_plane, nodes, admin, tmp_path):
    wait_for(lambda: not admin.core.list_pod_for_all_namespaces().items, 20,
             "the pods of earlier runs gone (they hold hostPorts)")
    kept = run_kube_suite(tmp_path, control_plane.admin_kubeconfig, "--cni=other",
                          f"--ready-timeout={READY_TIMEOUT}", "--keep", timeout=RUN_BOUND)
    assert kept.returncode == 4, kept.output[-3000:]
    found = ERROR_NAMESPACE.search(error_lines(kept.output)[0])
    assert found, kept.output[-3000:]
    namespace = found.group(1)
    # What the run made, as the real server and controllers made it.
    daemonsets = admin.apps.list_namespaced_daemon_set(namespace).items
    assert len(daemonsets) == 4
    wait_for(lambda: all(d.status.desired_number_scheduled == len(nodes) for d in
                         admin.apps.list_namespaced_daemon_set(namespace).items), 10,
             "every DaemonSet aiming at every node")
    pods = admin.core.list_namespaced_pod(namespace).items
    assert len(pods) == PODS and {p.spec.node_name for p in pods} == set(nodes)
    assert {p.status.phase for p in pods} == {"Pending"}
    services = admin.core.list_namespaced_service(namespace).items
    assert services and all(ipaddress.ip_address(s.spec.cluster_ip) in ipaddress.ip_network(SERVICE_CIDR)
                            for s in services if s.spec.cluster_ip not in (None, "None"))
    key, _, value = MANAGED_BY.partition("=")
    decoys = {"netconform-abcdef": {},  # a run's name, no labels
              "someone-else": {key: value, "netconform.io/run": "abcdef"}}  # labels, not a run's name
    for name, labels in decoys.items():
        admin.core.create_namespace({"metadata": {"name": name, "labels": labels}})
    done = subprocess.run(kube_command(tmp_path, control_plane.admin_kubeconfig, "--cleanup-only"),
                          cwd=REPO, capture_output=True, text=True, timeout=RUN_BOUND)
    assert done.returncode == 0, done.stdout + done.stderr
    deleted = re.search(r"deleted \d+ namespace\(s\) left by earlier runs: (.*)", done.stdout)
    assert deleted and namespace in deleted.group(1).split(", "), done.stdout
    assert namespace_phase(admin, namespace) in ("Terminating", "Gone")
    assert {name: namespace_phase(admin, name) for name in decoys} == dict.fromkeys(decoys, "Active")
    for name in decoys:
        admin.core.delete_namespace(name)


def test_teardown_leaves_nothing_and_is_bounded(control_plane):
    """A second control plane, stopped as a run's teardown stops it."""
    plane = StandaloneControlPlane(control_plane.spec)
    try:
        control_plane = plane.start(lambda message: None)
        relay = control_plane.relay_pid
    finally:
        problems = plane.stop()
    assert problems == []
    assert plane.stopped_in < TEARDOWN_BOUND
    assert leftovers(plane.names.prefix) == []
    assert not os.path.exists(f"/proc/{relay}")
    print(f"\ncontrol plane stopped and removed in {plane.stopped_in:.1f}s")


def test_a_component_that_is_not_ready_in_time_is_named_with_its_log(control_plane):
    """A bound too short for the API server: one error naming it and quoting its log; and the
    failed start leaves nothing."""
    plane = StandaloneControlPlane(ControlPlaneSpec(release=control_plane.spec.release, ready_timeout=1))
    with pytest.raises(BackendError) as failed:
        plane.start(lambda message: None)
    assert re.match(r"control plane: (kube-apiserver|etcd) not ready after 1s; the end of its log "
                    r"\(/run/netconform/netconform-\w+/control-plane/logs/(kube-apiserver|etcd)\.log\):\n.+",
                    str(failed.value), re.S), str(failed.value)
    assert leftovers(plane.names.prefix) == []


KILLED_RUN = """
import sys, time
from netconform.backends.lab.controlplane import ControlPlaneSpec, StandaloneControlPlane
plane = StandaloneControlPlane(ControlPlaneSpec(release=sys.argv[1]))
plane.start(lambda message: None)
print("up", plane.names.prefix, flush=True)
time.sleep(300)
"""


def test_a_killed_runs_control_plane_is_swept_by_cleanup_only(control_plane):
    owner = subprocess.Popen([sys.executable, "-c", KILLED_RUN, control_plane.spec.release], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        line = first_line(owner, timeout=60)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
    assert line.startswith("up "), line
    prefix = line.split()[1]
    left = leftovers(prefix)
    assert f"{prefix}-control-plane" in left and any("relay.py" in p for p in left)
    done = subprocess.run([sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider",
                           "--cleanup-only"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and prefix in done.stdout, done.stdout + done.stderr
    assert leftovers(prefix) == []


def test_the_results_name_what_was_tested(control_plane, nodes, admin):
    """Kubernetes version from /version, kube-proxy's mode from kubeadm's ConfigMap (or why it is
    unknown), the CNI agent's image, and each node's OS and kernel, read from the cluster."""
    from kubernetes import client

    from netconform.backends.kube.discovery import cluster_facts
    items = [n for n in admin.core.list_node().items if n.metadata.name in nodes]
    facts = cluster_facts(admin, items, None)
    assert facts["kubernetes_version"] == control_plane.version
    assert facts["proxy_mode"].startswith("unknown (no kube-system/kube-proxy ConfigMap")
    assert set(facts["node_info"]) == set(nodes)
    config = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="kube-proxy"),
                                data={"config.conf": "kind: KubeProxyConfiguration\nmode: nftables\n"})
    admin.core.create_namespaced_config_map("kube-system", config)
    try:
        assert cluster_facts(admin, items, None)["proxy_mode"] == "nftables"
    finally:
        admin.core.delete_namespaced_config_map("kube-proxy", "kube-system")

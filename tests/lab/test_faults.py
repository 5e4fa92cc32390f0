"""On one running lab: upstream kube-proxy programs the Services from real EndpointSlices; every
lab fault turns the requirements it targets red and no others (the mutation test); and, last, a node
whose lab kubelet stops goes NotReady through the node lifecycle controller.

One lab is built for all of them (about 10 s). Each fault is injected into the running lab, the
requirements it breaks and a set of controls from every family (less those it may also turn red)
are judged through the engine (the Runner and the checks' verdicts, as a run judges them), and the
fault is reverted; a healthy pass of every check before the first fault and after the last proves
that reverting leaves the lab as it was. Every check under every fault is the benchmark
``bench/mutation.py``. One fault also goes through the command line (`--lab-fault`),
as a user runs it; the whole table through the command line is `bench/mutation.py`.
"""
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from kubernetes import client

from netconform.backends.base import BackendError
from netconform.backends.kube.backend import KubeBackend, KubeOptions
from netconform.backends.kube.pods import probe_pod, start_pod
from netconform.backends.lab.objects import IMAGE
from netconform.backends.lab.cluster import LabCluster, LabSpec
from netconform.backends.lab.netns import exists as netns_exists, names_with_prefix
from netconform.backends.lab.faults import FAULTS
from netconform.backends.lab.proxyrules import MODES
from netconform.probing.cycle import PodControl
from netconform.probing.runner import CHANGE_SETTLE, ProbeSettings, Runner
from netconform.profiles import profile
from netconform.requirements import CATALOG

from ..suites import suite_checks
from .conftest import leftovers, needs_root, run_suite

pytestmark = needs_root


CHECKS = suite_checks()
# Judged under every fault besides what it declares: one requirement of each family, so that a
# fault that reaches further than it says (pods, node, containers, Services, ports, DNS) shows.
CONTROLS = {"POD-POD-SAME", "POD-POD-CROSS", "NODE-POD", "HOSTNET-POD", "LOCALHOST", "SVC-CLUSTERIP",
            "SVC-NODEPORT", "HOSTPORT", "SVC-MULTIPORT", "DNS-SVC", "DNS-PTR", "MTU"}

FAULT_SETTLE = 1.5  # s: on this lab a Service change shows in well under a second
FAULT_WITHIN = 6.0  # s for a new backend pod to be reached (SVC-UDP-BACKEND-CHANGE): here about 1


# The faults measured again with kube-proxy in nftables mode in every run of the tests: the ones
# that act on or around kube-proxy's own rules (its tables, its configuration, its NATs and
# rejects). The others act below it (routes, the underlay, pods' own traffic) and are the same in
# both modes; `bench/mutation.py --lab-proxy nftables` measures the whole table in that mode.
NFTABLES_MEASURED = ("svc-lost-endpoint", "svc-snat", "svc-no-nodeports", "svc-no-hairpin-masquerade",
                     "svc-no-reject", "svc-etp-ignored", "host-clusterip-blocked",
                     "svc-second-port-dropped", "kube-proxy-frozen", "svc-hostnet-masqueraded")


@pytest.fixture(scope="module")
def labs():
    """mode -> (cluster, live): one lab per kube-proxy mode, built when first asked for."""
    built: dict[str, tuple[LabCluster, object]] = {}

    def lab(mode: str):
        if mode not in built:
            cluster = LabCluster(LabSpec(profile("bridge").conflist, proxy_mode=mode))
            try:
                built[mode] = cluster, cluster.build(lambda message: None)
            except BaseException:
                cluster.teardown()
                raise
        return built[mode]
    try:
        yield lab
    finally:
        for cluster, _ in built.values():
            assert cluster.teardown() == []
            assert leftovers(cluster.names.prefix) == []


@pytest.fixture(scope="module")
def lab(labs):
    return labs("iptables")


class Outcomes(Counter):
    """pass / fail / error counts of one requirement, and the first reasons of what did not pass."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: list[str] = []
        self.failed_in: set[str] = set()  # the IP families of its failed items

    def __repr__(self) -> str:
        return f"{dict(self)} {self.reasons[:3]}"


def judge_everything(cluster: LabCluster, live, attempts: int = 2,
                     only: set[str] | None = None, settle: float = CHANGE_SETTLE) -> dict[str, Outcomes]:
    """requirement -> Outcomes over every item of every check (or of the requirements ``only``
    names); short attempts, as a fault's timeouts cost one second each. ``settle``: how long an
    answer after a Service change may take to come right (what a fault breaks never does)."""
    settings = ProbeSettings(timeout=1.0, attempts=attempts, settle=settle,
                             cycle_within=None if settle == CHANGE_SETTLE else FAULT_WITHIN)
    reports: dict = {}  # as a run does: a runner per family, on that family's view of the cluster
    runners = {family: Runner(live.in_family(family), cluster.channel, settings, services=cluster.change_service,
                              through_api=cluster.reach_through_api,
                              pods=PodControl(cluster.start_pod, cluster.delete_pod), reports=reports)
               for family in live.families}
    outcomes: dict[str, Outcomes] = {}
    for check in CHECKS:
        if check.missing(live) or (only is not None and check.requirement not in only):
            continue
        for case in check.cases(live):
            verdict = check.verdict(runners[case.family].observe(check, case))
            kind = "pass" if verdict.ok else "error" if verdict.harness else "fail"
            counts = outcomes.setdefault(check.requirement, Outcomes())
            counts[kind] += 1
            if kind != "pass":
                counts.reasons.append(f"{case.full_id}: {verdict.reason}")
            if kind == "fail":
                counts.failed_in.add(case.family)
    return outcomes


def failing(outcomes: dict[str, Outcomes]) -> set[str]:
    return {req for req, counts in outcomes.items() if counts["fail"]}


def assert_healthy(cluster, live):
    outcomes = judge_everything(cluster, live)
    assert failing(outcomes) == set() and not any(c["error"] for c in outcomes.values()), \
        {req: c.reasons for req, c in outcomes.items() if c.reasons}
    assert set(outcomes) == {check.requirement for check in CHECKS if not check.missing(live)}


def programs_in(namespace: str) -> set[str]:
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True,
                          timeout=10).stdout.split()
    return {Path(f"/proc/{pid}/exe").resolve().name for pid in pids if Path(f"/proc/{pid}").exists()}


def ready_backends(cluster, service: str) -> set[str]:
    slices = client.DiscoveryV1Api(cluster.api.client).list_namespaced_endpoint_slice(
        cluster.names.prefix, label_selector=f"kubernetes.io/service-name={service}").items
    return {address for s in slices for e in (s.endpoints or []) if e.conditions.ready
            for address in e.addresses}


def test_every_node_runs_upstream_kube_proxy_and_its_rules_follow_the_endpoint_slices(lab):
    cluster, live = lab
    backends = {live.endpoint(name).ip for name in live.services["web"].backends}
    assert ready_backends(cluster, "web") == backends and len(backends) == 3
    for node in live.nodes:
        namespace = cluster.names.node(node.name)
        assert "kube-proxy" in programs_in(namespace)
        rules = subprocess.run(["ip", "netns", "exec", namespace, "iptables-save", "-t", "nat"],
                               capture_output=True, text=True, timeout=10).stdout
        for ip in backends:  # kube-proxy's own chains, named after the run's namespace
            assert f'--comment "{cluster.names.prefix}/web:tcp" -m tcp -j DNAT --to-destination {ip}:8080' in rules
    meta = live.meta
    assert meta["kubernetes_version"] == cluster.control_plane.version and meta["proxy_mode"] == "iptables"
    assert cluster.memory()["kube-proxy node-1"] > 0


def test_the_lab_passes_every_check_before_any_fault(lab):
    assert_healthy(*lab)


def test_a_pod_made_later_is_wired_run_and_removed_as_kubelet_would(lab):
    """The lab kubelet's watch: a pod made through the API server gets a CNI-wired namespace and
    a running probe, and is reported Ready; deleted, it is unwired and its object removed. A pod
    of an image the lab does not run waits with ErrImagePull, one with a volume the lab does not
    mount with CreateContainerConfigError, and the wait says so."""
    cluster, live = lab
    ip = cluster.start_pod("later-1", "node-2", "later")
    (namespace,) = names_with_prefix(cluster.names.pod("node-2", "later-1-"))  # its uid's start follows
    assert ip.startswith("10.244.2.")
    assert cluster.runtime_channel("later-1", "probe").call("healthz", timeout=2)
    # it read the run's token from its Secret volume: requests that carry it are answered
    assert cluster.runtime_channel("later-1", "probe").call("self", timeout=5)["name"]
    cluster.delete_pod("later-1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and ("later-1" in pod_names(cluster) or netns_exists(namespace)):
        time.sleep(0.2)
    assert "later-1" not in pod_names(cluster) and not netns_exists(namespace)
    body = probe_pod(cluster._objects, "later-2", "node-1", "later")
    body["spec"]["containers"][0]["image"] = "registry.invalid/other:1"
    with pytest.raises(BackendError, match="cannot pull its image.*not one the lab runs"):
        start_pod(cluster.api, cluster.names.prefix, body, timeout=20)
    cluster.delete_pod("later-2")
    body = probe_pod(cluster._objects, "later-3", "node-1", "later")
    body["spec"]["volumes"].append({"name": "scratch", "emptyDir": {}})
    with pytest.raises(BackendError, match="cannot be configured.*volume scratch \\(empty_dir\\): the lab's "
                                           "kubelet mounts only secret and configMap volumes"):
        start_pod(cluster.api, cluster.names.prefix, body, timeout=20)
    cluster.delete_pod("later-3")
    assert cluster.runtime_pods.errors == []


def pod_names(cluster) -> set[str]:
    return {p.metadata.name for p in cluster.api.core.list_namespaced_pod(cluster.names.prefix).items}


FAULT_RUNS = [pytest.param(mode, name, id=f"{name}" if mode == "iptables" else f"{name}-{mode}")
              for mode in MODES for name in FAULTS
              if not FAULTS[name].cnis and not FAULTS[name].ipv6  # test_cni_faults.py, test_dual_stack.py
              if mode in FAULTS[name].modes and (mode == "iptables" or name in NFTABLES_MEASURED)]


@pytest.mark.parametrize("mode, name", FAULT_RUNS)
def test_fault_turns_its_requirements_red_and_spares_the_rest(labs, mode, name):
    assert_turns_exactly_its_requirements_red(*labs(mode), FAULTS[name])


def assert_turns_exactly_its_requirements_red(cluster: LabCluster, live, fault) -> None:
    """Inject ``fault``, judge what it breaks and the controls, revert it; its ``breaks`` must be
    red, nothing outside ``breaks`` and ``also`` may be, and nothing may be a harness error."""
    try:
        cluster.inject(fault, live)  # in the try: a fault that fails half-way is reverted too
        # One attempt per connection, and a short settle after each Service change: what the
        # fault breaks times out once, not twice, and is not waited for. A requirement outside its
        # reach that fails is judged again with a retry and the usual settle, as a run would,
        # before it counts against the fault.
        # What it breaks, and the controls it does not declare as collateral ("also" may turn red or
        # not, so judging it would prove nothing; bench/mutation.py measures it).
        judged = set(fault.breaks) | (CONTROLS - set(fault.also))
        outcomes = judge_everything(cluster, live, attempts=1, only=judged, settle=FAULT_SETTLE)
        unexpected = failing(outcomes) - set(fault.breaks + fault.also)
        if unexpected:
            outcomes.update(judge_everything(cluster, live, attempts=2, only=unexpected))
    finally:
        cluster.revert(fault, live)
    assert not any(c["error"] for c in outcomes.values()), {r: c.reasons for r, c in outcomes.items() if c["error"]}
    red = failing(outcomes)
    assert set(fault.breaks) <= red, (fault.breaks, outcomes)
    surprise = red - set(fault.breaks + fault.also)
    assert not surprise, (sorted(surprise), {req: outcomes[req] for req in surprise})


@pytest.mark.parametrize("mode", MODES)
def test_the_lab_passes_every_check_again_once_every_fault_is_reverted(labs, mode):
    assert_healthy(*labs(mode))


def test_last_a_node_whose_lab_kubelet_stops_goes_not_ready_and_loses_its_endpoints_until_it_beats_again(lab):
    cluster, live = lab
    silent = live.nodes[-1].name
    its_backend = next(live.endpoint(n).ip for n in live.services["web"].backends
                       if n.startswith(f"{silent}/"))
    cluster.kubelet.stop_node(silent)
    deadline = time.monotonic() + 120  # grace period 50 s, then the controller's next look
    ready = "True"
    while time.monotonic() < deadline:
        node = cluster.api.core.read_node(silent)
        ready = next(c.status for c in node.status.conditions if c.type == "Ready")
        if ready != "True" and its_backend not in ready_backends(cluster, "web"):
            break
        time.sleep(1)
    assert ready == "Unknown", "the node lifecycle controller did not notice the stopped kubelet"
    assert its_backend not in ready_backends(cluster, "web")
    healthy = cluster.api.core.read_node(live.nodes[0].name)
    assert next(c.status for c in healthy.status.conditions if c.type == "Ready") == "True"
    # The kube backend, pointed at this cluster as at a live one, leaves that node out and names
    # it, and a Windows Node (an object of the real API server, no kubelet behind it) too; the
    # other nodes are planned, and nothing is created before the run starts
    windows = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "win-1", "labels": {
        "kubernetes.io/os": "windows", "kubernetes.io/hostname": "win-1"}}}
    cluster.api.core.create_node(windows)
    backend = KubeBackend(profile("other"), KubeOptions(cluster.control_plane.admin_kubeconfig, image=IMAGE))
    started = time.monotonic()
    try:
        planned = backend.plan()
        coverage = backend.node_coverage(planned)
    finally:
        assert backend.close() == []
        cluster.api.core.delete_node("win-1")
    assert [n.name for n in planned.nodes] == [n.name for n in live.nodes if n.name != silent]
    # the lab's control-plane node is a Node too, tainted as kubeadm taints it
    assert coverage == {"tested": len(live.nodes) - 1, "in_cluster": len(live.nodes) + 2, "excluded": [
        {"name": "control-plane", "reason": "tainted (node-role.kubernetes.io/control-plane:NoSchedule; "
                                            "see --tolerations)"},
        {"name": silent, "reason": "not Ready (NodeStatusUnknown)"},
        {"name": "win-1", "reason": "not Linux (kubernetes.io/os=windows)"}]}
    assert time.monotonic() - started < 10 and not backend.created
    # Its kubelet beats again (as a lab kubelet does once a loaded machine lets its renewals
    # through): the node is posted Ready, and its pods with it, so its backend is back
    cluster.kubelet.resume_node(silent)
    deadline = time.monotonic() + 60  # the next heartbeat, then the kubelet's next look at the Nodes
    while time.monotonic() < deadline and its_backend not in ready_backends(cluster, "web"):
        time.sleep(1)
    node = cluster.api.core.read_node(silent)
    assert next(c.status for c in node.status.conditions if c.type == "Ready") == "True"
    assert its_backend in ready_backends(cluster, "web"), "the node came back but its pods stayed not ready"
    assert silent in cluster.kubelet.mended


def test_a_fault_from_the_command_line_fails_the_run_it_breaks(tmp_path):
    run = run_suite(tmp_path, "--lab-fault=svc-no-nodeports", "--probe-timeout=1",
                    "-m", "SVC-NODEPORT or POD-POD-SAME")
    assert run.returncode == 1, run.output[-3000:]  # a MUST requirement failed
    assert run.results["verdict"] == "NOT CONFORMANT"
    assert "fault injected: svc-no-nodeports" in run.output
    verdicts = {row["id"]: row["verdict"] for row in run.results["summary"] if row["total"]}
    assert verdicts == {"SVC-NODEPORT": "fail", "POD-POD-SAME": "pass"}
    assert run.results["meta"]["lab_faults"] == ["svc-no-nodeports"]
    assert leftovers(run.prefix) == []


def test_faults_combine_a_frozen_kube_proxy_stays_frozen_and_nothing_waits_for_it(tmp_path):
    """Was: a later fault that restarts kube-proxy (svc-snat) silently thawed kube-proxy-frozen,
    and one that patches a Service waited for the frozen proxies until the run aborted (exit 4)."""
    run = run_suite(tmp_path, "--lab-fault=kube-proxy-frozen", "--lab-fault=svc-snat",
                    "--lab-fault=dns-hostname-unpublished", "--probe-timeout=1",
                    "-m", "SVC-TYPE-CHANGE or SVC-SOURCE-IP or DNS-POD-HOSTNAME")
    assert run.returncode == 1, run.output[-3000:]
    verdicts = {row["id"]: row["verdict"] for row in run.results["summary"] if row["total"]}
    assert verdicts == {"SVC-TYPE-CHANGE": "fail", "SVC-SOURCE-IP": "fail", "DNS-POD-HOSTNAME": "fail"}
    assert leftovers(run.prefix) == []


@pytest.mark.parametrize("mode", MODES)
def test_every_must_and_should_requirement_has_a_fault_that_breaks_it(mode):
    broken = {req for fault in FAULTS.values() if mode in fault.modes for req in fault.breaks}
    wanted = {r.id for r in CATALOG.values() if r.level in ("MUST", "SHOULD") and r.implemented} | {"MTU", "UDP-LARGE"}
    assert wanted - broken == set()

"""Runs that share a cluster, against the fake API server: each run takes host ports of its own
(kube/hostports.py), keeps a Lease while it runs (kube/lease.py), and --cleanup-only deletes only
the namespaces of runs that are over. Two real runs at once on a lab cluster: tests/lab/test_shared_lab.py."""
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

from netconform.backends.kube import hostports, lease
from netconform.backends.kube.hostports import HostPorts
from netconform.services import SHARED_HOSTPORT

from ..lab.conftest import REPO
from .conftest import kube_command, workers
from .fakeapi import KINDNET, FakeApiServer, World
from .test_backend import backend


def _ports_in_pods(api, namespace) -> set[int]:
    """Every port the run's pods hold on their nodes, as the fake stored them."""
    held = set()
    for pod in api.objects("pods", namespace):
        for container in pod["spec"]["containers"]:
            for port in container.get("ports") or []:
                if port.get("hostPort"):
                    held.add(port["hostPort"])
                elif pod["spec"].get("hostNetwork"):
                    held.add(port["containerPort"])
    return held


def test_a_second_run_on_the_cluster_takes_other_host_ports_and_both_are_claimed(fake_cluster, tmp_path):
    first, second = backend(fake_cluster, tmp_path), backend(fake_cluster, tmp_path)
    try:
        one = first.start(lambda message: None)
        two = second.start(lambda message: None)
        assert first.ports == HostPorts() and second.ports == HostPorts.block(1)
        assert _ports_in_pods(fake_cluster, first.namespace) == set(HostPorts().ports)
        assert _ports_in_pods(fake_cluster, second.namespace) == set(HostPorts.block(1).ports)
        # the topology the checks use carries the same numbers as the pods
        assert two.endpoint("kind-worker1/host").port == HostPorts.block(1).host_echo
        assert two.endpoint("kind-worker1/hostport/probe-b").port == HostPorts.block(1).hostport
        assert {e.port for e in two.endpoints if e.role.startswith("hostport/shared")} == {SHARED_HOSTPORT + 10}
        assert two.services["hostnet"].target_port == HostPorts.block(1).host_echo
        assert one.endpoint("kind-worker1/host").port == 18080
        assert second.channel(two.endpoint("kind-worker2/host")).base.endswith(":19010/proxy")
        for kube in (first, second):
            (ns,) = [n for n in fake_cluster.objects("namespaces") if n["metadata"]["name"] == kube.namespace]
            assert ns["metadata"]["annotations"] == {hostports.CLAIM: kube.ports.claim, hostports.SETTLED: "true"}
            (held,) = fake_cluster.objects("leases", kube.namespace)
            assert held["spec"]["holderIdentity"] == kube.run_id
            assert held["spec"]["leaseDurationSeconds"] == lease.LEASE_SECONDS
    finally:
        assert first.close() == [] and second.close() == []


def test_ports_a_pod_of_someone_else_holds_on_a_chosen_node_are_avoided(tmp_path):
    holder = {"metadata": {"name": "web", "namespace": "team"},
              "spec": {"nodeName": "kind-worker2", "containers": [
                  {"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 54323}]}]},
              "status": {"phase": "Running"}}
    host_net = {"metadata": {"name": "agent", "namespace": "team"},
                "spec": {"nodeName": "kind-worker1", "hostNetwork": True, "containers": [
                    {"name": "c", "image": "x", "ports": [{"containerPort": 18090}]}]},
                "status": {"phase": "Running"}}
    elsewhere = {"metadata": {"name": "far", "namespace": "team"},  # not a chosen node: no matter
                 "spec": {"nodeName": "not-in-the-run", "containers": [
                     {"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8108}]}]},
                 "status": {"phase": "Running"}}
    existing = [KINDNET, *(("pods", "team", pod) for pod in (holder, host_net, elsewhere))]
    with FakeApiServer(World(workers(), existing=existing)) as api:
        kube = backend(api, tmp_path)
        try:
            kube.start(lambda message: None)
            # block 0 holds 54323 (web's hostPort), block 1 18090 (agent's hostNetwork port)
            assert kube.ports == HostPorts.block(2)
        finally:
            kube.close()


def test_runs_that_start_at_once_settle_on_different_blocks():
    """hostports.ahead, the rule two runs that picked one block follow: the later namespace waits
    for an earlier one still choosing, then moves off a settled overlap; a later run is no matter."""
    at = datetime(2026, 11, 29, 12, 0, 10, tzinfo=timezone.utc)

    def ns(name, seconds, block, settled):
        annotations = {hostports.CLAIM: HostPorts.block(block).claim, **({hostports.SETTLED: "true"} if settled else {})}
        meta = type("Meta", (), {"name": name, "annotations": annotations, "deletion_timestamp": None,
                                 "creation_timestamp": at - timedelta(seconds=seconds)})
        return type("Ns", (), {"metadata": meta})

    me = ns("netconform-bbbbbb", 5, 0, False)
    choosing = ns("netconform-aaaaaa", 5, 0, False)  # made in the same second, a smaller name: ahead
    assert hostports.ahead(me, [me, choosing]) == (["netconform-aaaaaa"], [])
    assert hostports.ahead(me, [me, choosing], patient=False) == ([], [HostPorts()])  # waited long enough
    settled = ns("netconform-aaaaaa", 5, 0, True)
    waiting, final = hostports.ahead(me, [me, settled])
    assert waiting == [] and hostports.overlaps(HostPorts(), final)
    later = ns("netconform-cccccc", 1, 0, False)
    assert hostports.ahead(me, [me, later]) == ([], [])  # it waits for me, not I for it
    settled_later = ns("netconform-cccccc", 1, 0, True)  # settled before I was made: never moves
    assert hostports.ahead(me, [me, settled_later]) == ([], [HostPorts()])
    stuck = ns("netconform-000000", 120, 0, False)  # never settled, made 115 s before me: settled
    assert hostports.ahead(me, [me, stuck]) == ([], [HostPorts()])
    assert hostports.choose(set(), [HostPorts(), HostPorts.block(1)]) == HostPorts.block(2)
    assert hostports.choose(set(), [HostPorts.block(i) for i in range(hostports.BLOCKS)]) is None
    assert HostPorts.parse("1,2,3") is None and HostPorts.parse("a,b,c,d") is None
    assert HostPorts.parse(HostPorts.block(3).claim) == HostPorts.block(3)


def test_a_run_made_later_moves_off_the_block_an_earlier_run_settled(fake_cluster, tmp_path):
    """Two runs that chose one block at once: the second sees the first's claim only after its
    own namespace exists, and moves (the first, settled, keeps its block)."""
    first, second = backend(fake_cluster, tmp_path), backend(fake_cluster, tmp_path)
    said = []
    blind = second._free_host_ports
    second._free_host_ports = lambda held: (blind(held), HostPorts())[1]  # it listed before first claimed
    try:
        first.start(lambda message: None)
        second.start(said.append)
        assert first.ports == HostPorts() and second.ports == HostPorts.block(1)
        assert any("were claimed by an earlier run; this run takes 8098,54333,18090,19010" in m for m in said), said
    finally:
        first.close(), second.close()


def test_a_node_port_taken_between_the_choice_and_the_create_is_chosen_again(fake_cluster, tmp_path):
    first, second = backend(fake_cluster, tmp_path), backend(fake_cluster, tmp_path)
    try:
        one = first.start(lambda message: None)
        second._free_node_ports = lambda planned: {"web": 30080, "web-affinity": 30082, "web-local": 30081}
        two = second.start(lambda message: None)
        assert one.services["web"].node_port == 30080
        assert two.services["web"].node_port not in (30080, 30081, 30082)
        assert two.endpoint("kind-worker1/nodeport/web").port == two.services["web"].node_port
        services = {s["metadata"]["name"]: s for s in fake_cluster.objects("services", second.namespace)}
        assert {p["nodePort"] for p in services["web"]["spec"]["ports"]} == {two.services["web"].node_port}
    finally:
        first.close(), second.close()


def test_the_lease_is_renewed_while_the_run_lives_and_released_at_its_end(fake_cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "RENEW_EVERY", 0.2)
    kube = backend(fake_cluster, tmp_path, keep=True)
    kube.start(lambda message: None)
    (held,) = fake_cluster.objects("leases", kube.namespace)
    first = held["spec"]["renewTime"]
    renewed = threading.Event()
    for _ in range(50):
        if fake_cluster.objects("leases", kube.namespace)[0]["spec"]["renewTime"] != first:
            renewed.set()
            break
        renewed.wait(0.1)
    assert renewed.is_set(), "the Lease was never renewed"
    # deleted under the run (by someone, or by a --cleanup-only that took it for dead): made again
    fake_cluster.route("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{kube.namespace}/leases/{lease.NAME}",
                       {}, None)
    for _ in range(50):
        if fake_cluster.objects("leases", kube.namespace):
            break
        time.sleep(0.1)
    (remade,) = fake_cluster.objects("leases", kube.namespace)
    assert remade["spec"]["holderIdentity"] == kube.run_id
    assert kube.metadata()["lease"]["remade"] == 1
    assert kube.close() == []
    (released,) = fake_cluster.objects("leases", kube.namespace)  # kept (--keep), and over
    assert "holderIdentity" not in released["spec"]


def test_liveness_of_a_run_namespace():
    at = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc)
    ns = type("Ns", (), {"metadata": type("Meta", (), {"creation_timestamp": at - timedelta(seconds=10)})})
    old = type("Ns", (), {"metadata": type("Meta", (), {"creation_timestamp": at - timedelta(hours=1)})})

    def held(holder, seconds_ago, duration=60, written_ago=None):
        """A Lease its holder renewed ``seconds_ago`` by its own clock; the API server recorded
        the write ``written_ago`` s ago by its clock (None: it keeps no managedFields)."""
        spec = type("Spec", (), {"holder_identity": holder, "lease_duration_seconds": duration,
                                 "renew_time": at - timedelta(seconds=seconds_ago)})
        fields = None if written_ago is None else [type("Entry", (), {"time": at - timedelta(seconds=written_ago)})]
        return type("Lease", (), {"spec": spec, "metadata": type("Meta", (), {"managed_fields": fields})})

    assert lease.liveness(old, held("abc123", 5), at) == "Lease renewed 5 s ago"
    assert lease.liveness(old, held("abc123", 60 + lease.SKEW + 1), at) is None  # expired: it died
    # the server's record of the write counts, not the clock of the machine that wrote it
    assert lease.liveness(old, held("abc123", -3600, written_ago=200), at) is None  # a clock an hour ahead
    assert lease.liveness(old, held("abc123", 3600, written_ago=3), at) == "Lease renewed 3 s ago"
    assert lease.liveness(old, held("abc123", 0, duration=2**31 - 1, written_ago=700), at) is None  # capped
    assert lease.liveness(old, held(None, 1), at) is None  # released: the run is over
    assert lease.liveness(ns, None, at) == "made 10 s ago, no Lease yet"  # a run just starting
    assert lease.liveness(old, None, at) is None  # no Lease for an hour: a dead run's


def test_cleanup_only_leaves_a_live_run_and_deletes_the_ones_that_are_over(fake_cluster, tmp_path):
    live, kept = backend(fake_cluster, tmp_path), backend(fake_cluster, tmp_path, keep=True)
    try:
        live.start(lambda message: None)
        kept.start(lambda message: None)
        assert kept.close() == []  # kept, its Lease released
        done = subprocess.run(kube_command(tmp_path, fake_cluster.kubeconfig_path, "--cni=kindnet",
                                           "--cleanup-only"), cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"deleted 1 namespace(s) left by earlier runs: {kept.namespace}" in done.stdout
        assert f"left 1 run(s) that may still be running: {live.namespace} (Lease renewed" in done.stdout
        assert [n["metadata"]["name"] for n in fake_cluster.objects("namespaces")] == [live.namespace]
        assert len(fake_cluster.objects("pods", live.namespace)) > 0, "the live run untouched"
    finally:
        assert live.close() == []

"""The live-cluster backend against a fake API server: discovery, readiness and its failures, CNI
detection, clean-up; and the pytest run a user starts, with its one-line errors."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from netconform.backends.base import BackendError
from netconform.backends.kube.backend import KubeBackend, KubeOptions
from netconform.profiles import profile
from netconform.services import backend_nodes

from ..lab.conftest import REPO
from .conftest import kube_command, run_kube_suite, workers
from .fakeapi import CILIUM, KINDNET, FakeApiServer, PodFate, World, cni_daemonset, node


def backend(api, tmp_path, cni="kindnet", **options):
    options.setdefault("ready_timeout", 20)
    return KubeBackend(profile(cni), KubeOptions(kubeconfig=api.kubeconfig(tmp_path / "kc"), **options))


def test_topology_is_discovered_from_the_api(fake_cluster, tmp_path):
    kube = backend(fake_cluster, tmp_path)
    live = kube.start(lambda message: None)
    pods = {(p["spec"]["nodeName"], p["metadata"]["labels"]["netconform.io/role"]): p
            for p in fake_cluster.objects("pods", kube.namespace)}
    assert [n.name for n in live.nodes] == ["kind-worker1", "kind-worker2", "kind-worker3"]
    assert live.nodes[1].ip == "172.18.0.3"
    assert live.endpoint("kind-worker2/probe-b").ip == pods[("kind-worker2", "probe-b")]["status"]["podIP"]
    assert live.endpoint("kind-worker2/probe-b").addresses == (("ipv4", live.endpoint("kind-worker2/probe-b").ip),)
    assert live.endpoint("kind-worker2/duo/c2").ip == live.endpoint("kind-worker2/duo/c1").ip
    assert live.endpoint("kind-worker3/host").ip == "172.18.0.4"  # hostNetwork: the node's IP
    services = {s["metadata"]["name"]: s for s in fake_cluster.objects("services", kube.namespace)}
    assert live.services["web"].cluster_ip == services["web"]["spec"]["clusterIP"]
    assert live.endpoint("kind-worker1/nodeport/web").port == services["web"]["spec"]["ports"][0]["nodePort"]
    channel = kube.channel(live.endpoint("kind-worker2/duo/c2"))
    assert channel.base.endswith(f"/pods/{pods[('kind-worker2', 'duo')]['metadata']['name']}:9001/proxy")
    # the run's token: in a Secret every probe mounts and reads, and on every request of the harness
    (secret,) = fake_cluster.objects("secrets", kube.namespace)
    assert secret["metadata"]["name"] == "netprobe-token" and secret["stringData"] == {"token": kube.token}
    assert channel.headers() == {"X-Netprobe-Token": kube.token} and len(kube.token) >= 32
    for pod in pods.values():
        assert {"name": "token", "secret": {"secretName": "netprobe-token", "defaultMode": 0o400}} in \
            pod["spec"]["volumes"]
        for container in pod["spec"]["containers"]:
            assert container["args"][-2:] == ["--token-file", "/var/run/netprobe/token"]
            assert {"name": "token", "mountPath": "/var/run/netprobe", "readOnly": True} in container["volumeMounts"]
    pools = kube.api.client.rest_client.pool_manager.pools
    assert len(pools) == 1  # one connection pool to the API server, kept for the run
    assert kube.close() == [] and fake_cluster.objects("namespaces") == []
    assert len(pools) == 0  # and let go at the end


def test_a_taken_node_port_is_avoided(tmp_path):
    taken = {"metadata": {"name": "other", "namespace": "default"},
             "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}}
    with FakeApiServer(World(workers(), existing=[KINDNET, ("services", "default", taken)])) as api:
        live = backend(api, tmp_path).start(lambda message: None)
        assert live.services["web"].node_port not in (30080, None)


def test_only_ready_untainted_selected_nodes_are_tested(tmp_path):
    control = node("kind-control-plane", "172.18.0.9", labels={"node-role.kubernetes.io/control-plane": ""},
                   taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    with FakeApiServer(World([control, *workers(2)], existing=[KINDNET])) as api:
        plain = backend(api, tmp_path)
        assert [n.name for n in plain.plan().nodes] == ["kind-worker1", "kind-worker2"]
        assert plain.node_coverage(plain.plan()) == {"tested": 2, "in_cluster": 3, "excluded": [
            {"name": "kind-control-plane", "reason": "tainted (node-role.kubernetes.io/control-plane:NoSchedule; "
                                                     "see --tolerations)"}]}
        tolerant = backend(api, tmp_path, tolerations=[{"operator": "Exists"}])
        assert len(tolerant.plan().nodes) == 3
        picky = backend(api, tmp_path, node_selector={"kubernetes.io/hostname": "kind-worker2"})
        assert [n.name for n in picky.plan().nodes] == ["kind-worker2"]
        assert {e["reason"] for e in picky.node_coverage(picky.plan())["excluded"]} == {"not matching --node-selector"}
        with pytest.raises(BackendError, match=r"no node to test: every node is excluded: kind-control-plane "
                                               r"\(tainted .*; kind-worker1 \(not matching --node-selector\)"):
            backend(api, tmp_path, node_selector={"node-role.kubernetes.io/control-plane": ""}).plan()


UNREACHABLE = [{"key": "node.kubernetes.io/unreachable", "effect": effect} for effect in ("NoSchedule", "NoExecute")]


def test_nodes_that_cannot_be_tested_are_left_out_and_named_and_get_no_probe(tmp_path):
    """Was: one NotReady node stopped the whole run. Now a node that is not Ready (its kubelet
    stopped: the node lifecycle controller also taints it unreachable, and it is still called not
    Ready), not Linux or cordoned is excluded with its reason, the others are tested, and the
    DaemonSets' node affinity keeps every probe off the excluded ones (the DaemonSet controller
    itself tolerates a cordon)."""
    nodes = [*workers(2), node("kind-worker3", "172.18.0.4", ready=False, taints=UNREACHABLE),
             node("win-1", "172.18.0.5", labels={"kubernetes.io/os": "windows"}),
             node("kind-worker5", "172.18.0.6", unschedulable=True,
                  taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])]
    with FakeApiServer(World(nodes, existing=[KINDNET])) as api:
        kube, said = backend(api, tmp_path), []
        live = kube.start(said.append)
        assert [n.name for n in live.nodes] == ["kind-worker1", "kind-worker2"]
        assert kube.node_coverage(live) == {"tested": 2, "in_cluster": 5, "excluded": [
            {"name": "kind-worker3", "reason": "not Ready (KubeletNotReady)"},
            {"name": "kind-worker5", "reason": "cordoned (tolerate node.kubernetes.io/unschedulable to include it)"},
            {"name": "win-1", "reason": "not Linux (kubernetes.io/os=windows)"}]}
        assert any(line.startswith("kube: 3 node(s) excluded: kind-worker3 (not Ready") for line in said), said
        placed = {p["spec"]["nodeName"] for p in api.objects("pods", kube.namespace)}
        assert placed == {"kind-worker1", "kind-worker2"}, placed
        kube.close()
        cordon_tolerated = backend(api, tmp_path, tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                                                  "operator": "Exists", "effect": "NoSchedule"}])
        assert [n.name for n in cordon_tolerated.plan().nodes] == ["kind-worker1", "kind-worker2", "kind-worker5"]


def test_a_cluster_whose_every_node_is_excluded_is_one_error_naming_each(tmp_path):
    gone = node("kind-worker9", "172.18.0.10", ready=False, taints=UNREACHABLE)
    with FakeApiServer(World([gone], existing=[KINDNET])) as api:
        with pytest.raises(BackendError, match=r"no node to test: every node is excluded: "
                                               r"kind-worker9 \(not Ready \(KubeletNotReady\)\)"):
            backend(api, tmp_path).plan()


@pytest.mark.parametrize("state, message", [
    ("image-pull", r"pod probe-b-\w+ on node kind-worker2 cannot pull its image \(ImagePullBackOff, "
                   r"image python:3.12-slim@sha256:[0-9a-f]{64}\)"),
    ("unschedulable", r"pod probe-b-\w+ for node kind-worker2 cannot be scheduled: 0/3 nodes are "
                      r"available: 1 Insufficient memory"),
    ("crash", r"pod probe-b-\w+ on node kind-worker2 keeps crashing \(CrashLoopBackOff"),
])
def test_readiness_fails_fast_naming_pod_node_and_reason(tmp_path, state, message):
    fate = lambda role, name: PodFate(state if (role, name) == ("probe-b", "kind-worker2") else "ready")  # noqa: E731
    with FakeApiServer(World(workers(), existing=[KINDNET], fate=fate)) as api:
        kube = backend(api, tmp_path, ready_timeout=120)
        with pytest.raises(BackendError, match=message):
            kube.start(lambda message: None)
        polls = api.requests[f"GET /api/v1/namespaces/{kube.namespace}/pods"]
        assert polls == 1, "a fatal reason ends the wait at the first look, not after the timeout"
        kube.close()
        assert api.objects("namespaces") == []


def test_pods_that_never_become_ready_end_the_wait_at_its_bound(tmp_path):
    with FakeApiServer(World(workers(), existing=[KINDNET], fate=lambda r, n: PodFate("pending"))) as api:
        kube = backend(api, tmp_path, ready_timeout=3)
        with pytest.raises(BackendError, match="probe pods not ready after 3s"):
            kube.start(lambda message: None)
        assert 1 < api.requests[f"GET /api/v1/namespaces/{kube.namespace}/pods"] <= 4


def test_a_pod_that_is_not_ready_at_the_bound_is_named_with_what_its_containers_wait_for(tmp_path):
    fate = lambda role, node: PodFate("creating" if node == "kind-worker2" else "ready")  # noqa: E731
    with FakeApiServer(World(workers(), existing=[KINDNET], fate=fate)) as api:
        kube = backend(api, tmp_path, ready_timeout=3)
        with pytest.raises(BackendError, match=r"probe-\w+-\w+ \(Pending on kind-worker2; probe waiting "
                                               r"ContainerCreating: failed to setup network for sandbox"):
            kube.start(lambda message: None)


def test_the_named_cni_must_be_the_one_running(tmp_path):
    with FakeApiServer(World(workers(), existing=[CILIUM])) as api:
        with pytest.raises(BackendError, match=r"--cni=calico, but no DaemonSet kube-system/calico-node or "
                                               r"calico-system/calico-node exists: this cluster runs cilium "
                                               r"\(DaemonSet kube-system/cilium\)"):
            backend(api, tmp_path, cni="calico").start(lambda message: None)
        assert api.objects("namespaces") == [], "nothing is deployed before the CNI is confirmed"
        backend(api, tmp_path, cni="other").start(lambda message: None)  # --cni=other skips the check


def test_cleanup_only_deletes_every_namespace_a_run_left_and_nothing_else(fake_cluster, tmp_path):
    kept = backend(fake_cluster, tmp_path, keep=True)
    kept.start(lambda message: None)
    assert kept.close() == [] and len(fake_cluster.objects("namespaces")) == 1, "--keep keeps it"
    fake_cluster.route("POST", "/api/v1/namespaces", {}, {"metadata": {"name": "someone-else"}})
    done = subprocess.run(kube_command(tmp_path, fake_cluster.kubeconfig_path, "--cni=kindnet",
                                       "--cleanup-only"),
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"deleted 1 namespace(s) left by earlier runs: {kept.namespace}" in done.stdout
    assert [n["metadata"]["name"] for n in fake_cluster.objects("namespaces")] == ["someone-else"]


def test_a_failed_start_is_one_error_line_and_leaves_no_namespace(tmp_path):
    fate = lambda role, name: PodFate("image-pull" if role == "duo" else "ready")  # noqa: E731
    with FakeApiServer(World(workers(), existing=[KINDNET], fate=fate)) as api:
        run = run_kube_suite(tmp_path, api.kubeconfig(tmp_path / "kc"), "--cni=kindnet")
        assert run.returncode == 4, run.output[-2000:]
        assert "ERROR: netconform: pod duo-" in run.output and "cannot pull its image" in run.output
        assert api.objects("namespaces") == []
        (namespace,) = api.created["namespaces"]
        assert [path for method, path in api.log if method == "DELETE"] == [f"/api/v1/namespaces/{namespace}"]


def test_ctrl_c_while_waiting_deletes_the_namespace(tmp_path):
    with FakeApiServer(World(workers(), existing=[KINDNET], fate=lambda r, n: PodFate("pending"))) as api:
        proc = subprocess.Popen(kube_command(tmp_path, api.kubeconfig(tmp_path / "kc"), "--cni=kindnet"),
                                cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        seen, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and "waiting for" not in "".join(seen[-1:]):
            seen.append(proc.stdout.readline())
        assert len(api.objects("namespaces")) == 1, "".join(seen)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode != 0
        assert api.objects("namespaces") == [], out[-2000:]


@pytest.mark.parametrize("kubeconfig, message", [
    ("garbage", "kubeconfig .*kc"),
    ("unreachable", r"cannot reach the API server at https://127.0.0.1:9"),
    ("bad-token", "refused to list nodes: Unauthorized"),
    ("missing", "no kubeconfig at .*nothing-here"),
])
def test_a_cluster_that_cannot_be_used_is_one_clear_message(fake_cluster, tmp_path, kubeconfig, message):
    path = tmp_path / "kc"
    if kubeconfig == "garbage":
        path.write_text("clusters: [this is not: a kubeconfig")
    elif kubeconfig == "unreachable":
        config = json.loads(fake_cluster.kubeconfig(path).read_text())
        config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
        path.write_text(json.dumps(config))
    elif kubeconfig == "bad-token":
        fake_cluster.kubeconfig(path, token="wrong")
    else:
        path = tmp_path / "nothing-here"
    run = run_kube_suite(tmp_path, path, "--cni=kindnet", timeout=60)
    assert run.returncode == 4, run.output[-2000:]
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and re.search(message, errors[0]), run.output[-2000:]
    assert fake_cluster.objects("namespaces") == []


def test_a_lab_profile_on_a_live_cluster_is_a_usage_error(fake_cluster, tmp_path):
    run = run_kube_suite(tmp_path, fake_cluster.kubeconfig_path, "--cni=bridge", timeout=60)
    assert run.returncode == 4 and "but --cni=bridge is a lab profile" in run.output


def test_the_image_pull_secret_is_copied_into_the_run_and_used(tmp_path):
    secret = {"metadata": {"name": "regcred", "namespace": "registry"},
              "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "eyJhdXRocyI6e319"}}
    with FakeApiServer(World(workers(), existing=[KINDNET, ("secrets", "registry", secret)])) as api:
        kube = backend(api, tmp_path, image_pull_secret="registry/regcred", image="registry.local/probe:1")
        kube.start(lambda message: None)
        copied = next(s for s in api.objects("secrets", kube.namespace) if s["metadata"]["name"] == "regcred")
        assert copied["data"] == secret["data"] and copied["type"] == secret["type"]
        for ds in api.objects("daemonsets", kube.namespace):
            assert ds["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
            assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/probe:1"
        with pytest.raises(BackendError, match="--image-pull-secret registry/missing: secrets \"missing\""):
            backend(api, tmp_path, image_pull_secret="registry/missing").start(lambda message: None)


def _channel_to(api, tmp_path):
    """A PodProxyChannel to a pod the fake API server knows."""
    from netconform.backends.kube.api import KubeApi
    from netconform.backends.kube.channel import PodProxyChannel
    kube_api = KubeApi(api.kubeconfig(tmp_path / "kc"))
    return kube_api, PodProxyChannel("node-1/probe-a", kube_api, "run", "probe-a", 9000, token="t" * 32)


def test_an_answer_that_breaks_off_is_asked_for_once_more_then_the_break_is_the_harness_error(tmp_path):
    """kube-apiserver aborts a proxied answer now and then ("ReverseProxy read error during body
    copy"): the client sees the connection close before the Content-Length arrived. The lost
    answer was never seen, so the request is sent again, once; two breaks in a row are reported
    as what they are, the probe not being asked (a harness error), never a result."""
    from netconform.probing.channel import ProbeUnavailable

    from .fakeapi import BrokenOff
    pod = {"metadata": {"name": "probe-a", "namespace": "run"}, "spec": {}, "status": {"podIP": "10.244.1.2"}}
    breaks = {"left": 1, "asked": 0}

    def proxy(pod, port, method, rest, body):
        breaks["asked"] += 1
        answer = json.dumps({"results": [{"id": "x", "ok": True}] * 50}).encode()
        if breaks["left"]:
            breaks["left"] -= 1
            return 200, BrokenOff(answer[:len(answer) // 2])
        return 200, answer

    with FakeApiServer(World(workers(), existing=[("pods", "run", pod)], proxy=proxy)) as api:
        kube_api, channel = _channel_to(api, tmp_path)
        with kube_api:
            assert len(channel.call("probe", {"targets": []})["results"]) == 50
            assert breaks["asked"] == 2
            breaks.update(left=5, asked=0)
            with pytest.raises(ProbeUnavailable, match=r"node-1/probe-a: probe failed: .*the answer broke "
                                                       r"off 2 times in a row: .*IncompleteRead"):
                channel.call("probe", {"targets": []})
            assert breaks["asked"] == 2  # bounded: never a third time


def _dual_stack(item: dict, ipv6: str, first: bool = False) -> dict:
    """A Node whose kubelet reports an InternalIP per family (the IPv6 one first when ``first``)."""
    addresses = item["status"]["addresses"]
    v6 = {"type": "InternalIP", "address": ipv6}
    item["status"]["addresses"] = [v6, *addresses] if first else [addresses[0], v6, *addresses[1:]]
    return item


def test_the_families_are_read_from_the_nodes_and_one_not_probed_is_named(tmp_path):
    dual = [_dual_stack(n, f"fc00:f853:ccd:e793::{i}") for i, n in enumerate(workers(2), 2)]
    with FakeApiServer(World(dual, existing=[KINDNET])) as api:
        kube = backend(api, tmp_path)
        planned = kube.plan()  # every chosen node has both: the checks run in both
        assert (planned.families, planned.cluster_families) == (("ipv4", "ipv6"), ("ipv4", "ipv6"))
        # this fake's pods get an IPv4 podIP only: said at once, naming them, not 300 errors later
        with pytest.raises(BackendError, match=r"no address in that family to kind-worker1/\S+ \(ipv6\)"):
            kube.start(lambda message: None)
        assert kube.close() == []
    one, two = workers(2)
    with FakeApiServer(World([one, _dual_stack(two, "fc00::3")], existing=[KINDNET])) as api:
        planned = backend(api, tmp_path).plan()  # IPv6 on some nodes only: named, not probed
        assert (planned.families, planned.untested_families) == (("ipv4",), ("ipv6",))
    with FakeApiServer(World(workers(2), existing=[KINDNET])) as api:
        planned = backend(api, tmp_path).plan()
        assert (planned.families, planned.untested_families) == (("ipv4",), ())


def test_nodes_of_two_primary_families_are_refused_by_name(tmp_path):
    one, two = workers(2)
    with FakeApiServer(World([one, _dual_stack(two, "fc00::3", first=True)], existing=[KINDNET])) as api:
        with pytest.raises(BackendError, match="first InternalIPs are of both families"):
            backend(api, tmp_path).plan()


@pytest.mark.parametrize("expected, nodes, refused", [
    ("dual", "ipv4", "--ip-family=dual expects ipv4 and ipv6, but the chosen nodes' InternalIPs are ipv4"),
    ("ipv4", "dual", "--ip-family=ipv4 expects ipv4, but the chosen nodes' InternalIPs are ipv4 and ipv6"),
    ("dual", "dual", None), ("ipv4", "ipv4", None)])
def test_ip_family_asserts_what_the_cluster_has(tmp_path, expected, nodes, refused):
    items = workers(2) if nodes == "ipv4" else \
        [_dual_stack(n, f"fc00::{i}") for i, n in enumerate(workers(2), 2)]
    with FakeApiServer(World(items, existing=[KINDNET])) as api:
        kube = backend(api, tmp_path, ip_family=expected)
        if refused:
            with pytest.raises(BackendError, match=re.escape(refused)):
                kube.plan()
        else:
            assert kube.plan().cluster_families == (("ipv4",) if nodes == "ipv4" else ("ipv4", "ipv6"))


def test_a_dual_stack_cluster_gives_every_probe_and_service_an_address_per_family(tmp_path):
    """The fake as a dual-stack cluster: podIPs, the nodes' InternalIPs and PreferDualStack
    Services' clusterIPs in both families, read into the topology, each family's view its own."""
    nodes = [_dual_stack(n, f"fc00:f853:ccd:e793::{i}") for i, n in enumerate(workers(2), 2)]
    with FakeApiServer(World(nodes, existing=[KINDNET], families=("ipv4", "ipv6"))) as api:
        kube = backend(api, tmp_path, ip_family="dual")
        live = kube.start(lambda message: None)
        assert (live.families, live.cluster_families) == (("ipv4", "ipv6"), ("ipv4", "ipv6"))
        for endpoint in live.probes():
            assert [f for f, _ in endpoint.addresses] == ["ipv4", "ipv6"], endpoint
        assert [f for f, _ in live.services["web"].cluster_ips] == ["ipv4", "ipv6"]
        six = live.in_family("ipv6")
        assert ":" in six.endpoint("kind-worker1/probe-a").ip and ":" in six.endpoint("kind-worker2/host").ip
        assert six.endpoint("kind-worker2/host").ip == "fc00:f853:ccd:e793::3"
        assert kube.close() == []


def test_an_ipv6_only_cluster_is_probed_in_ipv6_alone(tmp_path):
    """The fake as an IPv6-only cluster (kind's ipFamily: ipv6): nothing of it is IPv4."""
    nodes = [node(f"kind-worker{i}", f"fc00:f853:ccd:e793::{i + 1}") for i in (1, 2)]
    with FakeApiServer(World(nodes, existing=[KINDNET], families=("ipv6",))) as api:
        kube = backend(api, tmp_path, ip_family="ipv6")
        live = kube.start(lambda message: None)
        assert (live.families, live.cluster_families) == (("ipv6",), ("ipv6",))
        assert all(":" in e.ip for e in live.probes()) and all(":" in n.ip for n in live.nodes)
        assert ":" in live.services["web"].cluster_ip
        services = {s["metadata"]["name"]: s for s in api.objects("services", kube.namespace)}
        assert services["web"]["spec"]["ipFamilies"] == ["IPv6"]
        assert kube.close() == []
    with FakeApiServer(World(nodes, existing=[KINDNET], families=("ipv6",))) as api:
        with pytest.raises(BackendError, match=re.escape("--ip-family=ipv4 expects ipv4, but the chosen "
                                                         "nodes' InternalIPs are ipv6")):
            backend(api, tmp_path, ip_family="ipv4").plan()


def test_on_more_than_ten_nodes_only_the_picked_pods_are_labelled_and_back_the_services(tmp_path):
    """12 workers: the probe-a and host pods of 10 nodes, spread first to last, carry the backend
    label the picked Services select; web-local (externalTrafficPolicy Local) keeps every node's."""
    with FakeApiServer(World(workers(12), existing=[KINDNET])) as api:
        kube = backend(api, tmp_path)
        live = kube.start(lambda message: None)
        labelled = sorted((p["spec"]["nodeName"], p["metadata"]["labels"]["netconform.io/role"])
                          for p in api.objects("pods", kube.namespace)
                          if p["metadata"]["labels"].get("netconform.io/backend") == "true")
        picked = backend_nodes([n.name for n in live.nodes])
        assert len(picked) == 10 and {picked[0], picked[-1]} == {live.nodes[0].name, live.nodes[-1].name}
        assert labelled == sorted((n, r) for n in picked for r in ("host", "probe-a"))
        slices = {s["metadata"]["labels"]["kubernetes.io/service-name"]: s for s in api.selector_slices(kube.namespace)}
        assert len(slices["web"]["endpoints"]) == len(live.services["web"].backends) == 10
        assert len(slices["web-local"]["endpoints"]) == len(live.services["web-local"].backends) == 12
        assert sum(n for key, n in api.requests.items() if key.startswith("PATCH ") and "/pods/" in key) == 20  # one per pod
        assert kube.close() == []


def test_the_verdict_states_its_node_coverage_in_the_terminal_results_and_report(tmp_path):
    """network-model.md, "The verdict": nodes tested out of the cluster's, each excluded node and
    why. The fakes' probes do not answer (every item is an error); the statement is what is judged."""
    nodes = [*workers(2), node("win-1", "172.18.0.5", labels={"kubernetes.io/os": "windows"})]
    with FakeApiServer(World(nodes, existing=[KINDNET])) as api:
        run = run_kube_suite(tmp_path, api.kubeconfig(tmp_path / "kc"), "--cni=kindnet", "-m", "POD-POD-CROSS",
                             timeout=120)
    assert "nodes: 2 of 3 tested; excluded: win-1 (not Linux (kubernetes.io/os=windows))" in run.output, run.output[-3000:]
    assert run.results["coverage"]["nodes"] == {"tested": 2, "in_cluster": 3, "excluded": [
        {"name": "win-1", "reason": "not Linux (kubernetes.io/os=windows)"}]}
    page = (tmp_path / "report.html").read_text()
    assert re.search(r'<p id="node-coverage">Nodes: 2 of 3 tested; excluded:</p>\s*<ul class="excluded-nodes">\s*'
                     r'<li><code>win-1</code>: not Linux \(kubernetes.io/os=windows\)</li>', page), page[:3000]


def test_image_registry_makes_every_probe_pull_the_mirror_copy_by_the_same_digest(fake_cluster, tmp_path):
    from netconform.backends.kube.manifests import AGENT_CONFIGMAP, STOCK_PYTHON
    kube = backend(fake_cluster, tmp_path, image_registry="mirror.local:5000/hub")
    kube.start(lambda message: None)
    try:
        pods = fake_cluster.objects("pods", kube.namespace)
        images = {c["image"] for p in pods for c in p["spec"]["containers"]}
        assert images == {f"mirror.local:5000/hub/library/{STOCK_PYTHON}"}
        # still the stock Python running the agent from its ConfigMap
        assert [c["metadata"]["name"] for c in fake_cluster.objects("configmaps", kube.namespace)] == [AGENT_CONFIGMAP]
        assert kube.metadata()["probe_image"].startswith(f"mirror.local:5000/hub/library/{STOCK_PYTHON} (the agent")
    finally:
        kube.close()


def test_a_bad_image_registry_is_a_usage_error_before_anything(fake_cluster, tmp_path):
    run = run_kube_suite(tmp_path, fake_cluster.kubeconfig_path, "--cni=kindnet", "--image-registry=http://m",
                         timeout=60)
    assert run.returncode == 4 and "a registry, not a URL" in run.output, run.output[-2000:]
    assert fake_cluster.objects("namespaces") == []


def default_deny(namespace: str) -> list[tuple[str, dict]]:
    """What a Kyverno generate rule makes in every new namespace."""
    return [("networkpolicies", {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                 "metadata": {"name": "default-deny"},
                                 "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})]


def test_a_policy_generated_in_the_run_namespace_is_found_and_named_and_allow_policy_lifts_it(tmp_path):
    """network-model.md: traffic a policy blocks is not a network failure. The run lists the
    policies that can select its pods before probing; a namespaced one is lifted by --allow-policy's
    allow-all NetworkPolicy, made before any probe starts."""
    with FakeApiServer(World(workers(2), existing=[KINDNET], on_namespace=default_deny)) as api:
        kube, said = backend(api, tmp_path), []
        kube.start(said.append)
        try:
            assert kube.blocking_policies().startswith(
                f"NetworkPolicy {kube.namespace}/default-deny may block this traffic")
            assert "--allow-policy lifts the namespaced ones" in kube.blocking_policies()
            assert any("1 policy(ies) may block the run's traffic: NetworkPolicy" in line for line in said), said
            meta = kube.metadata()
            assert meta["policies"] == [{"kind": "NetworkPolicy", "name": "default-deny",
                                         "namespace": kube.namespace, "may_block": True}]
            assert (meta["policies_unreadable"], meta["allow_policy"]) == ([], False)
        finally:
            kube.close()
        allowed = backend(api, tmp_path, allow_policy=True)
        allowed.start(lambda message: None)
        try:
            assert allowed.blocking_policies() is None
            (own,) = [p for p in api.objects("networkpolicies", allowed.namespace) if p["metadata"]["name"] ==
                      "netconform-allow-all"]
            assert own["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]}
            # made right after the namespace and the run's Lease, before the Secret, the ConfigMap
            # and every probe
            posts = [path.rsplit("/", 1)[1] for method, path in api.log
                     if method == "POST" and f"/namespaces/{allowed.namespace}/" in path]
            assert posts[:4] == ["leases", "networkpolicies", "secrets", "configmaps"], posts
            assert [p["may_block"] for p in allowed.metadata()["policies"]] == [False]
        finally:
            allowed.close()


def test_an_admin_policy_still_blocks_with_allow_policy_and_a_kind_not_served_is_no_policy(tmp_path):
    deny = ("adminnetworkpolicies", None, {"apiVersion": "policy.networking.k8s.io/v1alpha1",
                                            "kind": "AdminNetworkPolicy", "metadata": {"name": "deny-all"},
                                            "spec": {"priority": 10, "subject": {"namespaces": {}}}})
    with FakeApiServer(World(workers(2), existing=[KINDNET, deny], crds=("adminnetworkpolicies",))) as api:
        kube = backend(api, tmp_path, allow_policy=True)
        kube.start(lambda message: None)
        try:
            assert kube.blocking_policies() == ("AdminNetworkPolicy deny-all may block this traffic, and "
                                                "traffic a policy blocks is not a network failure")
        finally:
            kube.close()
    # without the CRDs (the fake serves none of the CNI kinds): nothing found, nothing unreadable
    with FakeApiServer(World(workers(2), existing=[KINDNET])) as api:
        kube = backend(api, tmp_path)
        kube.start(lambda message: None)
        try:
            assert kube.blocking_policies() is None and kube.metadata()["policies_unreadable"] == []
        finally:
            kube.close()


def test_an_admission_policy_that_refuses_daemonset_pods_is_named_at_once(tmp_path):
    """Pod Security enforced at "baseline" (a cluster default, or a policy engine relabelling the
    namespace): the host probes' pods are refused to the DaemonSet controller, which says so only in
    an event; the run names the refusal at its first look, not at --ready-timeout."""
    def baseline(pod):
        if pod["spec"].get("hostNetwork"):
            return (f'pods "{pod["metadata"]["name"]}" is forbidden: violates PodSecurity "baseline:latest": '
                    'host namespaces (hostNetwork=true)')
        return None
    with FakeApiServer(World(workers(), existing=[KINDNET], admit=baseline)) as api:
        kube = backend(api, tmp_path, ready_timeout=60)
        started = time.monotonic()
        with pytest.raises(BackendError) as raised:
            kube.start(lambda message: None)
        assert time.monotonic() - started < 20
        assert str(raised.value).startswith('Pod Security admission, level "baseline:latest" (the namespace\'s '
                                            'pod-security.kubernetes.io/enforce label, or the cluster\'s default '
                                            'level) refused the probe pods of DaemonSet host: pods "host-')
        assert kube.close() == [] and api.objects("namespaces") == []


def test_an_admission_policy_that_refuses_a_pod_the_run_creates_is_named(tmp_path):
    refuse = lambda pod: ("admission webhook \"validation.gatekeeper.sh\" denied the request: [host-ports] "  # noqa: E731
                          "hostPort is not allowed") if pod["metadata"]["name"] == "shared-local" else None
    with FakeApiServer(World(workers(), existing=[KINDNET], admit=refuse)) as api:
        kube = backend(api, tmp_path)
        with pytest.raises(BackendError, match=r"refused to create Pod shared-local: admission webhook "
                                               r"validation.gatekeeper.sh: admission webhook"):
            kube.start(lambda message: None)
        assert kube.close() == []


def test_a_tested_node_that_goes_not_ready_during_the_run_is_seen_and_remembered(fake_cluster, tmp_path, monkeypatch):
    from netconform.backends.kube import backend as kube_backend
    kube = backend(fake_cluster, tmp_path)
    kube.start(lambda message: None)
    try:
        assert kube.lost_nodes() == {}
        (worker2,) = [n for n in fake_cluster.objects("nodes") if n["metadata"]["name"] == "kind-worker2"]
        ready = next(c for c in worker2["status"]["conditions"] if c["type"] == "Ready")
        ready.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")
        assert kube.lost_nodes() == {}, "looked at 10 s ago at most: not again yet"
        seen = kube.last_seen_ready("kind-worker2")
        assert kube.lost_nodes(final=True) == {
            "kind-worker2": "not Ready (NodeStatusUnknown Kubelet stopped posting node status.)"}
        assert kube.last_seen_ready("kind-worker2") == seen, "not seen Ready since"
        assert kube.last_seen_ready("kind-worker1") > seen, "seen Ready at that last look"
        ready.update(status="True", reason="KubeletReady")  # back: its earlier failures stay suspect
        monkeypatch.setattr(kube_backend, "LOST_NODE_LOOK", 0.0)
        assert kube.lost_nodes() == {"kind-worker2": "not Ready (NodeStatusUnknown Kubelet stopped posting node status.)"}
        fake_cluster.route("DELETE", "/api/v1/nodes/kind-worker3", {}, None)
        assert set(kube.lost_nodes()) == {"kind-worker2", "kind-worker3"}
        assert kube.lost_nodes()["kind-worker3"] == "deleted from the cluster"
    finally:
        assert kube.close() == []


def test_a_managed_clusters_own_cni_is_told_from_the_one_it_is_built_on(tmp_path):
    """GKE Dataplane V2 is Cilium inside, in a DaemonSet of its own (anetd): --cni=cilium is told
    what runs, --cni=gke-dataplane-v2 goes ahead. Likewise EKS's aws-node and OpenShift's OVN."""
    anetd = cni_daemonset("kube-system", "anetd", "gke.gcr.io/cilium/cilium:v1.14", {"k8s-app": "cilium"})
    with FakeApiServer(World(workers(), existing=[anetd])) as api:
        with pytest.raises(BackendError, match=r"--cni=cilium, but no DaemonSet kube-system/cilium exists: "
                                               r"this cluster runs gke-dataplane-v2 \(DaemonSet kube-system/anetd\)"):
            backend(api, tmp_path, cni="cilium").start(lambda message: None)
        kube = backend(api, tmp_path, cni="gke-dataplane-v2")
        try:
            kube.start(lambda message: None)
            assert kube.metadata()["cni_daemonset"] == "kube-system/anetd"
        finally:
            kube.close()
    for cni, (namespace, name) in (("aws-vpc-cni", ("kube-system", "aws-node")),
                                   ("ovn-kubernetes", ("openshift-ovn-kubernetes", "ovnkube-node")),
                                   ("azure-cni", ("kube-system", "azure-cns"))):
        with FakeApiServer(World(workers(), existing=[cni_daemonset(namespace, name, "x:1", {"app": name})])) as api:
            kube = backend(api, tmp_path, cni=cni)
            try:
                kube.start(lambda message: None)
                assert kube.metadata()["cni_daemonset"] == f"{namespace}/{name}"
            finally:
                kube.close()


def _answering(pod, port, method, rest, body):
    """A probe whose every target answers, as the pod proxy or the relay carries it."""
    if rest == "probe":
        return 200, json.dumps({"results": [{"id": t["id"], "ok": True, "attempts": 1}
                                            for t in (body or {}).get("targets", [])]}).encode()
    return 200, json.dumps({"name": pod["metadata"]["name"]}).encode()


def test_where_the_pod_proxy_cannot_reach_the_pods_auto_falls_back_to_exec_and_says_why(tmp_path):
    """A private cluster: the API server cannot route to pod IPs (the proxy's 503), but a kubelet
    runs the agent's relay. auto asks the proxy, then exec; every later request goes by exec."""
    from .fakeapi import relaying
    unreachable = lambda pod, port, method, rest, body: (503, {"kind": "Status", "code": 503, "message":  # noqa: E731
                                                               "error trying to reach service: dial tcp: i/o timeout"})
    with FakeApiServer(World(workers(), existing=[KINDNET], proxy=unreachable, exec=relaying(_answering))) as api:
        said = []
        kube = backend(api, tmp_path)
        try:
            live = kube.start(said.append)
            meta = kube.metadata()
            assert meta["channel"] == "exec"
            assert meta["channel_reason"].startswith("the pod proxy did not answer (the pod proxy: ")
            assert "error trying to reach service: dial tcp: i/o timeout" in meta["channel_reason"]
            assert any(m.startswith("kube: the probes are reached by exec: ") for m in said), said
            exec_before = api.requests["GET /api/v1/namespaces/{ns}/pods/{pod}/exec"]
            answer = kube.channel(live.endpoint("kind-worker2/duo/c2")).call(
                "probe", {"targets": [{"id": "t1"}]})
            assert answer == {"results": [{"id": "t1", "ok": True, "attempts": 1}]}
            assert api.requests["GET /api/v1/namespaces/{ns}/pods/{pod}/exec"] == exec_before + 1
        finally:
            assert kube.close() == []


def test_channel_exec_when_asked_goes_by_exec_and_neither_channel_answering_keeps_the_proxy(tmp_path):
    with FakeApiServer(World(workers(), existing=[KINDNET], proxy=_answering, exec=relaying_none())) as api:
        kube = backend(api, tmp_path, channel="exec")
        try:
            kube.start(lambda message: None)
            assert (kube.metadata()["channel"], kube.metadata()["channel_reason"]) == ("exec", "--channel exec")
            # the Services' wait asked every node's probe, by exec, though the proxy would answer
            assert api.requests["GET /api/v1/namespaces/{ns}/pods/{pod}/exec"] >= len(workers())
            assert not any("/proxy/" in key for key in api.requests), api.requests
        finally:
            kube.close()
    said = []
    with FakeApiServer(World(workers(), existing=[KINDNET])) as api:  # no proxy answers, no kubelet dials
        kube = backend(api, tmp_path, ready_timeout=5)
        try:
            kube.start(said.append)
        except BackendError:
            pass  # the Services' wait may give up: what matters is what was chosen, and why
        finally:
            kube.close()
        assert kube.channel_kind == "proxy"
        assert kube.channel_reason.startswith("neither channel answered")
        assert "exec: " in kube.channel_reason and "error dialing backend" in kube.channel_reason


def relaying_none():
    from .fakeapi import relaying
    return relaying(_answering)

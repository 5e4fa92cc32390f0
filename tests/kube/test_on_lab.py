"""The suites, unchanged, through the live-cluster backend: a fake API server in front of a real
lab, so every verdict rests on real packets and every probe is reached through the pod proxy."""
import pytest

from netconform.backends.lab.faults import fault

from ..lab.conftest import needs_root
from .conftest import run_kube_suite
from .labworld import lab_behind_api

pytestmark = needs_root


def proxy_requests(api) -> int:
    return sum(n for shape, n in api.requests.items() if "/proxy/" in shape)


def test_the_suites_pass_through_the_api_on_a_healthy_cluster(tmp_path):
    with lab_behind_api() as (api, live):
        run = run_kube_suite(tmp_path, api.kubeconfig(tmp_path / "kc"), "--cni=kindnet")
        namespaces = api.created["namespaces"]
    assert run.returncode == 2, run.output[-3000:]  # INCOMPLETE: rows not implemented yet, none failed
    summary = run.summary
    for requirement in ("POD-POD-SAME", "POD-POD-CROSS", "POD-IP-SELF", "NODE-POD", "HOSTNET-POD",
                        "LOCALHOST", "SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-NODEPORT", "SVC-HAIRPIN",
                        "SVC-NO-ENDPOINTS", "HOSTPORT", "SVC-MULTIPORT", "SVC-ENDPOINTSLICE-MANUAL"):
        assert summary[requirement]["verdict"] == "pass", summary[requirement]
    # The rows that change a Service or ask cluster DNS need what this fake API server does not
    # do (PATCH, a probe resolv.conf of the cluster): their items are errors, never failures.
    for requirement in ("SVC-AFFINITY", "SVC-TYPE-CHANGE", "SVC-PORT-PROTOCOLS", "DNS-SVC"):
        assert summary[requirement]["verdict"] == "error", summary[requirement]
    etp = summary["SVC-ETP-LOCAL"]  # needs a client outside the cluster: none here
    assert etp["verdict"] == "skipped" and "needs a client outside" in etp["note"]
    meta = run.results["meta"]
    assert meta["backend"] == "kube" and meta["cni_daemonset"] == "kube-system/kindnet"
    assert (meta["kubernetes_version"], meta["proxy_mode"]) == ("v1.37.0", "nftables")
    assert meta["cni_image"] == "docker.io/kindest/kindnetd:v20250512-df8de77b"
    assert {info["kernel"] for info in meta["node_info"].values()} == {"6.12.0"}
    assert meta["namespace"] == namespaces[0]
    assert "kindnet on kube: INCOMPLETE" in run.output


def test_a_fault_behind_the_api_turns_its_check_red(tmp_path):
    with lab_behind_api(faults=(fault("snat-between-nodes"),)) as (api, live):
        run = run_kube_suite(tmp_path, api.kubeconfig(tmp_path / "kc"), "--cni=kindnet",
                             "-m", "POD-POD-CROSS")
    assert run.returncode == 1
    assert run.summary["POD-POD-CROSS"]["failed"] == run.summary["POD-POD-CROSS"]["total"] > 0
    assert "NAT: " in run.output


@pytest.fixture(scope="module")
def requests_by_size(tmp_path_factory):
    """Proxy requests and pairs of one check (POD-POD-CROSS) on clusters of 2 and 4 nodes."""
    measured = {}
    for nodes in (2, 4):
        path = tmp_path_factory.mktemp(f"n{nodes}")
        with lab_behind_api(nodes=nodes) as (api, live):
            run = run_kube_suite(path, api.kubeconfig(path / "kc"), "--cni=kindnet", "-m", "POD-POD-CROSS")
            assert run.returncode == 2, run.output[-3000:]
            measured[nodes] = (proxy_requests(api), len(run.results["items"]))
    return measured


def test_api_requests_of_a_check_grow_with_nodes_not_pairs(requests_by_size):
    (small_requests, small_pairs), (big_requests, big_pairs) = requests_by_size[2], requests_by_size[4]
    assert big_pairs / small_pairs == pytest.approx(6.0)  # 4x3 / 2x1 node pairs
    assert big_requests / small_requests <= 2.5  # probes double; requests follow them, not the pairs
    assert big_requests < big_pairs / 3

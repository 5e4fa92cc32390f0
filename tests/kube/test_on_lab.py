"""The suites, unchanged, through the live-cluster backend on a real cluster: ``--backend=kube`` on
the lab. The lab is only the cluster (upstream control plane, kube-proxy, CoreDNS, its kubelet); the
kube backend deploys the probes through the real API server, the DaemonSet controller and the
scheduler place them, the lab's kubelet runs them, and every probe is reached through the API
server's pod proxy. Every verdict rests on real packets."""
import pytest

from ..lab.conftest import leftovers, needs_root, run_suite

pytestmark = needs_root


def proxy_requests(meta: dict) -> int:
    """The requests to the probes through the pod proxy made by the checks (not the set-up's)."""
    setup = meta["api_requests_setup"]
    return sum(n - setup.get(shape, 0) for shape, n in meta["api_requests"].items() if "/proxy/" in shape)


# The whole suite through the API on the lab: tests/lab/test_dual_stack.py
# (test_a_dual_stack_lab_passes_every_must_row_in_both_families_through_the_api), in both families


@pytest.fixture(scope="module")
def requests_by_size(tmp_path_factory):
    """Proxy requests and pairs of one check (POD-POD-CROSS) on lab clusters of 2 and 4 nodes; the
    small one with a fault injected behind the API (each connection still made, and judged NAT)."""
    measured, runs = {}, {}
    for nodes, fault in ((2, ("--lab-fault=snat-between-nodes",)), (4, ())):
        path = tmp_path_factory.mktemp(f"n{nodes}")
        run = runs[nodes] = run_suite(path, "--backend=kube", f"--lab-nodes={nodes}", *fault, "-m", "POD-POD-CROSS")
        assert run.returncode == (1 if fault else 2), run.output[-3000:]  # 2: the other MUST rows deselected
        measured[nodes] = (proxy_requests(run.results["meta"]), len(run.results["items"]))
        assert leftovers(run.prefix) == []
    return measured, runs


def test_a_fault_behind_the_api_turns_its_check_red(requests_by_size):
    run = requests_by_size[1][2]
    cross = run.summary["POD-POD-CROSS"]
    assert cross["failed"] == cross["total"] > 0
    assert "NAT: " in run.output and "fault injected: snat-between-nodes" in run.output


def test_api_requests_of_a_check_grow_with_nodes_not_pairs(requests_by_size):
    (small_requests, small_pairs), (big_requests, big_pairs) = requests_by_size[0][2], requests_by_size[0][4]
    assert big_pairs / small_pairs == pytest.approx(6.0)  # 4x3 / 2x1 node pairs
    assert big_requests / small_requests <= 2.5  # probes double; requests follow them, not the pairs
    assert big_requests < big_pairs / 3


def test_the_run_acts_with_the_readme_role_alone_and_a_missing_permission_is_one_error(tmp_path):
    """The one path runs as a user bound to manifests/kube/rbac.yaml's ClusterRole, not as the lab's
    admin: with pods/proxy taken out of it, the API server refuses the first probe request, and the
    run stops there with that refusal, leaving nothing."""
    from netconform.backends.base import BackendError
    from netconform.backends.kube.manifests import run_role
    from netconform.backends.lab.backend import LabBackend
    from netconform.backends.lab.through_api import LabThroughApi
    from netconform.profiles import profile
    role = run_role()
    role["rules"] = [r for r in role["rules"] if r["resources"] != ["pods/proxy"]]
    assert len(role["rules"]) == len(run_role()["rules"]) - 1
    backend = LabThroughApi(LabBackend(profile("bridge"), nodes=1, pods_per_node=1), role=role)
    prefix, said = None, []
    try:
        with pytest.raises(BackendError, match=r'refused to POST .*/proxy/probe: .*User "netconform-run" '
                                               r'cannot create resource "pods/proxy"'):
            backend.start(said.append)
        prefix = backend.lab.cluster.names.prefix
    finally:
        assert backend.close() == []
    assert prefix and leftovers(prefix) == []
    # --channel auto tried exec too, which the role allows and the real API server carries to the
    # node's kubelet: the lab's kubelet serves no exec, so neither answered and the proxy was kept
    (chosen,) = [m for m in said if "neither channel answered" in m]
    print(f"\n{chosen}")
    assert "the pod proxy: " in chosen and "; exec: " in chosen, chosen


def test_allow_policy_makes_its_network_policy_through_the_real_api_server_with_the_run_role(tmp_path):
    """--allow-policy on the lab cluster: the run, bound to the README's role, creates its allow-all
    NetworkPolicy (the real API server validates it), lists every policy kind the server serves
    (a kind it does not serve is no policy), finds none of its own to blame, and passes."""
    run = run_suite(tmp_path, "--backend=kube", "--allow-policy", "--lab-nodes=2", "-m", "POD-POD-CROSS")
    assert run.returncode == 2, run.output[-3000:]  # the other MUST rows deselected; none failed
    meta = run.results["meta"]
    assert (meta["allow_policy"], meta["policies"], meta["policies_unreadable"]) == (True, [], [])
    assert run.summary["POD-POD-CROSS"]["passed"] == run.summary["POD-POD-CROSS"]["total"] > 0
    assert any(shape.startswith("POST /apis/networking.k8s.io/v1/namespaces/") and shape.endswith("/networkpolicies")
               for shape in meta["api_requests"]), meta["api_requests"]
    assert leftovers(run.prefix) == []

"""A dual-stack lab (--ip-family=dual): every address, route, pod range and Service in IPv4 and
IPv6, and every check run in each family, on its own addresses (shared/docs/network-model.md: a
requirement holds only in every family); and an IPv6-only lab (--ip-family=ipv6), with no IPv4
item at all."""
import ipaddress
import subprocess
import sys

import pytest

from netconform.backends.base import BackendError
from netconform.backends.kube.manifests import STOCK_PYTHON
from netconform.backends.lab.cluster import LabCluster, LabSpec
from netconform.backends.lab.faults import FAULTS
from netconform.profiles import profile
from netconform.upstream import DEFAULT_RELEASE
from netconform.upstream.releases import get as pinned_release

from ..kube.test_on_lab import proxy_requests
from .conftest import REPO, built_lab, leftovers, needs_root, run_suite
from .test_faults import CONTROLS, FAULT_SETTLE, failing, judge_everything

pytestmark = needs_root


def test_an_ipv6_only_lab_passes_every_must_row_with_no_ipv4_item(tmp_path):
    """Nodes' InternalIPs, pods, Services, cluster DNS and the `kubernetes` Service in IPv6 alone
    (the underlay keeps IPv4 for the lab's own plumbing, as a kind cluster's Docker network)."""
    run = run_suite(tmp_path, "--ip-family=ipv6", timeout=900)
    assert run.results["verdict"] == "CONFORMANT", run.output[-3000:]
    meta = run.results["meta"]
    assert (meta["ip_families"], meta["cluster_ip_families"]) == (["ipv6"], ["ipv6"])
    assert ":" in meta["kubernetes_service_ip"] and ":" in meta["cluster_dns"]
    items = run.results["items"]
    assert {i["family"] for i in items} == {"ipv6"}
    for item in items:
        for end in (item["source"], item["destination"]):
            if end and end.get("ip"):
                assert ipaddress.ip_address(end["ip"]).version == 6, item["id"]
    rows = {row["id"]: row for row in run.results["summary"]}
    for rid in [r for r, row in rows.items() if row["level"] == "MUST" and row["total"]] + \
            ["SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-NODEPORT"]:
        assert rows[rid]["verdict"] == "pass" and rows[rid]["passed"] == rows[rid]["total"] > 0, rows[rid]
    failed = [i for i in items if i["outcome"] in ("failed", "error")]
    assert failed == [], [(i["id"], i["reason"]) for i in failed]
    assert leftovers(run.prefix) == []


def test_a_dual_stack_lab_passes_every_must_row_in_both_families_through_the_api(tmp_path):
    """--backend=kube: the kube backend reads each family's addresses from the API (podIPs,
    clusterIPs, the nodes' InternalIPs), its Services ask for both, and every item is collected
    for both families (a family the cluster has and no item was collected for: no row passes).
    The lab's own backend on a dual-stack lab: the dual_lab tests below judge every check there,
    and the IPv6-only run above goes through it end to end."""
    run = run_suite(tmp_path, "--ip-family=dual", "--backend=kube", timeout=900)
    assert run.results["verdict"] == "CONFORMANT", run.output[-3000:]
    assert "bridge on kube: CONFORMANT" in run.output
    meta = run.results["meta"]
    assert (meta["ip_families"], meta["cluster_ip_families"]) == (["ipv4", "ipv6"], ["ipv4", "ipv6"])
    assert (meta["backend"], meta["cluster"]) == ("kube", "lab")
    assert meta["kubernetes_version"] == pinned_release(DEFAULT_RELEASE).kubernetes
    # the user's default route: the agent in a ConfigMap, which the lab kubelet runs as the stock
    # Python image would (python -I -S, the file the ConfigMap holds)
    assert meta["probe_image"] == f"{STOCK_PYTHON} (the agent by ConfigMap netprobe-agent)"
    assert meta["lab_kubelet_pod_problems"] == []
    assert proxy_requests(meta) > 0  # every probe was asked through the API server
    for row in run.results["summary"]:
        if row["total"] and row["id"] == "SVC-ETP-LOCAL":  # needs a client outside: none on this path
            assert row["verdict"] == "skipped" and "needs a client outside" in row["note"]
        elif row["total"]:
            assert row["verdict"] == "pass", row
    for row in run.results["summary"]:
        if row["level"] == "MUST" and row["total"]:
            assert set(row["families"]) == {"ipv4", "ipv6"}, row
            assert all(c["passed"] == c["total"] > 0 for c in row["families"].values()), row
    items = run.results["items"]
    for item in items:  # each item used addresses of its own family only
        for end in (item["source"], item["destination"]):
            if end and end.get("ip"):
                version = ipaddress.ip_address(end["ip"]).version
                assert version == (6 if item["family"] == "ipv6" else 4), item["id"]
    # the kubernetes Service and the hostPorts bound to a hostIP exist in the primary family alone
    assert {i["family"] for i in items if i["requirement"] == "POD-APISERVER"} == {"ipv4"}
    # every pod and node has its address in each family (DUAL-STACK, one item per family each)
    dual = [i for i in items if i["requirement"] == "DUAL-STACK"]
    assert len(dual) == 2 * (6 + 3) and all(i["outcome"] == "passed" for i in dual), dual
    # nothing fails: kube-proxy's reject of TCP over IPv6 to a Service without endpoints is acted
    # on at once (it was seen a second late, at the SYN's retransmission, until the probe set
    # IPV6_RECVERR: the ICMPv6 error came while connect() held the socket)
    failed = [i for i in items if i["outcome"] in ("failed", "error")]
    assert failed == [], [(i["id"], i["reason"]) for i in failed]
    assert leftovers(run.prefix) == []


# --- faults of one family, on a dual-stack lab (the mutation test of tests/lab/test_faults.py) ---

DUAL_EXAMPLE = profile("bridge").conflist.parent / "examples" / "bridge-dual.conflist"


@pytest.fixture(scope="module")
def dual_lab():
    """Wired by the dual-stack example conflist (its own ${POD_CIDR_V6} range): the faults' and
    the reverted lab's tests below prove the example too."""
    yield from built_lab(LabSpec(DUAL_EXAMPLE, families=("ipv4", "ipv6")))


@pytest.mark.parametrize("name", [name for name, f in FAULTS.items() if f.ipv6])
def test_a_fault_of_ipv6_alone_turns_only_the_ipv6_items_of_its_requirements_red(dual_lab, name):
    cluster, live = dual_lab
    fault = FAULTS[name]
    judged = set(fault.breaks) | (CONTROLS - set(fault.also))
    try:
        cluster.inject(fault, live)
        outcomes = judge_everything(cluster, live, attempts=1, only=judged, settle=FAULT_SETTLE)
    finally:
        cluster.revert(fault, live)
    assert not any(c["error"] for c in outcomes.values()), {r: c.reasons for r, c in outcomes.items() if c["error"]}
    red = failing(outcomes)
    assert set(fault.breaks) <= red, (fault.breaks, outcomes)
    assert not red - set(fault.breaks + fault.also), {r: outcomes[r] for r in red - set(fault.breaks + fault.also)}
    assert all(outcomes[r].failed_in == {"ipv6"} for r in red), {r: outcomes[r].failed_in for r in red}


def test_the_dual_stack_lab_passes_every_check_in_both_families_once_the_faults_are_reverted(dual_lab):
    outcomes = judge_everything(*dual_lab)
    red = failing(outcomes)
    assert red == set(), {r: c.reasons[:3] for r, c in outcomes.items() if c.reasons}
    assert not any(c["error"] for c in outcomes.values())


def test_a_fault_of_ipv6_alone_is_refused_on_an_ipv4_lab():
    cluster = LabCluster(LabSpec(profile("bridge").conflist))
    with pytest.raises(BackendError, match="acts on IPv6 alone; run it with --ip-family=dual"):
        cluster.inject(FAULTS["ipv6-snat-between-nodes"], None)


@pytest.mark.parametrize("args, families", [((), {"ipv4", "ipv6"}), (("--cni=ptp",), {"ipv4", "ipv6"}),
                                            (("--cni=vxlan",), {"ipv4"}), (("--ip-family=ipv4",), {"ipv4"}),
                                            (("--ip-family=ipv6",), {"ipv6"})])
def test_the_lab_is_dual_stack_by_default_where_it_can_be(tmp_path, args, families):
    """The issue's default: dual-stack (this kernel has IPv6, IPv6 NAT and ip6tables), with a
    conflist and routes between nodes; vxlan and the real CNIs stay IPv4 (refused as dual)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "suites", "--collect-only", "-q", "-p", "no:cacheprovider",
                           f"--report-dir={tmp_path}", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert done.returncode == 0 and ids, done.stdout[-2000:] + done.stderr[-2000:]
    assert {family for family in ("ipv4", "ipv6") if any(f"{family}:" in i for i in ids)} == families


def test_without_ipv6_in_the_kernel_the_default_is_ipv4(monkeypatch, tmp_path):
    from netconform.backends.lab import cli

    class Options:
        def getoption(self, name):
            return None
    monkeypatch.setattr(cli, "IPV6_SYSCTLS", tmp_path / "no-such-dir")
    assert cli.lab_family(Options(), profile("bridge")) == "ipv4"
    monkeypatch.setattr(cli, "IPV6_SYSCTLS", tmp_path)
    assert cli.lab_family(Options(), profile("bridge")) == "dual"

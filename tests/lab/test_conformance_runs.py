"""The MUST suites on a real lab: healthy profiles pass, a NAT-ing conflist fails the right check."""
import pytest

from .conftest import SHARED_RUNS, leftovers, needs_root, passes, run_suite

pytestmark = needs_root
MUST = ["POD-POD-SAME", "POD-POD-CROSS", "POD-IP-SELF", "NODE-POD", "HOSTNET-POD", "LOCALHOST"]
SERVICES = ["SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-NODEPORT", "SVC-HAIRPIN", "SVC-AFFINITY",
            "SVC-NO-ENDPOINTS", "SVC-ETP-LOCAL", "HOSTPORT", "SVC-MULTIPORT", "POD-NODEPORT", "HOSTNET-SVC"]


def assert_all_must_pass(run):
    """Every MUST row is checked and passes: the lab is CONFORMANT, and says nothing is missing."""
    assert run.returncode == 0, run.output[-3000:]
    summary = run.summary
    for requirement in MUST:
        row = summary[requirement]
        assert row["verdict"] == "pass" and row["passed"] == row["total"] > 0, row
    must_rows = [r for r in run.results["summary"] if r["level"] == "MUST"]
    assert all(r["verdict"] == "pass" for r in must_rows), [r for r in must_rows if r["verdict"] != "pass"]
    assert run.results["verdict"] == "CONFORMANT" and run.results["conformant"] is True
    assert run.results["verdict_reasons"] == [], run.results["verdict_reasons"]
    assert (run.report_dir / "report.html").stat().st_size > 1000
    assert leftovers(run.prefix) == []


@SHARED_RUNS
def test_bridge_passes_every_must_requirement(bridge_run):
    assert_all_must_pass(bridge_run)
    for requirement in SERVICES:
        row = bridge_run.summary[requirement]
        assert row["verdict"] == "pass" and row["passed"] == row["total"] > 0, row
    meta = bridge_run.results["meta"]
    assert meta["cni"] == "bridge" and meta["nodes"] == ["node-1", "node-2", "node-3"]
    assert {"setup", "probing", "teardown"} <= set(meta["phases"])
    assert "bridge on lab: CONFORMANT" in bridge_run.output
    assert "MUST requirements not implemented" not in bridge_run.output
    assert "checked in part" not in bridge_run.output


@SHARED_RUNS
def test_cluster_dns_is_real_coredns_and_every_dns_row_passes(bridge_run):
    for requirement in ("DNS-SVC", "DNS-HEADLESS", "DNS-SRV", "DNS-EXTERNALNAME", "DNS-POD-A",
                        "DNS-PTR", "DNS-HOSTNET"):
        row = bridge_run.summary[requirement]
        assert row["verdict"] == "pass" and row["passed"] == row["total"] > 0, row
    meta = bridge_run.results["meta"]
    assert meta["cluster_dns"] == "10.96.0.10" and meta["lab_timings"]["coredns_ready"] > 0
    pod_a = [i for i in bridge_run.results["items"] if i["requirement"] == "DNS-POD-A"]
    assert {i["reason"] for i in pod_a} == {"cluster DNS answers unknown pod IPs as pods insecure"}
    external = next(i for i in bridge_run.results["items"] if i["requirement"] == "DNS-EXTERNALNAME")
    assert external["observed"]["initial/short"] == ["outside.netconform.test."]
    assert external["observed"]["renamed/fqdn"] == ["renamed.netconform.test."]
    assert external["observed"]["clusterip/short"][0].startswith("10.")  # the ClusterIP it was given


@SHARED_RUNS
def test_ptp_passes_every_must_requirement(ptp_run):
    assert_all_must_pass(ptp_run)


def test_kube_proxy_in_nftables_mode_passes_everything(tmp_path):
    run = run_suite(tmp_path, "--lab-proxy=nftables")
    assert_all_must_pass(run)
    assert all(passes(row) for row in run.results["summary"] if row["total"]), \
        [row for row in run.results["summary"] if row["total"] and row["verdict"] != "pass"]
    assert run.results["meta"]["proxy_mode"] == "nftables"


@SHARED_RUNS
def test_one_item_per_requirement_pair_and_protocol(bridge_run):
    items = bridge_run.results["items"]
    ids = {i["id"] for i in items}
    assert len(ids) == len(items)
    assert "POD-POD-CROSS[tcp/ipv4:node-1/probe-a->node-2/probe-b]" in ids
    assert "POD-POD-CROSS[icmp/ipv4:node-3/probe-b->node-1/probe-a]" in ids
    assert "LOCALHOST[udp/ipv4:node-2/duo/c2->node-2/duo/c1]" in ids
    assert "POD-IP-SELF[ipv4:node-1/probe-a]" in ids
    cross = [i for i in items if i["requirement"] == "POD-POD-CROSS"]
    assert len(cross) == 3 * (6 * 4)  # 3 protocols x 6 pods x 4 pods on other nodes
    # one family on the lab for now, in every record and in the run's metadata
    assert {i["family"] for i in items} == {"ipv4"}
    meta = bridge_run.results["meta"]
    assert (meta["ip_families"], meta["cluster_ip_families"]) == (["ipv4"], ["ipv4"])


@SHARED_RUNS
def test_ip_masquerade_fails_pod_pod_cross_with_the_node_address(ipmasq_run):
    run = ipmasq_run
    assert run.returncode == 1, run.output[-3000:]
    summary = run.summary
    assert summary["POD-POD-CROSS"]["verdict"] == "fail"
    assert summary["POD-POD-CROSS"]["failed"] == summary["POD-POD-CROSS"]["total"]
    for unaffected in ("POD-POD-SAME", "NODE-POD", "HOSTNET-POD", "LOCALHOST"):
        assert summary[unaffected]["verdict"] == "pass", summary[unaffected]
    failure = next(i for i in run.results["items"]
                   if i["id"] == "POD-POD-CROSS[tcp/ipv4:node-1/probe-a->node-2/probe-a]")
    assert failure["kind"] == "nat" and failure["observed"]["seen"] == "172.18.0.2"
    assert ("NAT: node-2/probe-a saw the connection come from 172.18.0.2 (node node-1), "
            f"expected {failure['source']['ip']}") in run.output
    assert leftovers(run.prefix) == []


@pytest.mark.parametrize("marker, expected", [("POD-POD-CROSS", {"POD-POD-CROSS"}),
                                              ("LOCALHOST", {"LOCALHOST"})])
def test_a_requirement_marker_selects_its_items(tmp_path, marker, expected):
    run = run_suite(tmp_path, "-m", marker, "--lab-nodes=2")
    assert run.returncode == 2, run.output[-2000:]
    assert {i["requirement"] for i in run.results["items"]} == expected
    deselected = [r for r in run.results["verdict_reasons"] if r.startswith("MUST requirements deselected")]
    assert deselected and "POD-POD-SAME" in deselected[0] and marker not in deselected[0]


def test_the_older_pinned_release_serves_the_lab_too(tmp_path):
    """--lab-release 1.34: its control plane and kube-proxy program the same Services."""
    run = run_suite(tmp_path, "--lab-release=1.34", "-m", "SVC-CLUSTERIP or SVC-NODEPORT or POD-NODEPORT")
    assert run.returncode == 2, run.output[-3000:]  # INCOMPLETE: a subset ran
    verdicts = {row["id"]: row["verdict"] for row in run.results["summary"] if row["total"]}
    assert verdicts == {"SVC-CLUSTERIP": "pass", "SVC-NODEPORT": "pass", "POD-NODEPORT": "pass"}
    assert run.results["meta"]["kubernetes_version"] == "v1.34.12"
    assert leftovers(run.prefix) == []

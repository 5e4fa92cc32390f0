"""A dual-stack lab (--ip-family=dual): every address, route, pod range and Service in IPv4 and
IPv6, and every check run in each family, on its own addresses (shared/docs/network-model.md: a
requirement holds only in every family)."""
import ipaddress

from .conftest import leftovers, needs_root, run_suite

pytestmark = needs_root


def test_a_dual_stack_lab_passes_every_must_row_in_both_families(tmp_path):
    run = run_suite(tmp_path, "--ip-family=dual", timeout=900)
    assert run.results["verdict"] == "CONFORMANT", run.output[-3000:]
    meta = run.results["meta"]
    assert (meta["ip_families"], meta["cluster_ip_families"]) == (["ipv4", "ipv6"], ["ipv4", "ipv6"])
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
    # measured on this kernel, kube-proxy's reject of TCP over IPv6 to a Service without endpoints
    # is acted on only at the SYN's retransmission (1 s): that SHOULD row, and nothing else, fails
    failed = [i for i in items if i["outcome"] in ("failed", "error")]
    assert {(i["requirement"], i["protocol"], i["family"], i["kind"]) for i in failed} <= \
        {("SVC-NO-ENDPOINTS", "tcp", "ipv6", "slow")}, [(i["id"], i["reason"]) for i in failed]
    assert leftovers(run.prefix) == []


def test_the_live_path_on_a_dual_stack_lab_probes_both_families_through_the_api(tmp_path):
    """--backend=kube: the kube backend reads each family's addresses from the API (podIPs,
    clusterIPs, the nodes' InternalIPs), its Services ask for both, and every item is collected
    for both families (a family the cluster has and no item was collected for: no row passes)."""
    run = run_suite(tmp_path, "--ip-family=dual", "--backend=kube", timeout=900)
    assert run.results["verdict"] == "CONFORMANT", run.output[-3000:]
    families = {}
    for item in run.results["items"]:
        families.setdefault(item["family"], 0)
        families[item["family"]] += 1
    assert set(families) == {"ipv4", "ipv6"} and families["ipv6"] > 400, families
    failed = [i for i in run.results["items"] if i["outcome"] in ("failed", "error")]
    assert {(i["requirement"], i["protocol"], i["family"]) for i in failed} <= {("SVC-NO-ENDPOINTS", "tcp", "ipv6")}
    assert leftovers(run.prefix) == []

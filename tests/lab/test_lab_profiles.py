"""Real CNI plugins that keep the model (a flannel-like VXLAN overlay) and that break it by design
(macvlan, ipvlan): the suite says which."""
import subprocess

from .conftest import REPO, leftovers, needs_root, passes, run_suite

pytestmark = needs_root
EXAMPLES = REPO / "manifests" / "lab" / "examples"


def test_bridge_over_a_vxlan_overlay_passes_every_must_and_may_row(tmp_path):
    """The rows the overlay carries (the SHOULD rows are kube-proxy's and CoreDNS's: the bridge
    runs have them)."""
    run = run_suite(tmp_path, "--cni=vxlan", "-m", "MUST or MAY or SVC-SOURCE-IP")
    assert run.returncode == 0, run.output[-3000:]  # CONFORMANT
    assert run.results["meta"]["overlay"] == "vxlan"
    assert all(passes(row) for row in run.results["summary"] if row["total"]), run.results["summary"]
    assert run.summary["MTU"]["passed"] == 24  # 1450-byte DF packets through the overlay
    assert leftovers(run.prefix) == []


def test_macvlan_pods_cannot_be_reached_from_their_node(tmp_path):
    run = run_suite(tmp_path, f"--lab-cni-conf={EXAMPLES / 'macvlan.conflist'}",
                    "-m", "POD-POD-SAME or NODE-POD", "--probe-timeout=1", "--probe-attempts=1")
    assert run.returncode == 1
    assert run.summary["NODE-POD"]["verdict"] == "fail"
    assert run.summary["POD-POD-SAME"]["verdict"] == "pass"  # macvlan children of one parent talk
    assert leftovers(run.prefix) == []


def kernel_has_ipvlan() -> bool:
    name = "netconform-ipvlan-check"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                       check=True, timeout=10)
        return subprocess.run(["ip", "-n", name, "link", "add", "i0", "link", "d0", "type", "ipvlan"],
                              capture_output=True, timeout=10).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "delete", name], timeout=10)


def test_ipvlan_pods_cannot_be_reached_from_their_node_or_the_kernel_lacks_ipvlan(tmp_path):
    run = run_suite(tmp_path, f"--lab-cni-conf={EXAMPLES / 'ipvlan.conflist'}",
                    "-m", "POD-POD-SAME or NODE-POD", "--probe-timeout=1", "--probe-attempts=1")
    if kernel_has_ipvlan():
        assert run.returncode == 1 and run.summary["NODE-POD"]["verdict"] == "fail"
    else:  # this machine's kernel: the run says so in one line and leaves nothing
        assert run.returncode == 4
        assert "failed to create ipvlan: operation not supported" in run.output
    assert leftovers(run.prefix) == []

"""A lab that stays up (netconform/labctl.py): up, used through its kubeconfig by runs one after
another and by two runs at once, left alone by clean-up while it lives, refused faults, and gone
with down."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from netconform.backends.kube import lease
from netconform.backends.lab import cleanup
from netconform.backends.lab.naming import STATE_ROOT

from ..kube.conftest import kube_command, run_kube_suite
from .conftest import REPO, SuiteRun, leftovers, needs_root

pytestmark = needs_root


def labctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netconform.labctl", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_a_lab_stays_up_serves_runs_through_its_kubeconfig_and_goes_with_down(tmp_path):
    up = labctl("up", "--nodes", "2", "--ip-family", "dual")  # runs through it find both families
    assert up.returncode == 0, up.stdout[-3000:]
    name = re.search(r"lab (netconform-[0-9a-f]{6}) is up", up.stdout).group(1)
    log = re.search(r"its log: (\S+)", up.stdout).group(1)
    kubeconfig = re.search(r"kubeconfig: (\S+)", up.stdout).group(1)
    try:
        assert f"{name}  up" in labctl("list").stdout and ", dual," in labctl("list").stdout
        for turn, rows in (("first", ("POD-POD-CROSS", "DNS-SVC", "SVC-UDP-BACKEND-CHANGE")), ("second", ("DNS-SVC",))):
            run = run_kube_suite(tmp_path / turn, kubeconfig, "--cni=other", "--probe-image=netconform-probe:lab",
                                 "-m", " or ".join(rows))  # runs share it, one after another
            assert run.returncode == 2, run.output[-3000:]  # INCOMPLETE: the other MUST rows deselected
            assert {row["id"]: row["verdict"] for row in run.results["summary"] if row["total"]} == \
                dict.fromkeys(rows, "pass")
            assert run.results["meta"]["cluster_ip_families"] == ["ipv4", "ipv6"]
            assert {i["family"] for i in run.results["items"]} == {"ipv4", "ipv6"}
        refused = run_kube_suite(tmp_path / "fault", kubeconfig, "--cni=other", "--lab-fault=udp-drop")
        assert refused.returncode == 4 and "--lab-fault injects faults into the lab" in refused.output
        swept = subprocess.run([sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider",
                                "--cleanup-only"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert re.search(rf"left \d+ run\(s\) whose owner is still alive: .*{name}", swept.stdout), swept.stdout
        assert (STATE_ROOT / name / "up.json").exists()
    finally:
        down = labctl("down", name)
    assert down.returncode == 0 and "nothing of it is left" in down.stdout, down.stdout
    assert leftovers(name) == [] and not (STATE_ROOT / name).exists() and not Path(log).exists()
    assert name not in cleanup.live_runs()


SHARING_ROWS = ("HOSTPORT", "HOSTNET-POD", "NODE-POD", "SVC-HOSTNET-ENDPOINTS", "SVC-NODEPORT", "POD-POD-CROSS")


def _dead_run(kubeconfig: str, run_id: str) -> str:
    """A run namespace as a killed run leaves it: both run labels, a host-port claim, a Lease
    still held but no longer renewed. Its lease time is 1 s, so it is expired (by the API server's
    record of its last write) 1 + SKEW s after it is made."""
    from netconform.backends.kube.api import KubeApi
    from netconform.backends.kube import hostports
    name = f"netconform-{run_id}"
    stale = lease._stamp(lease.now() - timedelta(hours=1))
    with KubeApi(Path(kubeconfig)) as api:
        api.core.create_namespace({"metadata": {
            "name": name, "labels": {"app.kubernetes.io/managed-by": "netconform", "netconform.io/run": run_id},
            "annotations": {hostports.CLAIM: hostports.HostPorts.block(7).claim, hostports.SETTLED: "true"}}})
        api.coordination.create_namespaced_lease(name, {
            "metadata": {"name": lease.NAME},
            "spec": {"holderIdentity": run_id, "leaseDurationSeconds": 1,
                     "acquireTime": stale, "renewTime": stale}})
    return name


def test_two_runs_at_once_take_their_own_host_ports_and_cleanup_only_spares_them(tmp_path):
    """Issue 23, "Runs that share a cluster": two runs started together on one cluster, each
    needing host ports (the host probe's, hostPorts), both end with correct verdicts; a
    --cleanup-only while they run deletes only the dead run's namespace and names the live ones."""
    up = labctl("up", "--nodes", "2")
    assert up.returncode == 0, up.stdout[-3000:]
    name = re.search(r"lab (netconform-[0-9a-f]{6}) is up", up.stdout).group(1)
    kubeconfig = re.search(r"kubeconfig: (\S+)", up.stdout).group(1)
    runs = []
    try:
        dead = _dead_run(kubeconfig, "dead01")
        expired = time.monotonic() + 2 + lease.SKEW
        for turn in ("one", "two"):
            output = (tmp_path / f"{turn}.out").open("w")
            runs.append((tmp_path / turn, output, subprocess.Popen(
                kube_command(tmp_path / turn, kubeconfig, "--cni=other", "--probe-image=netconform-probe:lab",
                             "-m", " or ".join(SHARING_ROWS)),
                cwd=REPO, stdout=output, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})))  # its progress as it comes
        # both runs exist (namespace, Lease) and wait for their probes: they are paused (as a
        # loaded machine may stall them; their Leases still hold) while --cleanup-only runs
        deadline = time.monotonic() + 120
        while not all("probe pods in" in (report.parent / f"{report.name}.out").read_text()
                      for report, _, _ in runs):
            assert all(process.poll() is None for _, _, process in runs), "a run ended before its probes started"
            assert time.monotonic() < deadline, "the runs did not reach their probes in 120 s"
            time.sleep(0.2)
        for _, _, process in runs:
            process.send_signal(signal.SIGSTOP)
        time.sleep(max(0.0, expired - time.monotonic()))
        try:
            swept = subprocess.run(kube_command(tmp_path / "sweep", kubeconfig, "--cni=other", "--cleanup-only"),
                                   cwd=REPO, capture_output=True, text=True, timeout=120)
        finally:
            for _, _, process in runs:
                process.send_signal(signal.SIGCONT)
        assert swept.returncode == 0, swept.stdout + swept.stderr
        assert f"deleted 1 namespace(s) left by earlier runs: {dead}" in swept.stdout, swept.stdout
        assert "left 2 run(s) that may still be running: " in swept.stdout, swept.stdout
        results = []
        for report, output, process in runs:
            assert process.wait(timeout=300) == 2, (report.parent / f"{report.name}.out").read_text()[-3000:]
            output.close()
            run = SuiteRun(process.returncode, (report.parent / f"{report.name}.out").read_text(), report)
            assert {row["id"]: row["verdict"] for row in run.results["summary"] if row["total"]} == \
                dict.fromkeys(SHARING_ROWS, "pass"), run.output[-3000:]
            results.append(run.results["meta"])
        one, two = results
        assert one["namespace"] in swept.stdout and two["namespace"] in swept.stdout
        assert one["host_ports"] != two["host_ports"]
        assert not set(one["host_ports"].split(",")) & set(two["host_ports"].split(","))
    finally:
        for _, output, process in runs:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            output.close()
        down = labctl("down", name)
    assert down.returncode == 0 and "nothing of it is left" in down.stdout, down.stdout
    assert leftovers(name) == []


def test_bad_input_is_one_line_and_exit_4():
    for args, words in ((("up", "--nodes", "0"), "--nodes must be between 1 and 200"),
                        (("up", "--cni", "calico"), "is not one the lab runs"),
                        (("up", "--release", "0.1"), "pinned releases are"),
                        (("up", "--ip-family", "dual", "--cni", "vxlan"), "not with vxlan in this version"),
                        (("up", "--ip-family", "ipv5"), "invalid choice"),
                        (("down", "netconform-000000"), "no lab named 'netconform-000000' is up"),
                        (("frobnicate",), "invalid choice")):
        done = labctl(*args, timeout=60)
        assert done.returncode == 4 and words in done.stdout + done.stderr, (args, done.stdout, done.stderr)


def test_a_lab_whose_process_died_is_listed_dead_and_down_removes_it():
    up = labctl("up", "--nodes", "1")
    assert up.returncode == 0, up.stdout[-3000:]
    name = re.search(r"lab (netconform-[0-9a-f]{6}) is up", up.stdout).group(1)
    owner = json.loads((STATE_ROOT / name / "owner.json").read_text())
    os.kill(owner["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and f"{name}  dead" not in labctl("list").stdout:
        time.sleep(0.5)
    assert f"{name}  dead" in labctl("list").stdout
    down = labctl("down", name)
    assert down.returncode == 0 and "nothing of it is left" in down.stdout, down.stdout
    assert leftovers(name) == [] and not (STATE_ROOT / name).exists()


def test_up_stopped_by_sigterm_while_building_leaves_nothing():
    """Was: a `timeout` around `up` (SIGTERM) left the lab building on, and then up, unsaid."""
    process = subprocess.Popen([sys.executable, "-m", "netconform.labctl", "up", "--nodes", "1"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1 and "nothing of it is left" in output, output
    name = re.search(r"lab (netconform-[0-9a-f]{6})", output).group(1)
    assert leftovers(name) == [] and not (STATE_ROOT / name).exists()
    assert name not in labctl("list").stdout

"""Failure paths of a lab run: a probe that dies mid-run, a port already taken, a node namespace
deleted under the run, and the leftovers of a SIGKILLed run. Each ends bounded, said, and clean."""
import os
import signal
import socket
import subprocess
import sys
import time

from . import kill_probe
from .conftest import REPO, leftovers, needs_root, run_suite, start_and_wait_for

pytestmark = needs_root
PROBE = REPO / "probes" / "netprobe.py"


def finish(proc, timeout: float = 180) -> str:
    out, _ = proc.communicate(timeout=timeout)  # a hang would raise here, not block the tests
    return out


def test_a_probe_that_dies_mid_run_errors_its_items_and_nothing_hangs(tmp_path):
    env = {**os.environ, kill_probe.VICTIM: "node-2/probe-b", kill_probe.BEFORE: "SVC-CLUSTERIP"}
    run = run_suite(tmp_path, "--cni=bridge", "-m", "POD-POD-CROSS or SVC-CLUSTERIP",
                    "-p", "tests.lab.kill_probe", env=env, timeout=180)  # a hang raises, not blocks
    assert run.returncode == 2, run.output[-3000:]  # errors, not failures: INCOMPLETE
    assert run.summary["POD-POD-CROSS"]["verdict"] == "pass"  # before the kill
    assert "SVC-CLUSTERIP[tcp/ipv4:node-2/probe-b->svc/web]" in run.output  # it should have asked
    assert "could not be asked to connect" in run.output  # what it says: the probe is gone
    assert leftovers(run.prefix) == []


def test_a_node_namespace_deleted_under_the_run_is_survived_and_cleaned(tmp_path):
    proc, prefix = start_and_wait_for(tmp_path, "lab: ready in", "-m", "POD-POD-CROSS")
    subprocess.run(["ip", "netns", "delete", f"{prefix}-node-2"], check=True, timeout=10)
    out = finish(proc)
    assert proc.returncode in (1, 2), out[-3000:]  # its processes keep the namespace alive
    assert "bridge on lab:" in out  # the run reached its summary
    assert leftovers(prefix) == [], out[-2000:]


def test_the_next_run_removes_a_killed_runs_leftovers_and_says_so(tmp_path):
    proc, prefix = start_and_wait_for(tmp_path / "killed", "probes ready")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert leftovers(prefix)
    run = run_suite(tmp_path / "next", "-m", "POD-POD-SAME")
    assert run.returncode == 2, run.output[-2000:]  # INCOMPLETE: one requirement selected
    assert f"removed leftovers of 1 earlier run(s): {prefix}" in run.output
    assert leftovers(prefix) == [] and leftovers(run.prefix) == []


def test_a_probe_whose_port_is_taken_exits_at_once_saying_which(tmp_path):
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as taken:
        taken.bind(("::", 0))
        taken.listen()
        port = taken.getsockname()[1]
        began = time.monotonic()
        (tmp_path / "token").write_text("a-token-of-the-run-0123456789")
        done = subprocess.run([sys.executable, str(PROBE), "serve", "--name", "t", "--port", str(port),
                               "--control", f"unix:{tmp_path / 'c.sock'}", "--token-file", str(tmp_path / "token")],
                              capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and time.monotonic() - began < 10
    assert "Address already in use" in done.stdout + done.stderr

"""A pytest plugin loaded into a lab run by the failure-path tests (`-p tests.lab.kill_probe`).

It kills one probe process just before the first item of a chosen requirement, so "a probe dies
mid-run" happens at a known point of the run rather than whenever a signal from outside lands."""
import os
import subprocess

VICTIM = "NETCONFORM_TEST_KILL_PROBE"  # a probe name, e.g. node-2/probe-b
BEFORE = "NETCONFORM_TEST_KILL_BEFORE"  # a requirement id, e.g. SVC-CLUSTERIP
_killed = False


def pytest_runtest_setup(item) -> None:
    global _killed
    victim, before = os.environ.get(VICTIM), os.environ.get(BEFORE)
    if _killed or not victim or not before or item.get_closest_marker(before) is None:
        return
    socket = f"sockets/{victim.replace('/', '_')}.sock"  # the probes are this process's children
    subprocess.run(["pkill", "-KILL", "-P", str(os.getpid()), "-f", socket], check=True, timeout=10)
    _killed = True

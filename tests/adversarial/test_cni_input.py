"""Untrusted CNI input on real lab runs: a plugin type that escapes the plugin directories, a plugin
that prints nonsense, one that hangs, pod subnets that overlap. Each is refused with one line, or
bounded by --lab-cni-timeout, and leaves nothing behind.

Fake plugins are shell scripts in tmp_path, put first in the CNI path with --lab-cni-path; they
wrap the real plugins of /usr/lib/cni where the lab needs them to work.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from .conftest import REPO, SuiteRun, lab_namespaces, leftovers, needs_root, run_suite

pytestmark = needs_root
BRIDGE = REPO / "manifests" / "lab" / "bridge.conflist"
STATE_ROOT = Path("/run/netconform")
RUN = re.compile(r"netconform-[0-9a-f]{6}")


def plugin(folder: Path, name: str, body: str) -> Path:
    """An executable fake plugin; `body` is a shell script that sees the CNI environment."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def conflist(folder: Path, ipam: dict, name: str = "test.conflist") -> Path:
    """The shipped bridge conflist with another host-local IPAM section."""
    conf = json.loads(BRIDGE.read_text())
    conf["plugins"][0]["ipam"] = ipam
    path = folder / name
    path.write_text(json.dumps(conf))
    return path


def timed(tmp_path: Path, *args: str) -> tuple[SuiteRun, float]:
    began = time.monotonic()
    run = run_suite(tmp_path / "report", *args, "-m", "POD-POD-SAME", timeout=120)
    return run, time.monotonic() - began


def runs_present() -> set[str]:
    """Every run prefix that has a namespace or a state directory now."""
    found = {RUN.match(name).group(0) for name in lab_namespaces() if RUN.match(name)}
    if STATE_ROOT.exists():
        found |= {entry.name for entry in STATE_ROOT.iterdir() if RUN.fullmatch(entry.name)}
    return found


def owner_alive(prefix: str) -> bool:
    """Whether the run that owns this prefix still runs: a concurrent run of someone else."""
    try:
        pid = json.loads((STATE_ROOT / prefix / "owner.json").read_text())["pid"]
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


@pytest.fixture
def nothing_created():
    """The run must create nothing: any run that appeared meanwhile belongs to a live process."""
    before = runs_present()
    yield
    assert [p for p in runs_present() - before if not owner_alive(p)] == []


def one_error_line(run: SuiteRun) -> str:
    """The run's explanation: exactly one line that says netconform, and no traceback."""
    assert "INTERNALERROR" not in run.output and "Traceback" not in run.output, run.output[-3000:]
    lines = [line for line in run.output.splitlines() if "netconform: " in line]
    assert len(lines) == 1, run.output[-3000:]
    return lines[0]


def test_a_type_outside_the_plugin_directories_is_refused_and_never_run(tmp_path, nothing_created):
    escape = plugin(tmp_path, "escape", f"touch {tmp_path / 'it-ran'}; exit 1")
    kind = "../../.." + str(escape)  # from /opt/cni/bin or /usr/lib/cni: the root, then tmp_path
    path = tmp_path / "escape.conflist"
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "escape", "plugins": [{"type": kind}]}))
    run, seconds = timed(tmp_path, f"--lab-cni-conf={path}")
    assert run.returncode == 4 and seconds < 15, run.output[-3000:]
    line = one_error_line(run)
    assert f"plugin 1 has type {kind!r}, which is not a bare file name" in line
    assert not (tmp_path / "it-ran").exists() and run.prefix is None


def test_a_plugin_printing_no_json_stops_the_run_naming_it_and_its_stderr(tmp_path):
    bin_dir = tmp_path / "bin"
    plugin(bin_dir, "bridge", '[ "$CNI_COMMAND" = ADD ] || exec /usr/lib/cni/bridge\n'
                              "cat >/dev/null; echo 'Hello from a debug print'; "
                              "echo 'bridge: half-written result' >&2")
    run, seconds = timed(tmp_path, f"--lab-cni-conf={BRIDGE}", f"--lab-cni-path={bin_dir}:/usr/lib/cni")
    assert run.returncode == 4 and seconds < 30, run.output[-3000:]
    line = one_error_line(run)
    assert re.search(r"CNI ADD failed for node-\d/\S+: bridge: ADD printed no JSON result: "
                     r"'Hello from a debug print'; stderr: bridge: half-written result", line), line
    assert run.prefix and leftovers(run.prefix) == []


def test_a_plugin_that_hangs_on_add_is_a_bounded_error_naming_plugin_and_pod(tmp_path):
    bin_dir = tmp_path / "bin"
    plugin(bin_dir, "bridge", '[ "$CNI_COMMAND" = ADD ] && exec sleep 300\nexec /usr/lib/cni/bridge')
    run, seconds = timed(tmp_path, f"--lab-cni-conf={BRIDGE}", f"--lab-cni-path={bin_dir}:/usr/lib/cni",
                         "--lab-cni-timeout=2")
    assert run.returncode == 4 and seconds < 20, run.output[-3000:]
    line = one_error_line(run)
    assert re.search(r"CNI ADD failed for node-\d/\S+: bridge: no answer within 2s", line), line
    assert run.prefix and leftovers(run.prefix) == []


def test_a_plugin_that_hangs_on_del_costs_one_timeout_and_is_killed(tmp_path):
    """15 pods x 2 s would be 30 s serially (15 x 30 s before --lab-cni-timeout); in parallel the
    teardown takes about one timeout, and every plugin process it started is gone."""
    bin_dir, pids = tmp_path / "bin", tmp_path / "pids"
    plugin(bin_dir, "bridge", f'if [ "$CNI_COMMAND" = DEL ]; then echo $$ >> {pids}; '
                              f"sleep 300 & echo $! >> {pids}; wait; fi\nexec /usr/lib/cni/bridge")
    run, seconds = timed(tmp_path, f"--lab-cni-conf={BRIDGE}", f"--lab-cni-path={bin_dir}:/usr/lib/cni",
                         "--lab-cni-timeout=2")
    assert run.prefix and "INTERNALERROR" not in run.output, run.output[-3000:]
    teardown = run.results["meta"]["phases"]["teardown"]
    assert teardown < 10 and seconds < 60, f"teardown {teardown:.1f}s, run {seconds:.1f}s"
    problems = run.results["meta"].get("cleanup_problems", [])
    assert "CNI DEL node-1/probe-a: bridge: no answer within 2s" in problems, problems
    # probe-a, probe-b, duo on three nodes; CoreDNS on two; the four standalone pods of the first
    assert len(problems) == 15, problems
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 30 and [pid for pid in started if alive(pid)] == []  # 15 pods: shell + sleep
    assert leftovers(run.prefix) == []


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a killed child waits there to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.parametrize("ipam, message", [
    ({"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/16"}]]},
     "pod subnets overlap: node-1 has 10.244.0.0/16 and node-2 has 10.244.0.0/16"),
    ({"type": "host-local", "subnet": "10.244.7.0/24"},
     "pod subnets overlap: node-1 has 10.244.7.0/24 and node-2 has 10.244.7.0/24"),
    ({"type": "host-local", "subnet": "172.18.0.0/16"},
     "node-1's pod subnet 172.18.0.0/16 overlaps the lab underlay 172.18.0.0/24"),
    ({"type": "host-local", "ranges": [[{"subnet": "${POD_CIDR}"}], [{"subnet": "10.100.0.0/16"}]]},
     "node-1's pod subnet 10.100.0.0/16 overlaps the Service range 10.96.0.0/12"),
])
def test_overlapping_pod_subnets_are_refused(tmp_path, nothing_created, ipam, message):
    run, seconds = timed(tmp_path, f"--lab-cni-conf={conflist(tmp_path, ipam)}")
    assert run.returncode == 4 and seconds < 15, run.output[-3000:]
    assert message in one_error_line(run) and run.prefix is None


def test_a_plugin_missing_from_the_given_cni_path_names_that_path(tmp_path, nothing_created):
    empty = tmp_path / "empty"
    empty.mkdir()
    run, seconds = timed(tmp_path, f"--lab-cni-conf={BRIDGE}", f"--lab-cni-path={empty}")
    assert run.returncode == 4 and seconds < 15, run.output[-3000:]
    assert f"CNI plugin 'bridge' not found in {empty} " in one_error_line(run)


def test_ctrl_c_during_a_slow_teardown_makes_it_hurry_and_twice_stops_it(tmp_path):
    """A plugin that hangs on DEL with a long --lab-cni-timeout: Ctrl-C during teardown kills the
    plugins in flight and removes the namespaces at once; a second Ctrl-C stops the clean-up, says
    what is left and how to remove it, and --cleanup-only then does."""
    import signal
    import subprocess

    from .conftest import start_and_wait_for, suite_command
    bin_dir = tmp_path / "bin"
    plugin(bin_dir, "bridge", '[ "$CNI_COMMAND" = DEL ] && exec sleep 300\nexec /usr/lib/cni/bridge')
    args = (f"--lab-cni-conf={BRIDGE}", f"--lab-cni-path={bin_dir}:/usr/lib/cni",
            "--lab-cni-timeout=120", "-m", "POD-POD-SAME")
    for presses in (1, 2):
        proc, prefix = start_and_wait_for(tmp_path / f"r{presses}", "tearing down", *args, cni=None)
        began = time.monotonic()
        for _ in range(presses):
            os.kill(proc.pid, signal.SIGINT)
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=60)
        assert time.monotonic() - began < 15, out[-3000:]
        if presses == 2 and "is left; the next run removes it" in out:
            assert "--cleanup-only" in out
            subprocess.run(suite_command(tmp_path, "--cleanup-only"), cwd=REPO, capture_output=True,
                           timeout=120)
        elif presses == 1:
            results = json.loads((tmp_path / "r1" / "results.json").read_text())
            assert "CNI DEL skipped" in " ".join(results["meta"]["cleanup_problems"]), results["meta"]
        assert leftovers(prefix) == [], out[-3000:]

"""Nothing is left behind: not after Ctrl-C, not after SIGTERM, and a SIGKILLed run is cleaned later."""
import os
import signal
import subprocess

import pytest

from .conftest import OWN_PREFIX, REPO, leftovers, needs_root, start_and_wait_for, suite_command

pytestmark = needs_root


@pytest.mark.parametrize("moment", ["node namespaces up", "probes ready"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_nothing(tmp_path, moment, sig):
    proc, prefix = start_and_wait_for(tmp_path, moment)
    assert leftovers(prefix), "the run should have created its lab by now"
    os.kill(proc.pid, sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert leftovers(prefix) == [], out[-2000:]


def test_a_killed_run_is_removed_by_cleanup_only(tmp_path):
    proc, prefix = start_and_wait_for(tmp_path, "probes ready")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert leftovers(prefix), "SIGKILL gives no chance to clean up"
    done = subprocess.run(suite_command(tmp_path, "--cleanup-only"), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"removed 1 stale lab run(s): {prefix}" in done.stdout
    assert leftovers(prefix) == []


def test_two_runs_at_once_do_not_touch_each_other(tmp_path):
    """Each run's clean-up of stale runs must spare a live run, even one that is just starting."""
    procs = [subprocess.Popen(suite_command(tmp_path / name, "-m", "POD-POD-CROSS or SVC-CLUSTERIP"),
                              cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for name in ("first", "second")]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode in (0, 2), out[-3000:]  # a partial run (-m) ends INCOMPLETE, exit 2
        summary = out.strip().splitlines()[-1]
        assert "passed" in summary and "failed" not in summary and "error" not in summary, out[-3000:]
    prefixes = [OWN_PREFIX.search(out).group(1) for out in outputs]
    assert len(set(prefixes)) == 2 and all(leftovers(p) == [] for p in prefixes)
    for out, other in zip(outputs, reversed(prefixes), strict=True):  # a run killed by another test
        swept = [line for line in out.splitlines() if "removed leftovers" in line]  # may be swept
        assert not any(other in line for line in swept), swept

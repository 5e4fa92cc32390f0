"""Clean-up removes what netconform created and nothing else.

Was: every namespace named netconform-* counted as a run's, so --cleanup-only and every lab run's
start-up sweep deleted someone else's netconform-lab-users; and --kubeconfig X --cleanup-only
without --cni cleaned the lab instead of the cluster. Now a run records what it owns (owner pid +
start time + run id, and each namespace before creating it) and only dead recorded runs are swept.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from netconform import pytest_plugin
from netconform.backends.lab import netns

from ..kube.conftest import workers
from ..kube.fakeapi import KINDNET, FakeApiServer, World
from .conftest import REPO, lab_namespaces, leftovers, needs_root, suite_command

STATE_ROOT = Path("/run/netconform")
UNRECORDED = re.compile(r"left (\d+) namespace\(s\) that no netconform run recorded")
NAMESPACES_UP = re.compile(r"lab: (netconform-[0-9a-f]{6}): world and \d+ node namespaces up")


def add_namespace(name: str) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)


def drop_namespace(name: str) -> None:
    if name in lab_namespaces(name):
        subprocess.run(["ip", "netns", "delete", name], check=True, timeout=10)


@pytest.fixture
def foreign() -> Iterator[list[str]]:
    """Namespaces netconform never created: one named like a user's, one named like a run's.
    Removed afterwards only because this test created them (setup fails if one exists already)."""
    # named apart per test: two tests of this fixture on two workers must not meet on one name
    names = [f"netconform-lab-users-{secrets.token_hex(2)}", f"netconform-{secrets.token_hex(3)}-node-1"]
    for name in names:
        add_namespace(name)
    yield names
    for name in names:
        drop_namespace(name)


@dataclass
class FakeRun:
    """A run's state directory written by hand: who owned it, and what it recorded."""
    prefix: str
    recorded: str  # a namespace the run recorded (and created)
    unrecorded: str  # a namespace with the run's prefix that the run never recorded

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.prefix


def start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]


@pytest.fixture
def live_process() -> Iterator[int]:
    """A process that is alive for the whole test: its pid is the one a dead run's owner reused."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc.pid
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def fake_runs() -> Iterator[Callable[[int, str], FakeRun]]:
    """Make fake runs; afterwards remove whatever of theirs is still there."""
    made: list[FakeRun] = []

    def make(owner_pid: int, start: str) -> FakeRun:
        run_id = secrets.token_hex(3)
        run = FakeRun(f"netconform-{run_id}", f"netconform-{run_id}-node-1",
                      f"netconform-{run_id}-not-recorded")
        made.append(run)
        run.state_dir.mkdir(parents=True)
        (run.state_dir / "namespaces").write_text(f"{run.recorded}\n")
        (run.state_dir / "owner.json").write_text(json.dumps(
            {"pid": owner_pid, "start": start, "boot": Path("/proc/sys/kernel/random/boot_id")
             .read_text().strip(), "run_id": run_id}))
        add_namespace(run.recorded)
        add_namespace(run.unrecorded)
        return run

    yield make
    for run in made:
        drop_namespace(run.recorded)
        drop_namespace(run.unrecorded)
        subprocess.run(["rm", "-rf", str(run.state_dir)], check=True, timeout=10)


def start_lab_run(report_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start a lab run; return it and its own prefix once its namespaces are up. (The sweep's line
    before that names the runs it removed, so the first prefix in the output may not be its own.)"""
    proc = subprocess.Popen(suite_command(report_dir, "--cni=bridge"), cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    seen, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline and (line := proc.stdout.readline()):
        seen.append(line)
        if found := NAMESPACES_UP.search(line):
            return proc, found.group(1)
    proc.kill()
    pytest.fail(f"the lab never came up:\n{''.join(seen)}")


def cleanup_only(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(suite_command(tmp_path / "report", "--cleanup-only", *args), cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)


@needs_root
def test_cleanup_only_spares_namespaces_no_run_recorded(tmp_path, foreign):
    """Was: both deleted, one as "run" netconform-lab, the other as a run without an owner."""
    done = cleanup_only(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(name in lab_namespaces(name) for name in foreign), done.stdout
    left = UNRECORDED.search(done.stdout)
    assert left and int(left.group(1)) >= len(foreign), done.stdout


@needs_root
def test_a_reused_pid_does_not_keep_a_dead_run_alive(tmp_path, live_process, fake_runs):
    """The owner's pid now belongs to another process (start time differs): the run is dead, and
    only what it recorded goes. A run whose owner really runs is spared."""
    dead = fake_runs(live_process, "1")
    alive = fake_runs(live_process, start_time(live_process))
    done = cleanup_only(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert lab_namespaces(dead.recorded) == [] and not dead.state_dir.exists(), done.stdout
    assert lab_namespaces(dead.unrecorded) == [dead.unrecorded], "never recorded: not its to remove"
    assert lab_namespaces(alive.recorded) == [alive.recorded] and alive.state_dir.exists()
    assert re.search(rf"left \d+ run\(s\) whose owner is still alive: .*{alive.prefix}", done.stdout)


@needs_root
def test_a_lab_run_sweeps_only_dead_recorded_runs(tmp_path, foreign, live_process, fake_runs):
    """The sweep at a lab run's start follows the same rule as --cleanup-only; and the run's own
    teardown removes all it created and nothing else."""
    dead = fake_runs(live_process, "1")
    proc, prefix = start_lab_run(tmp_path / "report")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert lab_namespaces(dead.recorded) == [] and not dead.state_dir.exists(), out[-3000:]
    survivors = [dead.unrecorded, *foreign]
    assert [name for name in survivors if lab_namespaces(name) == [name]] == survivors, out[-3000:]
    assert leftovers(prefix) == [], out[-3000:]


@needs_root
def test_a_name_that_exists_is_never_recorded(tmp_path, foreign):
    """A run writes a name down before creating the namespace (a kill in between leaves nothing
    unrecorded); a name someone else holds is refused before it is written down."""
    record = tmp_path / "namespaces"
    mine = f"netconform-{secrets.token_hex(3)}-world"
    netns.open_record(record)
    try:
        netns.create(mine, record=record)
        assert netns.recorded(record) == [mine] and lab_namespaces(mine) == [mine]
        with pytest.raises(OSError, match="exists already"):
            netns.create(foreign[0], record=record)
        assert netns.recorded(record) == [mine] and lab_namespaces(foreign[0]) == [foreign[0]]
    finally:
        drop_namespace(mine)


@needs_root
def test_nothing_is_created_behind_a_teardown(tmp_path, monkeypatch):
    """Was: a pod thread of an interrupted build went on creating namespaces after teardown had
    listed them, and they stayed. Once the record is closed, create() refuses; a creation that
    slipped in just before the close undoes itself."""
    record = tmp_path / "namespaces"
    netns.open_record(record)
    netns.close_record(record)
    late = f"netconform-{secrets.token_hex(3)}-node-1-probe-b"
    with pytest.raises(OSError, match="being torn down"):
        netns.create(late, record=record)
    assert lab_namespaces(late) == []
    netns.open_record(record)
    real_ip = netns._ip

    def teardown_closes_first(*argv: str) -> None:
        netns.close_record(record)
        real_ip(*argv)

    monkeypatch.setattr(netns, "_ip", teardown_closes_first)
    try:
        with pytest.raises(OSError, match="being torn down"):
            netns.create(late, record=record)
    finally:
        monkeypatch.setattr(netns, "_ip", real_ip)
        assert lab_namespaces(late) == []
        drop_namespace(late)
    assert late in netns.recorded(netns.close_record_path(record)), "teardown would look for it too"


def labelled(name: str, run_id: str | None) -> tuple[str, None, dict]:
    labels = {"app.kubernetes.io/managed-by": "netconform"}
    if run_id:
        labels["netconform.io/run"] = run_id
    return "namespaces", None, {"metadata": {"name": name, "labels": labels}, "status": {"phase": "Active"}}


@pytest.mark.parametrize("how", ["--kubeconfig", "--context"])
def test_cleanup_only_with_a_kubeconfig_cleans_the_cluster(tmp_path, how):
    """Was: without --cni, --cleanup-only cleaned the lab and never asked the cluster."""
    objects = [labelled("netconform-0a1b2c", "0a1b2c"), labelled("labelled-by-hand", None),
               ("namespaces", None, {"metadata": {"name": "netconform-lab-users"}})]
    with FakeApiServer(World(workers(), existing=[KINDNET, *objects])) as api:
        config = api.kubeconfig(tmp_path / "kc")
        args, env = ([f"--kubeconfig={config}"], None) if how == "--kubeconfig" else \
            (["--context=fake"], {**os.environ, "KUBECONFIG": str(config)})
        done = cleanup_only(tmp_path, *args, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "deleted 1 namespace(s) left by earlier runs: netconform-0a1b2c" in done.stdout
        assert "lab run" not in done.stdout
        assert sorted(n["metadata"]["name"] for n in api.objects("namespaces")) == \
            ["labelled-by-hand", "netconform-lab-users"]


def test_cleanup_only_without_root_is_one_line_and_exit_4(monkeypatch, capsys):
    """The lab's clean-up needs root; saying so is a usage error (exit 4), as the README has it."""
    options = {"lab_fault": [], "cleanup_only": True, "kubeconfig": None, "context": None, "cni": None}
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert pytest_plugin.pytest_cmdline_main(SimpleNamespace(getoption=options.get)) == 4
    assert capsys.readouterr().out == \
        "netconform: --cleanup-only needs root (lab namespaces belong to root)\n"

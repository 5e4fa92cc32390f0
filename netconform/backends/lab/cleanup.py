"""Find and remove what lab runs left behind: namespaces, their processes, IPAM and state files.

A run owns exactly what its state directory /run/netconform/<prefix>/ records: ``owner.json`` (pid,
process start time, boot id, run id), written before anything else, and ``namespaces``, to which
netns.create writes each name before the namespace exists. A run whose owner is gone (SIGKILL, a
crash) is removed by the next run or by ``--cleanup-only``: the namespaces it recorded, then its state
directory. Teardown closes the record first, so a thread of the run still creating (an interrupted
build) cannot add a namespace that teardown does not see. Live concurrent runs are left alone, and
so is every namespace no run recorded, whatever its name: a name proves nothing
(``netconform-lab-users`` may be anybody's).

A run's processes live in its namespaces and go with them, except the few it must run in the root
namespace (the relay that brings the lab's API server to 127.0.0.1): those are recorded in
``processes`` with their start time, and stopped before the namespaces are removed.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import netns
from .naming import NAMESPACE_RECORD, NETNS_PREFIX, RUN_PREFIX, STATE_ROOT

OWNER_FILE = "owner.json"
BIRTH_GRACE = 30.0  # seconds a state directory may exist without its owner file (a run starting)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _start_time(pid: int) -> str | None:
    """The process start time from /proc: a pid reused by another process does not match it, and
    a zombie (dead, not yet reaped by its parent) has none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _boot_id() -> str | None:
    """This boot's id: start times count from boot, so they only compare within one boot."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def write_owner(state_dir: Path) -> None:
    """Claim the run before it creates anything, atomically, so no other run takes it for stale;
    and open its (empty) record of namespaces."""
    netns.open_record(state_dir / NAMESPACE_RECORD)
    pid = os.getpid()
    owner = {"pid": pid, "start": _start_time(pid), "boot": _boot_id(),
             "run_id": state_dir.name.removeprefix(NETNS_PREFIX)}
    partial = state_dir / f".{OWNER_FILE}.{pid}"
    partial.write_text(json.dumps(owner))
    os.replace(partial, state_dir / OWNER_FILE)


def owner_running(owner: dict) -> bool:
    """Whether the recorded owner is still the process with that pid: same boot, same start time."""
    if owner.get("boot") not in (None, _boot_id()):
        return False
    pid, start = owner.get("pid"), owner.get("start")
    return isinstance(pid, int) and start is not None and _start_time(pid) == start


@dataclass(frozen=True)
class Run:
    """One run as its state directory records it."""
    prefix: str

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.prefix

    @property
    def record(self) -> Path:
        return self.state_dir / NAMESPACE_RECORD

    @property
    def namespaces(self) -> list[str]:
        """What the run recorded, whether its record is still open or closed by a teardown."""
        return netns.recorded(self.record) + netns.recorded(netns.close_record_path(self.record))

    def owner(self) -> dict | None:
        """The owner record, if there is one and it names this run."""
        try:
            owner = json.loads((self.state_dir / OWNER_FILE).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(owner, dict) or owner.get("run_id", self.run_id) != self.run_id:
            return None
        return owner

    @property
    def run_id(self) -> str:
        return self.prefix.removeprefix(NETNS_PREFIX)

    def alive(self) -> bool:
        """A run is alive while its owner runs, or while it is starting (no owner file yet, for a
        short while: the state directory is made, then the owner file written)."""
        owner = self.owner()
        if owner is not None:
            return owner_running(owner)
        try:
            return time.time() - self.state_dir.stat().st_mtime < BIRTH_GRACE
        except OSError:
            return False


def runs() -> list[Run]:
    """Every run that has a state directory, alive or not; anything else in STATE_ROOT is not a run."""
    if not STATE_ROOT.is_dir():
        return []
    return sorted((Run(p.name) for p in STATE_ROOT.iterdir()
                   if RUN_PREFIX.fullmatch(p.name) and p.is_dir()), key=lambda r: r.prefix)


def remove_run(prefix: str) -> list[str]:
    """Delete the namespaces a run recorded (pods first, world last), then its state; return any
    problems. The record is closed first, so nothing the run still creates escapes it; a namespace
    that will not go stays recorded, so a later sweep tries again."""
    run = Run(prefix)
    closed = netns.close_record(run.record)
    problems = stop_recorded_processes(run.state_dir)
    world, removed = f"{prefix}-world", set()
    for name in sorted(netns.recorded(closed), key=lambda n: (n == world, -len(n))):
        try:
            netns.remove(name)
            removed.add(name)
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"namespace {name}: {exc}")
    if problems:
        netns.strike(closed, removed)
        return problems + [f"state directory {run.state_dir} kept: it records what is still there"]
    shutil.rmtree(run.state_dir, ignore_errors=True)
    if run.state_dir.exists():
        problems.append(f"state directory {run.state_dir} could not be removed")
    from .hostlimits import release  # imported here: hostlimits asks this module which runs live
    return problems + release(prefix)


def remove_stale_runs() -> list[str]:
    """Remove every run whose owner is gone; a live run (even one started a moment ago) is spared."""
    stale = [run.prefix for run in runs() if not run.alive()]
    for prefix in stale:
        remove_run(prefix)
    return stale


def live_runs() -> list[str]:
    return [run.prefix for run in runs() if run.alive()]


def unrecorded_namespaces() -> list[str]:
    """Namespaces named netconform-* that no run recorded: not ours to remove, only to mention.

    Listed before the records are read: a run records a name before creating the namespace, so a
    namespace seen here that a run created is already in that run's record."""
    present = netns.names_with_prefix(NETNS_PREFIX)
    recorded = {name for run in runs() for name in run.namespaces}
    return [name for name in present if name not in recorded]


# --- processes a run started in the root namespace ---

PROCESS_RECORD = "processes"  # in the state directory: one JSON object a line, pid and start time
PROCESS_GRACE = 3.0  # seconds a recorded process has to end after SIGTERM, before SIGKILL


def record_process(state_dir: Path, pid: int) -> None:
    """Record a process the run started outside its namespaces, which no namespace removal stops.
    Its start time and the boot id go with the pid, so a pid reused later is never signalled."""
    entry = {"pid": pid, "start": _start_time(pid), "boot": _boot_id()}
    with open(state_dir / PROCESS_RECORD, "a") as out:
        out.write(json.dumps(entry) + "\n")


def recorded_processes(state_dir: Path) -> list[dict]:
    """The recorded processes that still run as the very processes recorded."""
    try:
        lines = (state_dir / PROCESS_RECORD).read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill: its process is then not recorded
        if isinstance(entry, dict) and owner_running(entry):
            found.append(entry)
    return found


def stop_recorded_processes(state_dir: Path, grace: float = PROCESS_GRACE) -> list[str]:
    """SIGTERM each recorded process that still runs, SIGKILL it after ``grace``; return problems."""
    left = recorded_processes(state_dir)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
        for entry in left:
            try:
                os.kill(entry["pid"], sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [entry for entry in left if owner_running(entry) and not _zombie(entry["pid"])]
        if not left:
            return []
    return [f"process {entry['pid']} in the root namespace did not end" for entry in left]


def _zombie(pid: int) -> bool:
    """An ended child of ours not yet reaped: it is gone for our purpose."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True

"""Find and remove what lab runs left behind: namespaces, their processes, IPAM and state files.

A run is alive while the process that owns it is; a run whose owner died (SIGKILL, a crash, a
power cut) is removed by the next run or by ``--cleanup-only``. Live concurrent runs are left alone.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from . import netns
from .naming import NETNS_PREFIX, STATE_ROOT

OWNER_FILE = "owner.json"
BIRTH_GRACE = 30.0  # seconds a state directory may exist without its owner file (a run starting)


def _start_time(pid: int) -> str | None:
    """The process start time from /proc: a pid reused by another process does not match it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def write_owner(state_dir: Path) -> None:
    """Claim the run before it creates anything, atomically, so no other run takes it for stale."""
    pid = os.getpid()
    partial = state_dir / f".{OWNER_FILE}.{pid}"
    partial.write_text(json.dumps({"pid": pid, "start": _start_time(pid)}))
    os.replace(partial, state_dir / OWNER_FILE)


def owner_alive(prefix: str) -> bool:
    state_dir = STATE_ROOT / prefix
    try:
        owner = json.loads((state_dir / OWNER_FILE).read_text())
    except (OSError, ValueError):
        try:  # a directory younger than the grace period belongs to a run still starting
            return time.time() - state_dir.stat().st_mtime < BIRTH_GRACE
        except OSError:
            return False
    return owner.get("start") is not None and _start_time(owner["pid"]) == owner["start"]


def run_prefixes() -> set[str]:
    """Every run that left a namespace or a state directory, alive or not."""
    found = set()
    for name in netns.names_with_prefix(NETNS_PREFIX):
        found.add("-".join(name.split("-")[:2]))
    if STATE_ROOT.is_dir():
        found |= {p.name for p in STATE_ROOT.iterdir() if p.name.startswith(NETNS_PREFIX)}
    return found


def remove_run(prefix: str) -> list[str]:
    """Delete a run's namespaces (pods first, world last) and its state; return any problems."""
    problems = []
    world = f"{prefix}-world"
    for name in sorted(netns.names_with_prefix(prefix + "-"),
                       key=lambda n: (n == world, -len(n))):
        try:
            netns.remove(name)
        except OSError as exc:
            problems.append(f"namespace {name}: {exc}")
    shutil.rmtree(STATE_ROOT / prefix, ignore_errors=True)
    if (STATE_ROOT / prefix).exists():
        problems.append(f"state directory {STATE_ROOT / prefix} could not be removed")
    return problems


def remove_stale_runs() -> list[str]:
    """Remove every run whose owner is dead; a live run (even one started a moment ago) is spared."""
    stale = sorted(p for p in run_prefixes() if not owner_alive(p))
    for prefix in stale:
        remove_run(prefix)
    return stale

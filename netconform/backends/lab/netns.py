"""Network namespaces and commands run inside them, every call bounded in time."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from pyroute2 import netns

NETNS_DIR = Path("/var/run/netns")
COMMAND_TIMEOUT = 30


def path(name: str) -> str:
    return str(NETNS_DIR / name)


def create(name: str) -> None:
    _ip("netns", "add", name)


def _ip(*argv: str) -> None:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if done.returncode:
        raise OSError(f"ip {' '.join(argv)}: {done.stderr.strip()}")


def ip_batch(name: str, commands: list[str], tool: str = "ip") -> None:
    """Run several `ip` (or `bridge`) commands inside a namespace in one process."""
    done = subprocess.run([tool, "-n", name, "-batch", "-"], input="\n".join(commands) + "\n",
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if done.returncode:
        raise OSError(f"{tool} -n {name}: {done.stderr.strip()}")


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def names_with_prefix(prefix: str) -> list[str]:
    return sorted(n for n in netns.listnetns() if n.startswith(prefix))


def run(name: str, argv: list[str], stdin: str | None = None, env: dict | None = None,
        timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a command inside a namespace, as a container runtime runs CNI plugins in the host's."""
    return subprocess.run(["ip", "netns", "exec", name, *argv], input=stdin, env=env,
                          capture_output=True, text=True, timeout=timeout)


def sysctl(name: str, settings: dict[str, str]) -> None:
    argv = [f"{key}={value}" for key, value in settings.items()]
    done = run(name, ["sysctl", "-qw", *argv])
    if done.returncode:
        raise OSError(f"sysctl {' '.join(argv)} in {name}: {done.stderr.strip()}")


def pids(name: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)
    return [int(p) for p in done.stdout.split()]


def kill_all(name: str, grace: float = 2.0) -> None:
    """Stop every process in the namespace: a namespace with processes cannot really go away."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        found = pids(name)
        for pid in found:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while found and time.monotonic() < deadline:
            found = [p for p in found if _alive(p)]
            time.sleep(0.05)
        if not found:
            return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def remove(name: str) -> None:
    if exists(name):
        kill_all(name)
        _ip("netns", "delete", name)

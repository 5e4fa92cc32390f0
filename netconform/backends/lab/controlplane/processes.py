"""The control plane's processes: started in a namespace or in the root one, each with its log in the
run's state directory, and stopped within a bound.

Each runs in a session of its own, so the Ctrl-C that reaches the harness does not reach them: the
harness stops them in its teardown, in order. ``ip netns exec`` execs the binary, so the pid is the
component's own.
"""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

TAIL_BYTES = 1500  # of a log, quoted in an error message
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
"""The components' environment: nothing of the harness's (no proxy variables, no KUBECONFIG), so they
talk to nothing but what their flags name."""


class StartError(RuntimeError):
    pass


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self) -> str:
        """The end of the process's log, for an error message."""
        try:
            with open(self.log, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - TAIL_BYTES))
                text = log.read().decode(errors="replace").strip()
        except OSError:
            return "(no log)"
        return text or "(no output)"

    def rss(self) -> int | None:
        """Resident memory in bytes, or None once it has ended."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return None


def start(name: str, argv: Sequence[str], logs: Path, netns: str | None = None,
          env: dict[str, str] | None = None, announce: bool = False) -> Process:
    """Start ``argv`` in namespace ``netns`` (None: the root namespace), output to logs/name.log.
    With ``announce``, its stdout stays a pipe for the one line it prints when ready (announced)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen([*prefix, *argv], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE if announce else log, stderr=log,
                                 env=env if env is not None else ENV, cwd=logs,
                                 start_new_session=True)
    return Process(name, popen, log_path)


def announced(process: Process, timeout: float) -> str:
    """The first line a process prints on its stdout (e.g. the relay's address), within ``timeout``."""
    pipe = process.popen.stdout
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise StartError(f"{process.name} said nothing within {timeout:.0f}s: {process.tail()}")
            chunk = os.read(pipe.fileno(), 256)
            if not chunk:
                raise StartError(f"{process.name} ended before it was ready: {process.tail()}")
            line += chunk
    pipe.close()
    return line.decode().strip()


def send(process: Process, sig: int) -> None:
    """``sig`` to the process, unless it has ended meanwhile."""
    try:
        os.kill(process.pid, sig)
    except ProcessLookupError:
        pass


def stop(processes: Sequence[Process], grace: float) -> list[str]:
    """SIGTERM every process at once, SIGKILL whatever still runs after ``grace`` seconds; return
    the names of any that outlived SIGKILL too (stuck in the kernel)."""
    running = [p for p in processes if p.running()]
    for process in running:  # a stopped process (a lab fault froze it) acts on SIGTERM only then
        send(process, signal.SIGCONT)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        for process in running:
            try:
                os.kill(process.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while running and time.monotonic() < deadline:
            time.sleep(0.05)
            running = [p for p in running if p.running()]
        if not running:
            return []
    return [f"{p.name} (pid {p.pid}) did not end" for p in running]

"""Network namespaces and commands run inside them, every call bounded in time, each in a session
of its own so that a Ctrl-C meant for the run (which decides what to do with it) does not kill them."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from pyroute2 import netns

NETNS_DIR = Path("/var/run/netns")
COMMAND_TIMEOUT = 30
_RECORD_LOCK = threading.Lock()  # pods are created by several threads, all writing one record


def path(name: str) -> str:
    return str(NETNS_DIR / name)


def create(name: str, *, record: Path) -> None:
    """Create a namespace, writing its name to the run's record first.

    Record before create: a run killed at any moment has recorded every namespace it may have
    created, and clean-up removes recorded namespaces only. A name that exists already belongs to
    someone else, so it is refused, never recorded; a creation that fails is struck off again. Once
    teardown has closed the record (close_record), nothing more is created: a creator that slipped
    in between removes its namespace itself, as teardown may have looked for it too early.
    """
    if exists(name):
        raise OSError(f"namespace {name} exists already: it is not this run's")
    _append(record, name)
    try:
        _ip("netns", "add", name)
    except OSError:
        strike(record, {name})
        raise
    if not record.exists():
        remove(name)
        raise OSError(f"namespace {name}: the run is being torn down")


def _append(record: Path, name: str) -> None:
    """Add a name to an open record; a closed (renamed) or missing one is never created anew."""
    with _RECORD_LOCK:
        try:
            fd = os.open(record, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            raise OSError(f"namespace {name} not created: the run's record {record} is closed "
                          f"(the run is being torn down)") from None
        with os.fdopen(fd, "a") as out:
            out.write(f"{name}\n")


def open_record(record: Path) -> None:
    """Start a run's record, empty: create() only ever appends to an open one."""
    record.touch(exist_ok=True)


def close_record(record: Path) -> Path:
    """Close a run's record for teardown and return where it now is: from here on, create() adds
    nothing, so the closed record lists every namespace the run may have."""
    closed = close_record_path(record)
    with _RECORD_LOCK:
        if record.exists():
            os.replace(record, closed)
    return closed


def close_record_path(record: Path) -> Path:
    return record.with_name(f"{record.name}.closed")


def recorded(record: Path) -> list[str]:
    """The namespaces a run recorded, in order of creation; none when there is no record."""
    try:
        return [line for line in record.read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def strike(record: Path, names: set[str]) -> None:
    """Strike names off a record: read and rewritten under the lock, so no thread's line is lost,
    and replaced atomically, so a reader in another process never sees half of it. A record that
    is gone (closed meanwhile) is left gone."""
    with _RECORD_LOCK:
        if not record.exists():
            return
        left = [n for n in recorded(record) if n not in names]
        partial = record.with_name(f".{record.name}.{os.getpid()}")
        partial.write_text("".join(f"{n}\n" for n in left))
        os.replace(partial, record)


def _ip(*argv: str) -> None:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                          start_new_session=True)
    if done.returncode:
        raise OSError(f"ip {' '.join(argv)}: {done.stderr.strip()}")


def ip_batch(name: str, commands: list[str], tool: str = "ip") -> None:
    """Run several `ip` (or `bridge`) commands inside a namespace in one process."""
    done = subprocess.run([tool, "-n", name, "-batch", "-"], input="\n".join(commands) + "\n",
                          start_new_session=True,
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
                          start_new_session=True,
                          capture_output=True, text=True, timeout=timeout)


def sysctl(name: str, settings: dict[str, str]) -> None:
    argv = [f"{key}={value}" for key, value in settings.items()]
    done = run(name, ["sysctl", "-qw", *argv])
    if done.returncode:
        raise OSError(f"sysctl {' '.join(argv)} in {name}: {done.stderr.strip()}")


def pids(name: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                          start_new_session=True,
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
    """Delete a namespace and its processes; one that someone else deleted meanwhile is gone too."""
    if exists(name):
        kill_all(name)
        try:
            _ip("netns", "delete", name)
        except OSError:
            if exists(name):
                raise


class _Late(Exception):
    """What an in-namespace call raises when it did not end within its bound."""


def _inside(name: str, work, timeout: float):
    """Run ``work()`` in a thread of ours that has entered namespace ``name`` (setns affects that
    thread only; the harness stays in its own): its result, or the exception it raised, or _Late
    when it did not end within ``timeout`` seconds."""
    outcome: list = []

    def enter_and_work() -> None:
        try:
            netns.setns(name, flags=0)  # flags=0: never create it
            outcome.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome.append(exc)

    thread = threading.Thread(target=enter_and_work, name=f"in-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return _Late()
    return outcome[0]


def tcp_connects(name: str, ip: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection from inside namespace ``name`` to ip:port is accepted in time."""
    def connect() -> bool:
        with socket.create_connection((ip, port), timeout=timeout):
            return True

    return _inside(name, connect, timeout + 1) is True


def http_get(name: str, url: str, timeout: float = 2.0, limit: int = 65536) -> tuple[int, bytes]:
    """GET ``url`` from inside namespace ``name``: (status, at most ``limit`` bytes of body);
    status 0 when nothing answered."""
    def get() -> tuple[int, bytes]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=timeout) as response:
                return response.status, response.read(limit)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(limit)

    answer = _inside(name, get, timeout + 1)
    if isinstance(answer, _Late):
        return 0, b"no answer in time"
    if isinstance(answer, (OSError, ValueError)):
        return 0, str(answer).encode()
    if isinstance(answer, BaseException):
        raise answer
    return answer


def flush_conntrack(name: str, timeout: float = 20.0) -> str | None:
    """Forget the tracked flows of namespace ``name`` but TCP's (``conntrack -D -p udp`` and
    ``-p icmp`` there): after a fault is injected or reverted, a flow that reuses the ports of an
    earlier one (UDP above all) must meet today's rules, not the NAT decided under yesterday's.
    The checks' TCP connections are new each time; the TCP connections that last are the
    cluster's own (CoreDNS's and kube-proxy's watches of the API server through its ClusterIP),
    and forgetting one of them breaks it silently: a reply that comes back before its next
    request is not translated back, and CoreDNS serves what it last saw for minutes. The
    conntrack tool deletes thousands of entries in milliseconds (one at a time through pyroute2,
    a busy host took more than 20 s). Returns a problem, or None."""
    for protocol in ("udp", "icmp"):
        for _ in range(FLUSH_TRIES):
            try:
                done = run(name, ["conntrack", "-D", "-p", protocol], timeout=timeout)
            except subprocess.TimeoutExpired:
                return f"conntrack of {name} not flushed within {timeout:.0f}s"
            except OSError as exc:
                return f"conntrack of {name} not flushed: {exc}"
            # an entry that went between the tool's listing and its delete (kube-proxy clears stale
            # UDP entries too) stops the tool there: what is left is flushed by the next try
            if GONE_MEANWHILE not in done.stderr:
                break
        # exit 1 with "0 flow entries have been deleted": there was nothing to forget
        if done.returncode and "flow entries have been deleted" not in done.stderr and \
                GONE_MEANWHILE not in done.stderr:
            return f"conntrack of {name} not flushed: {done.stderr.strip() or done.returncode}"
    return None


FLUSH_TRIES = 3
GONE_MEANWHILE = "such conntrack doesn't exist"

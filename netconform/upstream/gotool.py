"""The Go toolchain: finding it, checking it is new enough, and running it bounded.

Go is only the means of building upstream components; netconform itself never runs it otherwise.
Each go command runs in a process group of its own with a timeout (a stuck download or a machine
swapping must end in an error, not a hung test run), with its output in a log file whose last
lines make the error message.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

# Where the Go project's release tarball installs; sudo's secure_path often leaves it out of PATH.
FALLBACK_GO = Path("/usr/local/go/bin/go")
GO_TIMEOUT = 40 * 60
TAIL_LINES = 25
# Settings that would change what is built or where; the builder sets its own.
_DROPPED_ENV = ("GOFLAGS", "GOOS", "GOARCH", "GOAMD64", "GOARM", "GOEXPERIMENT", "GOWORK",
                "GOTOOLCHAIN", "GOMODCACHE", "GOCACHE", "GOBIN", "GOPATH", "CGO_ENABLED",
                "CC", "CXX", "GOROOT")


class GoError(RuntimeError):
    """Go is missing, too old, or a go command failed; the message is one line plus, for a failed
    command, the last lines of its output."""


def find_go() -> Path:
    """The go binary: ``go`` on PATH, else the Go release tarball's usual place."""
    found = shutil.which("go")
    if found:
        return Path(found)
    if FALLBACK_GO.is_file():
        return FALLBACK_GO
    raise GoError("Go is not installed (no `go` on PATH nor /usr/local/go/bin/go); the upstream "
                  "components are built with it: install the Go project's own release (1.26 or newer)")


def go_version(go: Path) -> tuple[int, ...]:
    """The toolchain's version, ``(1, 26, 8)``, from ``go env GOVERSION``."""
    out = subprocess.run([str(go), "env", "GOVERSION"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, GOTOOLCHAIN="local"))
    m = re.match(r"go(\d+(?:\.\d+)*)", out.stdout.strip())
    if out.returncode != 0 or not m:
        raise GoError(f"{go} does not run: {(out.stderr or out.stdout).strip()[-300:]}")
    return tuple(int(x) for x in m[1].split("."))


def require_go(minimum: tuple[int, ...]) -> Path:
    """The go binary if it is at least ``minimum`` (the highest ``go`` line of the modules to
    build; GOTOOLCHAIN=local forbids Go from fetching a newer toolchain itself)."""
    go = find_go()
    have = go_version(go)
    if have < minimum:
        raise GoError(f"Go {_dotted(minimum)} or newer is needed to build the upstream components "
                      f"(found go{_dotted(have)} at {go}): install the Go project's own release")
    return go


def _dotted(v: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in v)


def go_env(cache: Path) -> dict[str, str]:
    """The environment of every go command: module and build caches under ``cache``, no cgo, the
    local toolchain only, modules read-only (the committed go.sum decides every hash)."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(GOMODCACHE=str(cache / "gomod"), GOCACHE=str(cache / "go-build"),
               GOPATH=str(cache / "gopath"), GOTOOLCHAIN="local", GOWORK="off", CGO_ENABLED="0",
               GOFLAGS="-mod=readonly -modcacherw -buildvcs=false")
    return env


def run_go(go: Path, args: list[str], *, cwd: Path, env: dict[str, str], log: Path, what: str,
           timeout: float = GO_TIMEOUT) -> None:
    """Run ``go args`` in ``cwd`` with its output in ``log``; GoError naming ``what`` and quoting
    the last lines of the output when it fails or outlives ``timeout`` (its whole process group
    is killed then)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        out.write(f"$ cd {cwd} && go {' '.join(args)}\n")
        out.flush()
        proc = subprocess.Popen([str(go), *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if proc.poll() is None:  # timed out, or interrupted: nothing of it may outlive us
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if rc == 0:
        return
    reason = f"timed out after {timeout:.0f} s" if rc is None else f"failed (exit {rc})"
    raise GoError(f"{what}: go {args[0]} {reason}; last lines of {log}:\n{tail(log)}")


def tail(log: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``log``, indented."""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join("    " + line for line in text)


def output_go(go: Path, args: list[str], *, cwd: Path, env: dict[str, str], what: str,
              timeout: float = GO_TIMEOUT) -> str:
    """The stdout of ``go args``, for short queries (``go mod download -json``); GoError with its
    stderr when it fails or outlives ``timeout``."""
    try:
        out = subprocess.run([str(go), *args], cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise GoError(f"{what}: go {args[0]} timed out after {timeout:.0f} s") from None
    if out.returncode != 0:
        lines = "\n".join("    " + line for line in out.stderr.splitlines()[-TAIL_LINES:])
        raise GoError(f"{what}: go {args[0]} failed (exit {out.returncode}):\n{lines}")
    return out.stdout

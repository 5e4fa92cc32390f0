"""What a built binary says about itself: its own ``--version`` output.

This is the proof that the ldflags reached the binary: a Kubernetes binary built without them says
``v0.0.0-master``.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from netconform.upstream.components import Component

VERSION_TIMEOUT = 60


def self_report(component: Component, path: Path, timeout: float = VERSION_TIMEOUT) -> str:
    """The binary's version output (stdout and stderr); RuntimeError if it fails or hangs."""
    command = f"{path} {' '.join(component.version_args)}"
    try:
        out = subprocess.run([str(path), *component.version_args], capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{command} did not answer in {timeout:.0f} s") from None
    if out.returncode != 0:
        raise RuntimeError(f"{command} exited {out.returncode}: "
                           f"{(out.stderr or out.stdout).strip()[-300:]}")
    return (out.stdout + out.stderr).strip()


def version_line(component: Component, output: str) -> str:
    """The line of ``output`` that carries the version (the first line if none matches)."""
    for line in output.splitlines():
        if component.reported_version(line):
            return line.strip()
    return output.splitlines()[0] if output else ""

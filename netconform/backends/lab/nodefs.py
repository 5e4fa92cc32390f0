"""A node's own files, and the root its processes see them in.

Every lab node shares the host's one filesystem, but a CNI's daemon and plugins write host paths
that would clash between nodes on one machine (``/run/flannel/subnet.env``, ``/var/lib/cni``,
``/etc/cni/net.d``, ``/opt/cni/bin``, and Calico's hard-coded ``/var/run/calico``). Each node
therefore keeps its own copy of such paths in the run's state directory, and every process the lab
runs *on the node* for a CNI (a DaemonSet pod's container, a CNI plugin call) runs chrooted into a
root made for it alone: the host's own directories as they are, except that the node's paths, the
pod's volumes and the image's files are mounted over them.

The root and every mount in it exist only in the private mount namespace that ``ip netns exec``
makes for the process (it makes ``/`` a slave, so nothing propagates back): the host sees the
run's empty directories and nothing else, and a crashed run leaves no mount behind. A host
directory under which something is mounted (``/run``, say) is an overlay whose upper layer is the
root's own tmpfs, so mount points never touch the host; mounts already under that directory on the
host (``/run/netns``, where the pods' namespaces are) are carried over into it.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

# Host paths outside every node's own copy: read from the host as they are.
SHARED = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin")
INNER = "/.netconform"  # inside a root: the tmpfs's own room (overlay layers, extra directories)
IMAGE_ROOT = f"{INNER}/image"  # where an image's files that belong under SHARED are put instead


def shared(path: str) -> bool:
    """Whether ``path`` lies in one of the host's SHARED directories."""
    return f"/{path.split('/')[1]}" in SHARED


def image_path(path: str) -> str:
    """Where an image's file at ``path`` is mounted in a root: the path itself, or under
    IMAGE_ROOT when it lies in a SHARED directory (kube-router's /usr/local/bin/kube-router), which
    the root takes from the host unchanged."""
    return f"{IMAGE_ROOT}{path}" if shared(path) else path


def _unescape(field: str) -> str:
    """A mountinfo path: spaces and the like are octal escapes there (``\\040``)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def host_mounts(mountinfo: str | None = None) -> list[str]:
    """The mount points of the caller's mount namespace (the harness's: the host's), in order."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    return [_unescape(line.split()[4]) for line in text.splitlines() if len(line.split()) > 4]


def topmost_under(directory: str, mounts: list[str]) -> list[str]:
    """The mount points strictly under ``directory`` that no other one of them contains: an
    ``rbind`` of each carries the rest along."""
    under = sorted({m for m in mounts if m.startswith(directory.rstrip("/") + "/")})
    top: list[str] = []
    for mount in under:
        if not any(mount.startswith(t + "/") for t in top):
            top.append(mount)
    return top


def root_script(root: Path, mounts: dict[str, Path], host_entries: list[tuple[str, str]],
                host_mount_points: list[str]) -> str:
    """The shell that builds a process's root in ``root`` and execs the process chrooted there.

    ``mounts`` maps a path inside the root to the host file or directory mounted there (the
    node's copies, volumes, image files); ``host_entries`` are the host's top-level entries as
    (name, kind) with kind ``dir``, ``file`` or ``link:TARGET``. A top-level directory with no
    mount below it is the host's (rbind); one with a mount below it is an overlay of the host's,
    whose own mounts are carried over, then the mount points are made in its upper layer.
    """
    q = shlex.quote
    lines = ["set -e", f"mount -t tmpfs -o mode=0755 netconform-root {q(str(root))}",
             f"mkdir -p {q(str(root) + INNER)}"]
    tops = {target.split("/")[1] for target in mounts}
    for name, kind in host_entries:
        inside = f"{root}/{name}"
        if kind.startswith("link:"):
            lines.append(f"ln -s {q(kind[5:])} {q(inside)}")
        elif kind == "file":
            lines += [f"touch {q(inside)}", f"mount --bind {q('/' + name)} {q(inside)}"]
        elif name in tops and f"/{name}" not in SHARED:
            upper, work = f"{root}{INNER}/upper/{name}", f"{root}{INNER}/work/{name}"
            lines += [f"mkdir -p {q(inside)} {q(upper)} {q(work)}",
                      f"mount -t overlay netconform-{name} -o "
                      f"{q(f'lowerdir=/{name},upperdir={upper},workdir={work}')} {q(inside)}"]
            for sub in topmost_under(f"/{name}", host_mount_points):
                lines.append(f"if [ -d {q(sub)} ]; then mkdir -p {q(root_path(root, sub))}; "
                             f"else touch {q(root_path(root, sub))}; fi; "
                             f"mount --rbind {q(sub)} {q(root_path(root, sub))}")
        else:
            lines += [f"mkdir -p {q(inside)}", f"mount --rbind {q('/' + name)} {q(inside)}"]
    for target, source in sorted(mounts.items()):
        if shared(target):
            if os.path.realpath(source) == os.path.realpath(target):
                continue  # the host's own, which the root has already (a hostPath of /lib/modules)
            raise ValueError(f"{target}: nothing is mounted under the host's shared {', '.join(SHARED)}")
        inside = root_path(root, target)
        # a symlink left on the way is a dangling one (resolved() followed the others): it goes,
        # from the overlay's upper layer only, so the mount point is made where it was
        parts = target.strip("/").split("/")
        for depth in range(2, len(parts) + 1):
            step = q(root_path(root, "/".join(parts[:depth])))
            lines.append(f"if [ -L {step} ]; then rm {step}; fi")
        make = f"mkdir -p {q(inside)}" if source.is_dir() else \
            f"mkdir -p {q(str(Path(inside).parent))} && touch {q(inside)}"
        lines += [make, f"mount --bind {q(str(source))} {q(inside)}"]
    lines.append(f'cd / && exec chroot {q(str(root))} "$@"')
    return "\n".join(lines)


def resolved(path: str, top: Path = Path("/")) -> str:
    """``path`` with the host's symlinks resolved in its longest existing prefix: a mount point
    made in a root must never follow an absolute symlink, which would lead out of it."""
    parts = Path(path).parts[1:]
    for cut in range(len(parts), -1, -1):
        prefix = top.joinpath(*parts[:cut])
        if prefix.exists():
            real = Path(os.path.realpath(prefix)).relative_to(os.path.realpath(top))
            return "/" + "/".join((*real.parts, *parts[cut:]))
    return path


def root_path(root: Path, path: str) -> str:
    return f"{root}/{path.lstrip('/')}"


def host_entries(top: Path = Path("/")) -> list[tuple[str, str]]:
    """The host's top-level entries as root_script wants them."""
    found = []
    for entry in sorted(os.scandir(top), key=lambda e: e.name):
        if entry.is_symlink():
            found.append((entry.name, "link:" + os.readlink(entry.path)))
        elif entry.is_dir():
            found.append((entry.name, "dir"))
        elif entry.is_file():
            found.append((entry.name, "file"))
    return found


class NodeFs:
    """One node's copies of host paths, in ``directory`` (the run's state directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.paths: set[str] = set()  # the host paths this node has a copy of (hostPath volumes)
        self._roots = 0

    def host(self, path: str, kind: str = "Directory") -> Path:
        """The node's copy of host ``path`` (made, as an empty directory or file, if missing):
        what a hostPath volume of a pod on this node mounts. Registered, so every later process
        on the node sees it at ``path``."""
        if not path.startswith("/") or ".." in Path(path).parts:
            raise ValueError(f"not an absolute host path: {path!r}")
        copy = self.directory / "fs" / path.lstrip("/")
        if kind in ("File", "FileOrCreate"):
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.touch(exist_ok=True)
        else:
            copy.mkdir(parents=True, exist_ok=True)
        self.paths.add(path)
        return copy

    def mounts(self, extra: dict[str, Path] | None = None) -> dict[str, Path]:
        """What a process on this node sees mounted: the node's paths, then ``extra`` (its
        volumes and image files), a longer path inside a shorter one's mount; each path with the
        host's symlinks resolved (``/var/run`` is ``/run``), as the root mirrors the host's."""
        found = {path: self.directory / "fs" / path.lstrip("/") for path in self.paths}
        found.update(extra or {})
        return {resolved(path): source for path, source in found.items()}

    def command(self, netns: str, argv: list[str], extra: dict[str, Path] | None = None) -> list[str]:
        """``argv`` run in network namespace ``netns``, chrooted into a root of its own in which
        the node's paths and ``extra`` are mounted (module docstring)."""
        self._roots += 1
        root = self.directory / "roots" / f"{os.getpid()}-{self._roots}"
        root.mkdir(parents=True, exist_ok=True)
        script = root_script(root, self.mounts(extra), host_entries(), host_mounts())
        return ["ip", "netns", "exec", netns, "sh", "-c", script, "netconform-root", *argv]

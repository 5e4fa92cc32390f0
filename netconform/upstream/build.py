"""Building the pinned upstream binaries into a cache keyed by version, once.

Layout of the cache (``/var/cache/netconform/upstream``, or ``$NETCONFORM_UPSTREAM_CACHE``)::

    <component>/<version>/<component>    the binary
    <component>/<version>/build.json     how it was built: recipe digest, Go version, seconds, size
    modules/<name>-<version>/            the committed wrapper modules, staged for go
    gomod/  go-build/                    GOMODCACHE and GOCACHE
    logs/<component>-<version>.log       go's output of the last build

A binary counts as built only with a ``build.json`` whose digest matches today's recipe and
wrapper module, so a changed pin or flag rebuilds it (quickly: the Go build cache keeps every
compiled package). Builds write to a temporary name and rename, and hold a file lock, so an
interrupted build leaves nothing half-written and two runs at once do not build the same thing
twice.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from netconform.upstream import modules
from netconform.upstream.components import COMPONENTS, Component
from netconform.upstream.gotool import GO_TIMEOUT, go_env, output_go, require_go, run_go
from netconform.upstream.recipe import recipe
from netconform.upstream.releases import DEFAULT_RELEASE, Release, get

DEFAULT_CACHE = Path("/var/cache/netconform/upstream")
LOCK_WAIT = 4 * 3600


class NotBuilt(LookupError):
    """A binary asked for is not in the cache; the message says the command that builds it."""


def cache_root() -> Path:
    """The cache directory: ``$NETCONFORM_UPSTREAM_CACHE`` or /var/cache/netconform/upstream."""
    return Path(os.environ.get("NETCONFORM_UPSTREAM_CACHE") or DEFAULT_CACHE)


def _release(release: str | Release) -> Release:
    return release if isinstance(release, Release) else get(release)


def _components(names: Iterable[str] | None) -> list[Component]:
    if names is None:
        return list(COMPONENTS.values())
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise KeyError(f"unknown component(s) {', '.join(unknown)}; known: {', '.join(COMPONENTS)}")
    return [COMPONENTS[n] for n in names]


def binary_path(component: Component, release: Release, cache: Path) -> Path:
    """Where ``component`` of ``release`` lives in ``cache`` (built or not)."""
    version = component.version(release)
    return cache / component.name / version / component.name


def _digest(component: Component, release: Release) -> str:
    return recipe(component, release).digest(modules.committed(component.module_dir_name(release)))


def is_built(component: Component, release: Release, cache: Path) -> bool:
    """True when the binary is there with a record of today's recipe."""
    path = binary_path(component, release, cache)
    try:
        record = json.loads((path.parent / "build.json").read_text())
    except (OSError, ValueError):
        return False
    return path.is_file() and record.get("digest") == _digest(component, release) and \
        all((path.parent / Path(kept).name).is_file() for kept in component.keep)


def binary(component: str, release: str | Release = DEFAULT_RELEASE, cache: Path | None = None) -> Path:
    """The cached binary of ``component`` for ``release``; NotBuilt (naming the build command)
    when it has not been built with today's recipe."""
    rel = _release(release)
    comp = _components([component])[0]
    root = cache or cache_root()
    if not is_built(comp, rel, root):
        raise NotBuilt(f"{component} {comp.version(rel)} (Kubernetes {rel.kubernetes}) is not built in "
                       f"{root}; run: python -m netconform.upstream build --release {rel.minor}")
    return binary_path(comp, rel, root)


def label(component: Component, release: Release) -> str:
    """``upstream 1.37.2: kube-apiserver`` or ``upstream 1.37.2: etcd v3.7.0``: how progress lines
    name a component."""
    name = component.name
    if component.module != "kubernetes":
        name += f" {component.version(release)}"
    return f"upstream {release.kubernetes.removeprefix('v')}: {name}"


def ensure_built(release: str | Release = DEFAULT_RELEASE, components: Iterable[str] | None = None,
                 progress: Callable[[str], None] = print, cache: Path | None = None,
                 timeout: float = GO_TIMEOUT) -> dict[str, Path]:
    """Build every missing binary of ``release`` (all components, or those named), one progress
    line per component, and return each component's binary. Go is needed only when something is
    missing; GoError says what failed, with the last lines of go's output."""
    rel = _release(release)
    comps = _components(components)
    root = cache or cache_root()
    missing = [c for c in comps if not is_built(c, rel, root)]
    if missing:
        minimum = max(modules.go_line_tuple(modules.read(c.module_dir_name(rel)).go) for c in missing)
        go = require_go(minimum)
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root, progress):
            for comp in comps:
                if not is_built(comp, rel, root):
                    seconds = _build(go, comp, rel, root, timeout)
                    progress(f"{label(comp, rel)} built in {seconds:.0f} s")
                else:
                    progress(f"{label(comp, rel)} cached")
    else:
        for comp in comps:
            progress(f"{label(comp, rel)} cached")
    return {c.name: binary_path(c, rel, root) for c in comps}


def _build(go: Path, comp: Component, rel: Release, root: Path, timeout: float) -> float:
    """Build one binary to a temporary name, then rename it and its record into place."""
    version = comp.version(rel)
    rec = recipe(comp, rel)
    module_dir = modules.stage(comp.module_dir_name(rel), root / "modules")
    final = binary_path(comp, rel, root)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{comp.name}.{os.getpid()}.tmp")
    env = go_env(root)
    if comp.cgo:
        env["CGO_ENABLED"] = "1"
    started = time.monotonic()
    what = f"building {comp.name} {version}" + ("" if comp.pinned else f" (Kubernetes {rel.kubernetes})")
    try:
        run_go(go, rec.go_args(tmp), cwd=module_dir, env=env, timeout=timeout,
               log=root / "logs" / f"{comp.name}-{version}.log", what=what)
        _keep_sources(go, comp, module_dir, env, final.parent)
        seconds = time.monotonic() - started
        record = {
            "component": comp.name, "version": version, "kubernetes": rel.kubernetes,
            "digest": rec.digest(module_dir), "command": ["go", *rec.go_args(final)],
            "go": subprocess.run([str(go), "version"], capture_output=True, text=True, env=env,
                                 timeout=60).stdout.strip(),
            "seconds": round(seconds, 1), "bytes": tmp.stat().st_size,
            "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        os.replace(tmp, final)
        stamp_tmp = final.with_name(f".build.json.{os.getpid()}.tmp")
        stamp_tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(stamp_tmp, final.parent / "build.json")
    finally:
        tmp.unlink(missing_ok=True)
    return seconds


def _keep_sources(go: Path, comp: Component, module_dir: Path, env: dict[str, str], into: Path) -> None:
    """Copy ``comp.keep`` from the upstream module's source, as the go.sum pins it (the module
    cache holds exactly the hashed zip's files), next to the binary."""
    if not comp.keep:
        return
    found = json.loads(output_go(go, ["list", "-m", "-json", comp.upstream], cwd=module_dir, env=env,
                                 what=f"finding the source of {comp.upstream}"))
    for relative in comp.keep:
        data = (Path(found["Dir"]) / relative).read_bytes()
        tmp = into / f".{Path(relative).name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, into / Path(relative).name)


def kept_source(component: str, name: str, release: str | Release = DEFAULT_RELEASE,
                cache: Path | None = None) -> Path:
    """A file ``keep`` named, next to the built ``component`` (NotBuilt when it is not built)."""
    return binary(component, release, cache).parent / Path(name).name


@contextmanager
def _locked(root: Path, progress: Callable[[str], None]) -> Iterator[None]:
    """Hold the cache's build lock; say once whom we wait for, and give up after LOCK_WAIT."""
    path = root / ".build.lock"
    with path.open("a+") as fh:
        deadline = time.monotonic() + LOCK_WAIT
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    progress(f"upstream: waiting for the build lock {path} (held by {holder})")
                    told = True
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the build lock {path} was held for over {LOCK_WAIT} s") from None
                time.sleep(2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)

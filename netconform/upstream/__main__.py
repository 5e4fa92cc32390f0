"""``python -m netconform.upstream``: build the pinned upstream binaries, show their versions, or
make the wrapper modules of a new release.

    python -m netconform.upstream build [--release R|all] [--only COMPONENT ...]
    python -m netconform.upstream version [--release R]
    python -m netconform.upstream pin --release R

Exit status: 0, or 4 with one line of explanation (Go missing or too old, a build failed, a binary
not built), like ``./run``.
"""
from __future__ import annotations

import argparse
import sys

from netconform.upstream.build import binary_path, cache_root, ensure_built, is_built
from netconform.upstream.components import COMPONENTS
from netconform.upstream.gotool import GoError
from netconform.upstream.releases import DEFAULT_RELEASE, RELEASES, Release
from netconform.upstream.versions import self_report, version_line


def _releases(name: str) -> list[Release]:
    return list(RELEASES.values()) if name == "all" else [RELEASES[name]]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m netconform.upstream", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    choices = [*sorted(RELEASES), "all"]
    b = sub.add_parser("build", help="build what is missing from the cache")
    b.add_argument("--release", default=DEFAULT_RELEASE, choices=choices,
                   help=f"a pinned minor, or all (default {DEFAULT_RELEASE})")
    b.add_argument("--only", nargs="+", action="extend", choices=list(COMPONENTS), metavar="COMPONENT",
                   help=f"only these ({', '.join(COMPONENTS)})")
    v = sub.add_parser("version", help="each cached binary's own version output")
    v.add_argument("--release", default=DEFAULT_RELEASE, choices=choices)
    p = sub.add_parser("pin", help="make the wrapper modules of a release named in releases.py (network)")
    p.add_argument("--release", required=True, choices=choices)
    return ap


def _build(args: argparse.Namespace) -> int:
    for rel in _releases(args.release):
        ensure_built(rel, args.only, progress=lambda line: print(line, flush=True))
    return 0


def _version(args: argparse.Namespace) -> int:
    missing = 0
    root = cache_root()
    releases = _releases(args.release)
    for rel in releases:
        if len(releases) > 1:
            print(f"# Kubernetes {rel.kubernetes}")
        for comp in COMPONENTS.values():
            if not is_built(comp, rel, root):
                print(f"{comp.name}: not built ({comp.version(rel)}; run: python -m netconform.upstream "
                      f"build --release {rel.minor})")
                missing += 1
                continue
            print(f"{comp.name}: {version_line(comp, self_report(comp, binary_path(comp, rel, root)))}")
    return 4 if missing else 0


def _pin(args: argparse.Namespace) -> int:
    from netconform.upstream.pin import pin

    for rel in _releases(args.release):
        for path in pin(rel, cache_root()):
            print(f"wrote {path}/go.mod and go.sum")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse's usage errors exit 2; netconform's exit 4
        return 4 if exc.code == 2 else int(exc.code or 0)
    try:
        return {"build": _build, "version": _version, "pin": _pin}[args.command](args)
    except (GoError, ValueError, RuntimeError, TimeoutError, FileNotFoundError, PermissionError) as exc:
        print(f"netconform: {exc}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())

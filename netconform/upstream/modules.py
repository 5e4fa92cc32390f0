"""The wrapper modules committed under ``modules/``: reading them and staging them for a build.

A wrapper is a Go module of our own (``netconform.local/upstream/<name>``) that requires the
upstream module and lists the binary's package as a ``tool``: k8s.io/kubernetes and etcd cannot be
built with ``go install pkg@version`` (their go.mod replaces sibling modules with local paths,
kubernetes#79384), so the wrapper replaces each k8s.io staging module with its tag instead. Its
go.mod and go.sum are committed, so every dependency and its hash is pinned in this repository;
the build copies them into the cache (the package directory may be read-only, and Go must not
write next to the sources) and builds with ``-mod=readonly``, which fails rather than change them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

MODULES = Path(__file__).parent / "modules"
FILES = ("go.mod", "go.sum")


@dataclass
class GoMod:
    """The parts of a go.mod the pins are checked against."""

    module: str = ""
    go: str = ""
    godebug: list[str] = field(default_factory=list)
    requires: dict[str, str] = field(default_factory=dict)
    replaces: dict[str, tuple[str, str]] = field(default_factory=dict)
    tools: list[str] = field(default_factory=list)


_DIRECTIVE = re.compile(r"^(module|go|godebug|require|replace|tool|toolchain|exclude|retract)\b\s*(.*)$")


def parse_gomod(text: str) -> GoMod:
    """Parse go.mod's directives, single-line and in blocks (comments dropped)."""
    mod = GoMod()
    block: str | None = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if block:
            if line == ")":
                block = None
            else:
                _entry(mod, block, line)
            continue
        m = _DIRECTIVE.match(line)
        if not m:
            raise ValueError(f"unexpected go.mod line: {raw!r}")
        verb, rest = m[1], m[2].strip()
        if rest == "(":
            block = verb
        else:
            _entry(mod, verb, rest)
    return mod


def _entry(mod: GoMod, verb: str, rest: str) -> None:
    words = rest.split()
    if verb == "module":
        mod.module = words[0]
    elif verb == "go":
        mod.go = words[0]
    elif verb == "godebug":
        mod.godebug.append(rest)
    elif verb == "require":
        mod.requires[words[0]] = words[1]
    elif verb == "replace":
        old, new = rest.split("=>")
        target = new.split()
        mod.replaces[old.split()[0]] = (target[0], target[1] if len(target) > 1 else "")
    elif verb == "tool":
        mod.tools.append(words[0])


def committed(name: str) -> Path:
    """The committed wrapper module ``name`` (``kubernetes-v1.37.2``); FileNotFoundError names the
    command that makes it when it is missing."""
    path = MODULES / name
    if not all((path / f).is_file() for f in FILES):
        raise FileNotFoundError(f"no wrapper module {path} (make it with: python -m netconform.upstream pin)")
    return path


def read(name: str) -> GoMod:
    """The parsed go.mod of the committed wrapper module ``name``."""
    return parse_gomod((committed(name) / "go.mod").read_text())


def go_line_tuple(go: str) -> tuple[int, ...]:
    """``(1, 26, 0)`` for ``1.26.0``; ``(1, 24)`` for ``1.24``."""
    return tuple(int(x) for x in go.split("."))


def stage(name: str, work: Path) -> Path:
    """Copy the committed module ``name`` to ``work/name`` (every file, go.mod, go.sum and a
    stand-in module it replaces one with; only files whose content changed, each replaced
    atomically) and return that directory, where go runs."""
    src = committed(name)
    dst = work / name
    for path in sorted(p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        data = path.read_bytes()
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and target.read_bytes() == data:
            continue
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return dst

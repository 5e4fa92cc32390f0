"""Making the wrapper modules of a release (``python -m netconform.upstream pin``): the step a
version bump takes, after editing ``releases.py``.

It reads the upstream sources from the module proxy, refuses a release whose etcd or CoreDNS is not
the one upstream pairs with it (etcd from k8s.io/kubernetes' go.mod, CoreDNS from kubeadm's
constants) or whose tag date or CoreDNS commit differ from the proxy's, writes each wrapper's go.mod
and lets ``go mod tidy`` resolve and hash the graph; the result goes to ``modules/`` for review and
commit. Needs the network; the builds never run it.
"""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from netconform.upstream import modules
from netconform.upstream.components import COMPONENTS
from netconform.upstream.gotool import go_env, output_go, require_go, run_go
from netconform.upstream.modules import parse_gomod
from netconform.upstream.releases import Release

KUBERNETES_MODULE = "netconform.local/upstream/kubernetes"
ETCD_MODULE = "netconform.local/upstream/etcd"
COREDNS_MODULE = "netconform.local/upstream/coredns"
COREDNS = "github.com/coredns/coredns"
# The wrappers list their binary as a `tool`, a directive of go 1.24.
TOOL_GO = (1, 24)


def _tool_go(upstream_go: str) -> str:
    return upstream_go if modules.go_line_tuple(upstream_go) >= TOOL_GO else "1.24"


def _minor_go(go: str) -> str:
    return ".".join(go.split(".")[:2])


def kubernetes_template(upstream_gomod: str, release: Release) -> str:
    """The wrapper for k8s.io/kubernetes before tidy: the same ``go`` line and ``godebug``
    defaults as upstream's main module (only a main module's count), each staging module that
    upstream requires at v0.0.0 and replaces with ./staging replaced by its tag instead."""
    up = parse_gomod(upstream_gomod)
    staging = sorted(m for m, v in up.requires.items() if m.startswith("k8s.io/") and v == "v0.0.0")
    local = sorted(m for m, (target, _) in up.replaces.items() if target.startswith("./staging/"))
    if not staging or not set(staging) <= set(local):
        raise ValueError(f"k8s.io/kubernetes {release.kubernetes}: staging modules not as expected "
                         f"(required at v0.0.0: {staging}; replaced locally: {local})")
    kube = [c.package for c in COMPONENTS.values() if c.module == "kubernetes"]
    lines = [
        "// netconform's wrapper for the upstream Kubernetes binaries: k8s.io/kubernetes "
        f"{release.kubernetes} with every",
        f"// staging module at {release.staging} (made by python -m netconform.upstream pin).",
        f"module {KUBERNETES_MODULE}", "", f"go {up.go}", "",
    ]
    lines += [f"godebug {g}" for g in up.godebug] + ([""] if up.godebug else [])
    lines += [f"require k8s.io/kubernetes {release.kubernetes}", "", "tool ("]
    lines += [f"\t{p}" for p in sorted(kube)] + [")", "", "replace ("]
    lines += [f"\t{m} => {m} {release.staging}" for m in staging] + [")", ""]
    return "\n".join(lines)


def etcd_template(server_gomod: str, version: str) -> str:
    """The wrapper for etcd's server module (its main.go calls etcdmain.Main); in a dependency
    the repository's ../api replaces are ignored and the tagged v3 modules are used."""
    go = parse_gomod(server_gomod).go
    return (
        "// netconform's wrapper for etcd: go.etcd.io/etcd/server/v3 built as a tool, its sibling\n"
        "// modules at their tags (made by python -m netconform.upstream pin).\n"
        f"module {ETCD_MODULE}\n\ngo {_tool_go(go)}\n\ngodebug default=go{_minor_go(go)}\n\n"
        f"require go.etcd.io/etcd/server/v3 {version}\n\ntool go.etcd.io/etcd/server/v3\n"
    )


def coredns_template(coredns_gomod: str, version: str) -> str:
    """The wrapper for CoreDNS: it has no replace directives, so the wrapper's graph is CoreDNS's
    own; the wrapper only puts its hashes into this repository."""
    up = parse_gomod(coredns_gomod)
    if up.replaces:
        raise ValueError(f"CoreDNS {version} now replaces modules ({sorted(up.replaces)}): "
                         "review the wrapper")
    return (
        "// netconform's wrapper for CoreDNS: github.com/coredns/coredns built as a tool, with\n"
        "// CoreDNS's own dependency graph (made by python -m netconform.upstream pin).\n"
        f"module {COREDNS_MODULE}\n\ngo {_tool_go(up.go)}\n\ngodebug default=go{_minor_go(up.go)}\n\n"
        f"require github.com/coredns/coredns {version}\n\ntool github.com/coredns/coredns\n"
    )


def graph_differences(wrapper_gomod: str, upstream_gomod: str, upstream_path: str) -> list[str]:
    """Where the wrapper's selected versions differ from the upstream module's own requirements
    (for CoreDNS, which must be built with exactly its own graph). A requirement the wrapper
    leaves out is one that no package of the binary needs (a test dependency), and fine."""
    upstream = parse_gomod(upstream_gomod).requires
    return [f"{m} {upstream.get(m, 'absent')} (wrapper: {v})"
            for m, v in sorted(parse_gomod(wrapper_gomod).requires.items())
            if m != upstream_path and upstream.get(m) != v]


def graph_etcd(kubernetes_gomod: str) -> str:
    """The etcd server version k8s.io/kubernetes requires."""
    return parse_gomod(kubernetes_gomod).requires["go.etcd.io/etcd/server/v3"]


def kubeadm_coredns(constants_go: str) -> str:
    """kubeadm's ``CoreDNSVersion`` (cmd/kubeadm/app/constants/constants.go)."""
    m = re.search(r'CoreDNSVersion\s*=\s*"(v[^"]+)"', constants_go)
    if not m:
        raise ValueError("CoreDNSVersion not found in kubeadm's constants")
    return m[1]


def check_release(release: Release, kubernetes_gomod: str, constants_go: str, kubernetes_info: dict,
                  coredns_info: dict) -> list[str]:
    """How ``release`` disagrees with upstream (empty when it does not)."""
    bad = []
    if (etcd := graph_etcd(kubernetes_gomod)) != release.etcd:
        bad.append(f"etcd {release.etcd}, but k8s.io/kubernetes {release.kubernetes} requires {etcd}")
    if (coredns := kubeadm_coredns(constants_go)) != release.coredns:
        bad.append(f"CoreDNS {release.coredns}, but kubeadm {release.kubernetes} deploys {coredns}")
    if kubernetes_info.get("Time") != release.tag_date:
        bad.append(f"tag_date {release.tag_date}, but the proxy dates the tag {kubernetes_info.get('Time')}")
    commit = coredns_info.get("Origin", {}).get("Hash")
    if commit != release.coredns_commit:
        bad.append(f"coredns_commit {release.coredns_commit}, but the proxy says {commit or 'no commit'}")
    return bad


def pin(release: Release, cache: Path, progress: Callable[[str], None] = print,
        dest: Path = modules.MODULES) -> list[Path]:
    """Write the three wrapper modules of ``release`` into ``dest``; ValueError if the release
    disagrees with upstream."""
    go = require_go((1, 24))
    env = dict(go_env(cache), GOFLAGS="-modcacherw")  # tidy writes go.mod and go.sum
    work = cache / "pin"
    work.mkdir(parents=True, exist_ok=True)

    def download(path_at_version: str) -> dict:
        return json.loads(output_go(go, ["mod", "download", "-json", path_at_version], cwd=work, env=env,
                                    what=f"downloading {path_at_version}"))

    kube = download(f"k8s.io/kubernetes@{release.kubernetes}")
    kube_dir = Path(kube["Dir"])
    kube_gomod = (kube_dir / "go.mod").read_text()
    coredns = download(f"github.com/coredns/coredns@{release.coredns}")
    etcd = download(f"go.etcd.io/etcd/server/v3@{release.etcd}")
    constants = (kube_dir / "cmd/kubeadm/app/constants/constants.go").read_text()
    bad = check_release(release, kube_gomod, constants, json.loads(Path(kube["Info"]).read_text()),
                        json.loads(Path(coredns["Info"]).read_text()))
    if bad:
        raise ValueError(f"releases.py disagrees with upstream for {release.minor}: " + "; ".join(bad))

    coredns_gomod = (Path(coredns["Dir"]) / "go.mod").read_text()
    templates = {
        f"kubernetes-{release.kubernetes}": kubernetes_template(kube_gomod, release),
        f"etcd-{release.etcd}": etcd_template((Path(etcd["Dir"]) / "go.mod").read_text(), release.etcd),
        f"coredns-{release.coredns}": coredns_template(coredns_gomod, release.coredns),
    }
    written = []
    for name, text in templates.items():
        wdir = work / name
        shutil.rmtree(wdir, ignore_errors=True)
        wdir.mkdir()
        (wdir / "go.mod").write_text(text)
        progress(f"pin {name}: go mod tidy")
        run_go(go, ["mod", "tidy"], cwd=wdir, env=env, log=cache / "logs" / f"pin-{name}.log",
               what=f"resolving the wrapper module {name}")
        if name.startswith("coredns-"):
            diff = graph_differences((wdir / "go.mod").read_text(), coredns_gomod, COREDNS)
            if diff:
                raise ValueError(f"the CoreDNS wrapper's graph differs from CoreDNS's own: {'; '.join(diff)}")
        out = dest / name
        out.mkdir(parents=True, exist_ok=True)
        for f in modules.FILES:
            shutil.copyfile(wdir / f, out / f)
        written.append(out)
    return written

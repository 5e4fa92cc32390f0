"""releases.py against the committed wrapper modules: the Kubernetes version each go.mod requires,
every k8s.io staging module replaced by the matching v0.x.y, the etcd of the graph, CoreDNS; and
the rules ``pin`` makes new wrappers by (no Go, no network)."""
from __future__ import annotations

import pytest

from netconform.upstream import modules, pin
from netconform.upstream.components import COMPONENTS
from netconform.upstream.modules import parse_gomod
from netconform.upstream.releases import RELEASES, Release

PINNED = list(RELEASES.values())
IDS = [r.minor for r in PINNED]


@pytest.mark.parametrize("rel", PINNED, ids=IDS)
def test_the_kubernetes_wrapper_requires_the_release_and_replaces_staging_modules_by_their_tag(rel: Release):
    mod = modules.read(f"kubernetes-{rel.kubernetes}")
    assert mod.requires["k8s.io/kubernetes"] == rel.kubernetes
    assert mod.replaces, "no staging module replaced"
    for old, (new, version) in mod.replaces.items():
        assert old.startswith("k8s.io/") and new == old and version == rel.staging, (old, new, version)
    unreplaced = [m for m, v in mod.requires.items() if v == "v0.0.0" and m not in mod.replaces]
    assert not unreplaced, f"required at upstream's v0.0.0 placeholder without a replace: {unreplaced}"
    for name, version in mod.requires.items():
        if name in mod.replaces:
            assert version in ("v0.0.0", rel.staging), (name, version)
    kube = {c.package for c in COMPONENTS.values() if c.module == "kubernetes"}
    assert set(mod.tools) == kube


@pytest.mark.parametrize("rel", PINNED, ids=IDS)
def test_etcd_is_the_one_the_kubernetes_graph_uses(rel: Release):
    graph = modules.read(f"kubernetes-{rel.kubernetes}").requires
    assert graph["go.etcd.io/etcd/client/v3"] == rel.etcd
    assert graph["go.etcd.io/etcd/api/v3"] == rel.etcd
    etcd = modules.read(f"etcd-{rel.etcd}")
    assert etcd.requires["go.etcd.io/etcd/server/v3"] == rel.etcd
    assert etcd.requires["go.etcd.io/etcd/api/v3"] == rel.etcd
    assert etcd.tools == ["go.etcd.io/etcd/server/v3"]


@pytest.mark.parametrize("rel", PINNED, ids=IDS)
def test_coredns_is_the_pinned_version_built_from_its_own_module(rel: Release):
    mod = modules.read(f"coredns-{rel.coredns}")
    assert mod.requires["github.com/coredns/coredns"] == rel.coredns
    assert mod.tools == ["github.com/coredns/coredns"] and not mod.replaces


@pytest.mark.parametrize("rel", PINNED, ids=IDS)
def test_every_wrapper_has_a_go_sum_with_the_hash_of_each_required_module(rel: Release):
    for comp in COMPONENTS.values():
        path = modules.committed(comp.module_dir_name(rel))
        mod = parse_gomod((path / "go.mod").read_text())
        sums = {tuple(line.split()[:2]) for line in (path / "go.sum").read_text().splitlines()}
        for name, version in mod.requires.items():
            target, tv = mod.replaces.get(name, (name, version))
            if target.startswith("./"):  # a stand-in committed beside it (flannel's): no hash
                assert (path / target / "go.mod").is_file(), f"{path.name}: no {target}"
                continue
            assert (target, tv + "/go.mod") in sums, f"{path.name}: no go.sum hash of {target} {tv}"


def test_no_wrapper_module_is_left_from_a_release_no_longer_pinned():
    wanted = {c.module_dir_name(r) for r in PINNED for c in COMPONENTS.values()}
    present = {p.name for p in modules.MODULES.iterdir() if p.is_dir()}
    assert present == wanted


GOMOD = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/x/y v1.2.3
\tgo.etcd.io/etcd/server/v3 v3.7.0 // indirect
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tk8s.io/klog/v2 v2.130.1
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)
"""
REL = Release("v1.37.2", "v3.7.0", "v1.14.6", "2026-10-27T12:01:04Z", "a" * 40)


def test_go_mod_is_parsed_in_blocks_and_lines_with_comments_dropped():
    mod = parse_gomod(GOMOD)
    assert mod.module == "k8s.io/kubernetes" and mod.go == "1.26.0" and mod.godebug == ["default=go1.26"]
    assert mod.requires["go.etcd.io/etcd/server/v3"] == "v3.7.0"
    assert mod.replaces["k8s.io/api"] == ("./staging/src/k8s.io/api", "")
    assert parse_gomod("module m\nreplace a => b v1.0.0\ntool x/y\n").replaces == {"a": ("b", "v1.0.0")}


def test_the_kubernetes_template_keeps_upstreams_go_line_and_godebug_and_replaces_the_required_staging():
    mod = parse_gomod(pin.kubernetes_template(GOMOD, REL))
    assert mod.go == "1.26.0" and mod.godebug == ["default=go1.26"]
    assert mod.requires == {"k8s.io/kubernetes": "v1.37.2"}
    assert mod.replaces == {"k8s.io/api": ("k8s.io/api", "v0.37.2"),
                            "k8s.io/client-go": ("k8s.io/client-go", "v0.37.2")}
    assert "k8s.io/kubernetes/cmd/kube-apiserver" in mod.tools and len(mod.tools) == 5


def test_a_staging_module_upstream_does_not_replace_locally_stops_pin():
    broken = GOMOD.replace("\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n", "")
    with pytest.raises(ValueError, match="staging modules not as expected"):
        pin.kubernetes_template(broken, REL)


def test_etcd_and_coredns_templates_keep_the_upstream_godebug_defaults_under_a_go_line_with_tool():
    etcd = parse_gomod(pin.etcd_template("module go.etcd.io/etcd/server/v3\ngo 1.23.0\n", "v3.6.4"))
    assert etcd.go == "1.24" and etcd.godebug == ["default=go1.23"]
    assert etcd.tools == ["go.etcd.io/etcd/server/v3"]
    coredns = parse_gomod(pin.coredns_template("module github.com/coredns/coredns\ngo 1.25.3\n", "v1.14.6"))
    assert coredns.go == "1.25.3" and coredns.godebug == ["default=go1.25"]
    with pytest.raises(ValueError, match="replaces"):
        pin.coredns_template("module github.com/coredns/coredns\ngo 1.25\nreplace a => ../a\n", "v1.14.6")


def test_pin_refuses_a_release_that_disagrees_with_upstream():
    consts = 'const (\n\tCoreDNSVersion = "v1.14.6"\n)'
    info = {"Time": "2026-10-27T12:01:04Z"}
    origin = {"Origin": {"Hash": "a" * 40}}
    assert pin.check_release(REL, GOMOD, consts, info, origin) == []
    no_commit = Release(**{**REL.__dict__, "coredns_commit": None})
    assert pin.check_release(no_commit, GOMOD, consts, info, {}) == []
    assert pin.check_release(REL, GOMOD, consts, info, {}), "a commit the proxy does not confirm"
    bad = pin.check_release(Release("v1.37.2", "v3.6.9", "v1.13.1", "2026-01-01T00:00:00Z", "b" * 40),
                            GOMOD, consts, info, origin)
    assert [b.split()[0] for b in bad] == ["etcd", "CoreDNS", "tag_date", "coredns_commit"]


def test_the_coredns_wrapper_must_have_coredns_own_graph():
    upstream = ("module github.com/coredns/coredns\ngo 1.24\n"
                "require (\n\ta v1.0.0\n\tb v2.0.0\n\ttestify v1.0.0\n)\n")
    same = "module w\ngo 1.24\nrequire (\n\ta v1.0.0\n\tb v2.0.0\n\tgithub.com/coredns/coredns v1.0.0\n)\n"
    diff = pin.graph_differences
    assert diff(same, upstream, "github.com/coredns/coredns") == [], "a test-only requirement may go"
    assert diff(same.replace("b v2.0.0", "b v2.1.0"), upstream, "github.com/coredns/coredns") == \
        ["b v2.0.0 (wrapper: v2.1.0)"]
    assert diff(same.replace("\ta v1.0.0", "\tc v1.0.0"), upstream, "github.com/coredns/coredns") == \
        ["c absent (wrapper: v1.0.0)"]

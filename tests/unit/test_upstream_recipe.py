"""The build recipes of the upstream binaries: version stamps as upstream sets them, flags, the
go environment, and reading the version each binary prints (no Go needed)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from netconform.upstream.components import COMPONENTS
from netconform.upstream.gotool import go_env
from netconform.upstream.recipe import KUBERNETES_TAGS, kubernetes_ldflags, recipe
from netconform.upstream.releases import DEFAULT_RELEASE, RELEASES, Release, get, semver

R = Release(kubernetes="v1.37.2", etcd="v3.7.0", coredns="v1.14.6", tag_date="2026-10-27T12:01:04Z",
            coredns_commit="0123456789abcdef0123456789abcdef01234567")


def stamps(ldflags: str) -> dict[str, str]:
    """The -X assignments as the Go linker reads them (after the shell-style quoting)."""
    assert ldflags.startswith("all="), "without all= the stamps miss the dependency packages"
    words = shlex.split(ldflags.removeprefix("all="))
    pairs = [words[i + 1] for i, w in enumerate(words) if w == "-X"]
    return dict(p.split("=", 1) for p in pairs)


def test_kubernetes_stamps_both_version_packages_with_the_release():
    got = stamps(kubernetes_ldflags(R))
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert {k.removeprefix(pkg + "."): v for k, v in got.items() if k.startswith(pkg + ".")} == {
            "gitVersion": "v1.37.2", "gitMajor": "1", "gitMinor": "37", "gitTreeState": "archive",
            "gitCommit": "", "buildDate": "2026-10-27T12:01:04Z"}
    assert len(got) == 12


def test_kubernetes_binaries_are_stripped_trimmed_and_tagged_as_upstream():
    flags = recipe(COMPONENTS["kube-apiserver"], R).flags
    assert flags[0] == "-trimpath"
    assert flags[flags.index("-tags") + 1] == KUBERNETES_TAGS == "selinux,notest,grpcnotrace"
    assert flags[flags.index("-ldflags") + 1].endswith(" -s -w")


def test_etcd_and_coredns_have_no_kubernetes_tags_and_coredns_gets_its_short_commit():
    etcd = recipe(COMPONENTS["etcd"], R).flags
    coredns = recipe(COMPONENTS["coredns"], R).flags
    assert "-tags" not in etcd and "-tags" not in coredns
    assert etcd[etcd.index("-ldflags") + 1] == "-s -w"
    assert coredns[coredns.index("-ldflags") + 1] == \
        "-s -w -X github.com/coredns/coredns/coremain.GitCommit=0123456"
    unknown = recipe(COMPONENTS["coredns"], Release(**{**R.__dict__, "coredns_commit": None})).flags
    assert unknown[unknown.index("-ldflags") + 1] == "-s -w"


def test_go_args_write_to_the_given_path_and_build_the_components_package(tmp_path: Path):
    args = recipe(COMPONENTS["kubectl"], R).go_args(tmp_path / "out")
    assert args[0] == "build" and args[-3:] == ["-o", str(tmp_path / "out"), "k8s.io/kubernetes/cmd/kubectl"]


def test_the_digest_changes_with_the_flags_and_with_the_module(tmp_path: Path):
    for f in ("go.mod", "go.sum"):
        (tmp_path / f).write_text(f)
    older = Release(**{**R.__dict__, "tag_date": "2026-01-01T00:00:00Z"})
    a = recipe(COMPONENTS["kube-proxy"], R).digest(tmp_path)
    assert a == recipe(COMPONENTS["kube-proxy"], R).digest(tmp_path)
    assert a != recipe(COMPONENTS["kube-proxy"], older).digest(tmp_path)
    (tmp_path / "go.sum").write_text("another hash")
    assert a != recipe(COMPONENTS["kube-proxy"], R).digest(tmp_path)


def test_go_runs_without_cgo_on_the_local_toolchain_read_only_and_ignores_the_callers_go_settings(
        monkeypatch, tmp_path: Path):
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    monkeypatch.setenv("GOARCH", "arm64")
    monkeypatch.setenv("GOPROXY", "https://proxy.example")
    env = go_env(tmp_path)
    assert env["CGO_ENABLED"] == "0" and env["GOTOOLCHAIN"] == "local" and env["GOWORK"] == "off"
    assert "-mod=readonly" in env["GOFLAGS"].split()
    assert "GOARCH" not in env
    assert env["GOPROXY"] == "https://proxy.example", "a proxy setting is the caller's to make"
    assert env["GOMODCACHE"] == str(tmp_path / "gomod") and env["GOCACHE"] == str(tmp_path / "go-build")


OUTPUTS = {
    "kube-apiserver": "Kubernetes v1.34.12",
    "kubectl": "Client Version: v1.34.12\nKustomize Version: v5.7.1",
    "etcd": "etcd Version: 3.6.4\nGit SHA: Not provided (use ./build instead of go build)\n"
            "Go Version: go1.26.8\nGo OS/Arch: linux/amd64",
    "coredns": "CoreDNS-1.12.1\nlinux/amd64, go1.26.8, 707c7c1",
    "flanneld": "v0.28.10",
    "flannel-cni": "CNI flannel plugin v0.9.1",
    "kube-router": "Running /usr/local/bin/kube-router version v2.1.0, built on , go1.26.8",
}


@pytest.mark.parametrize("name", OUTPUTS)
def test_each_binarys_version_output_is_read_as_the_version_it_pins(name: str):
    rel = Release("v1.34.12", "v3.6.4", "v1.12.1", R.tag_date, R.coredns_commit)
    comp = COMPONENTS[name]
    assert comp.reported_version(OUTPUTS[name]) == comp.expected_report(rel)


def test_an_unstamped_kubernetes_binary_does_not_pass_for_the_release():
    comp = COMPONENTS["kube-apiserver"]
    assert comp.reported_version("Kubernetes v0.0.0-master+$Format:%H$") != comp.expected_report(R)


def test_releases_are_named_by_minor_or_full_version_and_the_default_is_the_newest():
    assert len(RELEASES) == 2
    newest = max(RELEASES.values(), key=lambda r: semver(r.kubernetes))
    assert DEFAULT_RELEASE == newest.minor
    for minor, rel in RELEASES.items():
        assert rel.minor == minor and get(rel.kubernetes) is rel and get(minor) is rel
        assert rel.staging == "v0.{1}.{2}".format(*semver(rel.kubernetes))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rel.tag_date)
        assert rel.coredns_commit is None or re.fullmatch(r"[0-9a-f]{40}", rel.coredns_commit)
    with pytest.raises(KeyError, match="pinned"):
        get("1.20")

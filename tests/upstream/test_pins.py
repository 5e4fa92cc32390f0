"""releases.py against the upstream sources the build downloaded (in the cache's GOMODCACHE):
etcd is the one k8s.io/kubernetes requires, CoreDNS is kubeadm's, the tag date and the CoreDNS
commit are the module proxy's. Fails, naming the build command, when the sources are not there."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from netconform.upstream import cache_root
from netconform.upstream.pin import check_release
from netconform.upstream.releases import RELEASES, Release

PINNED = list(RELEASES.values())


def _read(path: Path, rel: Release) -> str:
    if not path.is_file():
        pytest.fail(f"{path} is missing: run python -m netconform.upstream build --release {rel.minor}")
    return path.read_text()


@pytest.mark.parametrize("rel", PINNED, ids=[r.minor for r in PINNED])
def test_the_release_agrees_with_the_upstream_sources(rel: Release):
    gomod = cache_root() / "gomod"
    src = gomod / f"k8s.io/kubernetes@{rel.kubernetes}"
    download = gomod / "cache" / "download"
    bad = check_release(
        rel, _read(src / "go.mod", rel), _read(src / "cmd/kubeadm/app/constants/constants.go", rel),
        json.loads(_read(download / f"k8s.io/kubernetes/@v/{rel.kubernetes}.info", rel)),
        json.loads(_read(download / f"github.com/coredns/coredns/@v/{rel.coredns}.info", rel)))
    assert bad == []

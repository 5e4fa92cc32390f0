"""The pinned upstream releases: the one place where their versions are named.

Each entry is a Kubernetes release with the etcd and CoreDNS that belong to it: etcd at the
version k8s.io/kubernetes' own go.mod graph uses (go.etcd.io/etcd/server/v3, the etcd its
apiserver is tested against), CoreDNS at kubeadm's ``CoreDNSVersion`` constant for that release
(``cmd/kubeadm/app/constants/constants.go``), the CoreDNS a kubeadm cluster runs. Two minors are
pinned, the newest one the Go module proxy serves and one older, so a claim of supported versions
is backed by runs of both; each was built and smoke-tested (etcd, kube-apiserver, kubectl against
it) before it was pinned here. The wrapper modules under ``modules/`` pin every dependency of each
(go.mod and go.sum); ``tests/unit/test_upstream_releases.py`` holds the two in agreement.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


def semver(version: str) -> tuple[int, int, int]:
    """``(1, 37, 2)`` for ``v1.37.2``; a ValueError for anything else (no pre-releases here)."""
    m = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"not a release version: {version!r}")
    return int(m[1]), int(m[2]), int(m[3])


@dataclass(frozen=True)
class Release:
    """One Kubernetes release and the etcd and CoreDNS that go with it.

    ``tag_date`` is the release tag's time as the Go module proxy reports it (its ``.info``): the
    build uses it as ``buildDate``, as upstream uses ``SOURCE_DATE_EPOCH``, so a rebuild gives the
    same bytes. ``coredns_commit`` is the commit of CoreDNS's tag, which CoreDNS's own Makefile
    stamps into ``coremain.GitCommit``, when the proxy's ``Origin`` gives it (None when it does not:
    the binary then prints no commit).
    """

    kubernetes: str
    etcd: str
    coredns: str
    tag_date: str
    coredns_commit: str | None

    @property
    def minor(self) -> str:
        """``"1.37"`` for ``v1.37.2``: the name a release is chosen by."""
        major, minor, _ = semver(self.kubernetes)
        return f"{major}.{minor}"

    @property
    def staging(self) -> str:
        """The tag of the k8s.io staging modules cut with this release: ``v0.37.2`` for ``v1.37.2``."""
        _, minor, patch = semver(self.kubernetes)
        return f"v0.{minor}.{patch}"


RELEASES: dict[str, Release] = {
    r.minor: r
    for r in (
        Release(kubernetes="v1.37.2", etcd="v3.7.0", coredns="v1.14.6",
                tag_date="2026-10-27T12:01:04Z", coredns_commit=None),
        Release(kubernetes="v1.34.12", etcd="v3.6.4", coredns="v1.12.1",
                tag_date="2026-09-23T17:08:30Z", coredns_commit="707c7c10acd52cb94e959e76ae233d9b76af0854"),
    )
}
DEFAULT_RELEASE = max(RELEASES, key=lambda m: tuple(int(x) for x in m.split(".")))


def get(name: str) -> Release:
    """The pinned release called ``name``: its minor (``1.37``) or its full version (``v1.37.2``)."""
    key = name.removeprefix("v")
    if key in RELEASES:
        return RELEASES[key]
    for rel in RELEASES.values():
        if rel.kubernetes == "v" + key:
            return rel
    raise KeyError(f"no pinned release {name!r}; pinned: {', '.join(sorted(RELEASES))}")

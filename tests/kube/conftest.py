"""Helpers for the live-cluster backend's tests: a fake API server, and the suite run against it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ..lab.conftest import REPO, SuiteRun

from .fakeapi import KINDNET, FakeApiServer, World, node


def kube_command(report_dir, kubeconfig, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "--report-dir",
            str(report_dir), f"--kubeconfig={kubeconfig}", *args]


def run_kube_suite(report_dir, kubeconfig, *args: str, timeout: float = 300) -> SuiteRun:
    done = subprocess.run(kube_command(report_dir, kubeconfig, *args), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    return SuiteRun(done.returncode, done.stdout + done.stderr, report_dir)


def workers(count: int = 3) -> list[dict]:
    return [node(f"kind-worker{i}", f"172.18.0.{i + 1}") for i in range(1, count + 1)]


@pytest.fixture
def fake_cluster(tmp_path):
    """A 3-worker kind-like cluster running kindnet, every probe pod becoming Ready."""
    with FakeApiServer(World(workers(), existing=[KINDNET])) as api:
        api.kubeconfig_path = api.kubeconfig(tmp_path / "kubeconfig")
        yield api


def _releases() -> list[str]:
    """Every pinned release (newest first), or only $NETCONFORM_RELEASE: the README's claim of
    supported versions is backed by runs against each."""
    from netconform.upstream.releases import RELEASES
    chosen = os.environ.get("NETCONFORM_RELEASE")
    return [chosen] if chosen else sorted(RELEASES, key=lambda m: [int(x) for x in m.split(".")],
                                          reverse=True)


@pytest.fixture(scope="module", params=_releases())
def control_plane(request):
    """A real control plane (each pinned release's upstream binaries in turn) for a module's tests,
    on a lab run of its own: reached through its relay, removed with everything it made when the
    module ends. Skipped only when the binaries are not built (`./run tests` builds them) or
    without root."""
    if os.geteuid() != 0:
        pytest.skip("the lab's control plane needs root")
    from netconform.backends.lab.controlplane import ControlPlaneSpec, StandaloneControlPlane
    from netconform.upstream import NotBuilt, binary
    release = request.param
    try:
        for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            binary(component, release)
    except NotBuilt as exc:
        pytest.skip(f"the upstream binaries of Kubernetes {release} are not built ({exc}); "
                    "`./run tests` builds them")
    plane = StandaloneControlPlane(ControlPlaneSpec(release=release))
    try:
        yield plane.start(lambda message: None)
    finally:
        problems = plane.stop()
    assert problems == [], problems

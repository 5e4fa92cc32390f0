"""The build cache with a fake ``go``: cached binaries need no Go, a missing one is built once to a
temporary name and renamed, concurrent builds wait on the lock, and a failing, hanging, missing or
old Go is one clear error (the real builds are in tests/upstream)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from netconform.upstream import build
from netconform.upstream.build import NotBuilt, binary, ensure_built
from netconform.upstream.components import COMPONENTS
from netconform.upstream.gotool import GoError
from netconform.upstream.releases import DEFAULT_RELEASE, RELEASES

REL = RELEASES[DEFAULT_RELEASE]
FAKE_GO = """#!/bin/sh
# A stand-in for go: `env GOVERSION`, `version`, and `build ... -o OUT PKG` per $FAKE_GO_MODE.
case "$1" in
  env) echo "go${FAKE_GO_VERSION:-1.99.0}"; exit 0 ;;
  version) echo "go version go${FAKE_GO_VERSION:-1.99.0} linux/amd64"; exit 0 ;;
esac
echo "build in $PWD: $*" >> "$FAKE_GO_CALLS"
while [ $# -gt 2 ]; do [ "$1" = -o ] && out=$2; shift; done
case "$FAKE_GO_MODE" in
  fail) for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do
          echo "noise line $i"; done
        echo "compile: undefined: something.Wrong"; exit 1 ;;
  hang) sleep 300 ;;
  slow) sleep 3 ;;
esac
printf '#!/bin/sh\\necho fake\\n' > "$out"
chmod +x "$out"
"""


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    go = bindir / "go"
    go.write_text(FAKE_GO)
    go.chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_GO_CALLS", str(calls))
    monkeypatch.setenv("NETCONFORM_UPSTREAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FAKE_GO_MODE", raising=False)
    return calls


def test_a_missing_binary_is_built_once_then_reported_cached(fake_go: Path, tmp_path: Path):
    lines: list[str] = []
    got = ensure_built(REL.minor, ["kube-proxy", "etcd"], progress=lines.append)
    head = f"upstream {REL.kubernetes[1:]}:"
    assert [line.rsplit(" ", 3)[0] for line in lines] == [f"{head} kube-proxy built",
                                                          f"{head} etcd {REL.etcd} built"]
    assert got["kube-proxy"] == tmp_path / "cache" / "kube-proxy" / REL.kubernetes / "kube-proxy"
    assert got["etcd"].is_file() and binary("etcd", REL.minor) == got["etcd"]
    calls = fake_go.read_text().splitlines()
    assert len(calls) == 2 and f"/modules/kubernetes-{REL.kubernetes}:" in calls[0]
    assert not list(got["kube-proxy"].parent.glob(".*")), "a temporary file was left"
    lines.clear()
    ensure_built(REL.minor, ["kube-proxy", "etcd"], progress=lines.append)
    assert lines == [f"upstream {REL.kubernetes[1:]}: kube-proxy cached",
                     f"upstream {REL.kubernetes[1:]}: etcd {REL.etcd} cached"]
    assert len(fake_go.read_text().splitlines()) == 2


def test_cached_binaries_need_no_go_at_all(fake_go: Path, tmp_path: Path, monkeypatch):
    ensure_built(REL.minor, ["kubectl"], progress=lambda _: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("netconform.upstream.gotool.FALLBACK_GO", tmp_path / "no-go")
    assert ensure_built(REL.minor, ["kubectl"], progress=lambda _: None)["kubectl"].is_file()


def test_a_binary_without_a_record_of_todays_recipe_is_not_built(fake_go: Path, tmp_path: Path):
    path = ensure_built(REL.minor, ["kube-scheduler"], progress=lambda _: None)["kube-scheduler"]
    record = path.parent / "build.json"
    record.write_text(record.read_text().replace('"digest": "', '"digest": "0'))
    with pytest.raises(NotBuilt, match=f"run: python -m netconform.upstream build --release {REL.minor}"):
        binary("kube-scheduler", REL.minor)
    record.unlink()
    with pytest.raises(NotBuilt):
        binary("kube-scheduler", REL.minor)


def test_a_failed_build_names_the_component_quotes_gos_last_lines_and_leaves_nothing(
        fake_go: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FAKE_GO_MODE", "fail")
    with pytest.raises(GoError) as err:
        ensure_built(REL.minor, ["kube-apiserver"], progress=lambda _: None)
    msg = str(err.value)
    assert msg.startswith(f"building kube-apiserver {REL.kubernetes} (Kubernetes {REL.kubernetes}): "
                          "go build failed (exit 1)")
    assert "compile: undefined: something.Wrong" in msg and "noise line 30" in msg
    assert "noise line 1\n" not in msg, "only the last lines"
    outdir = tmp_path / "cache" / "kube-apiserver" / REL.kubernetes
    assert list(outdir.iterdir()) == []


def test_a_hanging_build_is_killed_at_its_timeout(fake_go: Path, monkeypatch):
    monkeypatch.setenv("FAKE_GO_MODE", "hang")
    started = time.monotonic()
    with pytest.raises(GoError, match="go build timed out after 1 s"):
        ensure_built(REL.minor, ["coredns"], progress=lambda _: None, timeout=1)
    assert time.monotonic() - started < 30


def test_two_builds_at_once_build_each_binary_once(fake_go: Path, monkeypatch):
    monkeypatch.setenv("FAKE_GO_MODE", "slow")
    lines: list[str] = []
    threads = [threading.Thread(target=ensure_built, args=(REL.minor, ["kube-proxy"]),
                                kwargs={"progress": lines.append}) for _ in range(2)]
    threads[0].start()
    deadline = time.monotonic() + 30  # the second starts once the first is building (lock held)
    while time.monotonic() < deadline and not (fake_go.exists() and fake_go.read_text().strip()):
        time.sleep(0.05)
    threads[1].start()
    for t in threads:
        t.join(60)
    assert len(fake_go.read_text().splitlines()) == 1
    assert sorted(line.split(": kube-proxy ")[1].split()[0] for line in lines if "kube-proxy" in line) == \
        ["built", "cached"]
    assert any("waiting for the build lock" in line and f"pid {os.getpid()}" in line for line in lines)


def test_go_too_old_for_the_modules_is_one_line_naming_both_versions(fake_go: Path, monkeypatch):
    monkeypatch.setenv("FAKE_GO_VERSION", "1.19.8")
    with pytest.raises(GoError) as err:
        ensure_built(REL.minor, ["kubectl"], progress=lambda _: None)
    assert "\n" not in str(err.value)
    assert "found go1.19.8" in str(err.value) and "Go project's own release" in str(err.value)


def test_no_go_anywhere_is_one_line(fake_go: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("netconform.upstream.gotool.FALLBACK_GO", tmp_path / "no-go")
    with pytest.raises(GoError, match="Go is not installed"):
        ensure_built(REL.minor, ["kubectl"], progress=lambda _: None)


def test_unknown_components_and_releases_are_refused(fake_go: Path):
    with pytest.raises(KeyError, match="unknown component"):
        ensure_built(REL.minor, ["kubelet"], progress=lambda _: None)
    with pytest.raises(KeyError, match="no pinned release"):
        build.binary("kubectl", "1.20")


def test_the_command_line_builds_shows_versions_and_says_what_is_missing(fake_go: Path, capsys):
    from netconform.upstream.__main__ import main

    assert main(["version"]) == 4
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(COMPONENTS) and out[0] == (f"kube-apiserver: not built ({REL.kubernetes}; run: python -m "
                                        f"netconform.upstream build --release {REL.minor})")
    assert main(["build", "--only", "kube-proxy"]) == 0
    assert capsys.readouterr().out.startswith(f"upstream {REL.kubernetes[1:]}: kube-proxy built in ")
    assert main(["version"]) == 4
    assert "kube-proxy: fake" in capsys.readouterr().out.splitlines()
    assert main(["build", "--only", "kubelet"]) == 4, "a usage error is netconform's exit 4"

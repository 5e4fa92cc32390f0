"""The pinned upstream binaries as ``./run tests`` builds them: every one of every pinned release
is in the cache and prints exactly its pinned version (each call bounded), the Kubernetes binaries
carry all of upstream's version stamps, and the CoreDNS built from its wrapper module answers a
query."""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from netconform.upstream import binary
from netconform.upstream.components import COMPONENTS
from netconform.upstream.recipe import kubernetes_version_vars
from netconform.upstream.releases import RELEASES, Release
from netconform.upstream.versions import self_report

PINNED = list(RELEASES.values())
CALL_TIMEOUT = 60


@pytest.mark.parametrize("name", list(COMPONENTS))
@pytest.mark.parametrize("rel", PINNED, ids=[r.minor for r in PINNED])
def test_each_binary_prints_exactly_its_pinned_version(rel: Release, name: str):
    comp = COMPONENTS[name]
    out = self_report(comp, binary(name, rel), timeout=CALL_TIMEOUT)
    assert comp.reported_version(out) == comp.expected_report(rel), out


@pytest.mark.parametrize("rel", PINNED, ids=[r.minor for r in PINNED])
def test_kubectl_carries_every_version_stamp_upstream_sets(rel: Release):
    out = subprocess.run([str(binary("kubectl", rel)), "version", "--client", "-o", "json"],
                         capture_output=True, text=True, timeout=CALL_TIMEOUT, check=True).stdout
    client = json.loads(out)["clientVersion"]
    stamps = kubernetes_version_vars(rel)
    keys = ("gitVersion", "gitCommit", "gitTreeState", "buildDate", "major", "minor")
    assert {k: client[k] for k in keys} == {
        "gitVersion": stamps["gitVersion"], "gitCommit": "", "gitTreeState": "archive",
        "buildDate": rel.tag_date, "major": stamps["gitMajor"], "minor": stamps["gitMinor"]}


@pytest.mark.parametrize("rel", PINNED, ids=[r.minor for r in PINNED])
def test_the_apiservers_raw_version_has_the_release_date_and_tree_state(rel: Release):
    out = subprocess.run([str(binary("kube-apiserver", rel)), "--version=raw"], capture_output=True,
                         text=True, timeout=CALL_TIMEOUT, check=True).stdout
    assert f'GitVersion:"{rel.kubernetes}"' in out and f'BuildDate:"{rel.tag_date}"' in out
    assert 'GitTreeState:"archive"' in out and 'GitCommit:""' in out


def _free_port() -> int:
    """A port free on 127.0.0.1 for UDP and TCP alike (CoreDNS listens on both): the kernel picks
    one free for UDP, which other tests' processes may hold for TCP; then another is tried."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            udp.bind(("127.0.0.1", 0))
            try:
                tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            except OSError:
                continue
            return udp.getsockname()[1]
    raise OSError("no port on 127.0.0.1 was free for both UDP and TCP in 50 tries")


def _query(port: int, name: str, qid: int) -> bytes:
    """One DNS query for an A record over UDP; the raw answer (b"" if none came)."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(packet, ("127.0.0.1", port))
        try:
            return s.recv(4096)
        except TimeoutError:
            return b""


@pytest.mark.parametrize("rel", PINNED, ids=[r.minor for r in PINNED])
def test_coredns_from_its_wrapper_module_answers_a_query(rel: Release, tmp_path: Path):
    for _ in range(3):  # a port free when chosen may be taken before CoreDNS binds it (other tests' labs)
        port = _free_port()
        corefile = tmp_path / "Corefile"
        corefile.write_text(f"example.test.:{port} {{\n  bind 127.0.0.1\n  whoami\n}}\n")
        log = tmp_path / "coredns.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(binary("coredns", rel)), "-conf", str(corefile)], cwd=tmp_path,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            answer = b""
            while not answer and time.monotonic() < deadline and proc.poll() is None:
                answer = _query(port, "probe.example.test", 4242)
            if not answer and proc.poll() is not None and b"address already in use" in log.read_bytes():
                continue
            assert answer, f"no answer in 30 s; coredns exited {proc.poll()}: {log.read_text()[-500:]}"
            qid, flags, _, ancount, _, arcount = struct.unpack("!HHHHHH", answer[:12])
            assert qid == 4242 and flags & 0x8000 and flags & 0xF == 0, "a response, NOERROR"
            assert ancount + arcount >= 1 and socket.inet_aton("127.0.0.1") in answer, "whoami names the client"
            return
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait(10)
    pytest.fail("three ports in a row were taken before CoreDNS could bind them")


def test_flannels_release_manifest_runs_only_images_and_copies_the_lab_knows():
    """The kept kube-flannel.yml (from the module the go.sum pins): every image it runs is one the
    lab maps to a pinned build, every init container is one of the copies the lab's kubelet does,
    and flanneld uses the Kubernetes subnet manager with the VXLAN backend, as the README says."""
    from netconform.backends.lab.cni_install import FLANNEL
    objects = FLANNEL.objects("10.244.0.0/16")
    daemonset = next(o for o in objects if o["kind"] == "DaemonSet")
    spec = daemonset["spec"]["template"]["spec"]
    images = {c["image"] for c in spec["initContainers"] + spec["containers"]}
    assert images == set(FLANNEL.images)
    assert all(c["command"][0] in FLANNEL.copy_commands for c in spec["initContainers"])
    assert "--kube-subnet-mgr" in spec["containers"][0]["args"] and spec["hostNetwork"] is True
    net = json.loads(next(o for o in objects if o["kind"] == "ConfigMap")["data"]["net-conf.json"])
    assert net["Backend"] == {"Type": "vxlan"}

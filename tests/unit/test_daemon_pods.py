"""The lab kubelet's part for a CNI's pods (daemon_pods.py), without a lab: what an init container
may copy and where, and which commands a container may run; and the flannel install's edits of its
manifest. The pods run for real in tests/lab/test_real_cnis.py."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec, V1VolumeMount

from netconform.backends.lab import cni_install
from netconform.backends.lab.daemon_pods import DaemonPods, PodFailed


class Install:
    copy_commands = ("cp", "/opt/bin/install-conf")
    entrypoints = {"cni:1": ("/usr/local/bin/agent",)}

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def image_files(self, image: str, release: str) -> dict[str, Path] | None:
        return self.files if image == "cni:1" else None


def daemons(tmp_path: Path) -> DaemonPods:
    plugin = tmp_path / "built" / "flannel-cni"
    plugin.parent.mkdir()
    plugin.write_bytes(b"\x7fELF")
    plugin.chmod(0o755)
    cni = SimpleNamespace(install=Install({"/flannel": plugin, "/usr/local/bin/agent": plugin}), release="1.37")
    return DaemonPods(SimpleNamespace(), SimpleNamespace(api=None), cni)


def pod(*containers: V1Container) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="p", namespace="kube-flannel"),
                 spec=V1PodSpec(containers=list(containers), host_network=True))


def copier(command: list[str], args: list[str], mounts: dict[str, str]) -> V1Container:
    return V1Container(name="install", image="cni:1", command=command, args=args,
                       volume_mounts=[V1VolumeMount(name=n, mount_path=p) for n, p in mounts.items()])


def test_an_init_container_copies_an_image_file_or_a_volume_file_onto_the_node(tmp_path: Path):
    d = daemons(tmp_path)
    node_bin, net_d, cfg = tmp_path / "node" / "bin", tmp_path / "node" / "net.d", tmp_path / "cfg"
    for folder in (node_bin, net_d, cfg):
        folder.mkdir(parents=True)
    (cfg / "cni-conf.json").write_text("{}")
    volumes = {"cni-plugin": node_bin, "cni": net_d, "flannel-cfg": cfg}
    d._copy(copier(["cp"], ["-f", "/flannel", "/opt/cni/bin/flannel"], {"cni-plugin": "/opt/cni/bin"}),
            pod(), volumes)
    assert (node_bin / "flannel").read_bytes() == b"\x7fELF" and (node_bin / "flannel").stat().st_mode & 0o111
    d._copy(copier(["/opt/bin/install-conf"], ["/etc/kube-flannel/cni-conf.json", "/etc/cni/net.d/10-flannel.conflist"],
                   {"cni": "/etc/cni/net.d", "flannel-cfg": "/etc/kube-flannel/"}), pod(), volumes)
    assert (net_d / "10-flannel.conflist").read_text() == "{}"


@pytest.mark.parametrize("command, args, mounts, words", [
    (["sh", "-c"], ["cp /flannel /opt/cni/bin"], {"cni-plugin": "/opt/cni/bin"}, "is not a copy"),
    (["cp"], ["-r", "/flannel", "/opt/cni/bin/flannel"], {"cni-plugin": "/opt/cni/bin"}, "is not a copy"),
    (["cp"], ["/flannel", "/usr/bin/flannel"], {"cni-plugin": "/opt/cni/bin"}, "is not on one of its volumes"),
    (["cp"], ["/bin/sh", "/opt/cni/bin/sh"], {"cni-plugin": "/opt/cni/bin"}, "/bin/sh: no such file"),
])
def test_anything_but_a_copy_onto_a_volume_is_the_pods_failure(tmp_path: Path, command, args, mounts, words):
    d = daemons(tmp_path)
    (tmp_path / "bin").mkdir()
    with pytest.raises(PodFailed, match=words) as failed:
        d._copy(copier(command, args, mounts), pod(), {"cni-plugin": tmp_path / "bin"})
    assert failed.value.reason == "CrashLoopBackOff"
    assert list((tmp_path / "bin").iterdir()) == []  # nothing copied on the host's behalf


def test_a_container_runs_only_a_binary_of_its_image(tmp_path: Path):
    d = daemons(tmp_path)
    with pytest.raises(PodFailed, match=r"command \['/bin/sh'\] is not a binary of cni:1"):
        d._start(V1Container(name="c", image="cni:1", command=["/bin/sh"]), pod(), "node-1", "172.18.0.2", {})


def test_an_image_binary_under_the_hosts_shared_dirs_runs_from_a_room_of_its_own(tmp_path: Path):
    """kube-router's image runs /usr/local/bin/kube-router (its ENTRYPOINT): /usr is the host's in
    a node's root, so the binary is mounted under /.netconform/image and run from there."""
    d, started = daemons(tmp_path), []
    d.cni.start_process = lambda node, log, argv, mounts, env: started.append((argv, mounts))
    d._start(V1Container(name="c", image="cni:1", args=["--run-router=true"]), pod(), "node-1", "172.18.0.2", {})
    argv, mounts = started[0]
    assert argv == ["/.netconform/image/usr/local/bin/agent", "--run-router=true"]
    assert mounts["/.netconform/image/usr/local/bin/agent"] == tmp_path / "built" / "flannel-cni" and "/flannel" in mounts
    assert "/usr/local/bin/agent" not in mounts


def test_only_an_init_container_may_run_the_hosts_shell(tmp_path: Path):
    d, started = daemons(tmp_path), []
    d.cni.start_process = lambda node, log, argv, mounts, env: started.append(argv)
    script = V1Container(name="install-cni", image="cni:1", command=["/bin/sh", "-c"], args=["set -e; true"])
    d._start(script, pod(), "node-1", "172.18.0.2", {}, shell=True)
    assert started == [["/bin/sh", "-c", "set -e; true"]]
    with pytest.raises(PodFailed, match="is not a binary of cni:1"):
        d._start(script, pod(), "node-1", "172.18.0.2", {})


def test_a_pod_on_a_pod_network_is_refused(tmp_path: Path):
    p = pod(V1Container(name="c", image="cni:1", command=["/flannel"]))
    p.spec.host_network = False
    with pytest.raises(PodFailed, match="on the host network only"):
        daemons(tmp_path).run(p, SimpleNamespace(node="node-1"))


MANIFEST = """\
kind: ConfigMap
apiVersion: v1
metadata: {name: kube-flannel-cfg, namespace: kube-flannel}
data:
  cni-conf.json: '{"name": "cbr0", "cniVersion": "1.0.0", "plugins": [{"type": "flannel"}]}'
  net-conf.json: '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}'
---
kind: Namespace
apiVersion: v1
metadata: {name: kube-flannel}
"""


def test_flannels_manifest_gets_the_cluster_cidr_and_the_cni_version_its_plugin_speaks(tmp_path, monkeypatch):
    (tmp_path / "kube-flannel.yml").write_text(MANIFEST)
    monkeypatch.setattr(cni_install, "kept_source", lambda component, name, release: tmp_path / name)
    objects = cni_install.FLANNEL.objects("10.123.0.0/16")
    data = cni_install.config_map(objects, "kube-flannel-cfg")["data"]
    assert json.loads(data["net-conf.json"]) == {"Network": "10.123.0.0/16", "Backend": {"Type": "vxlan"}}
    assert json.loads(data["cni-conf.json"])["cniVersion"] == "0.4.0"
    assert [o["kind"] for o in objects] == ["ConfigMap", "Namespace"]
    assert "10.244.0.0/16" in (tmp_path / "kube-flannel.yml").read_text()  # the kept file is untouched


def test_a_container_killed_by_a_signal_exits_as_kubelet_reports_it():
    from netconform.backends.lab.daemon_pods import exit_code
    assert exit_code(-9) == 137 and exit_code(1) == 1 and exit_code(0) == 0


KUBE_ROUTER_MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: kube-router-cfg, namespace: kube-system}
data:
  cni-conf.json: '{"cniVersion": "0.3.0", "name": "mynet", "plugins": [{"type": "bridge", "bridge": "kube-bridge"}]}'
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-router, namespace: kube-system}
spec:
  template:
    spec:
      containers:
      - name: kube-router
        image: docker.io/cloudnativelabs/kube-router
        args: ["--run-router=true", "--run-firewall=true", "--run-service-proxy=false"]
"""


def test_kube_routers_manifest_gets_portmap_a_short_graceful_restart_and_no_policy_controller(tmp_path, monkeypatch):
    (tmp_path / "kubeadm-kuberouter.yaml").write_text(KUBE_ROUTER_MANIFEST)
    monkeypatch.setattr(cni_install, "kept_source", lambda component, name, release: tmp_path / name)
    objects = cni_install.KUBE_ROUTER.objects("10.123.0.0/16")
    args = cni_install.daemonset(objects)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["--run-router=true", "--run-firewall=false", "--run-service-proxy=false", "--bgp-graceful-restart-time=10s"]
    conf = json.loads(cni_install.config_map(objects, "kube-router-cfg")["data"]["cni-conf.json"])
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap"]

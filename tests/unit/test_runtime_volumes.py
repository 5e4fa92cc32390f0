"""The lab kubelet's part of the probe image's contract: a path under a volume's mountPath, in a
container's args, names the lab's directory of that volume."""
from pathlib import Path

import pytest

from netconform.backends.lab.runtime_pods import in_volumes

MOUNTS = {"/var/run/netprobe": Path("/state/volumes/ns_pod_1234/token")}


@pytest.mark.parametrize("arg, expected", [
    ("/var/run/netprobe/token", "/state/volumes/ns_pod_1234/token/token"),
    ("--token-file=/var/run/netprobe/token", "--token-file=/state/volumes/ns_pod_1234/token/token"),
    ("/var/run/netprobe", "/state/volumes/ns_pod_1234/token"),
    ("/var/run/netprobe2/token", "/var/run/netprobe2/token"),  # another directory that only begins so
    ("--token-file", "--token-file"),
    ("name=/var/run/netprobe/token", "name=/var/run/netprobe/token"),  # not an option: left as it is
    ("/etc/var/run/netprobe/token", "/etc/var/run/netprobe/token"),
])
def test_paths_under_a_mount_are_the_volumes_directory(arg, expected):
    assert in_volumes(arg, MOUNTS) == expected


def _container(image, command=None):
    from kubernetes.client import V1Container
    return V1Container(name="probe", image=image, command=command)


def test_the_stock_python_runs_the_file_of_the_configmap_with_its_flags(tmp_path):
    """The lab runs exactly the agent the ConfigMap holds: the file its command names, in the
    volume the lab wrote the ConfigMap to, with the flags the command gives."""
    from netconform.backends.kube.manifests import AGENT_SOURCE, STOCK_PYTHON
    from netconform.backends.lab.objects import IMAGE
    from netconform.backends.lab.runtime_pods import entrypoint
    (tmp_path / "netprobe.py").write_text("print('the configmap')\n")
    mounts = {"/opt/netprobe": tmp_path}
    assert entrypoint(_container(STOCK_PYTHON, ["python", "-I", "-S", "/opt/netprobe/netprobe.py"]), mounts) == \
        (tmp_path / "netprobe.py", ("-I", "-S"))
    assert entrypoint(_container(IMAGE), {}) == (AGENT_SOURCE, ("-I", "-S"))  # the built image's entrypoint


@pytest.mark.parametrize("command, message", [
    (["python", "-I", "-S", "/usr/local/bin/netprobe"], "not in any of the pod's volumes"),
    (["python", "-I", "-S", "/opt/netprobe/absent.py"], "can't open file"),
    (["python", "-c", "import os", "/opt/netprobe/netprobe.py"], "the lab runs `python"),
    (["sh", "-c", "python /opt/netprobe/netprobe.py"], "the lab runs `python"),
    (None, "the lab runs `python"),
])
def test_a_stock_python_told_anything_else_crashes_as_it_would_on_a_node(tmp_path, command, message):
    from netconform.backends.kube.manifests import STOCK_PYTHON
    from netconform.backends.lab.runtime_pods import CannotRun, entrypoint
    (tmp_path / "netprobe.py").write_text("")
    with pytest.raises(CannotRun, match=message):
        entrypoint(_container(STOCK_PYTHON, command), {"/opt/netprobe": tmp_path})

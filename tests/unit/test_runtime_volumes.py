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

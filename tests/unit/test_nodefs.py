"""A node's own copies of host paths and the root its processes see them in (nodefs.py): which host
mounts an overlaid directory carries over, how a path is resolved before a mount point is made for
it, and what the root's script mounts. The real root is tried in tests/lab/test_real_cnis.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from netconform.backends.lab.nodefs import NodeFs, resolved, root_script, topmost_under

MOUNTINFO = """\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
24 22 0:21 / /run rw,nosuid shared:5 - tmpfs tmpfs rw
30 24 0:4 / /run/netns rw shared:9 - tmpfs tmpfs rw
31 30 0:4 net:[4026532] /run/netns/a rw shared:10 - nsfs nsfs rw
32 24 0:33 / /run/user/0 rw shared:11 - tmpfs tmpfs rw
33 22 0:34 / /run2 rw shared:12 - tmpfs tmpfs rw
34 22 0:35 / /etc/resolv\\040conf rw shared:13 - ext4 /dev/vda rw
"""


def test_an_overlaid_directory_carries_over_only_its_topmost_mounts():
    from netconform.backends.lab.nodefs import host_mounts
    mounts = host_mounts(MOUNTINFO)
    assert "/etc/resolv conf" in mounts  # octal escapes undone
    assert topmost_under("/run", mounts) == ["/run/netns", "/run/user/0"]  # not /run2, not /run/netns/a
    assert topmost_under("/var", mounts) == []


def test_a_path_is_resolved_through_the_hosts_symlinks_before_a_mount_point_is_made(tmp_path: Path):
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run").symlink_to("../run")
    # /var/run/secrets/... made in a root would follow the absolute /run link out of it
    assert resolved("/var/run/secrets/kubernetes.io", tmp_path) == "/run/secrets/kubernetes.io"
    assert resolved("/opt/cni/bin", tmp_path) == "/opt/cni/bin"


def test_the_root_overlays_only_the_host_directories_something_is_mounted_under(tmp_path: Path):
    node = tmp_path / "node"
    script = root_script(tmp_path / "root", {"/run/flannel": node, "/flannel": Path("/bin/true")},
                         [("etc", "dir"), ("run", "dir"), ("bin", "link:usr/bin"), ("usr", "dir")],
                         ["/run/netns", "/run/netns/a", "/usr/x"])
    lines = script.splitlines()
    assert any("mount -t overlay netconform-run" in line and "lowerdir=/run," in line for line in lines)
    assert not any("netconform-etc" in line or "netconform-usr" in line for line in lines)
    assert f"mount --rbind /etc {tmp_path}/root/etc" in lines  # the host's, as it is
    assert any(line.endswith(f"mount --rbind /run/netns {tmp_path}/root/run/netns") for line in lines)
    assert f"ln -s usr/bin {tmp_path}/root/bin" in lines
    assert f"mount --bind {node} {tmp_path}/root/run/flannel" in lines
    assert lines[0] == "set -e" and lines[-1].startswith("cd / && exec chroot")


def test_a_host_path_is_absolute_and_stays_in_the_nodes_directory(tmp_path: Path):
    fs = NodeFs(tmp_path)
    assert fs.host("/run/flannel") == tmp_path / "fs" / "run" / "flannel"
    assert fs.host("/run/xtables.lock", "FileOrCreate").is_file()
    for bad in ("run/flannel", "/run/../../etc"):
        with pytest.raises(ValueError):
            fs.host(bad)
    assert set(fs.mounts()) == {"/run/flannel", "/run/xtables.lock"} or os.path.islink("/run")


def test_a_dangling_symlink_on_the_way_goes_from_the_overlay_and_the_hosts_shared_directories_stay_as_they_are(tmp_path: Path):
    """Was: a dangling /run/flannel symlink on the host made `mkdir -p` fail in the root (and one
    that resolved into /usr would have made directories on the host itself)."""
    root = tmp_path / "root"
    script = root_script(root, {"/run/flannel": tmp_path, "/lib/modules": Path("/lib/modules")},
                         [("run", "dir"), ("lib", "dir")], [])
    lines = script.splitlines()
    removal = f"if [ -L {root}/run/flannel ]; then rm {root}/run/flannel; fi"
    assert removal in lines and lines.index(removal) < lines.index(f"mkdir -p {root}/run/flannel")
    assert not any("/lib/modules" in line for line in lines)  # the host's already, by the rbind of /lib
    with pytest.raises(ValueError, match="nothing is mounted under the host's shared"):
        root_script(root, {"/usr/local/x": tmp_path}, [("usr", "dir")], [])

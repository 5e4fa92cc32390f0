"""The resolv.conf and nsswitch.conf the lab's pods see, as kubelet and a container image give them.

Each node's pods of the run's namespace share one resolv.conf file, bind-mounted over their
/etc/resolv.conf; it is rewritten in place (same inode), so a fault that changes a node's search
list (faults.py: ``resolv_search``) reaches the running pods at once. Pods of other namespaces
(the kube backend's, a CNI's) get their namespace's ClusterFirst file.
"""
from __future__ import annotations

from pathlib import Path

from . import addons

NSSWITCH = "hosts: files dns\n"  # a container image's (Debian's base image has the same for hosts)


class PodResolvConfs:
    def __init__(self, directory: Path, run_namespace: str, nodes: list[str],
                 nameserver: str = addons.DNS_IP) -> None:
        self.directory = directory  # the run's state_dir/dns
        self.nameserver = nameserver  # kube-dns's ClusterIP, in the cluster's primary family
        self.run_namespace = run_namespace
        self.nodes = nodes

    def path(self, node: str) -> Path:
        """The resolv.conf of the run's pods on ``node``."""
        return self.directory / f"resolv-{node}.conf"

    def write_all(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            self.write(node)

    def write(self, node: str, search: tuple[str, ...] | None = None) -> None:
        """Written in place (same inode): the pods' bind mounts see each change at once; ``search``
        (with ${DOMAIN} for the cluster domain) replaces the search list, None restores kubelet's."""
        searched = None if search is None else [s.replace("${DOMAIN}", addons.DOMAIN) for s in search]
        with open(self.path(node), "w") as conf:
            conf.write(addons.cluster_first(self.run_namespace, search=searched, nameserver=self.nameserver))

    def for_namespace(self, namespace: str, node: str) -> Path:
        """The resolv.conf kubelet writes for a ClusterFirst pod of ``namespace`` (the run's own
        namespace's is the per-node file faults may rewrite)."""
        if namespace == self.run_namespace:
            return self.path(node)
        path = self.directory / f"resolv-{namespace}.conf"
        if not path.exists():
            path.write_text(addons.cluster_first(namespace, nameserver=self.nameserver))
        return path

    def nsswitch(self) -> Path:
        path = self.directory / "nsswitch.conf"
        if not path.exists():
            path.write_text(NSSWITCH)
        return path

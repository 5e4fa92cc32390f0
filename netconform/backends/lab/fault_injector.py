"""Faults injected into a running lab and taken back (faults.py says what each one does).

Each command's undo is worked out as it runs and kept, so a fault is reverted by what it did, even
one that failed half-way; what could not be undone stays recorded for a second revert. The
injector acts through the lab's parts (``lab``: a LabCluster): the nodes' namespaces, kube-proxy,
the API server's Services, the CNI's daemons, the probes and the pods' resolv.conf.
"""
from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from ...topology import IPV4, IPV6, KUBERNETES_SERVICE, POD, Topology
from ..base import BackendError, Progress
from . import addons, faults, netns, proxyrules
from .faults import Fault
from .naming import CLUSTER_CIDR, OUTSIDE_IP, SERVICE_CIDR, pod_cidr, pod_cidr6
from .proxy import merged

if TYPE_CHECKING:
    from .cluster import LabCluster

# A fault's routes_withdrawn: the graceful restart time (cni_install.py: 10 s) and the withdrawal,
# at most; the routes back after revert: a restarted agent peers at once, a peer whose sessions were
# cut tries again after GoBGP's idle hold time (30 s) and, failing that, its connect retry (120 s)
WITHDRAW_TIMEOUT, ROUTED_AGAIN_TIMEOUT = 40.0, 180.0


class FaultInjector:
    def __init__(self, lab: "LabCluster") -> None:
        self.lab = lab
        self._undo: dict[str, list[tuple[str, list[str]]]] = {}  # injected fault -> how to undo it
        self._injected: dict[str, Fault] = {}  # faults in force now, by name
        self._patched: dict[str, list[tuple[str, str, dict]]] = {}  # fault -> patches that undo it
        self._killed: dict[str, list[str]] = {}  # fault -> the nodes whose CNI daemon it killed

    @property
    def injected(self) -> dict[str, Fault]:
        return dict(self._injected)

    def inject(self, fault: Fault, live: Topology, progress: Progress = lambda message: None) -> None:
        """Break the running lab as ``fault`` says; revert(fault) takes it back (each command's
        undo is worked out as it runs, so a fault can be reverted whatever it changed)."""
        if fault.name in self._undo:
            raise BackendError(f"fault {fault.name} is injected already")
        if self.lab.spec.proxy_mode not in fault.modes:
            raise BackendError(faults.mode_refusal(fault, self.lab.spec.proxy_mode))
        refusal = faults.cni_refusal(fault, self.lab.spec.install) or \
            faults.family_refusal(fault, self.lab.spec.families)
        if refusal:
            raise BackendError(refusal)
        undo: list[tuple[str, list[str]]] = []
        self._undo[fault.name] = undo  # before the first command: a fault that fails half-way
        self._injected[fault.name] = fault  # is still reverted by what it did
        count = len(self.lab.topology.nodes)
        on_nodes = self.on_nodes(fault)
        # the commands after the fault's own table: they may end what the table keeps from coming back
        for index in on_nodes if fault.nft else ():
            node = self.lab.names.node(self.lab.topology.nodes[index - 1].name)
            rules = tuple(rule for chain in fault.nft for rule in chain.rules)
            script = faults.nft_script(fault.name, fault.nft, self._fault_values(live, index, node, rules))
            done = netns.run(node, ["nft", "-f", "-"], stdin=script)  # one transaction: all or none
            if done.returncode:
                raise BackendError(f"fault {fault.name} in {node}: nft: {done.stderr.strip()}")
            undo.append((node, faults.nft_undo(fault.name)))
        for index in on_nodes if fault.node_commands else ():
            node = self.lab.names.node(self.lab.topology.nodes[index - 1].name)
            values = self._fault_values(live, index, node, fault.node_commands)
            for command in fault.node_commands:
                self._fault_commands(fault, node, command, values, undo)
        for index in on_nodes if fault.pod_commands else ():
            node = self.lab.topology.nodes[index - 1].name
            for pod in (e for e in live.of_kind(POD) if e.node == node):
                namespace = self.lab.names.pod(node, pod.role)
                values = {**self._fault_values(live, index, None, fault.pod_commands),
                          "${POD_IP}": [pod.address_in(IPV4) or pod.ip],
                          "${POD_IP6}": [pod.address_in(IPV6)] if pod.address_in(IPV6) else []}
                for command in fault.pod_commands:
                    self._fault_commands(fault, namespace, command, values, undo)
        if fault.control_plane_commands:
            values = self._fault_values(live, 1, None, fault.control_plane_commands)
            for command in fault.control_plane_commands:
                self._fault_commands(fault, self.lab.control_plane.netns, command, values, undo)
        for index in range(1, count + 1) if fault.port_commands else ():
            values = self._fault_values(live, index, None, fault.port_commands)
            for command in fault.port_commands:
                self._fault_commands(fault, self.lab.names.world, command, values, undo)
        if fault.proxy:
            self.reconfigure_proxies(live, progress)
        if fault.split_duo:
            self.lab.probes.split.add(fault.name)
            self.lab.probes.restart_split_containers(live)
        if fault.resolv_search is not None:
            for index in on_nodes:
                self.lab.resolv.write(self.lab.topology.nodes[index - 1].name, fault.resolv_search)
        for namespace, name, patch in fault.service_patches:
            self._patch_service(fault, namespace or self.lab.names.prefix, name, patch)
        if any(namespace == addons.NAMESPACE for namespace, _, _ in fault.service_patches):
            self._wait_dns_endpoints(live, progress)
        if fault.proxy_frozen:
            self.lab.proxies.signal(signal.SIGSTOP)
        affected = [self.lab.topology.nodes[index - 1].name for index in on_nodes]
        if fault.agent_killed:
            self._killed[fault.name] = affected
            for node in affected:
                self.lab.runtime_pods.daemons.kill(node)
        if fault.routes_withdrawn:
            cidrs = [pod_cidr(index) for index in on_nodes]
            self.lab.cni.wait_withdrawn(cidrs, WITHDRAW_TIMEOUT, progress)
        self._forget_connections()
        progress(f"lab: fault injected: {fault.name} ({fault.description})")

    def on_nodes(self, fault: Fault) -> list[int]:
        """The 1-based indexes of the nodes the fault's ``on_nodes`` names."""
        count = len(self.lab.topology.nodes)
        return list({"all": range(1, count + 1), "first": [1], "last": [count]}[fault.on_nodes])

    def revert(self, fault: Fault, live: Topology, progress: Progress = lambda message: None) -> None:
        """Take an injected fault back: its commands undone in reverse order, kube-proxy's
        configuration put back, duo's containers together again."""
        if fault.name not in self._injected:
            raise BackendError(f"fault {fault.name} is not injected")
        failed, problems = [], []
        for namespace, argv in reversed(self._undo[fault.name]):  # every undo is tried
            done = netns.run(namespace, argv)
            if done.returncode:
                failed.insert(0, (namespace, argv))
                problems.append(f"{namespace}: {' '.join(argv)}: {done.stderr.strip()}")
        if problems:  # what could not be undone stays recorded, so a second revert tries again
            self._undo[fault.name] = failed
            raise BackendError(f"fault {fault.name} not reverted: {'; '.join(problems)}")
        self._undo[fault.name] = []  # all undone: a second revert (after a failed patch) redoes none
        while self._patched.get(fault.name):  # each undone patch is struck off only once it is done
            namespace, name, patch = self._patched[fault.name][-1]
            self.lab.service(namespace, name, patch)
            self._patched[fault.name].pop()
        self._patched.pop(fault.name, None)
        del self._undo[fault.name], self._injected[fault.name]
        if fault.proxy:
            self.reconfigure_proxies(live, progress)
        if fault.split_duo:
            self.lab.probes.split.discard(fault.name)
            self.lab.probes.restart_split_containers(live)
        if fault.resolv_search is not None:
            for node in self.lab.topology.nodes:
                self.lab.resolv.write(node.name)
        if any(namespace == addons.NAMESPACE for namespace, _, _ in fault.service_patches):
            self._wait_dns_endpoints(live, progress)
        for node in self._killed.pop(fault.name, []):
            self.lab.runtime_pods.daemons.restart(node)
        if fault.revert_restarts_agent:
            for index in self.on_nodes(fault):
                node = self.lab.topology.nodes[index - 1].name
                self.lab.runtime_pods.daemons.kill(node)
                self.lab.runtime_pods.daemons.restart(node)
        if fault.agent_killed or fault.routes_withdrawn:
            self.lab.cni.wait_routed(ROUTED_AGAIN_TIMEOUT, progress)
        if fault.proxy_frozen:  # it catches up with what changed meanwhile
            self.lab.proxies.signal(signal.SIGCONT)
            self.lab.proxies.wait_synced(live, self.lab.proxied_namespaces(), self.lab.names.prefix,
                                         self.lab.spec.proxy_sync_timeout, progress, others=self.lab.dns_endpoints())
        self._forget_connections()
        progress(f"lab: fault reverted: {fault.name}")

    def _patch_service(self, fault: Fault, namespace: str, name: str, patch: dict) -> None:
        """Patch a Service's spec, keeping the fields' values before it for revert."""
        spec = self.lab.service(namespace, name)
        back = {"spec": {key: spec.get(key) for key in patch.get("spec", {})}}
        self._patched.setdefault(fault.name, []).append((namespace, name, back))
        self.lab.service(namespace, name, patch)

    def frozen(self) -> bool:
        """A fault has stopped every kube-proxy: nothing can be waited for from them."""
        return any(f.proxy_frozen for f in self._injected.values())

    def _wait_dns_endpoints(self, live: Topology, progress: Progress) -> None:
        """Until every kube-proxy sends kube-dns where its selector now leads (nowhere, or back);
        not while a fault keeps them stopped (they would never)."""
        if self.frozen():
            return
        selector = self.lab.service(addons.NAMESPACE, "kube-dns").get("selector")
        serving = selector == {"k8s-app": "kube-dns"}
        expected = self.lab.dns_endpoints() if serving else \
            {key: set() for key in self.lab.dns_endpoints()}
        self.lab.proxies.wait_synced(live, self.lab.proxied_namespaces(), self.lab.names.prefix,
                                     self.lab.spec.proxy_sync_timeout, progress, others=expected)

    def _forget_connections(self) -> None:
        """Forget every node's tracked UDP and ICMP flows: a flow reusing an earlier one's ports
        would otherwise keep the NAT chosen before the change, and a fault's rules in the nat
        table would not see it (TCP connections stay: netns.flush_conntrack says why)."""
        for namespace in self.lab.node_namespaces().values():
            problem = netns.flush_conntrack(namespace)
            if problem:
                raise BackendError(f"lab: {problem}")

    def reconfigure_proxies(self, live: Topology, progress: Progress) -> None:
        """kube-proxy restarted with the settings of every fault injected now, merged."""
        settings: dict = {}
        for fault in self._injected.values():
            settings = merged(settings, fault.proxy)
        self.lab.proxies.restart(settings)
        self.lab.proxies.wait_synced(live, self.lab.proxied_namespaces(), self.lab.names.prefix,
                                     self.lab.spec.proxy_sync_timeout, progress)
        if self.frozen():  # the restarted processes are stopped again, as the fault wants them
            self.lab.proxies.signal(signal.SIGSTOP)

    def _fault_values(self, live: Topology, index: int, node_ns: str | None,
                      commands: tuple[tuple[str, ...], ...]) -> dict[str, list[str]]:
        """What each placeholder of a fault's commands stands for on one node (faults.py); the
        node's rules are read only when a command asks for kube-proxy's affinity lists."""
        backends = [live.endpoint(name).ip for name in live.services["web"].backends]
        values = {"${POD_CIDR}": [pod_cidr(index)], "${LAST_POD_CIDR}": [pod_cidr(len(self.lab.topology.nodes))],
                  "${CLUSTER_CIDR}": [CLUSTER_CIDR], "${SERVICE_CIDR}": [SERVICE_CIDR],
                  "${PORT}": [self.lab.names.underlay_port(index)],
                  "${OUTSIDE_IP}": [OUTSIDE_IP], "${BACKEND_IP}": backends,
                  "${KUBERNETES_IP}": [live.endpoint(f"svc/{KUBERNETES_SERVICE}").ip],
                  "${LAST_BACKEND_IP}": backends[-1:]}
        values.update({faults.cluster_ip_placeholder(name): [service.cluster_ip]
                       for name, service in live.services.items()})
        values.update({faults.backend_ips_placeholder(name): [live.endpoint(b).ip for b in service.backends]
                       for name, service in live.services.items()})
        if self.lab.spec.has_ipv6:
            values.update({"${POD_CIDR6}": [pod_cidr6(index)],
                           "${LAST_POD_CIDR6}": [pod_cidr6(len(self.lab.topology.nodes))]})
        if node_ns is not None and any("${AFFINITY_LIST}" in part for c in commands for part in c):
            values["${AFFINITY_LIST}"] = proxyrules.affinity_lists(
                self.lab.spec.proxy_mode, self.lab.proxies.rules_text(node_ns))
        return values

    def _fault_commands(self, fault: Fault, namespace: str, command: tuple[str, ...],
                        values: dict[str, list[str]], undo: list[tuple[str, list[str]]]) -> None:
        argvs = faults.expand(command, values)
        if not argvs:  # e.g. no affinity list yet: the fault would silently do nothing
            raise BackendError(f"fault {fault.name} in {namespace}: nothing to apply "
                               f"{' '.join(command)} to")
        for argv in argvs:
            if argv[0] in ("iptables", "ip6tables"):  # wait for the xtables lock kube-proxy also takes
                argv = [argv[0], "-w", "5", *argv[1:]]
            before = ""
            if argv[:3] == ["ip", "route", "del"]:
                family = ["-6"] if ":" in argv[3] else []  # `ip route show` lists IPv4 alone
                before = netns.run(namespace, ["ip", *family, "route", "show", argv[3]]).stdout.strip()
            elif argv[:3] == ["ip", "link", "set"] and "mtu" in argv:
                shown = netns.run(namespace, ["ip", "-o", "link", "show", argv[3]]).stdout.split()
                before = shown[shown.index("mtu") + 1] if "mtu" in shown else ""
            try:
                reverse = faults.undo(argv, before)
            except faults.NotReversible as exc:
                raise BackendError(f"fault {fault.name} in {namespace}: {exc}") from None
            done = netns.run(namespace, argv)
            if done.returncode:
                raise BackendError(f"fault {fault.name} in {namespace}: {' '.join(argv)}: "
                                   f"{done.stderr.strip()}")
            if reverse:
                undo.append((namespace, reverse))

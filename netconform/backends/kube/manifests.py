"""Render the run's Kubernetes objects from the Jinja2 templates under ``manifests/kube/``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import yaml

from ...plan import DUO_CONTAINERS, ECHO_PORT, pod_roles
from ...profiles import MANIFESTS
from ...services import (BACKEND_LABEL, BACKEND_ROLE, NAMED_HOSTNAME, NAMED_ROLE, NAMED_SUBDOMAIN, SERVICES,
                         host_ports, hostport_role)
from ...topology import STANDALONE, Topology, family_of
from .hostports import CLAIM, HostPorts

TEMPLATES = MANIFESTS / "kube"
CONTROL_PORT = 9000  # pod probes' control API (duo's second container: 9001), reached by pod proxy
# the hostNetwork probe shares the node's ports: stay off the usual ones (block 0 of hostports.py;
# a run that shares the cluster with another takes another block)
HOST_ECHO_PORT = HostPorts().host_echo
MANAGED_BY = "app.kubernetes.io/managed-by=netconform"
TOKEN_SECRET = "netprobe-token"  # the run's token, which every probe wants on its control API
TOKEN_DIR = "/var/run/netprobe"  # where the probes find it (the Secret's volume; key "token")
# The agent's default delivery: its one file (probes/netprobe.py, the standard library alone) in a
# ConfigMap, run by a stock Python image pinned by its multi-arch index digest, so that a run needs
# no image of its own. --probe-image replaces both with an image built from probes/Dockerfile.
STOCK_PYTHON = ("python:3.12-slim@sha256:"
                "78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea")
AGENT_CONFIGMAP = "netprobe-agent"
AGENT_DIR = "/opt/netprobe"  # where the ConfigMap's key netprobe.py is mounted
AGENT_SOURCE = Path(__file__).resolve().parents[3] / "probes" / "netprobe.py"
AGENT_COMMAND = ("python", "-I", "-S", f"{AGENT_DIR}/netprobe.py")  # no site packages, no environment
IMAGE_AGENT_COMMAND = ("python", "-I", "-S", "/usr/local/bin/netprobe")  # probes/Dockerfile's entrypoint


@dataclass
class DeploySpec:
    run_id: str
    namespace: str
    image: str | None = None  # None: the agent by ConfigMap, run by STOCK_PYTHON
    pods_per_node: int = 2
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict] = field(default_factory=list)
    image_pull_secret: str | None = None
    image_registry: str | None = None  # --image-registry: the probes' image is pulled from this mirror
    host_ports: HostPorts = HostPorts()  # the run's ports on every node (hostports.py)

    @property
    def pulled_image(self) -> str:
        """The probes' image as the manifests name it: --probe-image or STOCK_PYTHON, from the
        mirror when there is one (images.py)."""
        from .images import mirrored
        image = self.image or STOCK_PYTHON
        return mirrored(image, self.image_registry) if self.image_registry else image

    @property
    def labels(self) -> dict[str, str]:
        key, _, value = MANAGED_BY.partition("=")
        return {"app.kubernetes.io/name": "netconform", key: value, "netconform.io/run": self.run_id}


def _documents(names: tuple[str, ...], values: dict) -> list[dict]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    objects = []
    for name in names:
        text = env.get_template(name).render(values)
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def _labels(spec: DeploySpec) -> str:
    return yaml.safe_dump(spec.labels, default_flow_style=False).strip()


def render(spec: DeploySpec, planned: Topology, node_ports: dict[str, int],
           node_ips: dict[str, str]) -> list[dict]:
    """Every object of the run, in creation order: the namespace, the probes, the Services.
    ``node_ips``: the nodes' InternalIPs, for the hostIP of the pods that share a hostPort."""
    holder = hostport_role(planned)
    standalone = [{"role": e.role, "node": e.node,
                   **({"hostname": NAMED_HOSTNAME, "subdomain": NAMED_SUBDOMAIN} if e.role == NAMED_ROLE else {}),
                   "ports": host_ports(e.role, holder, node_ips[e.node], spec.host_ports.hostport,
                                       spec.host_ports.shared)
                   or [{"containerPort": ECHO_PORT, "protocol": p} for p in ("TCP", "UDP")]}
                  for e in planned.of_kind(STANDALONE)]
    values = {
        "namespace": spec.namespace, "run_id": spec.run_id, "image": spec.pulled_image,
        "agent_command": list(AGENT_COMMAND) if spec.image is None else None,
        "agent_configmap": AGENT_CONFIGMAP, "agent_dir": AGENT_DIR,
        "labels": _labels(spec),
        "node_selector": spec.node_selector, "tolerations": spec.tolerations,
        "nodes": [node.name for node in planned.nodes],
        "image_pull_secret": spec.image_pull_secret, "pod_roles": pod_roles(spec.pods_per_node),
        "hostport_role": holder, "hostport": spec.host_ports.hostport,
        "duo_containers": DUO_CONTAINERS, "echo_port": ECHO_PORT, "control_port": CONTROL_PORT,
        "host_echo_port": spec.host_ports.host_echo, "host_control_port": spec.host_ports.host_control,
        "host_ports_claim": {CLAIM: spec.host_ports.claim},
        "services": [planned.services.get(s.name, s) for s in SERVICES], "backend_role": BACKEND_ROLE,
        "backend_label": BACKEND_LABEL,
        "node_ports": node_ports,
        "standalone": standalone, "token_secret": TOKEN_SECRET, "token_dir": TOKEN_DIR,
    }
    return _documents(("namespace.yaml.j2", "probes.yaml.j2", "services.yaml.j2"), values)


def render_namespace(spec: DeploySpec) -> dict:
    """The run's namespace alone, made first: it carries the run's claim on its host ports."""
    return _documents(("namespace.yaml.j2",), {"namespace": spec.namespace, "labels": _labels(spec),
                                                "host_ports_claim": {CLAIM: spec.host_ports.claim}})[0]


def render_endpoint_slices(spec: DeploySpec, live: Topology) -> list[dict]:
    """The hand-made EndpointSlices of the Services without a selector, made once their backend
    pods have IPs: one per port group (a port and its target over TCP and UDP) and backend pod."""
    slices = []
    for service in (s for s in live.services.values() if s.manual):
        groups = [("first", [("tcp", service.target_port), ("udp", service.target_port)])]
        if service.second_port:
            groups.append(("second", [("second-tcp", service.second_port[1]),
                                      ("second-udp", service.second_port[1])]))
        pods = {live.endpoint(b).pod: live.endpoint(b) for b in service.backends}
        # one slice per address family too (a slice holds one addressType): each of the pod's IPs
        slices += [{"name": f"{service.name}-{group}-{backend.node}{'' if family == 'ipv4' else '-v6'}",
                    "service": service.name, "ip": ip, "node": backend.node, "ports": ports,
                    "address_type": "IPv6" if family == "ipv6" else "IPv4"}
                   for group, ports in groups for _, backend in sorted(pods.items())
                   for family, ip in (backend.addresses or ((family_of(backend.ip), backend.ip),))]
    return _documents(("endpointslices.yaml.j2",),
                      {"namespace": spec.namespace, "labels": _labels(spec), "slices": slices})


def parse_node_selector(text: str | None) -> dict[str, str]:
    """``--node-selector k=v,k2=v2``"""
    selector = {}
    for part in filter(None, (text or "").split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--node-selector {text!r}: expected key=value[,key=value]")
        selector[key.strip()] = value.strip()
    return selector


def parse_tolerations(text: str | None) -> list[dict]:
    """``--tolerations key[=value]:Effect,…`` or ``all`` (tolerate every taint)."""
    if not text:
        return []
    if text.strip() == "all":
        return [{"operator": "Exists"}]
    tolerations = []
    for part in text.split(","):
        key_value, sep, effect = part.strip().rpartition(":")
        if not sep:
            key_value, effect = part.strip(), ""
        if effect not in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(f"--tolerations {text!r}: unknown effect {effect!r}")
        key, has_value, value = key_value.partition("=")
        toleration = {"key": key, "operator": "Equal" if has_value else "Exists"}
        if has_value:
            toleration["value"] = value
        if effect:
            toleration["effect"] = effect
        tolerations.append(toleration)
    return tolerations


RUN_ROLE = TEMPLATES / "rbac.yaml"  # the ClusterRole a run needs: the README lists it, the lab binds it


def run_role() -> dict:
    """The ClusterRole ``netconform-run``: every permission a run uses, and no other."""
    return yaml.safe_load(RUN_ROLE.read_text())


def agent_configmap(spec: DeploySpec) -> dict:
    """The ConfigMap holding the agent itself (key netprobe.py), which every probe mounts at
    AGENT_DIR and STOCK_PYTHON runs; a run with --probe-image has none."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": AGENT_CONFIGMAP, "namespace": spec.namespace, "labels": dict(spec.labels)},
            "data": {"netprobe.py": AGENT_SOURCE.read_text()}}


def run_setup(spec: DeploySpec, token: str) -> list[dict]:
    """What the probes need before they start: the token's Secret, and the agent's ConfigMap
    unless an image brings the agent."""
    return [token_secret(spec, token), *([agent_configmap(spec)] if spec.image is None else [])]


def token_secret(spec: DeploySpec, token: str) -> dict:
    """The Secret holding the run's probe token, mounted by every probe at TOKEN_DIR."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": TOKEN_SECRET, "namespace": spec.namespace, "labels": dict(spec.labels)},
            "stringData": {"token": token}}

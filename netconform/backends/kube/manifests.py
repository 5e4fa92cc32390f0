"""Render the run's Kubernetes objects from the Jinja2 templates under ``manifests/kube/``."""
from __future__ import annotations

from dataclasses import dataclass, field

import jinja2
import yaml

from ...plan import DUO_CONTAINERS, ECHO_PORT, pod_roles
from ...profiles import MANIFESTS
from ...services import BACKEND_ROLE, HOSTPORT_PORT, SERVICES, hostport_role
from ...topology import Topology

TEMPLATES = MANIFESTS / "kube"
CONTROL_PORT = 9000  # pod probes' control API (duo's second container: 9001), reached by pod proxy
HOST_ECHO_PORT = 18080  # the hostNetwork probe shares the node's ports: stay off the usual ones
HOST_CONTROL_PORT = 19000
MANAGED_BY = "app.kubernetes.io/managed-by=netconform"


@dataclass
class DeploySpec:
    run_id: str
    namespace: str
    image: str
    pods_per_node: int = 2
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict] = field(default_factory=list)
    image_pull_secret: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        key, _, value = MANAGED_BY.partition("=")
        return {"app.kubernetes.io/name": "netconform", key: value, "netconform.io/run": self.run_id}


def render(spec: DeploySpec, planned: Topology, node_ports: dict[str, int]) -> list[dict]:
    """Every object of the run, in creation order: the namespace, the probes, the Services."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    values = {
        "namespace": spec.namespace, "run_id": spec.run_id, "image": spec.image,
        "labels": yaml.safe_dump(spec.labels, default_flow_style=False).strip(),
        "node_selector": spec.node_selector, "tolerations": spec.tolerations,
        "image_pull_secret": spec.image_pull_secret, "pod_roles": pod_roles(spec.pods_per_node),
        "hostport_role": hostport_role(planned), "hostport": HOSTPORT_PORT,
        "duo_containers": DUO_CONTAINERS, "echo_port": ECHO_PORT, "control_port": CONTROL_PORT,
        "host_echo_port": HOST_ECHO_PORT, "host_control_port": HOST_CONTROL_PORT,
        "services": [planned.services.get(s.name, s) for s in SERVICES], "backend_role": BACKEND_ROLE,
        "node_ports": node_ports,
    }
    objects = []
    for name in ("namespace.yaml.j2", "probes.yaml.j2", "services.yaml.j2"):
        text = env.get_template(name).render(values)
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


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

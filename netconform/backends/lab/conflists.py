"""Load a lab CNI configuration for one node: fill in the node's values, keep IPAM in the run."""
from __future__ import annotations

import json
from pathlib import Path
from string import Template


class ConflistError(ValueError):
    pass


def load(path: Path, node_values: dict[str, str], ipam_dir: Path) -> dict:
    """Read a conflist (or a single-plugin .conf, wrapped as libcni does) for one node.

    ``${POD_CIDR}``, ``${NODE_IP}`` and ``${NODE_NAME}`` are replaced by the node's values.
    host-local IPAM without a dataDir gets one inside the run's state directory, so the lab never
    writes to /var/lib/cni and leaves no IPAM file behind.
    """
    try:
        text = Template(path.read_text()).safe_substitute(node_values)
        conf = json.loads(text)
    except OSError as exc:
        raise ConflistError(f"cannot read CNI config {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConflistError(f"CNI config {path} is not valid JSON: {exc}") from None
    if not isinstance(conf, dict):
        raise ConflistError(f"CNI config {path} must be a JSON object")
    if "plugins" not in conf:
        if "type" not in conf:
            raise ConflistError(f"CNI config {path} has neither 'plugins' nor 'type'")
        conf = {"cniVersion": conf.get("cniVersion", "1.0.0"), "name": conf.get("name", path.stem),
                "plugins": [{k: v for k, v in conf.items() if k not in ("name", "cniVersion")}]}
    for key in ("cniVersion", "name"):
        if not isinstance(conf.get(key), str):
            raise ConflistError(f"CNI config {path} needs a string '{key}'")
    plugins = conf["plugins"]
    if not isinstance(plugins, list) or not plugins or not all(
            isinstance(p, dict) and isinstance(p.get("type"), str) for p in plugins):
        raise ConflistError(f"CNI config {path}: 'plugins' must be a list of objects with a 'type'")
    for plugin in plugins:
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type") == "host-local":
            ipam.setdefault("dataDir", str(ipam_dir))
    return conf

"""Load a lab CNI configuration for one node: fill in the node's values, keep IPAM in the run."""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from string import Template

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConflistError(ValueError):
    pass


def is_bare_name(name: object) -> bool:
    """The CNI spec's plugin ``type`` is a file name looked up in CNI_PATH, never a path: a type
    such as ``../../bin/true`` would run any binary on the host."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
            and "\0" not in name)


def load(path: Path, node_values: dict[str, str], ipam_dir: Path) -> dict:
    """Read a conflist (or a single-plugin .conf, wrapped as libcni does) for one node.

    ``${POD_CIDR}``, ``${NODE_IP}`` and ``${NODE_NAME}`` are replaced by the node's values (on a
    dual-stack lab also ``${POD_CIDR_V6}``, and host-local IPAM gets the node's IPv6 range; on an
    IPv6-only lab ``${POD_CIDR}`` is the node's IPv6 range, and the default route is ``::/0``).
    host-local IPAM gets its dataDir inside the run's state directory (one the conflist names is
    replaced), so the lab never writes to /var/lib/cni or elsewhere, and leaves no IPAM file behind
    even when an interrupted run skips CNI DEL.
    """
    try:
        text = Template(path.read_text()).safe_substitute(node_values)
    except OSError as exc:
        raise ConflistError(f"cannot read CNI config {path}: {exc.strerror}") from None
    except ValueError as exc:  # not UTF-8 text
        raise ConflistError(f"CNI config {path} is not valid JSON: {exc}") from None
    if "${POD_CIDR_V6}" in text:  # left unfilled: this lab has no IPv6
        raise ConflistError(f"CNI config {path} hands out ${{POD_CIDR_V6}}, a node's IPv6 pod range, "
                            "which only a dual-stack lab has: run it with --ip-family=dual")
    try:
        conf = json.loads(text)
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
    _check_types(path, plugins)
    for plugin in plugins:
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type") == "host-local":
            ipam["dataDir"] = str(ipam_dir)  # even one the conflist names: nothing outside the run
            if node_values.get("POD_CIDR_V6"):
                _add_ipv6_range(ipam, node_values["POD_CIDR_V6"])
            elif ":" in node_values.get("POD_CIDR", ""):
                _ipv6_only_routes(ipam)
    return conf


def _add_ipv6_range(ipam: dict, cidr: str) -> None:
    """A dual-stack node: host-local hands out an IPv6 address from the node's IPv6 pod range too
    (a range set of its own, as a dual-stack CNI config has it) and routes ::/0 the same way,
    unless the conflist has an IPv6 range already (``${POD_CIDR_V6}``)."""
    if any(n.version == 6 for n in pod_subnets({"plugins": [{"type": "x", "ipam": ipam}]})):
        return
    ranges = ipam.get("ranges")
    if not isinstance(ranges, list):
        ranges = [[{"subnet": ipam.pop("subnet")}]] if isinstance(ipam.get("subnet"), str) else []
    ipam["ranges"] = [*ranges, [{"subnet": cidr}]]
    routes = ipam.get("routes")
    if isinstance(routes, list) and any(isinstance(r, dict) and r.get("dst") == "0.0.0.0/0" for r in routes):
        ipam["routes"] = [*routes, {"dst": "::/0"}]


def _ipv6_only_routes(ipam: dict) -> None:
    """An IPv6-only node: ${POD_CIDR} is its IPv6 range, so the default route a conflist gives
    its pods (0.0.0.0/0) is the IPv6 one, ::/0 (host-local refuses a route of the other family)."""
    routes = ipam.get("routes")
    if isinstance(routes, list):
        ipam["routes"] = [{**r, "dst": "::/0"} if isinstance(r, dict) and r.get("dst") == "0.0.0.0/0" else r
                          for r in routes]


def load_dir(directory: Path) -> dict:
    """The network configuration a runtime uses from a CNI config directory, as libcni's
    ``ConfListFromFile`` order has it: the first file (by name) ending .conf, .conflist or .json.
    A real CNI's install writes it there; it is taken as written (no values filled in)."""
    try:
        names = sorted(p for p in directory.iterdir() if p.suffix in (".conf", ".conflist", ".json")
                       and p.is_file())
    except OSError as exc:
        raise ConflistError(f"cannot read the CNI config directory {directory}: {exc.strerror}") from None
    if not names:
        raise ConflistError(f"no CNI configuration in {directory}")
    try:
        conf = json.loads(names[0].read_text())
    except (OSError, ValueError) as exc:
        raise ConflistError(f"CNI config {names[0]}: {exc}") from None
    if not isinstance(conf, dict) or not isinstance(conf.get("plugins"), list) or not all(
            isinstance(p, dict) and isinstance(p.get("type"), str) for p in conf["plugins"]):
        raise ConflistError(f"CNI config {names[0]}: not a conflist with plugins that have a 'type'")
    _check_types(names[0], conf["plugins"])
    return conf


def _check_types(path: Path, plugins: list[dict]) -> None:
    """Refuse a plugin type that is not a bare name, before any plugin is looked up or run."""
    for number, plugin in enumerate(plugins, 1):
        if not is_bare_name(plugin["type"]):
            raise ConflistError(f"CNI config {path}: plugin {number} has type {plugin['type']!r}, "
                                "which is not a bare file name (the CNI spec looks a plugin up by "
                                "its name in the CNI path; no '/', '.' or '..')")


def pod_subnets(conf: dict) -> list[Network]:
    """The subnets host-local IPAM hands out addresses from, in both of its forms: ``subnet`` and
    ``ranges: [[{"subnet": ...}]]``. A subnet that does not parse is left out: the plugin itself
    reports it when it is called, with its own words."""
    found = []
    for plugin in conf["plugins"]:
        ipam = plugin.get("ipam")
        if not isinstance(ipam, dict) or ipam.get("type") != "host-local":
            continue
        texts = [ipam.get("subnet")]
        ranges = ipam.get("ranges")
        for range_set in ranges if isinstance(ranges, list) else []:
            for entry in range_set if isinstance(range_set, list) else []:
                texts.append(entry.get("subnet") if isinstance(entry, dict) else None)
        found += [network for network in map(_network, texts) if network is not None]
    return found


def _network(text: object) -> Network | None:
    if not isinstance(text, str):
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def check_subnets(by_node: dict[str, list[Network]], reserved: dict[str, str]) -> None:
    """Refuse pod subnets that overlap each other across nodes, or a range the lab uses itself.

    Two nodes handing out the same pod IPs (a conflist that hard-codes one subnet instead of
    ``${POD_CIDR}``) or pods inside the underlay or the Service range give a lab whose failures
    say nothing about the CNI.
    """
    reserved_networks = {what: ipaddress.ip_network(cidr) for what, cidr in reserved.items()}
    seen: list[tuple[str, Network]] = []
    for node, subnets in by_node.items():
        for subnet in subnets:
            for what, network in reserved_networks.items():
                if subnet.overlaps(network):
                    raise ConflistError(f"{node}'s pod subnet {subnet} overlaps {what} {network}: "
                                        "pod subnets must stay clear of it (use ${POD_CIDR})")
            for other, taken in seen:
                if other != node and subnet.overlaps(taken):
                    raise ConflistError(f"pod subnets overlap: {other} has {taken} and {node} has "
                                        f"{subnet}; each node needs its own (use ${{POD_CIDR}})")
        seen += [(node, subnet) for subnet in subnets]

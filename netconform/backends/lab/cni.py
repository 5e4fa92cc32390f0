"""A minimal container runtime's side of the CNI protocol (spec 1.0): ADD and DEL of a conflist.

Plugins are the real binaries, executed inside the node's namespace with the CNI_* environment and
the network configuration on stdin, chained with prevResult, exactly as containerd's libcni does.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import netns

PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
PLUGIN_TIMEOUT = 30


class CniError(Exception):
    pass


@dataclass
class PodSandbox:
    """What the runtime knows of a pod's network: enough to call ADD and, later, DEL."""

    container_id: str
    netns: str  # name of the pod's namespace
    pod_name: str
    namespace: str = "netconform"
    ifname: str = "eth0"


def find_plugin(kind: str, dirs: tuple[str, ...] = PLUGIN_DIRS) -> str:
    for folder in dirs:
        candidate = Path(folder) / kind
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise CniError(f"CNI plugin {kind!r} not found in {':'.join(dirs)} "
                   "(install Debian's containernetworking-plugins)")


class CniRuntime:
    def __init__(self, conflist: dict, node_netns: str, cache_dir: Path,
                 plugin_dirs: tuple[str, ...] = PLUGIN_DIRS) -> None:
        self.conflist = conflist
        self.node_netns = node_netns
        self.cache_dir = cache_dir
        self.plugin_dirs = plugin_dirs
        for plugin in conflist["plugins"]:
            find_plugin(plugin["type"], plugin_dirs)  # fail before anything is created

    def add(self, pod: PodSandbox, capability_args: dict | None = None) -> dict:
        """ADD every plugin in order; return the final result (its 'ips' hold the pod IP)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        result = None
        for plugin in self.conflist["plugins"]:
            result = self._exec("ADD", plugin, pod, result, capability_args)
        (self.cache_dir / f"{pod.container_id}.json").write_text(json.dumps(result))
        return result

    def delete(self, pod: PodSandbox, capability_args: dict | None = None) -> None:
        """DEL every plugin in reverse order, with the cached ADD result as prevResult."""
        cached = self.cache_dir / f"{pod.container_id}.json"
        previous = json.loads(cached.read_text()) if cached.exists() else None
        errors = []
        for plugin in reversed(self.conflist["plugins"]):
            try:
                self._exec("DEL", plugin, pod, previous, capability_args)
            except CniError as exc:
                errors.append(str(exc))
        cached.unlink(missing_ok=True)
        if errors:
            raise CniError("; ".join(errors))

    def _exec(self, command: str, plugin: dict, pod: PodSandbox, previous: dict | None,
              capability_args: dict | None) -> dict | None:
        config = dict(plugin, name=self.conflist["name"], cniVersion=self.conflist["cniVersion"])
        if previous is not None:
            config["prevResult"] = previous
        wanted = [cap for cap, on in plugin.get("capabilities", {}).items() if on]
        runtime_config = {cap: (capability_args or {})[cap] for cap in wanted
                          if cap in (capability_args or {})}
        if runtime_config:
            config["runtimeConfig"] = runtime_config
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": netns.path(pod.netns),
            "CNI_IFNAME": pod.ifname,
            "CNI_PATH": ":".join(self.plugin_dirs),
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};"
                        f"K8S_POD_NAME={pod.pod_name};K8S_POD_INFRA_CONTAINER_ID={pod.container_id}",
        }
        binary = find_plugin(plugin["type"], self.plugin_dirs)
        try:
            done = netns.run(self.node_netns, [binary], stdin=json.dumps(config), env=env,
                             timeout=PLUGIN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise CniError(f"{command} {plugin['type']} for {pod.pod_name}: no answer within "
                           f"{PLUGIN_TIMEOUT}s") from None
        if done.returncode != 0:
            raise CniError(f"{command} {plugin['type']} for {pod.pod_name} failed: "
                           f"{_plugin_error(done)}")
        if command == "DEL" or not done.stdout.strip():
            return previous
        return json.loads(done.stdout)


def _plugin_error(done: subprocess.CompletedProcess) -> str:
    try:
        error = json.loads(done.stdout)
        return f"{error.get('msg')} {error.get('details') or ''} (code {error.get('code')})".strip()
    except ValueError:
        return (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"


def pod_ip(result: dict, family: int = 4) -> str:
    """The pod IP of an ADD result: its first address of the family (as CRI reports podIP)."""
    for entry in result.get("ips", []):
        address = entry["address"].split("/")[0]
        if (":" in address) == (family == 6):
            return address
    raise CniError(f"the CNI result holds no IPv{family} address: {json.dumps(result)[:300]}")

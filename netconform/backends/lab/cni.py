"""A minimal container runtime's side of the CNI protocol (spec 1.0): ADD and DEL of a conflist.

Plugins are the real binaries, executed inside the node's namespace with the CNI_* environment and
the network configuration on stdin, chained with prevResult, exactly as containerd's libcni does.
Every call is bounded in time, and a plugin's output is checked before anything trusts it.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import netns
from .conflists import is_bare_name
from .nodefs import INNER, NodeFs

PLUGIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")  # as CNI_PATH; --lab-cni-path
DEFAULT_TIMEOUT = 20.0  # seconds one plugin call may take; --lab-cni-timeout
DEL_WORKERS = 64  # DELs at teardown run in parallel: a hung plugin costs one timeout, not one per pod
EXCERPT = 300  # characters of a plugin's output or stderr quoted in an error
KILL_GRACE = 5.0  # seconds to wait for a killed plugin to be reaped


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
    """The plugin's binary in the first directory of the CNI path that has it, as libcni finds it."""
    if not is_bare_name(kind):
        raise CniError(f"CNI plugin type {kind!r} is not a bare file name")
    for folder in dirs:
        candidate = Path(folder) / kind
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise CniError(f"CNI plugin {kind!r} not found in {':'.join(dirs) or '(an empty CNI path)'} "
                   "(install Debian's containernetworking-plugins, or name the directory with "
                   "--lab-cni-path)")


class CniRuntime:
    """ADD and DEL of one conflist on one node.

    ``node_netns`` is the namespace the plugins run in (the node's); None runs them in the
    caller's own namespace, as a runtime on a real host does.
    """

    def __init__(self, conflist: dict, node_netns: str | None, cache_dir: Path,
                 plugin_dirs: tuple[str, ...] = PLUGIN_DIRS,
                 timeout: float = DEFAULT_TIMEOUT, node_fs: "NodeFs | None" = None) -> None:
        self.conflist = conflist
        self.node_netns = node_netns
        self.cache_dir = cache_dir
        # Plugins call their IPAM plugin through CNI_PATH from another working directory.
        self.plugin_dirs = tuple(os.path.abspath(folder) for folder in plugin_dirs)
        self.timeout = timeout
        # A node of a CNI install: plugins run in a root of the node's own (nodefs.py), where its
        # /opt/cni/bin (which the CNI's install filled) comes first on CNI_PATH, then the lab's
        # plugin directories, mounted at paths of their own.
        self.node_fs = node_fs
        self._inside: dict[str, str] = {}  # plugin directory on the host -> its path in the root
        if node_fs is not None:
            self._inside = {str(node_fs.host("/opt/cni/bin")): "/opt/cni/bin"}
            self._inside.update({folder: f"{INNER}/cni/{n}" for n, folder in enumerate(self.plugin_dirs)
                                 if os.path.isdir(folder)})
            self.plugin_dirs = tuple(self._inside)
        for plugin in conflist["plugins"]:
            find_plugin(plugin["type"], self.plugin_dirs)  # fail before anything is created

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
        previous = _read_cache(cached)
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
        kind = plugin["type"]
        binary = find_plugin(kind, self.plugin_dirs)
        stdin = json.dumps(self._config(plugin, previous, capability_args))
        if self.node_fs is not None:
            folder = os.path.dirname(binary)
            argv = self.node_fs.command(self.node_netns, [f"{self._inside[folder]}/{kind}"], self._mounted())
        else:
            argv = [binary] if self.node_netns is None else ["ip", "netns", "exec", self.node_netns, binary]
        try:
            done = run_bounded(argv, stdin, self._environment(command, pod), self.timeout)
        except subprocess.TimeoutExpired:
            raise CniError(f"{kind}: no answer within {self.timeout:g}s") from None
        except OSError as exc:
            raise CniError(f"{kind}: cannot be started: {exc.strerror or exc}") from None
        if done.returncode != 0:
            raise CniError(f"{kind} failed: {_plugin_error(done)}")
        if command == "DEL":
            return previous
        return parse_result(kind, command, done)

    def _mounted(self) -> dict[str, Path]:
        """The lab's plugin directories, at their paths in the node's root."""
        return {inside: Path(folder) for folder, inside in self._inside.items() if inside.startswith(INNER)}

    def _config(self, plugin: dict, previous: dict | None, capability_args: dict | None) -> dict:
        config = dict(plugin, name=self.conflist["name"], cniVersion=self.conflist["cniVersion"])
        if previous is not None:
            config["prevResult"] = previous
        wanted = [cap for cap, on in plugin.get("capabilities", {}).items() if on]
        runtime_config = {cap: (capability_args or {})[cap] for cap in wanted
                          if cap in (capability_args or {})}
        if runtime_config:
            config["runtimeConfig"] = runtime_config
        return config

    def _environment(self, command: str, pod: PodSandbox) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": netns.path(pod.netns),
            "CNI_IFNAME": pod.ifname,
            "CNI_PATH": ":".join(self._inside.values() if self._inside else self.plugin_dirs),
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};"
                        f"K8S_POD_NAME={pod.pod_name};K8S_POD_INFRA_CONTAINER_ID={pod.container_id}",
        }


_RUNNING: set[subprocess.Popen] = set()  # plugins running now, killed when teardown must hurry
_RUNNING_LOCK = threading.Lock()


def run_bounded(argv: list[str], stdin: str, env: dict[str, str],
                timeout: float) -> subprocess.CompletedProcess:
    """Run a plugin in a process group of its own; past the timeout, kill the whole group.

    Output that is not UTF-8 is decoded with replacement characters: it is then reported as what
    it is, output that is not a JSON result, rather than crashing the run.

    ``ip netns exec`` execs the plugin, but a plugin (or a wrapper script) may start children that
    hold its output pipes: killing only the direct child would leave them running, and reading
    the pipes to their end would wait for them.
    """
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, errors="replace", env=env,
                               start_new_session=True)
    with _RUNNING_LOCK:
        _RUNNING.add(process)
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(process)
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the plugin and everything in its group, reap it, and let go of its pipes."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=KILL_GRACE)
    finally:
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def parse_result(kind: str, command: str, done: subprocess.CompletedProcess) -> dict:
    """A plugin's ADD result, checked for the shape the runtime relies on (CNI spec 1.0)."""
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise CniError(f"{kind}: {command} printed no JSON result: {_excerpt(done.stdout)!r}"
                       f"{_stderr(done)}") from None
    problem = _shape_problem(result)
    if problem:
        raise CniError(f"{kind}: {command} result {problem}: {_excerpt(done.stdout)!r}{_stderr(done)}")
    return result


def _shape_problem(result: object) -> str | None:
    """What is wrong with the shape of an ADD result, or None."""
    if not isinstance(result, dict):
        return "is not a JSON object"
    if "interfaces" in result and not isinstance(result["interfaces"], list):
        return "has 'interfaces' that is not a list"
    ips = result.get("ips", [])
    if not isinstance(ips, list):
        return "has 'ips' that is not a list"
    for entry in ips:
        if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
            return "has an 'ips' entry without a string 'address'"
        if not _is_cidr(entry["address"]):
            return f"has an address {entry['address'][:60]!r} that is not in CIDR form"
    return None


def _is_cidr(text: str) -> bool:
    if "/" not in text:
        return False
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        return False
    return True


def _plugin_error(done: subprocess.CompletedProcess) -> str:
    """The error a failed plugin reported: its JSON error object, else its stderr or stdout."""
    try:
        error = json.loads(done.stdout)
    except ValueError:
        error = None
    if isinstance(error, dict) and ("msg" in error or "code" in error):
        text = f"{error.get('msg')} {error.get('details') or ''}".strip()
        return f"{_excerpt(text)} (code {error.get('code')})"
    return _excerpt(done.stderr or done.stdout) or f"exit code {done.returncode}"


def _stderr(done: subprocess.CompletedProcess) -> str:
    text = _excerpt(done.stderr)
    return f"; stderr: {text}" if text else "; no stderr"


def _excerpt(text: str | None) -> str:
    """Untrusted output on one line, cut short: an error message stays one readable line."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT] + "…"


def _read_cache(cached: Path) -> dict | None:
    """The cached ADD result for DEL's prevResult; a missing or damaged cache means none."""
    try:
        previous = json.loads(cached.read_text())
    except (OSError, ValueError):
        return None
    return previous if isinstance(previous, dict) else None


def delete_all(jobs: Iterable[tuple[str, CniRuntime, PodSandbox, dict | None]],
               workers: int = DEL_WORKERS, stop: Callable[[], bool] = lambda: False) -> list[str]:
    """DEL many pods at once, each (label, runtime, pod, capability args); return the problems.

    In parallel: one plugin that hangs on DEL then costs about one timeout for the whole lab.
    When ``stop()`` turns true (Ctrl-C during teardown), or an interrupt arrives, the plugins still
    running are killed and the rest are not started: the caller removes the namespaces anyway.
    """
    jobs = list(jobs)
    if not jobs:
        return []

    def delete(job: tuple[str, CniRuntime, PodSandbox, dict | None]) -> str | None:
        label, runtime, pod, capability_args = job
        try:
            runtime.delete(pod, capability_args)
        except CniError as exc:
            return f"CNI DEL {label}: {exc}"
        return None

    pool = ThreadPoolExecutor(max_workers=min(workers, len(jobs)))
    futures = [pool.submit(delete, job) for job in jobs]
    try:
        pending = set(futures)
        while pending and not stop():
            _, pending = wait(pending, timeout=0.2)
        if pending:
            _kill_running(pool)
            return [f"CNI DEL skipped for {len(pending)} pod(s): teardown was asked to hurry"]
        return [problem for future in futures if (problem := future.result())]
    except BaseException:
        _kill_running(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _kill_running(pool: ThreadPoolExecutor) -> None:
    """Stop starting plugins, and kill the ones running, so that the pool's threads end at once."""
    pool.shutdown(wait=False, cancel_futures=True)
    kill_running_plugins()


def kill_running_plugins() -> None:
    """Kill every plugin call under way (an abandoned build or teardown): each fails at once."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def pod_ip(result: dict, family: int = 4) -> str:
    """The pod IP of an ADD result: its first address of the family (as CRI reports podIP)."""
    for entry in result.get("ips", []):
        address = entry["address"].split("/")[0]
        if (":" in address) == (family == 6):
            return address
    raise CniError(f"the CNI result holds no IPv{family} address: {_excerpt(json.dumps(result))}")


def pod_ips(result: dict, families: tuple[str, ...]) -> list[str]:
    """The pod's IPs of an ADD result, one per family in ``families``' order (as CRI reports
    podIPs, the primary family's first); a family the result lacks is a CNI error."""
    return [pod_ip(result, 6 if family == "ipv6" else 4) for family in families]

"""A lab that stays up: start a lab cluster and leave it running, like ``kind create cluster``; stop it.

    ./run lab-up [--nodes N] [--cni bridge|ptp|vxlan] [--lab-proxy iptables|nftables] [--release R]
    ./run lab-list
    ./run lab-down [NAME]        NAME as lab-up printed it; without one, the only lab that is up

``up`` starts a process of its own, in a session of its own so that it outlives the command, which
builds the lab as a cluster only (control plane, nodes, the lab's kubelet, kube-proxy, CoreDNS: what
``--backend=kube`` uses) and then holds it: the kubelet's heartbeats and the pods it runs live in
that process. ``up`` returns once the lab is ready, printing its kubeconfig and the command that
runs the suite against it; when the build fails it prints why, and nothing is left. ``down`` asks
that process to tear the lab down (SIGTERM) and waits for it; one that does not end in time is
killed, and what it left is removed as any dead run's leftovers are.

While the process lives, no other run's clean-up touches the lab (it is a live run, cleanup.py), and
kubectl, other suites and several runs of this one can use it, one after another (two runs at once
would share the probes' hostPorts). Faults are not injected into a shared lab: ``--lab-fault``
belongs to the lab's own runs, and a run through a kubeconfig refuses it.

Exit codes: 0 done; 1 the lab could not be built or stopped; 4 bad input (an option, a name).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

UP_FILE = "up.json"  # in the lab's state directory: written once the lab is ready; marks a lab that stays up
STARTUP_BOUND = 240.0  # s for `up` to see the lab ready (a cold control plane takes about 10)
STOP_BOUND = 90.0  # s for `down` to see the lab's process end before it is killed


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 4, as every bad input of netconform's
        print(f"netconform: {message} (see --help)")
        raise SystemExit(4)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="netconform-lab", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{up,list,down}",
                                     parser_class=_Parser)
    up = commands.add_parser("up", help="start a lab cluster and leave it running")
    up.add_argument("--nodes", type=int, default=3, help="worker nodes, 1..200 (default 3)")
    up.add_argument("--cni", default="bridge", help="the lab CNI profile: bridge, ptp or vxlan")
    up.add_argument("--lab-proxy", choices=("iptables", "nftables"), default="iptables")
    up.add_argument("--release", default=None, help="the pinned Kubernetes release (default: the newest)")
    up.add_argument("--ip-family", choices=("ipv4", "ipv6", "dual"), default="ipv4",
                    help="the cluster's IP families (default ipv4; ipv6 and dual with bridge or ptp)")
    serve = commands.add_parser("serve")  # the process `up` starts; not for users (not listed)
    serve.add_argument("spec")
    down = commands.add_parser("down", help="stop a lab that is up and remove everything it made")
    down.add_argument("name", nargs="?")
    commands.add_parser("list", help="the labs that are up")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 4
    if os.geteuid() != 0:
        print("netconform: the lab needs root: it creates network namespaces")
        return 4
    return {"up": _up, "serve": _serve, "down": _down, "list": _list}[args.command](args)


# --- up ---

def _up(args) -> int:
    from .backends.lab.naming import RunNames, STATE_ROOT
    from .profiles import UnknownProfile, profile
    from .upstream import DEFAULT_RELEASE
    from .upstream.releases import RELEASES
    try:
        chosen = profile(args.cni)
    except UnknownProfile as exc:
        print(f"netconform: {exc}")
        return 4
    if not chosen.on_lab(kubeconfig_named=False):
        print(f"netconform: --cni {args.cni} is not one the lab runs (bridge, ptp, vxlan, and the "
              "installed CNIs: flannel)")
        return 4
    if not 1 <= args.nodes <= 200:
        print(f"netconform: --nodes must be between 1 and 200, not {args.nodes}")
        return 4
    from .backends.lab.cli import carries_ipv6
    if args.ip_family != "ipv4" and not carries_ipv6(chosen):
        print(f"netconform: --ip-family {args.ip_family}: the lab builds it with a conflist and routes "
              f"between nodes (bridge, ptp), not with {args.cni} in this version")
        return 4
    release = DEFAULT_RELEASE if args.release is None else args.release
    if release not in RELEASES:
        print(f"netconform: --release {release}: pinned releases are {', '.join(sorted(RELEASES))}")
        return 4
    names = RunNames.new()
    log = tempfile.NamedTemporaryFile("w+", prefix=f"{names.prefix}-up-", suffix=".log", delete=False)
    spec = {"run_id": names.run_id, "cni": args.cni, "nodes": args.nodes, "proxy": args.lab_proxy,
            "release": release, "log": log.name, "ip_family": args.ip_family}
    process = subprocess.Popen([sys.executable, "-m", "netconform.labctl", "serve", json.dumps(spec)],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    ready = STATE_ROOT / names.prefix / UP_FILE
    print(f"netconform: starting lab {names.prefix} ({args.nodes} nodes, {args.cni}, {args.ip_family}, "
          f"kube-proxy {args.lab_proxy}, Kubernetes {release}); its log: {log.name}", flush=True)
    deadline = time.monotonic() + STARTUP_BOUND
    shown = 0
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a `timeout`, a closed terminal: as Ctrl-C
        signal.signal(sig, _interrupted)
    try:
        while time.monotonic() < deadline:
            shown = _follow(log.name, shown)
            if ready.exists():
                up = json.loads(ready.read_text())
                print(f"netconform: lab {names.prefix} is up\n  kubeconfig: {up['kubeconfig']}\n"
                      f"  run the suite against it: pytest suites --kubeconfig={up['kubeconfig']} "
                      f"--cni={chosen.name if chosen.lab_install else 'other'}\n  stop it: ./run lab-down {names.prefix}")
                return 0
            if process.poll() is not None:
                _follow(log.name, shown)
                print(f"netconform: lab {names.prefix} did not come up (exit {process.returncode}); "
                      f"nothing of it is left")
                Path(log.name).unlink(missing_ok=True)  # all of it was printed above
                return 1
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("netconform: interrupted: stopping the lab being built (it takes a few seconds)", flush=True)
    else:
        print(f"netconform: lab {names.prefix} not up after {STARTUP_BOUND:.0f}s: stopping it")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the stop is bounded: let it end
        signal.signal(sig, signal.SIG_IGN)
    if _stop(process.pid, names.prefix):
        Path(log.name).unlink(missing_ok=True)
    return 1


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def _follow(log: str, shown: int) -> int:
    """Print the serving process's progress lines written since the last look."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return shown
    for line in lines[shown:]:
        print(f"  {line}", flush=True)
    return len(lines)


# --- serve: the process that holds the lab ---

def _serve(args) -> int:
    from .backends.lab.cluster import LabCluster, LabSpec
    from .topology import IP_FAMILY_CHOICES
    from .backends.lab.naming import RunNames
    from .profiles import profile
    try:
        spec = json.loads(args.spec)
        chosen = profile(spec["cni"])
        spec["run_id"], spec["nodes"], spec["proxy"], spec["release"]
    except (ValueError, KeyError, TypeError) as exc:
        print(f"netconform: serve is started by `up`, with its spec: {exc}")
        return 4
    stop = threading.Event()

    def interrupt(signum, frame):
        if not stop.is_set():
            stop.set()
            if not building[0]:
                return
            raise KeyboardInterrupt  # a build under way stops at once; teardown follows

    building = [True]
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    cluster = LabCluster(LabSpec(chosen.conflist, nodes=spec["nodes"], overlay=chosen.overlay,
                                 release=spec["release"], proxy_mode=spec["proxy"], objects=False,
                                 install=chosen.lab_install,
                                 families=IP_FAMILY_CHOICES[spec.get("ip_family", "ipv4")]),
                         RunNames(spec["run_id"]))
    code = 0
    try:
        cluster.build(lambda message: print(message, flush=True))
        building[0] = False
        up = {"kubeconfig": str(cluster.control_plane.admin_kubeconfig), "nodes": spec["nodes"], "log": spec["log"],
              "cni": spec["cni"], "proxy": spec["proxy"], "release": spec["release"],
              "ip_family": spec.get("ip_family", "ipv4"),
              "kubernetes_version": cluster.control_plane.version, "pid": os.getpid(), "since": time.time()}
        partial = cluster.state_dir / f".{UP_FILE}"
        partial.write_text(json.dumps(up))
        os.replace(partial, cluster.state_dir / UP_FILE)
        print("lab: up; waiting for lab-down", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        code = 1
    except Exception as exc:  # noqa: BLE001 - the reason, for `up` to print
        print(f"lab: {exc}", flush=True)
        code = 1
    finally:
        building[0] = False
        problems = cluster.teardown()
        for problem in problems:
            print(f"lab: teardown: {problem}", flush=True)
    if code == 0 and not problems and spec.get("log"):  # it was up, and is gone: so is its log
        Path(spec["log"]).unlink(missing_ok=True)  # (a failed build's is `up`'s to print)
    return code


# --- down and list ---

def _labs() -> dict[str, dict]:
    """Name -> what is known of each lab that stays up, its ``state``: "up", "starting" (its
    process is building it) or "dead" (its process is gone, and what it made is left)."""
    from .backends.lab import cleanup
    from .backends.lab.naming import STATE_ROOT
    found = {}
    for state_dir in sorted(p for p in STATE_ROOT.glob("netconform-*") if p.is_dir()):
        try:
            owner = json.loads((state_dir / cleanup.OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            up = json.loads((state_dir / UP_FILE).read_text())
        except (OSError, ValueError):
            up = None
        alive = cleanup.owner_running(owner)
        if alive and not _serving(owner.get("pid")):
            continue  # a suite run's lab: it goes with its run
        if up is None and not alive:
            continue  # a crashed run that never came up: --cleanup-only's (and the next run's)
        found[state_dir.name] = {**(up or {}), "pid": owner.get("pid"),
                                 "state": "dead" if not alive else "up" if up else "starting"}
    return found


def _serving(pid) -> bool:
    """Whether ``pid`` is a lab's serving process (``labctl serve``), not a suite run."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"netconform.labctl" in command and b"serve" in command


def _list(args) -> int:
    labs = _labs()
    if not labs:
        print("netconform: no lab is up")
    for name, lab in labs.items():
        if lab["state"] == "up":
            print(f"{name}  up {time.time() - lab['since']:.0f}s: {lab['nodes']} node"
                  f"{'s' if lab['nodes'] != 1 else ''}, {lab['cni']}, {lab.get('ip_family', 'ipv4')}, "
                  f"kube-proxy {lab['proxy']}, "
                  f"{lab['kubernetes_version']}  kubeconfig {lab['kubeconfig']}")
        elif lab["state"] == "starting":
            print(f"{name}  starting")
        else:
            print(f"{name}  dead: its process is gone; `down {name}` removes what it left")
    return 0


def _down(args) -> int:
    labs = _labs()
    name = args.name
    if name is None:
        if not labs:
            print("netconform: no lab is up")
            return 4
        if len(labs) > 1:
            print(f"netconform: {len(labs)} labs are up: name the one to stop ({', '.join(labs)})")
            return 4
        name = next(iter(labs))
    if name not in labs:
        print(f"netconform: no lab named {name!r} is up (labs: {', '.join(labs) or 'none'}); a "
              "suite run's lab goes with its run")
        return 4
    lab = labs[name]
    stopped = _stop(lab["pid"], name) if lab["state"] != "dead" else _remove_dead(name)
    if stopped:
        for log in ([lab["log"]] if lab.get("log") else []) + [str(p) for p in Path(tempfile.gettempdir()).glob(f"{name}-up-*.log")]:
            Path(log).unlink(missing_ok=True)  # the lab's own log goes with it
    return 0 if stopped else 1


def _remove_dead(name: str) -> bool:
    """What a lab whose process died left, removed as any dead run's leftovers are."""
    from .backends.lab import cleanup
    from .backends.lab.naming import STATE_ROOT
    cleanup.remove_stale_runs()
    left = (STATE_ROOT / name).exists()
    print(f"netconform: lab {name} {'is not fully removed' if left else 'removed; nothing of it is left'}")
    return not left


def _stop(pid: int, name: str) -> bool:
    """SIGTERM the lab's process and wait for its teardown; kill it after STOP_BOUND and remove what
    it left as a dead run's leftovers. True when nothing of the lab is left."""
    from .backends.lab import cleanup
    from .backends.lab.naming import STATE_ROOT
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + STOP_BOUND
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        print(f"netconform: lab {name} did not stop within {STOP_BOUND:.0f}s: killing it")
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    cleanup.remove_stale_runs()
    left = (STATE_ROOT / name).exists()
    print(f"netconform: lab {name} {'is not fully removed' if left else 'stopped; nothing of it is left'}")
    return not left


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a child of ours that ended is a zombie until reaped
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


if __name__ == "__main__":
    sys.exit(main())

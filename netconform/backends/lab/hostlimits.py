"""Limits that every network namespace on the host shares, sized for the lab runs that use them.

The kernel keeps one IPv4 and one IPv6 neighbour (ARP/NDP) table for all network namespaces, sized by
``net.ipv{4,6}.neigh.default.gc_thresh*`` (set in the root namespace only); ``nf_conntrack_max`` is
one value that each namespace's own count is held to; open files (``fs.file-max``) and processes and
threads (``kernel.pid_max``, ``kernel.threads-max``) are host-wide. A lab bigger than these fails
items as timeouts that say nothing about the CNI: 3 nodes x 24 pods overflow a neighbour table of
1,024 entries. So a run estimates its peak use before it builds (:func:`estimate`), raises what is
short for as long as any lab run needs it (:func:`reserve`), and the last run to end puts the
original values back (:func:`release`). Concurrent runs share one record, ``host-limits.json`` in
the lab's state root, read and written under an flock. Around each probing batch, the kernel's
overflow counters (:func:`snapshot`, :func:`exceeded`) tell whether the host dropped packets anyway.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import resource
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ...probing.runner import ProbeSettings
from ...services import minimum_connections
from ...topology import CONTAINER, IN_POD_NETWORK, IPV6, OUTSIDE, POD, Topology
from ..base import BackendError, Progress
from . import cleanup, netns
from .naming import STATE_ROOT

RECORD, LOCK = "host-limits.json", "host-limits.lock"
LOCK_TIMEOUT = 10.0  # seconds: the record is held for milliseconds, so a longer wait is a hung run
PID_MAX_LIMIT = 4194304  # the kernel's ceiling for kernel.pid_max on 64-bit machines

# What one probe agent (a Python process) holds between connections: measured 8 open files and 4
# or 5 threads. Each connection in flight adds a socket and a thread at each end (the busiest probe
# of a 3 x 24 run held 44 files and 54 threads).
PROBE_FILES, PROBE_TASKS = 16, 8
HARNESS_FILES, HARNESS_TASKS = 1024, 64  # pytest, the harness's probe channels, ip and CNI plugins
# The upstream processes: the control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, two relays) and one kube-proxy per node. Measured on a 3-node lab, 2 cores:
# 32 threads and 200 files for the control plane, 6 threads and 13 files per kube-proxy; twice that.
CONTROL_PLANE_FILES, CONTROL_PLANE_TASKS = 400, 64
NODE_PROXY_FILES, NODE_PROXY_TASKS = 32, 12


@dataclass(frozen=True)
class Need:
    """One run's peak use of each shared resource: upper bounds, computed before building."""

    ipv4_neighbours: int  # entries in the host's one IPv4 neighbour table
    ipv6_neighbours: int
    conntrack: int  # connection-tracking entries in the busiest of the run's namespaces
    open_files: int  # files open at once on the host
    tasks: int  # processes and threads at once
    process_files: int  # files one process of the run may hold at once (RLIMIT_NOFILE)


@dataclass(frozen=True)
class Limit:
    """A sysctl that bounds a shared resource, and how it is sized from the runs' needs."""

    key: str  # as sysctl(8) names it
    need: str  # the field of Need that sizes it
    factor: float = 2.0  # headroom: the value set is factor x what the runs need together
    per_namespace: bool = False  # each namespace has its own count: size by the biggest run
    ceiling: int | None = None  # the largest value the kernel accepts


LIMITS = (
    # The kernel refuses new entries at gc_thresh3 and evicts entries younger than 5 s above
    # gc_thresh2; the kernel's own defaults keep gc_thresh2 at half of gc_thresh3, and so does this.
    Limit("net.ipv4.neigh.default.gc_thresh3", "ipv4_neighbours"),
    Limit("net.ipv4.neigh.default.gc_thresh2", "ipv4_neighbours", factor=1.0),
    Limit("net.ipv6.neigh.default.gc_thresh3", "ipv6_neighbours"),
    Limit("net.ipv6.neigh.default.gc_thresh2", "ipv6_neighbours", factor=1.0),
    # One value, read-only outside the root namespace, compared with each namespace's own count.
    Limit("net.netfilter.nf_conntrack_max", "conntrack", per_namespace=True),
    Limit("fs.file-max", "open_files"),
    Limit("kernel.pid_max", "tasks", ceiling=PID_MAX_LIMIT),
    Limit("kernel.threads-max", "tasks"),
)


@dataclass(frozen=True)
class Host:
    """Where the host's settings and counters are read and written; tests point it at a directory."""

    sys_root: Path = Path("/proc/sys")
    proc_root: Path = Path("/proc")
    state_root: Path = STATE_ROOT
    alive: Callable[[str], bool] = field(default=lambda prefix: cleanup.Run(prefix).alive())

    def path(self, key: str) -> Path:
        return self.sys_root / key.replace(".", "/")

    def read(self, key: str) -> int | None:
        """A sysctl's value, or None where this kernel has no such setting (module not loaded)."""
        try:
            return int(self.path(key).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def write(self, key: str, value: int) -> None:
        self.path(key).write_text(f"{value}\n")


HOST = Host()


# --- what a run needs ---

def estimate(topology: Topology, settings: ProbeSettings | None = None) -> Need:
    """Upper bounds of one run's use, from the planned topology.

    Neighbours, as the lab's CNIs wire pods (one L2 segment per node, routed or tunnelled between
    nodes): each pod holds an entry for every pod on its node, its gateway and one multicast entry;
    each node one per local pod, two per other node (underlay and VXLAN tunnel end), the outside
    client, its gateway and two multicast entries; the outside client one per node. IPv6 carries
    link-local multicast entries, at most three per interface, and, on a cluster with IPv6, as
    many unicast entries as IPv4 (the same pods talk in both families). Measured on 3 nodes x 24
    pods (plus duo), IPv4 alone: 1,830 IPv4 and about 330 IPv6 entries at the peak; estimated 2,056
    and 495 then, 2,280 and 519 since the first node also holds the four standalone pods
    (DNS-POD-HOSTNAME, HOSTPORT). The IPv6 unicast entries were left out until a 50-node dual-stack
    lab filled the IPv6 table (3,066 entries, 76,875 "table full") and its Service checks timed out.
    """
    settings = settings or ProbeSettings()
    nodes = max(1, len(topology.nodes))
    per_node = [len({e.pod for e in topology.endpoints if e.node == n.name and e.kind in IN_POD_NETWORK})
                for n in topology.nodes] or [0]
    # the standalone pods hold neighbour entries like any pod, but take no part in the pairs
    pods = max(len({e.pod for e in topology.endpoints if e.node == n.name and e.kind in (POD, CONTAINER)})
               for n in topology.nodes) if topology.nodes else 0
    outside = 1 if topology.of_kind(OUTSIDE) else 0
    interfaces = 2 * sum(per_node) + 4 * nodes + 2 + outside  # pod ends, node ends, bridges, underlay
    in_flight = settings.parallel_probes * settings.concurrency  # connections open at once
    probes = len(topology.probes())
    unicast = sum(p * (p + 1) + p + 2 * nodes + 3 for p in per_node) + outside * (nodes + 1)
    return Need(
        ipv4_neighbours=unicast,
        ipv6_neighbours=3 * interfaces + (unicast if IPV6 in topology.cluster_families else 0),
        conntrack=_conntrack_per_node(topology, nodes, pods),
        # the host counts a closed socket until the kernel frees it, a little later: twice the sockets
        open_files=probes * PROBE_FILES + 4 * in_flight + HARNESS_FILES + CONTROL_PLANE_FILES
        + nodes * NODE_PROXY_FILES,
        tasks=probes * PROBE_TASKS + 2 * in_flight + HARNESS_TASKS + CONTROL_PLANE_TASKS
        + nodes * NODE_PROXY_TASKS,
        process_files=PROBE_FILES + settings.concurrency + in_flight,
    )


def _conntrack_per_node(topology: Topology, nodes: int, pods: int) -> int:
    """Connections through one node's namespace, where kube-proxy's rules track them. An entry
    outlives its connection (TIME_WAIT: 120 s), so every connection of the run is counted: TCP, UDP
    and ICMP between pods, ICMP once more for MTU, and the Service checks' repeated connections;
    three times over, since an overlay's tunnel adds an outer flow each way (VXLAN hashes each inner
    flow to its own UDP source port). Measured on 3 x 24 (full run), in the busiest node: 21,086 with
    bridge, 45,619 with vxlan; estimated 73,671."""
    same, cross = pods * (pods - 1), 2 * pods * pods * (nodes - 1)  # pairs touching this node
    hosts = 2 * nodes * pods + pods  # hostNetwork probes to every pod, the node to its pods
    # the picked Services are the ones every client must reach each backend of (services.py)
    backends = max([len(s.backends) for s in topology.services.values() if s.picked] or [1])
    per_client = 3 * minimum_connections(backends) + 10 + 1  # balancing, affinity, no endpoints
    services = 2 * nodes * pods * per_client + 4 * (nodes + 1) * nodes  # TCP and UDP; NodePorts
    inner = 3 * (same + cross + hosts) + cross + min(services, math.ceil(2 * services / nodes))
    return 3 * inner


def usage(host: Host | None = None) -> dict[str, int]:
    """What the host uses now of each shared resource (the baseline the runs' needs add to)."""
    host = host or HOST
    loadavg = _read(host.proc_root / "loadavg").split()  # the fourth field: running/total tasks
    file_nr = _read(host.sys_root / "fs" / "file-nr").split()
    return {
        "ipv4_neighbours": _stat_table(host.proc_root / "net/stat/arp_cache").get("entries", 0),
        "ipv6_neighbours": _stat_table(host.proc_root / "net/stat/ndisc_cache").get("entries", 0),
        "conntrack": 0,  # counted per namespace: the run's namespaces start empty
        "open_files": int(file_nr[0]) if file_nr else 0,
        "tasks": int(loadavg[3].split("/")[1]) if len(loadavg) > 3 else 0,
        "process_files": 0,
    }


# --- making room, shared by concurrent runs ---

def reserve(prefix: str, need: Need, progress: Progress, host: Host | None = None) -> None:
    """Hold the host's shared limits for this run, raising what all live runs together need.

    Prints one line naming every raised value. A limit that is short and cannot be raised stops
    the run with one line naming it and the fix; nothing raised by this call stays raised.
    """
    host = host or HOST
    _room_for_files(need.process_files)
    with _locked(host) as record:
        if not _live_holders(record, host, prefix):
            _restore(record, host)  # runs that died holding raises: back to the originals first
            record.clear()
        record.setdefault("baseline", usage(host))
        record.setdefault("original", {})
        record.setdefault("applied", {})
        record.setdefault("holders", {})[prefix] = asdict(need)
        short = short_limits(record, host)
        raised = []
        for key, current, wanted, value in short:
            try:
                host.write(key, value)
            except OSError as exc:
                _undo(raised, host)
                del record["holders"][prefix]
                others = len(record["holders"])
                who = f"this lab and {others} other lab run(s) need" if others else "this lab needs"
                raise BackendError(
                    f"host limit {key} is {current}, {who} {wanted}, and it cannot be "
                    f"raised here ({exc.strerror or exc}): as root on the host, run 'sysctl -w "
                    f"{' '.join(f'{k}={v}' for k, _, _, v in short)}', or run a smaller lab") from None
            raised.append((key, current, value))
        for key, current, value in raised:
            record["original"].setdefault(key, current)
            record["applied"][key] = value
    if raised:
        progress("lab: host limits raised for this run: "
                 + ", ".join(f"{key} {old}→{new}" for key, old, new in raised)
                 + " (restored when the last lab run ends)")


def short_limits(record: dict, host: Host) -> list[tuple[str, int, int, int]]:
    """(sysctl, its value, what the holders need, what to raise it to) for every short limit; a
    setting this kernel lacks (conntrack not loaded) is not short."""
    found = []
    for limit, target in targets(record).items():
        current = host.read(limit.key)
        value = min(target.value, limit.ceiling or target.value)
        if current is not None and current < target.need and value > current:
            found.append((limit.key, current, target.need, value))
    return found


def release(prefix: str, host: Host | None = None) -> list[str]:
    """This run no longer needs the host's limits; the last live run puts the originals back.
    Runs whose owner died hold nothing. Returns what could not be restored."""
    host = host or HOST
    if not (host.state_root / RECORD).exists():
        return []
    with _locked(host) as record:
        record.get("holders", {}).pop(prefix, None)
        if _live_holders(record, host, prefix):
            return []
        problems = _restore(record, host)
        record.clear()
    return problems


def _undo(raised: list[tuple[str, int, int]], host: Host) -> None:
    """Put back what one reserve() raised before it found a limit it cannot raise."""
    for key, old, _ in reversed(raised):
        try:
            host.write(key, old)
        except OSError:
            pass


@dataclass(frozen=True)
class Target:
    need: int  # below this the limit is short
    value: int  # what a short limit is raised to


def targets(record: dict) -> dict[Limit, Target]:
    """Each limit's need for every holder together (plus what the host used before them)."""
    holders = list(record.get("holders", {}).values())
    baseline = record.get("baseline", {})
    found = {}
    for limit in LIMITS:
        needs = [h.get(limit.need, 0) for h in holders]
        total = max(needs, default=0) if limit.per_namespace else \
            baseline.get(limit.need, 0) + sum(needs)
        found[limit] = Target(total, math.ceil(total * limit.factor))
    return found


def _live_holders(record: dict, host: Host, prefix: str) -> dict:
    """Drop holders whose run is gone; the calling run counts as alive."""
    holders = record.get("holders", {})
    for other in [p for p in holders if p != prefix and not host.alive(p)]:
        del holders[other]
    return holders


def _restore(record: dict, host: Host) -> list[str]:
    """Put back every original value still as the runs left it; a value someone else changed
    meanwhile is theirs now and stays."""
    problems = []
    for key, original in record.get("original", {}).items():
        current, applied = host.read(key), record.get("applied", {}).get(key)
        if current != applied:
            problems.append(f"host limit {key} left at {current}: changed by someone else during "
                            f"the lab runs (the original was {original})")
            continue
        try:
            host.write(key, original)
        except OSError as exc:
            problems.append(f"host limit {key} not restored to {original}: {exc}")
    return problems


@contextmanager
def _locked(host: Host) -> Iterator[dict]:
    """The shared record, locked against other runs; saved on leaving, removed when emptied."""
    host.state_root.mkdir(parents=True, exist_ok=True)
    with open(host.state_root / LOCK, "a") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackendError(f"{host.state_root / LOCK} is held by another process "
                                       f"for more than {LOCK_TIMEOUT:.0f}s") from None
                time.sleep(0.05)
        path = host.state_root / RECORD
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = {}
        record = record if isinstance(record, dict) and record.get("holders") is not None else {}
        try:
            yield record
        finally:
            if record.get("holders") or record.get("original"):
                partial = path.with_name(f".{RECORD}.{os.getpid()}")
                partial.write_text(json.dumps(record, indent=1, sort_keys=True))
                os.replace(partial, path)
            else:
                path.unlink(missing_ok=True)


def _room_for_files(need: int) -> None:
    """Let this process and the probes it starts hold ``need`` files each. Only this process and
    its children see the change, so it is made quietly and never undone."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _at_least(soft, need):
        return
    wanted = 2 * need
    if not _at_least(hard, wanted) and os.geteuid() == 0:
        hard = wanted  # root may raise the hard limit (up to fs.nr_open)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if _at_least(hard, wanted) else hard, hard))
    except (OSError, ValueError):
        pass
    if not _at_least(resource.getrlimit(resource.RLIMIT_NOFILE)[0], need):
        raise BackendError(f"a probe may hold {need} open files but this process may open "
                           f"only {soft}: run 'ulimit -n {wanted}' before the suite")


def _at_least(limit: int, value: int) -> bool:
    return limit == resource.RLIM_INFINITY or limit >= value


# --- noticing that the host dropped packets anyway ---

Snapshot = dict[str, int]


def snapshot(namespaces: Iterable[str] = (), host: Host | None = None) -> Snapshot:
    """The kernel's overflow counters of the shared limits: neighbour tables refusing entries
    (global tables, whose statistics only the root namespace shows), the per-CPU receive backlog
    dropping packets (global), and conntrack dropping for a full table in each of ``namespaces``
    (counted per namespace: read through a process inside it)."""
    host = host or HOST
    found = {"ipv4-neighbour": _stat_table(host.proc_root / "net/stat/arp_cache").get("table_fulls", 0),
             "ipv6-neighbour": _stat_table(host.proc_root / "net/stat/ndisc_cache").get("table_fulls", 0),
             "backlog": _softnet_drops(host.proc_root / "net/softnet_stat")}
    for name, pid in _pids_in(namespaces, host).items():
        stats = _stat_table(host.proc_root / str(pid) / "net/stat/nf_conntrack")
        if stats:
            found[f"conntrack:{name}"] = stats.get("drop", 0) + stats.get("early_drop", 0)
    return found


def exceeded(before: Snapshot, after: Snapshot, host: Host | None = None) -> str | None:
    """One line naming each shared limit the host hit between two snapshots, or None."""
    host = host or HOST
    grew = {key: after[key] - before[key] for key in after if key in before and after[key] > before[key]}
    conntrack = sum(n for key, n in grew.items() if key.startswith("conntrack:"))
    said = []
    if grew.get("ipv4-neighbour"):
        said.append(f"the kernel's IPv4 neighbour table overflowed {grew['ipv4-neighbour']} times "
                    f"(net.ipv4.neigh.default.gc_thresh3={host.read('net.ipv4.neigh.default.gc_thresh3')})")
    if grew.get("ipv6-neighbour"):
        said.append(f"the kernel's IPv6 neighbour table overflowed {grew['ipv6-neighbour']} times "
                    f"(net.ipv6.neigh.default.gc_thresh3={host.read('net.ipv6.neigh.default.gc_thresh3')})")
    if conntrack:
        said.append(f"a full connection-tracking table dropped {conntrack} connections "
                    f"(net.netfilter.nf_conntrack_max={host.read('net.netfilter.nf_conntrack_max')})")
    if grew.get("backlog"):
        said.append(f"the kernel's per-CPU receive backlog dropped {grew['backlog']} packets "
                    f"(net.core.netdev_max_backlog={host.read('net.core.netdev_max_backlog')})")
    return f"host limit: {'; '.join(said)} during this batch" if said else None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _stat_table(path: Path) -> dict[str, int]:
    """A /proc/net/stat file: one row of hex counters per CPU, summed; ``entries`` is one
    table-wide count repeated on every row, so it is taken once."""
    lines = [line.split() for line in _read(path).splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    header, rows = lines[0], [[int(v, 16) for v in row] for row in lines[1:]]
    totals = {name: sum(row[i] for row in rows if i < len(row)) for i, name in enumerate(header)}
    if "entries" in header:
        totals["entries"] = rows[0][header.index("entries")]
    return totals


def _softnet_drops(path: Path) -> int:
    """Packets dropped because a CPU's backlog queue was full: the second column, per CPU."""
    return sum(int(row.split()[1], 16) for row in _read(path).splitlines() if len(row.split()) > 1)


_PIDS: dict[str, int] = {}  # a process seen inside each namespace, checked again on every use


def _pids_in(names: Iterable[str], host: Host) -> dict[str, int]:
    """A process inside each named network namespace (its /proc/PID/net shows that namespace);
    /proc is scanned once for all the names not found where they were last time."""
    wanted = {}
    for name in names:
        try:
            found = os.stat(netns.path(name))
        except OSError:
            continue
        wanted[(found.st_dev, found.st_ino)] = name
    pids = {name: _PIDS[name] for key, name in wanted.items()
            if name in _PIDS and _netns_of(_PIDS[name], host) == key}
    missing = {key: name for key, name in wanted.items() if name not in pids}
    for entry in host.proc_root.iterdir() if missing else ():
        if entry.name.isdigit():
            name = missing.pop(_netns_of(int(entry.name), host), None)
            if name is not None:
                pids[name] = _PIDS[name] = int(entry.name)
                if not missing:
                    break
    return pids


def _netns_of(pid: int, host: Host) -> tuple[int, int] | None:
    try:
        found = os.stat(host.proc_root / str(pid) / "ns" / "net")
    except OSError:
        return None
    return found.st_dev, found.st_ino

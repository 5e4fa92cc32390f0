"""Host limits: the estimate of a lab's use, the shared record of raises with its restore, and the
overflow counters, all against a fake /proc (no host setting is touched here)."""
from __future__ import annotations

import errno
import json
import os
import resource
from dataclasses import dataclass
from pathlib import Path

import pytest

from netconform.backends.base import BackendError
from netconform.backends.lab import cleanup, hostlimits
from netconform.backends.lab.backend import LabBackend
from netconform.backends.lab.cluster import LabSpec, plan
from netconform.backends.lab.hostlimits import LIMITS, RECORD, Host, Need
from netconform.profiles import PROFILES

DEFAULTS = {"net.ipv4.neigh.default.gc_thresh2": 512, "net.ipv4.neigh.default.gc_thresh3": 1024,
            "net.ipv6.neigh.default.gc_thresh2": 512, "net.ipv6.neigh.default.gc_thresh3": 1024,
            "net.netfilter.nf_conntrack_max": 262144, "fs.file-max": 2466177,
            "kernel.pid_max": 32768, "kernel.threads-max": 192730,
            "net.core.netdev_max_backlog": 1000}
HEADER = ("entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast "
          "rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls")
CONNTRACK = ("entries  clashres found new invalid ignore delete chainlength insert insert_failed drop "
             "early_drop icmp_error  expect_new expect_create expect_delete search_restart")


def neighbour_stats(entries: int, table_fulls: tuple[int, int] = (0, 0)) -> str:
    """/proc/net/stat/arp_cache as this kernel writes it: hex, one row per CPU."""
    rows = [" ".join(f"{v:08x}" for v in [entries] + [0] * 11 + [fulls]) for fulls in table_fulls]
    return "\n".join([HEADER, *rows]) + "\n"


class FakeHost:
    """A /proc/sys and /proc in a directory, and a set of runs that are alive."""

    def __init__(self, root: Path, values: dict[str, int] | None = None) -> None:
        self.live: set[str] = set()
        self.host = Host(root / "sys", root / "proc", root / "state", alive=lambda p: p in self.live)
        for key, value in (values or DEFAULTS).items():
            self.set(key, value)
        self.put("sys/fs/file-nr", "1773\t0\t2466177\n")
        self.put("proc/loadavg", "0.10 0.20 0.30 2/194 9608\n")
        self.put("proc/net/stat/arp_cache", neighbour_stats(6))
        self.put("proc/net/stat/ndisc_cache", neighbour_stats(4))
        self.put("proc/net/softnet_stat", "0000a 00000000 00\n0000b 00000000 00\n")

    def put(self, relative: str, text: str) -> None:
        path = self.host.sys_root.parent / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def set(self, key: str, value: int) -> None:
        self.put("sys/" + key.replace(".", "/"), f"{value}\n")

    def values(self) -> dict[str, int]:
        return {key: self.host.read(key) for key in DEFAULTS}

    def record(self) -> dict | None:
        path = self.host.state_root / RECORD
        return json.loads(path.read_text()) if path.exists() else None

    def reserve(self, prefix: str, need: Need) -> list[str]:
        said: list[str] = []
        self.live.add(prefix)
        hostlimits.reserve(prefix, need, said.append, self.host)
        return said


def need(ipv4: int = 10, ipv6: int = 10, conntrack: int = 10, files: int = 10, tasks: int = 10) -> Need:
    return Need(ipv4, ipv6, conntrack, files, tasks, process_files=16)


@pytest.fixture
def fake(tmp_path) -> FakeHost:
    return FakeHost(tmp_path)


# --- the estimate ---

def test_estimate_of_three_nodes_with_24_pods_follows_the_formula_and_covers_what_was_measured():
    """P = 25 pods a node (24 probes + duo), 29 on the first (with the four standalone pods), N = 3:
    pods P·(P+1) and the node P+2N+3 on each node, outside N+1.
    Measured on this machine at the peak of a full run: 1,830 IPv4 entries, ~330 IPv6 entries,
    21,086 (bridge) and 45,619 (vxlan) conntrack entries in the busiest node, 44 files and 54
    threads in the busiest probe, 954 threads and 7,524 open files on the whole host (1,773 before)."""
    found = hostlimits.estimate(plan(LabSpec(Path("x"), nodes=3, pods_per_node=24)))
    assert found.ipv4_neighbours == 29 * 30 + 2 * 25 * 26 + (29 + 9) + 2 * (25 + 9) + 4 == 2280
    assert found.ipv6_neighbours == 3 * (2 * (29 + 2 * 25) + 4 * 3 + 2 + 1) == 519
    assert 1830 <= found.ipv4_neighbours < 2 * 1830 and 330 <= found.ipv6_neighbours
    assert 45619 <= found.conntrack < 2 * 45619
    assert found.process_files >= 44
    assert found.tasks >= 954 and found.open_files >= 7524 - 1773  # the host's growth at the peak


def test_a_dual_stack_lab_needs_its_pods_neighbours_in_the_ipv6_table_too():
    """A 50-node dual-stack lab filled the IPv6 table (3,066 entries, set from the multicast
    entries alone) and its IPv6 Service connections timed out: both families hold the same pods."""
    ipv4 = hostlimits.estimate(plan(LabSpec(Path("x"), nodes=50)))
    dual = hostlimits.estimate(plan(LabSpec(Path("x"), nodes=50, families=("ipv4", "ipv6"))))
    assert dual.ipv4_neighbours == ipv4.ipv4_neighbours
    assert dual.ipv6_neighbours == ipv4.ipv6_neighbours + ipv4.ipv4_neighbours
    assert dual.ipv6_neighbours > 3066


def test_estimate_grows_with_nodes_and_pods():
    small, more_pods, more_nodes = (hostlimits.estimate(plan(LabSpec(Path("x"), nodes=n, pods_per_node=p)))
                                    for n, p in ((3, 2), (3, 14), (6, 2)))
    for field in ("ipv4_neighbours", "ipv6_neighbours", "conntrack", "open_files", "tasks"):
        assert getattr(small, field) < getattr(more_pods, field)
        assert getattr(small, field) < getattr(more_nodes, field)


def test_one_run_of_3x14_fits_the_default_table_and_two_do_not():
    """The issue's case: two concurrent runs of 3 x 14 overflowed gc_thresh3 = 1024, one does not."""
    one = hostlimits.estimate(plan(LabSpec(Path("x"), nodes=3, pods_per_node=14))).ipv4_neighbours
    assert one < 1024 < 2 * one


# --- making room and giving it back ---

def test_a_short_limit_is_raised_with_headroom_in_one_line_and_restored_by_the_last_run(fake):
    said = fake.reserve("netconform-aaaaaa", need(ipv4=2000))
    assert fake.values()["net.ipv4.neigh.default.gc_thresh3"] == 2 * (2000 + 6)
    assert fake.values()["net.ipv4.neigh.default.gc_thresh2"] == 2000 + 6
    assert said == ["lab: host limits raised for this run: net.ipv4.neigh.default.gc_thresh3 "
                    "1024→4012, net.ipv4.neigh.default.gc_thresh2 512→2006 (restored when the last "
                    "lab run ends)"]
    assert fake.record()["original"] == {"net.ipv4.neigh.default.gc_thresh3": 1024,
                                         "net.ipv4.neigh.default.gc_thresh2": 512}
    assert hostlimits.release("netconform-aaaaaa", fake.host) == []
    assert fake.values() == DEFAULTS
    assert fake.record() is None


def test_nothing_short_nothing_said_nothing_changed(fake):
    assert fake.reserve("netconform-aaaaaa", need()) == []
    assert fake.values() == DEFAULTS
    hostlimits.release("netconform-aaaaaa", fake.host)
    assert fake.values() == DEFAULTS and fake.record() is None


def test_a_value_is_never_lowered(tmp_path):
    fake = FakeHost(tmp_path, {**DEFAULTS, "net.ipv4.neigh.default.gc_thresh3": 100000})
    fake.reserve("netconform-aaaaaa", need(ipv4=2000))
    assert fake.values()["net.ipv4.neigh.default.gc_thresh3"] == 100000
    hostlimits.release("netconform-aaaaaa", fake.host)
    assert fake.values()["net.ipv4.neigh.default.gc_thresh3"] == 100000


def test_concurrent_runs_add_up_and_the_originals_come_back_only_after_the_last(fake):
    """Two runs that each fit the table alone: the second raises for both."""
    assert fake.reserve("netconform-aaaaaa", need(ipv4=800)) == [
        "lab: host limits raised for this run: net.ipv4.neigh.default.gc_thresh2 512→806 "
        "(restored when the last lab run ends)"]
    said = fake.reserve("netconform-bbbbbb", need(ipv4=800))
    assert fake.values()["net.ipv4.neigh.default.gc_thresh3"] == 2 * (6 + 1600)
    assert "gc_thresh3 1024→3212" in said[0] and "gc_thresh2 806→1606" in said[0]
    assert hostlimits.release("netconform-aaaaaa", fake.host) == []
    assert fake.values()["net.ipv4.neigh.default.gc_thresh3"] == 3212  # b still runs
    assert set(fake.record()["holders"]) == {"netconform-bbbbbb"}
    hostlimits.release("netconform-bbbbbb", fake.host)
    assert fake.values() == DEFAULTS and fake.record() is None


def test_a_holder_whose_run_died_does_not_count(fake):
    fake.reserve("netconform-aaaaaa", need(ipv4=2000))
    fake.live.discard("netconform-aaaaaa")  # killed: its teardown never ran
    hostlimits.release("netconform-cccccc", fake.host)  # any later release (a sweep) restores
    assert fake.values() == DEFAULTS and fake.record() is None


def test_a_new_run_after_a_dead_holder_starts_from_the_originals(fake):
    fake.reserve("netconform-aaaaaa", need(ipv4=2000))
    fake.live.discard("netconform-aaaaaa")
    fake.reserve("netconform-bbbbbb", need(ipv4=10))
    assert fake.values() == DEFAULTS  # restored, and the small run needs nothing raised
    assert set(fake.record()["holders"]) == {"netconform-bbbbbb"}


def test_a_value_changed_by_someone_else_meanwhile_is_left_and_said(fake):
    fake.reserve("netconform-aaaaaa", need(ipv4=2000))
    fake.set("net.ipv4.neigh.default.gc_thresh3", 9999)
    problems = hostlimits.release("netconform-aaaaaa", fake.host)
    assert fake.values()["net.ipv4.neigh.default.gc_thresh3"] == 9999
    assert fake.values()["net.ipv4.neigh.default.gc_thresh2"] == 512
    assert problems == ["host limit net.ipv4.neigh.default.gc_thresh3 left at 9999: changed by "
                        "someone else during the lab runs (the original was 1024)"]


@dataclass(frozen=True)
class ReadOnlyIPv6(Host):
    """A host whose IPv6 neighbour settings cannot be written, as with a read-only /proc/sys."""

    def write(self, key: str, value: int) -> None:
        if key.startswith("net.ipv6."):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self.path(key)))
        super().write(key, value)


def test_a_limit_that_cannot_be_raised_refuses_in_one_line_and_leaves_nothing_raised(fake):
    fake.host = ReadOnlyIPv6(**{f: getattr(fake.host, f) for f in Host.__dataclass_fields__})
    with pytest.raises(BackendError) as raised:
        fake.reserve("netconform-aaaaaa", need(ipv4=2000, ipv6=2000))
    assert str(raised.value) == (
        "host limit net.ipv6.neigh.default.gc_thresh3 is 1024, this lab needs 2004, and it cannot "
        "be raised here (Read-only file system): as root on the host, run 'sysctl -w "
        "net.ipv4.neigh.default.gc_thresh3=4012 net.ipv4.neigh.default.gc_thresh2=2006 "
        "net.ipv6.neigh.default.gc_thresh3=4008 net.ipv6.neigh.default.gc_thresh2=2004', "
        "or run a smaller lab")
    assert fake.values() == DEFAULTS  # what this call raised before the refusal is put back
    assert fake.record() is None


def test_a_setting_the_kernel_lacks_is_skipped(fake):
    fake.host.path("net.netfilter.nf_conntrack_max").unlink()  # nf_conntrack not loaded
    fake.reserve("netconform-aaaaaa", need(conntrack=10**7))
    assert fake.host.read("net.netfilter.nf_conntrack_max") is None


def test_conntrack_is_sized_by_the_biggest_run_not_the_sum(fake):
    """nf_conntrack_max is compared with each namespace's own count: runs do not add up."""
    fake.reserve("netconform-aaaaaa", need(conntrack=200000))
    fake.reserve("netconform-bbbbbb", need(conntrack=200000))
    assert fake.host.read("net.netfilter.nf_conntrack_max") == 262144
    fake.reserve("netconform-cccccc", need(conntrack=300000))
    assert fake.host.read("net.netfilter.nf_conntrack_max") == 600000


def test_pid_max_stays_within_the_kernel_ceiling(fake):
    fake.reserve("netconform-aaaaaa", need(tasks=3_000_000))
    assert fake.host.read("kernel.pid_max") == hostlimits.PID_MAX_LIMIT


def test_the_sweep_of_a_dead_run_releases_its_hold(fake, tmp_path, monkeypatch):
    """cleanup.remove_run (the start-up sweep, --cleanup-only) ends by releasing the run."""
    monkeypatch.setattr(hostlimits, "HOST", fake.host)
    monkeypatch.setattr(cleanup, "STATE_ROOT", tmp_path / "state")
    fake.reserve("netconform-aaaaaa", need(ipv4=2000))
    fake.live.discard("netconform-aaaaaa")
    assert cleanup.remove_run("netconform-aaaaaa") == []
    assert fake.values() == DEFAULTS and fake.record() is None


def test_every_limit_has_a_need_to_size_it():
    assert {limit.need for limit in LIMITS} <= set(Need.__dataclass_fields__)


def test_the_process_may_open_what_a_probe_needs():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 600:
        pytest.skip(f"the hard limit here ({hard}) is below what the test asks for")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        hostlimits._room_for_files(300)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 600
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- noticing overflows ---

def test_an_overflow_of_the_neighbour_table_between_snapshots_is_named_with_its_limit(fake):
    before = hostlimits.snapshot(host=fake.host)
    assert hostlimits.exceeded(before, hostlimits.snapshot(host=fake.host), fake.host) is None
    fake.put("proc/net/stat/arp_cache", neighbour_stats(1024, (30, 7)))
    assert hostlimits.exceeded(before, hostlimits.snapshot(host=fake.host), fake.host) == (
        "host limit: the kernel's IPv4 neighbour table overflowed 37 times "
        "(net.ipv4.neigh.default.gc_thresh3=1024) during this batch")


def test_backlog_and_conntrack_drops_are_named_too(fake):
    before = {"ipv4-neighbour": 0, "ipv6-neighbour": 5, "backlog": 3, "conntrack:ns-a": 1,
              "conntrack:ns-b": 0}
    after = {"ipv4-neighbour": 0, "ipv6-neighbour": 5, "backlog": 9, "conntrack:ns-a": 4,
             "conntrack:ns-c": 50}  # ns-c was not in the first snapshot: not compared
    reason = hostlimits.exceeded(before, after, fake.host)
    assert reason == ("host limit: a full connection-tracking table dropped 3 connections "
                      "(net.netfilter.nf_conntrack_max=262144); the kernel's per-CPU receive backlog "
                      "dropped 6 packets (net.core.netdev_max_backlog=1000) during this batch")


def test_stat_files_sum_cpus_but_take_the_table_wide_entry_count_once(tmp_path):
    path = tmp_path / "nf_conntrack"
    row = " ".join(["{:08x}"] * 17)
    path.write_text(CONNTRACK + "\n" + row.format(5, *[0] * 9, 2, 1, *[0] * 5) + "\n"
                    + row.format(5, *[0] * 9, 3, 0, *[0] * 5) + "\n")
    totals = hostlimits._stat_table(path)
    assert totals["entries"] == 5 and totals["drop"] == 5 and totals["early_drop"] == 1


def test_the_real_counters_can_be_read_here():
    """On this machine's kernel: the neighbour statistics exist in the root namespace."""
    found = hostlimits.snapshot()
    assert {"ipv4-neighbour", "ipv6-neighbour", "backlog"} <= set(found)
    assert hostlimits.exceeded(found, found) is None


def test_the_lab_backend_hands_the_runner_its_watch():
    watch = LabBackend(PROFILES["bridge"]).host_watch()
    assert set(watch.snapshot()) == {"ipv4-neighbour", "ipv6-neighbour", "backlog"}  # no lab yet
    assert "IPv4 neighbour table overflowed 2 times" in watch.exceeded(
        {"ipv4-neighbour": 1}, {"ipv4-neighbour": 3})


@pytest.mark.parametrize("cpus, parallel, each", [(2, 16, 16), (1, 16, 8), (8, 16, 64), (64, 16, 64), (1, 64, 4)])
def test_the_lab_s_probes_share_this_machine_s_cpus_and_run_fewer_connections_at_once(monkeypatch, cpus, parallel, each):
    """1,024 connections at once on 2 CPUs starved the probes' echo servers (SVC-HAIRPIN at 50 nodes)."""
    monkeypatch.setattr("netconform.backends.lab.backend.cpus", lambda: cpus)
    assert LabBackend(PROFILES["bridge"]).probe_concurrency(parallel) == each
    from netconform.backends.kube.backend import KubeBackend
    assert KubeBackend.probe_concurrency(object.__new__(KubeBackend), parallel) is None  # a cluster's nodes each have their own

"""Scale benchmark. Not a test: run as root.

Two parts:

- ``--suite-sizes 10 30 50 100``: the whole suite as a user runs it (``pytest suites`` with default
  options but ``--lab-nodes``, plus any ``--suite-args``), one lab size after another: set-up,
  probing, teardown, items, failed items per requirement (on a healthy lab every one is a false
  failure), results.json and report.html sizes, and the peak memory of the machine over its level
  before the run (the harness, every probe, the control plane and kube-proxies: all of the run).
- ``--sizes 3 6 10``: labs built in-process; probing per check, pairs per second, probe requests
  per check; and the ratio of the batched probing of POD-POD-CROSS (TCP) to the same connections
  opened one after another in one tight loop from one process.

    sudo .tox/netconform/bin/python bench/scale.py --suite-sizes 10 30 [--suite-args="--ip-family=ipv4"] [--keep-reports DIR]
    sudo .tox/netconform/bin/python bench/scale.py [--sizes 3 6 10] [--ratio-pods 3]
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from netconform.backends.lab.cluster import LabCluster, LabSpec  # noqa: E402
from netconform.backends.lab.netns import path as netns_path  # noqa: E402
from netconform.checks import INSPECT  # noqa: E402
from netconform.probing.cycle import PodControl  # noqa: E402
from netconform.probing.runner import Runner  # noqa: E402
from netconform.profiles import profile  # noqa: E402
from netconform.report import results  # noqa: E402

SUITES = ["test_pod_network", "test_node_network", "test_localhost", "test_services", "test_mtu"]
CLONE_NEWNET = 0x40000000


def checks() -> list:
    found = []
    for name in SUITES:
        module = importlib.import_module(f"suites.{name}")
        found += [f.netconform_check for f in vars(module).values() if hasattr(f, "netconform_check")]
    return found


def quiet(message: str) -> None:
    pass


def build(nodes: int, pods: int) -> tuple[LabCluster, object, float]:
    cluster = LabCluster(LabSpec(profile("bridge").conflist, nodes=nodes, pods_per_node=pods,
                                 ready_timeout=120))
    began = time.monotonic()
    try:
        live = cluster.build(quiet)
    except BaseException:
        cluster.teardown()
        raise
    return cluster, live, time.monotonic() - began


def measure_size(nodes: int) -> dict:
    cluster, live, setup = build(nodes, 2)
    try:
        runner, rows = Runner(live, cluster.channel, services=cluster.change_service,
                             through_api=cluster.reach_through_api,
                             pods=PodControl(cluster.start_pod, cluster.delete_pod)), []
        for check in checks():
            for protocol in check.protocols:
                cases = check.cases(live, protocol)
                before = sum(runner.requests.values())
                began = time.monotonic()
                if protocol == INSPECT:
                    for case in cases:
                        runner.observe(check, case)
                else:
                    runner.batch(check, protocol)
                seconds = time.monotonic() - began
                rows.append((f"{check.requirement} {protocol}", len(cases), seconds,
                             sum(runner.requests.values()) - before))
    finally:
        began = time.monotonic()
        cluster.teardown()
        teardown = time.monotonic() - began
    return {"nodes": nodes, "setup": setup, "teardown": teardown, "rows": rows}


def tight_loop(cluster: LabCluster, live, pairs: list) -> float:
    """Every (source, destination) connection, one after another, from this one process: the
    thread enters each source pod's namespace with setns(2) and connects as the probe would."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    began = time.monotonic()
    try:
        for source, destinations in pairs:
            fd = os.open(netns_path(cluster.names.pod(source.node, source.role)), os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
            for destination in destinations:
                with socket.create_connection((destination.ip, destination.port), timeout=2) as sock:
                    sock.sendall(b"tight-loop\n")
                    while sock.recv(4096):
                        pass
    finally:
        libc.setns(home, CLONE_NEWNET)
        os.close(home)
    return time.monotonic() - began


def measure_ratio(nodes: int, pods: int) -> dict:
    cluster, live, _ = build(nodes, pods)
    try:
        cross = next(c for c in checks() if c.requirement == "POD-POD-CROSS")
        cases = cross.cases(live, "tcp")
        runner = Runner(live, cluster.channel)
        began = time.monotonic()
        answers = runner.batch(cross, "tcp")
        batched = time.monotonic() - began
        assert all(r["ok"] for r in answers.values()), "a healthy lab must pass"
        by_source: dict = {}
        for case in cases:
            by_source.setdefault(case.source, []).append(live.endpoint(case.destination))
        loop = tight_loop(cluster, live, [(live.endpoint(s), d) for s, d in by_source.items()])
        return {"pairs": len(cases), "batched": batched, "loop": loop, "requests": runner.requests["tcp"]}
    finally:
        cluster.teardown()


def memory_in_use() -> int:
    """Bytes of the machine's memory in use (MemTotal - MemAvailable)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(fields["MemTotal"].split()[0]) - int(fields["MemAvailable"].split()[0])) * 1024


def measure_suite(nodes: int, extra: list[str], timeout: float, keep: Path | None = None) -> dict:
    """The whole suite on a lab of ``nodes`` nodes, as a user runs it, with the machine's memory
    sampled twice a second. Its output goes to ``suite-output.txt`` in the report directory as it
    comes (follow it with ``tail -f``); with ``keep`` that directory is ``keep/nodes-<N>`` and
    stays, so the report can be opened afterwards."""
    baseline, peak, done = memory_in_use(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], memory_in_use())

    watcher = threading.Thread(target=sample, daemon=True)
    with contextlib.ExitStack() as stack:
        if keep is None:
            report = stack.enter_context(tempfile.TemporaryDirectory(prefix="netconform-scale-"))
        else:
            report = str(keep / f"nodes-{nodes}")
            Path(report).mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pytest", "suites", "-q", "-s", "-p", "no:cacheprovider",
                   f"--report-dir={report}", f"--lab-nodes={nodes}", *extra]
        output = Path(report) / "suite-output.txt"
        print(f"# {nodes} nodes: {shlex.join(command)} (output: {output})", file=sys.stderr, flush=True)
        watcher.start()
        began = time.monotonic()
        try:
            with output.open("w") as sink:
                run = subprocess.run(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"nodes": nodes, "error": f"did not finish within {timeout:.0f}s"}
        finally:
            done.set()
            watcher.join()
        wall = time.monotonic() - began
        try:
            document = results.read(Path(report) / "results.json")
        except (OSError, ValueError):
            said = [line for line in output.read_text(errors="replace").splitlines()
                    if line.startswith(("ERROR", "netconform", "INTERNALERROR"))]
            return {"nodes": nodes, "error": f"exit {run.returncode}, no results: " + " / ".join(said[-6:])}
        failed: dict[str, int] = {}
        for item in document["items"]:
            if item["outcome"] in ("failed", "error"):
                failed[item["requirement"]] = failed.get(item["requirement"], 0) + 1
        phases = document["meta"].get("phases", {})
        return {"nodes": nodes, "verdict": document["verdict"], "wall": wall, "items": len(document["items"]),
                "setup": phases.get("setup", 0.0), "probing": phases.get("probing", 0.0),
                "teardown": phases.get("teardown", 0.0), "failed": failed,
                "results_mb": (Path(report) / "results.json").stat().st_size / 1e6,
                "report_mb": (Path(report) / "report.html").stat().st_size / 1e6,
                "peak_gb": max(0, peak[0] - baseline) / 1e9,
                "coverage": f"{document['coverage']['tested']:,} of {document['coverage']['exist']:,} pairs"
                if document.get("coverage") else ""}


def print_suite(found: dict) -> None:
    if "error" in found:
        print(f"| {found['nodes']} | {found['error']} |")
        return
    failures = ", ".join(f"{k} {v}" for k, v in sorted(found["failed"].items())) or "0"
    print(f"| {found['nodes']} | {found['verdict']} | {found['items']:,} | {found['coverage']} | "
          f"{found['setup']:.0f} s | {found['probing']:.0f} s | {found['teardown']:.0f} s | "
          f"{found['items'] / max(found['probing'], 1e-9):.0f} | {found['results_mb']:.1f} MB | "
          f"{found['report_mb']:.1f} MB | {found['peak_gb']:.1f} GB | {failures} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite-sizes", type=int, nargs="+", default=None,
                        help="run the whole suite on labs of these many nodes (and nothing else)")
    parser.add_argument("--suite-args", default="", help="more options for every suite run, as one string")
    parser.add_argument("--suite-timeout", type=float, default=3600, help="seconds one suite run may take")
    parser.add_argument("--keep-reports", type=Path, default=None,
                        help="keep each suite run's report directory here (nodes-<N>/)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 6, 10])
    parser.add_argument("--ratio-nodes", type=int, default=10)
    parser.add_argument("--ratio-pods", type=int, default=3, help="probe pods per node for the ratio")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/scale.py builds labs: run it as root")
        return 2
    if args.suite_sizes:
        print("| nodes | verdict | items | pairs | set-up | probing | teardown | items/s | results.json "
              "| report.html | peak memory | failed or error |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for nodes in args.suite_sizes:
            print_suite(measure_suite(nodes, shlex.split(args.suite_args), args.suite_timeout, args.keep_reports))
        return 0
    for nodes in args.sizes:
        found = measure_size(nodes)
        probing = sum(row[2] for row in found["rows"])
        pairs = sum(row[1] for row in found["rows"])
        print(f"\n{nodes} nodes, 2 probe pods per node: set-up {found['setup']:.1f}s, teardown "
              f"{found['teardown']:.1f}s, probing {probing:.1f}s for {pairs} pairs "
              f"({pairs / probing:.0f} pairs/s)")
        print(f"  {'check':<26}{'pairs':>7}{'seconds':>9}{'pairs/s':>9}{'requests':>10}")
        for name, count, seconds, requests in found["rows"]:
            print(f"  {name:<26}{count:>7}{seconds:>9.2f}{count / max(seconds, 1e-9):>9.0f}{requests:>10}")
    ratio = measure_ratio(args.ratio_nodes, args.ratio_pods)
    print(f"\nPOD-POD-CROSS tcp on {args.ratio_nodes} nodes x {args.ratio_pods} pods: {ratio['pairs']} "
          f"pairs in {ratio['requests']} probe requests; batched {ratio['batched']:.2f}s, one tight "
          f"loop {ratio['loop']:.2f}s; ratio batched/loop = {ratio['batched'] / ratio['loop']:.2f} "
          f"(goal: at most 10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

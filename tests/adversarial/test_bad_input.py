"""Nonsense on the command line: a usage error (exit 4), at most a few lines, in seconds, before
anything is created. And options behave the same written as --opt VALUE and --opt=VALUE."""
import subprocess
import sys
import time

import pytest

from .conftest import REPO, lab_namespaces, made_since, run_suite

EXAMPLES = REPO / "manifests" / "lab" / "examples"


@pytest.fixture
def untouched():
    """The test must not leave a lab namespace behind (nor create one: nothing is built)."""
    before = set(lab_namespaces())
    yield
    assert made_since(before) == set()


@pytest.mark.parametrize("args, message", [
    (["--lab-nodes=0"], "argument --lab-nodes: 0 is out of range: 1..200"),
    (["--lab-nodes=-3"], "argument --lab-nodes: -3 is out of range: 1..200"),
    (["--lab-nodes=100000"], "argument --lab-nodes: 100000 is out of range: 1..200"),
    (["--lab-nodes=three"], "argument --lab-nodes: 'three' is not an integer"),
    (["--lab-pods-per-node=0"], "argument --lab-pods-per-node: 0 is out of range: 1..26"),
    (["--probe-timeout=0"], "argument --probe-timeout: 0 is out of range: 0.5..30 s"),
    (["--probe-timeout=-1"], "argument --probe-timeout: -1 is out of range: 0.5..30 s"),
    (["--probe-timeout=nan"], "argument --probe-timeout: nan is out of range: 0.5..30 s"),
    (["--probe-timeout=31"], "argument --probe-timeout: 31 is out of range: 0.5..30 s"),
    (["--probe-attempts=0"], "argument --probe-attempts: 0 is out of range: 1..5"),
    (["--probe-attempts=6"], "argument --probe-attempts: 6 is out of range: 1..5"),
    (["--lab-ready-timeout=-5"], "argument --lab-ready-timeout: -5 is out of range: 1..3600 s"),
    (["--lab-cni-timeout=0"], "argument --lab-cni-timeout: 0 is out of range: 1..600 s"),
    (["--fail-on=sometimes"], "argument --fail-on: invalid choice: 'sometimes'"),
    (["--ip-family=ipv5"], "argument --ip-family: invalid choice: 'ipv5'"),
    (["--pairs=some"], "argument --pairs: invalid choice: 'some'"),
    (["--pairs-seed=-1"], "argument --pairs-seed: -1 is out of range"),
    (["--peers-per-node=0"], "argument --peers-per-node: 0 is out of range: 1..5000"),
    (["--pairs=all", "--peers-per-node=3"], "--peers-per-node chooses a sample of the pairs"),
    (["--ip-family=ipv6", "--cni=vxlan"], "netconform: --ip-family=ipv6: the lab builds IPv6-only clusters with a conflist"),
    (["--ip-family=ipv6", "--lab-fault=snat-between-nodes"], "acts on IPv4 (its routes, iptables or nftables rules) and this lab is IPv6-only"),
    (["--ip-family=ipv6", f"--lab-cni-conf={EXAMPLES / 'bridge-dual.conflist'}"], "which only a dual-stack lab has: run it with --ip-family=dual"),
    (["--ip-family=dual", "--cni=vxlan"], "netconform: --ip-family=dual: the lab builds dual-stack clusters with a conflist and routes"),
    (["--ip-family=dual", "--cni=flannel"], "not with flannel in this version"),
    (["--lab-nodes=200", "--pairs=all"], "200 nodes with 400 probe pods make about "),  # the count: the next test
    (["--report-dir=/proc/netconform-x"], "netconform: --report-dir /proc/netconform-x: cannot write there"),
    ([f"--lab-cni-conf={EXAMPLES}"], f"netconform: --lab-cni-conf {EXAMPLES} is a directory"),
    (["--cni=ptp", f"--lab-cni-conf={EXAMPLES / 'macvlan.conflist'}"],
     "netconform: --cni and --lab-cni-conf both name the CNI"),
    (["--not-applicable=NO-SUCH-ROW=x"], "unknown requirement 'NO-SUCH-ROW'"),
    (["--not-applicable=HOSTPORT"], "netconform: --not-applicable HOSTPORT: give the reason"),
    (["--baseline=/nonexistent/results.json"], "netconform: --baseline /nonexistent/results.json: No such file"),
    (["--baseline=/etc/hostname"], "netconform: --baseline: /etc/hostname is not a netconform results file"),
    (["--baseline="], "argument --baseline: an empty path"),
    (["-n", "2"], "-n/--numprocesses (or -d/--dist/--tx) runs netconform's own tests in parallel"),
    (["-d", "--tx", "popen", "--tx", "popen"], "runs netconform's own tests in parallel"),
])
def test_bad_input_is_one_usage_error_in_seconds_with_nothing_created(tmp_path, untouched, args, message):
    began = time.monotonic()
    run = run_suite(tmp_path / "report", *args, timeout=60)
    assert run.returncode == 4, run.output[-2000:]
    assert message in run.output, run.output[-2000:]
    assert time.monotonic() - began < 20
    header = ("platform ", "rootdir:", "configfile:", "plugins:", "=====")
    said = [line for line in run.output.splitlines() if line.strip() and not line.startswith(header)]
    assert len(said) <= 4, run.output
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output
    assert not (tmp_path / "report" / "results.json").exists()


def test_a_lab_whose_upstream_components_are_not_built_says_how_to_build_them(tmp_path, untouched):
    import os
    run = run_suite(tmp_path / "report", "--lab-release=1.34", timeout=60,
                    env={**os.environ, "NETCONFORM_UPSTREAM_CACHE": str(tmp_path / "empty-cache")})
    assert run.returncode == 4, run.output[-2000:]
    assert "is not built in" in run.output and "build --release 1.34" in run.output, run.output[-2000:]
    assert "Traceback" not in run.output


def collected(*args: str) -> tuple[int, str]:
    """(items, rootdir) of a collect-only run with these arguments, as a user would type them."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    count = next(line for line in done.stdout.splitlines() if "collected" in line)
    rootdir = next((line for line in (done.stdout + done.stderr).splitlines() if "rootdir" in line), "")
    return int(count.split()[0]), rootdir


def test_options_mean_the_same_with_a_space_or_an_equals_sign(tmp_path):
    """pytest takes an existing DIR after --report-dir for a test path and moves its rootdir (other
    config, other items); netconform makes both spellings the same run."""
    joined = collected(f"--report-dir={tmp_path}")
    spaced = collected("--report-dir", str(tmp_path))
    assert joined == spaced
    assert joined[0] > 100 and not any("tests/" in line for line in [joined[1]])


def test_help_lists_every_lab_profile_and_the_ranges():
    done = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    text = " ".join(done.stdout.split())
    assert "lab profiles bridge, ptp, vxlan" in text
    assert "lab nodes, default 3 (1..200)" in text and "(0.5..30 s)" in text


def test_a_non_root_user_of_the_run_script_gets_exit_4(tmp_path):
    done = subprocess.run(["unshare", "--user", "--map-user=1000", "--map-group=1000",
                           str(REPO / "run"), "lab"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "needs root" in done.stderr


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="the lab needs root")
def test_last_failed_reruns_only_the_failed_items(tmp_path):
    """--lf and --ff need pytest's cache, which an earlier version disabled without a word."""
    def run(*extra):
        cache = f"cache_dir={tmp_path / 'cache'}"
        done = subprocess.run([sys.executable, "-m", "pytest", "suites", "-o", cache,
                               f"--report-dir={tmp_path / 'report'}", "-m", "POD-POD-CROSS", "--ip-family=ipv4",
                               "--lab-fault=no-route-to-last-node", "--probe-timeout=0.5",
                               "--probe-attempts=1", *extra], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        return done.stdout + done.stderr
    first = run()
    failed = int(first.rsplit(" failed", 1)[0].split()[-1])
    assert failed > 0, first[-2000:]
    again = run("--lf")
    assert f"{failed} failed" in again and " passed" not in again.splitlines()[-1], again[-2000:]


@pytest.mark.parametrize("nodes, pods, pairs", [(1, 1, "auto"), (3, 2, "auto"), (12, 1, "all"), (5, 6, "auto"),
                                                (12, 1, "auto"), (30, 2, "sample"), (5, 3, "sample"),
                                                (100, 2, "auto")])
@pytest.mark.parametrize("family", ["ipv4", "dual"])
def test_the_size_estimate_never_undercounts_what_is_collected(nodes, pods, pairs, family):
    """The guard against huge labs refuses before collecting, from an estimate: an estimate below
    the real count once let a 145-node lab collect 234,321 items past a 150,000 limit (and one
    that counted one family undercounted the dual-stack default by half)."""
    from dataclasses import replace
    from netconform.backends.lab.cluster import LabSpec, plan
    from netconform.pair_plan import PairPlan
    from netconform.profiles import profile
    from netconform.pytest_run import estimated_items
    from netconform.topology import IP_FAMILY_CHOICES
    count, _ = collected(f"--lab-nodes={nodes}", f"--lab-pods-per-node={pods}", f"--ip-family={family}",
                         f"--pairs={pairs}")
    spec = LabSpec(profile("bridge").conflist, nodes, pods, families=IP_FAMILY_CHOICES[family])
    planned = replace(plan(spec), pairs=PairPlan.for_cluster(pairs, nodes))
    assert count <= estimated_items(planned) <= 1.5 * count + 200


def test_one_report_directory_serves_one_run_at_a_time(tmp_path):
    import fcntl
    (tmp_path / "report").mkdir()
    with open(tmp_path / "report" / ".netconform.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a run in progress holds it
        run = run_suite(tmp_path / "report", "-m", "LOCALHOST", timeout=60)
    assert run.returncode == 4 and "another netconform run is writing there now" in run.output


@pytest.mark.parametrize("args, message", [
    (["--report-dir="], "argument --report-dir: an empty path"),
    (["--cni="], "unknown --cni ''"),
    (["--lab-cni-conf=/dev/null"], "--lab-cni-conf /dev/null is not a regular file"),
])
def test_empty_and_odd_values_are_refused(tmp_path, args, message):
    done = subprocess.run([sys.executable, "-m", "pytest", "suites", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 4 and message in done.stdout + done.stderr, done.stdout + done.stderr

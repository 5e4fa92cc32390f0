"""Bad input gets one clear message and a non-zero exit, fast, and leaves nothing behind."""
import json
import subprocess
import time

import pytest

from .conftest import REPO, lab_namespaces, leftovers, made_since, needs_root, run_suite, suite_command


@pytest.fixture
def untouched():
    """The test must not leave a lab namespace behind."""
    before = set(lab_namespaces())
    yield
    assert made_since(before) == set()


def timed(tmp_path, *args):
    began = time.monotonic()
    run = run_suite(tmp_path, *args, timeout=60)
    return run, time.monotonic() - began


def test_unknown_cni_is_a_usage_error(tmp_path, untouched):
    run, seconds = timed(tmp_path, "--cni=calcio")
    assert run.returncode == 4 and seconds < 15
    assert ("netconform: unknown --cni 'calcio'; known profiles: bridge, ptp, vxlan (lab); antrea, aws-vpc-cni, "
            "azure-cni, calico, cilium, flannel, gke-dataplane-v2, kindnet, kube-router, other, ovn-kubernetes "
            "(live clusters)") in run.output


def test_a_missing_conflist_is_named(tmp_path, untouched):
    run, _ = timed(tmp_path, f"--lab-cni-conf={tmp_path / 'nope.conflist'}")
    assert run.returncode == 4 and "nope.conflist: no such file" in run.output


@needs_root
@pytest.mark.parametrize("conflist, message", [
    ("{broken", "is not valid JSON"),
    (json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "no-such-plugin"}]}),
     "CNI plugin 'no-such-plugin' not found in /opt/cni/bin:/usr/lib/cni"),
    (json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [
        {"type": "bridge", "ipam": {"type": "host-local", "subnet": "not-a-cidr"}}]}),
     "CNI ADD failed for node-1/"),
])
def test_a_bad_conflist_stops_the_run_with_its_reason(tmp_path, untouched, conflist, message):
    path = tmp_path / "bad.conflist"
    path.write_text(conflist)
    run, seconds = timed(tmp_path, f"--lab-cni-conf={path}")
    assert run.returncode == 4, run.output[-2000:]
    assert message in run.output and seconds < 30
    assert not (tmp_path / "results.json").exists()


@needs_root
def test_not_root_is_told_to_use_root(tmp_path, untouched):
    # A user namespace makes the run's effective uid 1000 while files stay readable as before.
    done = subprocess.run(["unshare", "--user", "--map-user=1000", "--map-group=1000",
                           *suite_command(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "netconform: the lab needs root" in done.stdout + done.stderr


def test_an_unknown_fault_is_a_usage_error_naming_the_known_ones(tmp_path, untouched):
    run, seconds = timed(tmp_path, "--lab-fault=cosmic-ray")
    assert run.returncode == 4 and seconds < 15
    assert "netconform: unknown --lab-fault 'cosmic-ray'; known faults: " in run.output
    assert "svc-no-reject" in run.output


def test_a_fault_with_no_mechanism_for_the_proxy_mode_is_refused_by_name(tmp_path, untouched):
    run, seconds = timed(tmp_path, "--lab-proxy=nftables", "--lab-fault=svc-no-affinity")
    assert run.returncode == 4 and seconds < 15, run.output[-2000:]
    assert ("--lab-fault svc-no-affinity has no mechanism for kube-proxy's nftables mode (it has one "
            "for: iptables); run it with --lab-proxy iptables") in run.output
    bad, _ = timed(tmp_path / "ipvs", "--lab-proxy=ipvs")
    assert bad.returncode == 4 and "invalid choice: 'ipvs'" in bad.output


@pytest.mark.parametrize("args, message", [
    (("--backend=kube", "--keep", "--namespace-prefix=foo"), "--keep, --namespace-prefix: live-cluster option(s)"),
    (("--backend=kube", "--probe-image=busybox:1"), "--probe-image: live-cluster option(s)"),
    (("--image-registry=mirror.local",), "--image-registry: live-cluster option(s)"),
    (("--allow-policy",), "--allow-policy adds a NetworkPolicy to a live run's namespace: on the lab it needs --backend=kube"),
    # was: silently ignored on a plain lab run
    (("--probe-image=busybox:1",), "--probe-image: live-cluster option(s)"),
    (("--node-selector=a=b", "--tolerations=all"), "--node-selector, --tolerations: live-cluster option(s)"),
    # was: given at its default or empty, each was let through and ignored
    (("--ready-timeout=180", "--namespace-prefix", "netconform", "--probe-image="),
     "--probe-image, --namespace-prefix, --ready-timeout: live-cluster option(s)"),
    (("--backend=kube", "--lab-fault=localhost-split"), "it moves a container the lab starts itself"),
    (("--backend=lab", "--cni=calico"), "--backend=lab with --cni=calico: the lab runs the lab profiles"),
    # a kubeconfig named: flannel is the live cluster's, which the lab cannot be
    (("--backend=lab", "--cni=flannel", "--kubeconfig=/nonexistent"),
     "--backend=lab with --cni=flannel: the lab runs the lab profiles (bridge, ptp, vxlan) and, with no "
     "kubeconfig named, flannel"),
    (("--lab-fault=flannel-vxlan-dropped",), "acts on flannel's datapath; run it with --cni=flannel"),
    (("--backend=foo",), "invalid choice: 'foo'"),
])
def test_backend_options_that_cannot_go_together_are_refused(tmp_path, untouched, args, message):
    """Was: --backend=kube on the lab silently ignored the live-cluster options."""
    run, seconds = timed(tmp_path, *args)
    assert run.returncode == 4 and message in run.output and seconds < 15, run.output[-2000:]


def test_a_cni_install_without_the_loopback_plugin_is_one_line_not_a_traceback(tmp_path):
    """Was: with --cni=flannel the conflist comes from the install, so the lab's preflight does not
    look the plugins up, and a CNI path without `loopback` ended in an INTERNALERROR."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "portmap").symlink_to("/usr/lib/cni/portmap")
    run = run_suite(tmp_path / "report", "--cni=flannel", f"--lab-cni-path={plugins}", "-m", "LOCALHOST",
                    timeout=180)
    assert run.returncode == 4, run.output[-2000:]
    assert "CNI plugin 'loopback' not found in" in run.output and "INTERNALERROR" not in run.output
    # its own lab, by its prefix: other tests' labs come and go meanwhile (pytest-xdist)
    assert run.prefix and leftovers(run.prefix) == []

"""The mutation test on real CNIs: labs running the pinned flannel and kube-router from their
upstream manifests, and the faults that real CNIs suffer, injected from outside the daemon (a table
of the fault's own at an earlier hook, below the daemon, which restores what it owns; the daemon
killed as an OOM kill would, and started again as kubelet would): each turns exactly its declared
requirements red, judged through the engine as tests/lab/test_faults.py judges the conflist labs.
"""
import pytest

from netconform.backends.base import BackendError
from netconform.backends.lab.cluster import LabCluster, LabSpec
from netconform.backends.lab.faults import FAULTS
from netconform.profiles import profile

from .conftest import built_lab, needs_root
from .test_faults import assert_turns_exactly_its_requirements_red, failing, judge_everything

pytestmark = needs_root
# each CNI's own faults, and the generic ones that act below any CNI and were measured on it
CNI_FAULTS = {"flannel": [name for name, f in FAULTS.items() if "flannel" in f.cnis] + ["mtu-black-hole"],
              "kube-router": [name for name, f in FAULTS.items() if "kube-router" in f.cnis] + ["mtu-black-hole"]}
# the declared deviations (profiles.py): red before any fault
KNOWN = {"flannel": {"SVC-HOSTNET-ENDPOINTS"}, "kube-router": {"SVC-HAIRPIN", "SVC-NO-ENDPOINTS"}}


def _lab(cni: str):
    chosen = profile(cni)
    yield from built_lab(LabSpec(chosen.conflist, install=chosen.lab_install))


@pytest.fixture(scope="module")
def flannel_lab():
    yield from _lab("flannel")


@pytest.fixture(scope="module")
def kube_router_lab():
    yield from _lab("kube-router")


@pytest.mark.parametrize("name", CNI_FAULTS["flannel"])
def test_a_fault_turns_its_requirements_red_on_flannel_and_spares_the_rest(flannel_lab, name):
    assert_turns_exactly_its_requirements_red(*flannel_lab, FAULTS[name])


def test_the_flannel_lab_passes_every_check_but_its_known_deviation_once_every_fault_is_reverted(flannel_lab):
    """Before any fault, the same lab as a user runs it passes (test_real_cnis.py); after them all,
    reverting has left it as it was."""
    assert_healthy_but_known(*flannel_lab, KNOWN["flannel"])


@pytest.mark.parametrize("name", CNI_FAULTS["kube-router"])
def test_a_fault_turns_its_requirements_red_on_kube_router_and_spares_the_rest(kube_router_lab, name):
    assert_turns_exactly_its_requirements_red(*kube_router_lab, FAULTS[name])


def test_the_kube_router_lab_passes_every_check_but_its_known_deviations_once_every_fault_is_reverted(kube_router_lab):
    assert_healthy_but_known(*kube_router_lab, KNOWN["kube-router"])


def assert_healthy_but_known(cluster, live, known: set[str]) -> None:
    outcomes = judge_everything(cluster, live)
    assert failing(outcomes) == known, {r: c.reasons[:3] for r, c in outcomes.items() if c.reasons}
    assert not any(c["error"] for c in outcomes.values())


@pytest.mark.parametrize("name, cni", [("flannel-vxlan-dropped", "flannel"),
                                       ("kube-router-agent-killed", "kube-router")])
def test_a_cnis_fault_is_refused_on_a_lab_without_that_cni(name, cni):
    cluster = LabCluster(LabSpec(profile("bridge").conflist))
    with pytest.raises(BackendError, match=f"acts on {cni}'s datapath; run it with --cni={cni}"):
        cluster.inject(FAULTS[name], None)

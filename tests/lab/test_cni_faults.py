"""The mutation test on a real CNI: a lab running the pinned flannel from its release manifest,
and the faults that real CNIs suffer, injected from outside the daemon (a table of the fault's own
at an earlier hook, below flanneld, which restores what it owns): each turns exactly its declared
requirements red, judged through the engine as tests/lab/test_faults.py judges the conflist labs.
"""
import pytest

from netconform.backends.base import BackendError
from netconform.backends.lab.cluster import LabCluster, LabSpec
from netconform.backends.lab.faults import FAULTS
from netconform.profiles import profile

from .conftest import leftovers, needs_root
from .test_faults import assert_turns_exactly_its_requirements_red, failing, judge_everything

pytestmark = needs_root
# flannel's own faults, and the generic ones that act below any CNI and were measured on it
FLANNEL_FAULTS = [name for name, f in FAULTS.items() if "flannel" in f.cnis] + ["mtu-black-hole"]
KNOWN = {"SVC-HOSTNET-ENDPOINTS"}  # flannel's declared deviation (profiles.py): red before any fault


@pytest.fixture(scope="module")
def flannel_lab():
    chosen = profile("flannel")
    cluster = LabCluster(LabSpec(chosen.conflist, install=chosen.lab_install))
    try:
        live = cluster.build(lambda message: None)
    except BaseException:
        cluster.teardown()
        raise
    try:
        yield cluster, live
    finally:
        assert cluster.teardown() == []
        assert leftovers(cluster.names.prefix) == []


@pytest.mark.parametrize("name", FLANNEL_FAULTS)
def test_a_fault_turns_its_requirements_red_on_flannel_and_spares_the_rest(flannel_lab, name):
    assert_turns_exactly_its_requirements_red(*flannel_lab, FAULTS[name])


def test_the_flannel_lab_passes_every_check_but_its_known_deviation_once_every_fault_is_reverted(flannel_lab):
    """Before any fault, the same lab as a user runs it passes (test_real_cnis.py); after them all,
    reverting has left it as it was."""
    outcomes = judge_everything(*flannel_lab)
    assert failing(outcomes) == KNOWN, {r: c.reasons[:3] for r, c in outcomes.items() if c.reasons}
    assert not any(c["error"] for c in outcomes.values())


def test_a_flannel_fault_is_refused_on_a_lab_without_flannel():
    cluster = LabCluster(LabSpec(profile("bridge").conflist))
    with pytest.raises(BackendError, match="acts on flannel's datapath; run it with --cni=flannel"):
        cluster.inject(FAULTS["flannel-vxlan-dropped"], None)

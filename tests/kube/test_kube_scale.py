"""bench/kube_scale.py's core at tiny sizes: the live-cluster backend's API requests (and its control
requests through the pod proxy) grow at most linearly in nodes (issue 17). A per-node list, a
list per pod or a poll per node that made them grow faster fails here, not on a cluster of 1,000."""
import importlib.util

from ..lab.conftest import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("kube_scale", REPO / "bench" / "kube_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_and_control_requests_grow_at_most_linearly_in_nodes():
    bench = _bench()
    found = {n: bench.measure(n, memory=False) for n in (3, 10, 30)}
    for key in ("requests", "control"):
        r = {n: found[n][key] for n in found}
        # r(n) = a + b*n with a, b >= 0 gives r(30) <= 10 r(3); n*n would give about 100 r(3)
        assert r[30] <= 10 * r[3], (key, r)
        # and each added node costs no more at 10-30 nodes than at 3-10
        assert (r[30] - r[10]) / 20 <= (r[10] - r[3]) / 7, (key, r)
    assert found[30]["pods"] > found[3]["pods"]  # every probe was found: the run really started
    # the host ports held on the nodes (all namespaces), then readiness: the fake's pods are Ready
    # at once, so one look
    assert found[30]["by_kind"]["list pods"] == 2

"""Before the first check, the run's Services are in place: their EndpointSlices list the ready
pods (or the run stops with the Service named), and each node's probe reaches their ClusterIP ports
(or the run goes on and says which do not answer).

Was: a run through a live cluster's API began its checks while the EndpointSlice controller and
kube-proxy were still catching up, and DNS-SVC over UDP failed three items with "refused" on a
healthy cluster.
"""
import json
import time

import pytest

from netconform.backends.base import BackendError
from netconform.backends.kube import services_ready
from netconform.probing.channel import ProbeChannel

from .conftest import workers
from .fakeapi import KINDNET, FakeApiServer, World
from .test_backend import backend


class Slice:
    """An EndpointSlice as the client returns it: only the fields read."""

    def __init__(self, service, addresses, ports=("tcp", "udp"), ready=True):
        self.metadata = type("M", (), {"labels": {"kubernetes.io/service-name": service}})()
        cond = type("C", (), {"ready": ready})()
        self.endpoints = [type("E", (), {"addresses": [a], "conditions": cond})() for a in addresses]
        self.ports = [type("P", (), {"name": p})() for p in ports]


def test_every_backend_must_be_listed_ready_on_every_port(fake_cluster, tmp_path):
    kube = backend(fake_cluster, tmp_path)
    live = kube.start(lambda message: None)
    web = live.services["web"]
    ips = [live.endpoint(b).ip for b in web.backends]
    others = [Slice(s.name, [live.endpoint(b).ip for b in s.backends], s.port_names)
              for s in services_ready.listed_services(live) if s.name != "web"]
    assert services_ready.missing_endpoints(live, others + [Slice("web", ips)]) == {}
    lacking = services_ready.missing_endpoints(live, others + [Slice("web", ips[:-1])])
    assert lacking == {"web": [f"tcp: {ips[-1]}", f"udp: {ips[-1]}"]}
    lacking = services_ready.missing_endpoints(live, others + [Slice("web", ips, ports=("tcp",))])
    assert lacking == {"web": [f"udp: {ip}" for ip in sorted(ips)]}
    lacking = services_ready.missing_endpoints(live, others + [Slice("web", ips, ready=False)])
    assert set(lacking) == {"web"}
    assert "udp-cycle" not in {s.name for s in services_ready.listed_services(live)}  # none until its check
    kube.close()


def test_slices_that_never_list_the_pods_stop_the_run_naming_the_service(tmp_path):
    def without_web(api, ns):
        return [s for s in api.selector_slices(ns)
                if s["metadata"]["labels"]["kubernetes.io/service-name"] != "web"]
    with FakeApiServer(World(workers(), existing=[KINDNET], endpoint_slices=without_web)) as api:
        kube = backend(api, tmp_path, ready_timeout=2)
        lines = []
        started_at = time.monotonic()
        with pytest.raises(BackendError, match=r"EndpointSlices of 1 Service\(s\) \(web\) do not list"):
            kube.start(lines.append)
        assert time.monotonic() - started_at < 15
        kube.close()
        assert api.objects("namespaces") == []


def test_slices_that_come_late_are_waited_for(tmp_path):
    first_asked = []

    def late(api, ns):
        first_asked.append(time.monotonic())
        return api.selector_slices(ns) if time.monotonic() - first_asked[0] > 1.2 else []
    with FakeApiServer(World(workers(), existing=[KINDNET], endpoint_slices=late)) as api:
        kube = backend(api, tmp_path, ready_timeout=20)
        lines = []
        kube.start(lines.append)
        assert any("EndpointSlices list the ready backends" in line for line in lines), lines
        assert len(first_asked) >= 3  # it looked again until they were there
        kube.close()


class Probe(ProbeChannel):
    """A probe that reaches a target once ``reachable(target, round)`` says so."""

    def __init__(self, name, reachable, asked):
        super().__init__(name)
        self.reachable, self.asked = reachable, asked

    def exchange(self, method, endpoint, body, timeout):
        self.asked.append((self.name, len(body["targets"])))
        rounds = sum(1 for name, _ in self.asked if name == self.name)
        return 200, json.dumps({"results": [{"id": t["id"], "ok": self.reachable(t, rounds)}
                                            for t in body["targets"]]}).encode()


class Gone(ProbeChannel):
    def exchange(self, method, endpoint, body, timeout):
        return 503, b"error trying to reach service"


@pytest.fixture
def live(fake_cluster, tmp_path):
    kube = backend(fake_cluster, tmp_path)
    yield kube.start(lambda message: None)
    kube.close()


def test_the_probes_wait_until_every_node_reaches_every_service_port(live):
    asked = []
    udp_late = lambda target, rounds: target["proto"] == "tcp" or rounds >= 3  # noqa: E731
    lines = []
    silent = services_ready.wait_services_answer(live, lambda e: Probe(e.node, udp_late, asked), lines.append)
    assert silent == []
    targets = services_ready.answer_targets(live)
    assert {t["ip"] for t in targets} >= {live.services["web"].cluster_ip}
    assert not any(t["ip"] == live.services["itp-local"].cluster_ip for t in targets)  # not from every node
    per_node = {}
    for node, count in asked:
        per_node.setdefault(node, []).append(count)
    assert set(per_node) == {n.name for n in live.nodes}
    assert all(counts == [len(targets), len(targets) // 2, len(targets) // 2] for counts in per_node.values())
    assert "reaches the run's" in lines[-1]


def test_what_never_answers_is_named_at_the_bound_and_the_run_goes_on(live):
    lines = []
    started_at = time.monotonic()
    silent = services_ready.wait_services_answer(
        live, lambda e: Probe(e.node, lambda t, r: t["proto"] == "tcp", []), lines.append, bound=1.0)
    assert 1.0 <= time.monotonic() - started_at < 5
    assert silent and all(":udp/" in s for s in silent), silent
    assert "still do not answer" in lines[-1] and "the checks go on" in lines[-1]


def test_a_probe_that_cannot_be_asked_is_not_waited_for(live):
    lines = []
    started_at = time.monotonic()
    assert services_ready.wait_services_answer(live, lambda e: Gone(e.node), lines.append, bound=20) == []
    assert time.monotonic() - started_at < 5
    assert "could not be asked" in lines[-1]


def test_credentials_without_the_pod_proxy_stop_the_run_quoting_the_refusal(tmp_path):
    """RBAC without pods/proxy create: the first probe request is refused by the API server. One
    error naming it, before any check (each item would otherwise be an error saying the same)."""
    def forbidden(pod, port, method, rest, body):
        return 403, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                     "code": 403, "message": f'pods "{pod["metadata"]["name"]}" is forbidden: User '
                     '"tester" cannot create resource "pods/proxy" in API group ""'}
    with FakeApiServer(World(workers(), existing=[KINDNET], proxy=forbidden)) as api:
        kube = backend(api, tmp_path)
        started_at = time.monotonic()
        with pytest.raises(BackendError, match=r'refused to POST /api/v1/namespaces/.*/proxy/probe: pods ".*" '
                                               r'is forbidden: User "tester" cannot create resource "pods/proxy"'):
            kube.start(lambda message: None)
        assert time.monotonic() - started_at < 15
        kube.close()
        assert api.objects("namespaces") == []

"""APISERVER-POD's reach through the pod proxy: which answers are the network's, which the harness's."""
import pytest

from netconform.backends.kube.channel import reach_through_api


class StandInApi:
    def __init__(self, status: int, payload: bytes, version: int = 200) -> None:
        self.status, self.payload, self.version = status, payload, version

    def raw(self, method, path, body=None, timeout=None):
        if path == "/version":
            return self.version, b"{}"
        return self.status, self.payload


def test_a_probe_that_answers_is_reached():
    found = reach_through_api(StandInApi(200, b'{"name": "node-1/probe-a"}'), "ns", "probe-a-x", 9000, 2)
    assert found == {"ok": True, "responder": "node-1/probe-a"}


@pytest.mark.parametrize("status, payload", [
    (503, b"error trying to reach service: dial tcp 10.244.1.5:9000: connect: no route to host"),
    (503, b"error trying to reach service: dial tcp 10.244.1.5:9000: i/o timeout"),
])
def test_a_pod_ip_the_api_server_cannot_reach_is_the_networks_failure(status, payload):
    found = reach_through_api(StandInApi(status, payload), "ns", "probe-a-x", 9000, 2)
    assert found["ok"] is False and not found.get("harness") and found["error"] == "HTTP 503"


@pytest.mark.parametrize("status, payload, words", [
    (404, b'{"kind":"Status","message":"pods \\"probe-a-x\\" not found","code":404}', "no longer knows pod"),
    (503, b"error trying to reach service: dial tcp 10.244.1.5:9000: connect: connection refused",
     "refused the connection"),
])
def test_a_pod_gone_or_a_probe_not_listening_is_the_harnesss(status, payload, words):
    """Was: both read as "the control plane cannot route to pod IPs" (a run whose pods were
    deleted under it failed APISERVER-POD)."""
    found = reach_through_api(StandInApi(status, payload), "ns", "probe-a-x", 9000, 2)
    assert found["harness"] and words in found["detail"]


def test_taken_hostports_name_the_other_runs_namespaces():
    """Was: a run after a killed run on the same cluster failed naming only the scheduler's words."""
    from types import SimpleNamespace
    from netconform.backends.kube.readiness import _port_holders

    def namespaces(label_selector):
        return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name=n))
                                      for n in ("netconform-aaaaaa", "netconform-bbbbbb")])
    api = SimpleNamespace(core=SimpleNamespace(list_namespace=namespaces),
                          call=lambda what, method, **kw: method(**kw))
    hint = _port_holders(api, "netconform-bbbbbb", "0/2 nodes are available: 1 node(s) didn't have free ports")
    assert "netconform-aaaaaa" in hint and "netconform-bbbbbb" not in hint and "--cleanup-only" in hint
    assert _port_holders(api, "netconform-bbbbbb", "1 Insufficient memory") == ""

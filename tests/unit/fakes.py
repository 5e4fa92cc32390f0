"""Small stand-ins for a started cluster, so verdicts and reports are tested without a lab."""
from __future__ import annotations

from netconform.topology import CONTAINER, HOST, POD, STANDALONE, Endpoint, Node, Topology


def topology(nodes: int = 2, pods: int = 2, standalone: bool = False) -> Topology:
    """node-N at 172.18.0.N+1, pods at 10.244.N.(p+2), a duo pod at 10.244.N.10; with
    ``standalone``, the one-of-a-kind pods on node-1 at 10.244.1.(20+i)."""
    node_list, endpoints = [], []
    for n in range(1, nodes + 1):
        node_list.append(Node(f"node-{n}", f"172.18.0.{n + 1}"))
        endpoints.append(Endpoint(f"node-{n}", "host", HOST, ip=f"172.18.0.{n + 1}"))
        endpoints += [Endpoint(f"node-{n}", f"probe-{chr(97 + p)}", POD, ip=f"10.244.{n}.{p + 2}")
                      for p in range(pods)]
        endpoints += [Endpoint(f"node-{n}", f"duo/{c}", CONTAINER, port, ip=f"10.244.{n}.10")
                      for c, port in (("c1", 8080), ("c2", 8081))]
    if standalone:
        from netconform.services import STANDALONE_ROLES
        endpoints += [Endpoint("node-1", role, STANDALONE, ip=f"10.244.1.{20 + i}")
                      for i, role in enumerate(STANDALONE_ROLES)]
    return Topology(node_list, endpoints)


def result(case_id: str = "x", ok: bool = True, seen: str | None = None, local: str | None = None,
           responder: str | None = None, error: str | None = None, attempts: int = 1,
           errors: list[str] | None = None) -> dict:
    """A probe's record of one connection, shaped as probes/netprobe.py returns it."""
    return {"id": case_id, "ok": ok, "error": error, "seen": seen, "local": local,
            "responder": responder, "attempts": attempts, "errors": errors or [],
            "latency_ms": 1.0}


def self_report(name: str, addresses: list[str], mac: str = "02:00:00:00:00:01") -> dict:
    return {"name": name, "interfaces": [
        {"name": "lo", "mac": "00:00:00:00:00:00", "mtu": 65536, "state": "UNKNOWN",
         "addresses": ["127.0.0.1/8"]},
        {"name": "eth0", "mac": mac, "mtu": 1500, "state": "UP",
         "addresses": [f"{a}/24" for a in addresses]}], "routes": []}


class FakeRunner:
    """Answers what verdicts ask of a Runner from plain dictionaries."""

    def __init__(self, topo: Topology, reports: dict[str, dict] | None = None,
                 batches: dict | None = None) -> None:
        self.topology = topo
        self.reports = reports or {}
        self.batches = batches or {}

    def report(self, endpoint: Endpoint) -> dict:
        return self.reports.get(endpoint.name) or self_report(endpoint.name, [endpoint.ip])

    def addresses(self, endpoint: Endpoint) -> list[str]:
        return [a.split("/")[0] for i in self.report(endpoint)["interfaces"] if i["name"] != "lo"
                for a in i["addresses"]]

    def node_addresses(self, node: str) -> list[str]:
        return self.addresses(self.topology.host_of(node))

    def batch(self, check, protocol: str) -> dict:
        return self.batches[protocol]


def observation(case, check, source, destination, results, runner: "FakeRunner"):
    """The Observation a Runner would hand a verdict: the self-reports of every probe and the
    batches the check declares as evidence, answered by ``runner``'s dictionaries."""
    from netconform.probing.runner import Observation
    reports = {e.name: runner.report(e) for e in runner.topology.probes()}
    evidence = {(other, protocol): runner.batch(other, protocol) for other, protocol in check.evidence}
    return Observation(case, check, source, destination, results, runner.topology, reports, evidence)


class StandInChannel:
    """A probe's channel on a stand-in cluster: its self-report (with the run's search list, so DNS
    names can be made), and every probe request answered by ``probe(endpoint, body)``."""

    def __init__(self, endpoint, probe) -> None:
        self.endpoint, self.probe = endpoint, probe

    def call(self, what, body=None, timeout=10):
        if what == "self":
            return {**self_report(self.endpoint.name, [self.endpoint.ip]),
                    "resolv_conf": {"search": ["netconform-x.svc.cluster.local"]}}
        return self.probe(self.endpoint, body)

"""The probe agent on loopback: echo servers, error kinds, the batch API over a Unix socket."""
import importlib.util
import os
import re
import socket
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netconform.probing.channel import HTTPChannel, ProbeUnavailable, UnixSocketChannel

SCRIPT = Path(__file__).resolve().parents[2] / "probes" / "netprobe.py"
spec = importlib.util.spec_from_file_location("netprobe", SCRIPT)
netprobe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(netprobe)


def free_port() -> int:
    with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        return port


@pytest.fixture(scope="module")
def echo_port():
    port = free_port()
    tcp = netprobe.start_tcp_echo("probe-x", port)
    udp = netprobe.start_udp_echo("probe-x", port)
    yield port
    tcp.shutdown()
    udp.close()


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_echo_reports_the_peer_address_and_its_name(echo_port, proto):
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": echo_port, "proto": proto})
    assert r["ok"] and r["error"] is None and r["attempts"] == 1
    assert (r["seen"], r["local"], r["responder"]) == ("127.0.0.1", "127.0.0.1", "probe-x")


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_closed_port_is_refused_on_every_attempt(proto):
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": free_port(), "proto": proto,
                               "attempts": 2, "timeout": 1})
    assert (r["ok"], r["error"], r["errors"], r["attempts"]) == (False, "refused",
                                                                 ["refused", "refused"], 2)


def test_a_connection_made_whose_echo_never_answers_says_so_apart_from_one_never_made():
    """A handshake that went through says the network carried it; only the echo was late (a
    probe starved of CPU), which the verdicts must be able to tell from a SYN never answered."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody reads or answers
        r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": silent.getsockname()[1],
                                   "proto": "tcp", "timeout": 0.3})
    assert (r["ok"], r["error"], r["errors"]) == (False, "timeout: connected, no echo",
                                                  ["timeout: connected, no echo"])
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)  # a backlog of 0 that is full: the SYN of the next one is dropped
        fill = [socket.create_connection(full.getsockname(), timeout=1)]
        r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": full.getsockname()[1],
                                   "proto": "tcp", "timeout": 0.3})
        for one in fill:
            one.close()
    assert (r["ok"], r["error"]) == (False, "timeout")


def test_a_tcp_connection_can_be_made_from_a_chosen_address_and_only_tcp_takes_one():
    """A loopback hostPort over IPv6 is connected to from the node's address (no route_localnet
    for IPv6): the echo sees the chosen source."""
    port = free_port()
    server = netprobe.start_tcp_echo("probe-bound", port)
    try:
        r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": port, "proto": "tcp",
                                   "attempts": 1, "timeout": 1, "source_ip": "127.0.0.2"})
    finally:
        server.shutdown()
    assert (r["ok"], r["local"], r["seen"]) == (True, "127.0.0.2", "127.0.0.2"), r
    for bad in ({"proto": "udp", "source_ip": "127.0.0.2"}, {"proto": "tcp", "source_ip": "node-1"}):
        with pytest.raises(ValueError, match="source_ip of t must be an IP address, for tcp only"):
            netprobe.check_limits({"targets": [{"id": "t", "ip": "127.0.0.1", "port": port, **bad}]})


def test_a_settling_connection_waits_for_the_change_one_attempt_at_a_time_and_is_no_retry():
    """After a Service change the cluster has ``settle`` seconds to carry traffic the new way:
    the refusals before that are counted as waiting, not as attempts (they would make it flaky)."""
    port = free_port()
    servers = []
    threading.Timer(0.6, lambda: servers.append(netprobe.start_tcp_echo("probe-late", port))).start()
    try:
        r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": port, "proto": "tcp",
                                   "attempts": 2, "timeout": 1, "settle": 3})
    finally:
        for server in servers:
            server.shutdown()
    assert (r["ok"], r["attempts"], r["errors"], r["responder"]) == (True, 1, [], "probe-late")
    assert r["settled"] >= 2 and r["latency_ms"] >= 600


class _Scripted:
    """Stands in for the agent's tries of one target: each call answers as the script says (the
    last entry repeats), so a flap lands exactly where a test wants it."""

    def __init__(self, script: list[bool]):
        self.script, self.calls = script, []

    def __call__(self, target, attempts, timeout):
        ok = self.script[min(len(self.calls), len(self.script) - 1)]
        self.calls.append((attempts, timeout))
        return {"id": target["id"], "ok": ok, "error": None if ok else "refused",
                "errors": [] if ok else ["refused"] * attempts, "attempts": 1 if ok else attempts,
                "responder": "probe-new" if ok else None}


def test_a_change_that_flaps_after_its_first_answer_is_settled_again_until_it_holds(monkeypatch):
    """CI43: refused, answered (the settle tries end), then the counted attempts met the rules'
    next sync and were refused twice: a false failure on a healthy lab. Now such a failure
    within the window is a flap: the target is tried again until it has answered every try for
    STEADY_FOR seconds, then counted again."""
    tries = _Scripted([False, True, False, True])  # settle, settle, counted, then it holds
    monkeypatch.setattr(netprobe, "_attempts", tries)
    started = time.monotonic()
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": 9, "proto": "udp",
                               "attempts": 2, "timeout": 1, "settle": 8})
    assert (r["ok"], r["settled"], r["flapped"], r["steady"]) == (True, 1, 1, True), r
    assert time.monotonic() - started >= netprobe.STEADY_FOR  # it was watched that long after the flap
    assert tries.calls[2] == (2, 1.0) and tries.calls[-1] == (2, 1.0)  # the counted attempts, twice
    assert all(call == (1, netprobe.SETTLE_TIMEOUT) for call in tries.calls[3:-1])


def test_a_target_that_times_out_after_an_answer_is_no_flap_and_is_judged_at_once(monkeypatch):
    """A Service with one backend out of reach answers now and then for good: its timeouts are
    judged, not waited out for the whole window (CI50: a faulty run took minutes longer)."""
    class TimesOut(_Scripted):
        def __call__(self, target, attempts, timeout):
            r = super().__call__(target, attempts, timeout)
            return r if r["ok"] else {**r, "error": "timeout", "errors": ["timeout"] * attempts}
    tries = TimesOut([True, False, True])
    monkeypatch.setattr(netprobe, "_attempts", tries)
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": 9, "proto": "udp",
                               "attempts": 1, "timeout": 1, "settle": 8})
    assert (r["ok"], r["error"], r["flapped"], len(tries.calls)) == (False, "timeout", 0, 2), r
    assert r["latency_ms"] < 500


def test_a_change_followed_at_once_costs_no_more_than_before(monkeypatch):
    tries = _Scripted([True])
    monkeypatch.setattr(netprobe, "_attempts", tries)
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": 9, "proto": "udp",
                               "attempts": 2, "timeout": 1, "settle": 8})
    assert (r["ok"], r["settled"], r["flapped"], len(tries.calls)) == (True, 0, 0, 2), r
    assert r["latency_ms"] < 200


def test_a_target_that_keeps_flapping_fails_on_its_counted_attempts_and_says_it_never_held(monkeypatch):
    tries = _Scripted([True, False] * 400)
    monkeypatch.setattr(netprobe, "_attempts", tries)
    monkeypatch.setattr(netprobe, "SETTLE_PAUSE", 0.01)
    monkeypatch.setattr(netprobe, "STEADY_FOR", 0.2)  # reachable within the window, had it held
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": 9, "proto": "udp",
                               "attempts": 2, "timeout": 1, "settle": 1.5})
    assert r["steady"] is False and r["flapped"] >= 10, r
    assert len(tries.calls) >= 20  # tried all the window long


def test_a_removed_port_that_goes_quiet_for_a_moment_and_answers_again_is_still_answered(monkeypatch):
    """The gap that refuses a kept port for a moment (a slice being replaced) also silences a
    port the proxy never removed: one silent round must not pass it."""
    monkeypatch.setattr(netprobe, "SETTLE_PAUSE", 0.01)
    monkeypatch.setattr(netprobe, "STEADY_FOR", 0.3)
    tries = _Scripted([True, False, True] * 300)  # answered but for a silent round now and then
    monkeypatch.setattr(netprobe, "_attempts", tries)
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": 9, "proto": "tcp", "attempts": 2,
                               "timeout": 1, "settle": 1.0, "unanswered": True})
    assert (r["ok"], r["responder"], r["steady"]) == (True, "probe-new", False), r


def test_a_removed_port_that_stays_silent_settles_after_the_steady_time(monkeypatch):
    monkeypatch.setattr(netprobe, "SETTLE_PAUSE", 0.01)
    monkeypatch.setattr(netprobe, "STEADY_FOR", 0.3)
    tries = _Scripted([True, True, False])  # the old rules answer twice, then the port is gone
    monkeypatch.setattr(netprobe, "_attempts", tries)
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": 9, "proto": "tcp", "attempts": 2,
                               "timeout": 1, "settle": 5, "unanswered": True})
    assert (r["ok"], r["settled"], r["steady"]) == (False, 2, True), r
    assert r["latency_ms"] >= 300 and len(tries.calls) >= 10


def test_a_connection_that_never_settles_fails_with_its_usual_attempts_after_the_settle_time():
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": free_port(), "proto": "tcp",
                               "attempts": 2, "timeout": 1, "settle": 0.5})
    assert (r["ok"], r["error"], r["attempts"]) == (False, "refused", 2)
    assert r["settled"] >= 1 and r["latency_ms"] >= 500


def test_a_question_that_never_gets_its_expected_answer_waits_the_settle_time_once(monkeypatch):
    """Was: the settle loop's attempt waited it out, then each of the usual attempts again (a
    broken resolver made a Service-changing check wait three times the settle time per round)."""
    asked = []
    monkeypatch.setattr(netprobe, "_dns_answer", lambda query, proto, timeout: asked.append(
        time.monotonic()) or {"rcode": "NXDOMAIN", "answers": [], "qname": query["name"]})
    started = time.monotonic()
    r = netprobe.probe_target({"id": "t", "proto": "udp", "attempts": 2, "timeout": 1, "token": "x",
                               "dns": {"name": "web", "type": "A", "search": True,
                                       "expect": ["10.96.0.20"], "settle": 1.0}})
    assert r["ok"] and r["rcode"] == "NXDOMAIN"  # an answer: the verdict judges it
    assert asked[-1] - started < 1.5, "the settle time was waited out more than once"


def test_a_target_that_must_go_unanswered_settles_until_it_is():
    """A port the change removed: while the old rules still answer, it is tried again, until no
    attempt is answered for STEADY_FOR seconds (the verdict wants no answer)."""
    port = free_port()
    server = netprobe.start_tcp_echo("probe-old", port)
    threading.Timer(0.6, server.shutdown).start()
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": port, "proto": "tcp",
                               "attempts": 2, "timeout": 1, "settle": 8, "unanswered": True})
    assert r["ok"] is False and r["error"] and r["settled"] >= 1 and r["latency_ms"] >= 600
    assert r["steady"] and r["latency_ms"] >= 600 + netprobe.STEADY_FOR * 1000 - 300  # silent 2 s on end


def test_a_silent_udp_peer_is_a_timeout():
    with socket.socket(type=socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": silent.getsockname()[1],
                                   "proto": "udp", "timeout": 0.2})
    assert (r["ok"], r["error"]) == (False, "timeout")


@pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root")
def test_icmp_echo_is_answered_and_captured_by_the_receiver():
    watcher = netprobe.IcmpWatcher()
    r = netprobe.probe_target({"id": "t", "token": "tok-1", "ip": "127.0.0.1", "proto": "icmp"})
    assert r["ok"], r
    for _ in range(50):
        if watcher.lookup(["tok-1"])["tok-1"]:
            break
        threading.Event().wait(0.02)
    assert watcher.lookup(["tok-1"]) == {"tok-1": "127.0.0.1"}


def test_the_self_report_read_with_the_standard_library_is_what_pyroute2_reads():
    """The agent speaks rtnetlink itself (it runs on a stock Python); pyroute2, a well-kept
    library, is the reference: the same links, MACs, MTUs, states, addresses and main-table routes
    of this machine's namespace (read only)."""
    from pyroute2 import IPRoute
    report = netprobe.self_report("probe-x")
    lo = next(i for i in report["interfaces"] if i["name"] == "lo")
    assert "127.0.0.1/8" in lo["addresses"] and lo["mtu"] > 0 and lo["state"] == "UNKNOWN"
    with IPRoute() as ipr:
        links = {link["index"]: {"name": link.get_attr("IFLA_IFNAME"), "mac": link.get_attr("IFLA_ADDRESS"),
                                 "mtu": link.get_attr("IFLA_MTU"), "state": link.get_attr("IFLA_OPERSTATE"),
                                 "addresses": []} for link in ipr.get_links()}
        for addr in ipr.get_addr():
            if addr["index"] in links:
                links[addr["index"]]["addresses"].append(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")
        routes = [{"dst": f"{r.get_attr('RTA_DST')}/{r['dst_len']}" if r.get_attr("RTA_DST") else "default",
                   "gateway": r.get_attr("RTA_GATEWAY"), "dev": links.get(r.get_attr("RTA_OIF"), {}).get("name"),
                   "family": "ipv6" if r["family"] == socket.AF_INET6 else "ipv4"}
                  for r in ipr.get_routes(table=254)]
    assert report["interfaces"] == sorted(links.values(), key=lambda link: link["name"] or "")
    assert report["routes"] == routes


def test_icmp_messages_are_built_and_read_with_the_standard_library():
    request = netprobe.echo_request(0x1234, 7, b"netprobe:tok")
    from scapy.layers.inet import ICMP, IP  # the reference, where scapy does real work: the tests
    parsed = ICMP(request)
    assert (parsed.type, parsed.id, parsed.seq, bytes(parsed.payload)) == (8, 0x1234, 7, b"netprobe:tok")
    assert parsed.chksum == ICMP(bytes(ICMP(type=8, id=0x1234, seq=7) / b"netprobe:tok")).chksum
    packet = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=0, id=5, seq=6) / b"data")
    assert netprobe.parse_icmp(packet) == ("10.0.0.1", 0, 5, 6, b"data")
    assert netprobe.parse_icmp(b"\x60" + bytes(40)) is None  # not IPv4


def test_control_api_over_a_unix_socket_and_a_tcp_port_at_once(echo_port, tmp_path):
    path, control = tmp_path / "probe.sock", free_port()
    token = "the-run-token-0123456789"
    threading.Thread(target=netprobe.serve, args=("probe-y", free_port(), [f"unix:{path}", f"tcp:127.0.0.1:{control}"],
                                                  token), daemon=True).start()
    for _ in range(100):
        if path.exists():
            break
        threading.Event().wait(0.05)
    channel = UnixSocketChannel("probe-y", str(path), token)
    assert channel.call("healthz")["name"] == "probe-y"
    answer = channel.call("probe", {"targets": [
        {"id": "a", "ip": "127.0.0.1", "port": echo_port, "proto": "tcp"},
        {"id": "b", "ip": "127.0.0.1", "port": echo_port, "proto": "udp"}]})
    assert [r["responder"] for r in answer["results"]] == ["probe-x", "probe-x"]
    with pytest.raises(ProbeUnavailable, match="HTTP 404"):
        channel.call("nothing-here")
    import http.client  # the TCP port serves the same API (the API server's pod proxy reaches it)
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", control, timeout=5)
            conn.request("GET", "/healthz")
            break
        except ConnectionRefusedError:
            threading.Event().wait(0.05)
    assert json.loads(conn.getresponse().read())["name"] == "probe-y"
    conn.close()
    with pytest.raises(ProbeUnavailable, match="HTTP 400"):
        channel.call("probe", {"targets": [{"ip": "127.0.0.1"}]})


def test_a_missing_probe_is_unavailable_not_a_hang(tmp_path):
    with pytest.raises(ProbeUnavailable, match="probe-z"):
        UnixSocketChannel("probe-z", str(tmp_path / "absent.sock")).call("healthz", timeout=1)


@pytest.mark.parametrize("target, message", [
    ({"attempts": 6}, "attempts 6 of t must be 1..5"),
    ({"attempts": 0}, "attempts 0 of t must be 1..5"),
    ({"timeout": 31}, "timeout 31.0 of t must be in (0, 30] s"),
    ({"timeout": 0}, "timeout 0.0 of t must be in (0, 30] s"),
    ({"timeout": float("nan")}, "timeout of t must be a number"),
    ({"timeout": "1"}, "timeout of t must be a number"),
    ({"attempts": True}, "attempts of t must be a number"),
    ({"settle": 31}, "settle of t must be in [0, 30] s"),
    ({"settle": "nan"}, "settle of t must be a number"),
    ({"source_port": 80, "proto": "udp"}, "source_port of t must be an integer 1024..65535, for udp only"),
    ({"source_port": "12345", "proto": "udp"}, "source_port of t must be an integer 1024..65535"),
    ({"source_port": True, "proto": "udp"}, "source_port of t must be an integer 1024..65535"),
    ({"source_port": 12345}, "source_port of t must be an integer 1024..65535, for udp only"),
    ({"payload": 2000}, "payload of t must be an integer above the token's length and at most 65000, for udp only"),
    ({"payload": 70000, "proto": "udp"}, "payload of t must be an integer above the token's length"),
    ({"payload": 1, "proto": "udp"}, "payload of t must be an integer above the token's length"),
])
def test_a_request_beyond_the_agents_caps_is_refused_not_trimmed(target, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        netprobe.probe_batch({"targets": [{"id": "t", "ip": "127.0.0.1", "port": 1, "proto": "tcp",
                                           **target}]})


@pytest.mark.parametrize("target, message", [
    ({"dns": {"name": "x", "type": "MX"}}, "DNS type 'MX' of t"),
    ({"dns": {"name": ""}}, "needs a name of 1..253 characters"),
    ({"dns": {"name": "a" * 254}}, "needs a name of 1..253 characters"),
    ({"dns": "web"}, "needs a name of 1..253 characters"),
    ({"dns": {"name": "web"}, "proto": "icmp"}, "a DNS query goes over udp or tcp"),
])
def test_a_malformed_dns_question_is_refused(target, message):
    with pytest.raises(ValueError, match=message):
        netprobe.probe_batch({"targets": [{"id": "t", "proto": "udp", **target}]})


def test_the_self_report_carries_the_resolver_settings(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# kubelet\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 10.96.0.10\noptions ndots:5\n")
    assert netprobe.resolv_conf(str(conf)) == {
        "nameservers": ["10.96.0.10"], "search": ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "options": ["ndots:5"]}
    assert "cannot read" in netprobe.resolv_conf(str(tmp_path / "absent"))["error"]
    # a managed cluster's: NodeLocal DNSCache's link-local nameserver, another cluster domain, the
    # node's own search domain after the cluster's (the agent asks the nameservers listed, in order)
    conf.write_text("search ns.svc.corp.internal svc.corp.internal corp.internal ec2.internal\n"
                    "nameserver 169.254.20.10\noptions ndots:5\n")
    assert netprobe.resolv_conf(str(conf)) == {
        "nameservers": ["169.254.20.10"], "options": ["ndots:5"],
        "search": ["ns.svc.corp.internal", "svc.corp.internal", "corp.internal", "ec2.internal"]}


def test_an_answer_settles_when_it_is_the_expected_one_in_any_order_or_case():
    found = {"rcode": "NOERROR", "answers": ["B.example.", "a.example."]}
    assert netprobe._answered_as(found, ["a.example.", "b.example."])
    assert not netprobe._answered_as(found, ["a.example."])
    assert netprobe._answered_as({"rcode": "NXDOMAIN", "answers": []}, ["NXDOMAIN"])


def test_a_settle_beyond_the_cap_is_refused():
    with pytest.raises(ValueError, match="settle of t must be in"):
        netprobe.probe_batch({"targets": [{"id": "t", "proto": "udp", "dns": {"name": "x", "settle": 31}}]})


def test_targets_one_after_the_other_stop_a_group_at_its_first_failure(echo_port):
    closed = free_port()  # nothing listens: refused at once
    targets = [{"id": "a#0", "ip": "127.0.0.1", "port": closed, "proto": "tcp", "group": "a"},
               {"id": "b#0", "ip": "127.0.0.1", "port": echo_port, "proto": "tcp", "group": "b"},
               {"id": "a#1", "ip": "127.0.0.1", "port": echo_port, "proto": "tcp", "group": "a"},
               {"id": "b#1", "ip": "127.0.0.1", "port": echo_port, "proto": "tcp", "group": "b"}]
    one_by_one = netprobe.probe_batch({"targets": targets, "concurrency": 1})["results"]
    assert [(r["id"], r["ok"]) for r in one_by_one] == [("a#0", False), ("b#0", True), ("a#1", False), ("b#1", True)]
    assert one_by_one[2]["error"] == "not made: a#0 failed" and one_by_one[2]["attempts"] == 0
    at_once = netprobe.probe_batch({"targets": targets, "concurrency": 4})["results"]
    assert [r["ok"] for r in at_once] == [False, True, True, True]  # groups mean nothing in parallel


def test_datagrams_from_a_fixed_source_port_are_one_flow_each_time(echo_port):
    """SVC-UDP-BACKEND-CHANGE: every datagram of a client's stream leaves from the same port, one
    after the other, so conntrack sees one flow (the echo reports the port it saw)."""
    port = free_port()
    seen = [netprobe._udp_once("127.0.0.1", echo_port, f"t{i}", 1.0, source_port=port) for i in range(3)]
    assert [(s["responder"], s["seen_port"]) for s in seen] == [("probe-x", port)] * 3
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": echo_port, "proto": "udp",
                               "source_port": port})
    assert r["ok"], r


def test_a_large_datagram_is_echoed_with_the_length_the_server_read(echo_port):
    """UDP-LARGE: the token, then padding to the payload size; the echo reads it whole."""
    r = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": echo_port, "proto": "udp", "payload": 2000})
    assert r["ok"] and (r["sent"], r["received"], r["responder"]) == (2000, 2000, "probe-x"), r


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a private mount namespace)")
def test_the_agent_needs_no_writable_filesystem(tmp_path):
    """The manifests give every probe a read-only root filesystem: run the agent with every mount
    read-only (a private mount namespace, as a container's) and ask it for each protocol."""
    token = tmp_path / "token"
    token.write_text("a-token-for-this-test-0123456789")
    control, echo = free_port(), free_port()
    read_only = ('for m in $(awk \'$2 !~ "^/(proc|sys|dev)" {print $2}\' /proc/self/mounts | sort -u); do '
                 'mount -o remount,bind,ro "$m" 2>/dev/null || mount --bind "$m" "$m" && '
                 'mount -o remount,bind,ro "$m" 2>/dev/null; done; '
                 f'touch {tmp_path}/written 2>/dev/null && echo WRITABLE; exec "$@"')
    process = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", read_only, "sh",
                                sys.executable, str(SCRIPT), "serve", "--name", "ro", "--port", str(echo),
                                "--control", f"tcp:127.0.0.1:{control}", "--token-file", str(token)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        channel = _TcpChannel("ro", control, token.read_text())
        for _ in range(200):
            try:
                channel.call("healthz", timeout=1)
                break
            except ProbeUnavailable:
                threading.Event().wait(0.05)
        answer = channel.call("probe", {"targets": [
            {"id": p, "ip": "127.0.0.1", "port": echo, "proto": p} for p in ("tcp", "udp", "icmp")]}, timeout=20)
        assert [r["ok"] for r in answer["results"]] == [True, True, True], answer
        assert channel.call("self", timeout=10)["name"] == "ro"
    finally:
        process.kill()
        output = process.communicate(timeout=10)[0]
    assert "WRITABLE" not in output and not (tmp_path / "written").exists()  # it was read-only
    assert "Traceback" not in output, output


class _TcpChannel(HTTPChannel):
    def __init__(self, name: str, port: int, token: str) -> None:
        super().__init__(name, token)
        self.port = port

    def connection(self, timeout: float):
        import http.client
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)


@pytest.mark.skipif(os.geteuid() != 0 or not netprobe._ipv6_available(), reason="raw ICMPv6 sockets need root and ::1")
def test_icmpv6_echo_is_answered_and_captured_by_the_receiver():
    watcher = netprobe.IcmpWatcher()
    assert watcher.error6 is None
    r = netprobe.probe_target({"id": "t", "token": "tok-6", "ip": "::1", "proto": "icmp"})
    assert r["ok"] and r["local"] == "::1", r
    for _ in range(50):
        if watcher.lookup(["tok-6"])["tok-6"]:
            break
        threading.Event().wait(0.02)
    assert watcher.lookup(["tok-6"]) == {"tok-6": "::1"}
    # full-size and never fragmented: loopback's MTU carries it, one byte more is refused at once
    mtu = next(i["mtu"] for i in netprobe.self_report("x")["interfaces"] if i["name"] == "lo")
    assert netprobe.probe_target({"id": "m", "token": "tok-m", "ip": "::1", "proto": "icmp", "size": mtu})["ok"]
    too_big = netprobe.probe_target({"id": "b", "token": "tok-b", "ip": "::1", "proto": "icmp", "size": mtu + 1,
                                     "attempts": 1})
    assert not too_big["ok"] and too_big["error"] != "timeout", too_big


def test_icmpv6_messages_are_built_and_read_with_the_standard_library():
    request = netprobe.echo_request6(5, 6, b"netprobe:x")
    assert request[:1] == bytes([128]) and request[2:4] == b"\0\0"  # the kernel sums it
    assert netprobe.parse_icmp6(request, "fe80::1%eth0") == ("fe80::1", 128, 5, 6, b"netprobe:x")
    assert netprobe.parse_icmp6(b"\x81\0\0", "::1") is None

"""The probe agent's own DNS client (standard library only) against dnspython's Resolver, the
reference it replaced: the same questions, asked of the same nameserver through the same
resolv.conf, give the same rcode, the same name answered and the same records, as text.

The nameserver is a small one built with dnspython on loopback: it answers as CoreDNS does
(CNAME chains followed within its zone, NXDOMAIN for what it does not know), truncates UDP answers
over 512 bytes, and can answer SERVFAIL, nothing at all, or a forged datagram first.
"""
import socket
import struct
import threading
import time

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

from .test_probe_agent import free_port, netprobe

SEARCH = "ns1.svc.cluster.local svc.cluster.local cluster.local"
ZONE = {
    "web.ns1.svc.cluster.local.": [("A", "10.96.0.20")],
    "v6.ns1.svc.cluster.local.": [("AAAA", "fd00::20"), ("AAAA", "fd00:0:0:1::7")],
    "alias.ns1.svc.cluster.local.": [("CNAME", "web.ns1.svc.cluster.local.")],
    "twice.ns1.svc.cluster.local.": [("CNAME", "alias.ns1.svc.cluster.local.")],
    "ext.ns1.svc.cluster.local.": [("CNAME", "outside.example.")],
    "loop.ns1.svc.cluster.local.": [("CNAME", "loop.ns1.svc.cluster.local.")],
    "_http._tcp.web.ns1.svc.cluster.local.": [("SRV", "0 100 80 web.ns1.svc.cluster.local."),
                                              ("SRV", "10 50 8080 Other.ns1.svc.cluster.local.")],
    "20.0.96.10.in-addr.arpa.": [("PTR", "web.ns1.svc.cluster.local.")],
    "big.ns1.svc.cluster.local.": [("A", f"10.0.{i // 250}.{i % 250}") for i in range(100)],
    "Mixed.Case.example.": [("A", "192.0.2.1")],
    "a.b.c.d.e.f.": [("A", "192.0.2.6")],
    "a.b.c.d.e.f.ns1.svc.cluster.local.": [("A", "192.0.2.66")],
    "short.svc.cluster.local.": [("A", "192.0.2.7")],
    "kubernetes.default.svc.cluster.local.": [("A", "10.96.0.1")],
}


def _answer(query: dns.message.Message, servfail: bool) -> dns.message.Message:
    """As CoreDNS answers: the records of the name, CNAMEs followed within the zone."""
    response = dns.message.make_response(query)
    question = query.question[0]
    if servfail or question.name.to_text().startswith("servfail."):
        response.set_rcode(dns.rcode.SERVFAIL)
        return response
    name, wanted = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
    zone = {key.lower(): (key, records) for key, records in ZONE.items()}
    if name.lower() not in zone:
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response
    for _ in range(8):
        owner, records = zone[name.lower()]
        matching = [text for rtype, text in records if rtype == wanted]
        cname = [text for rtype, text in records if rtype == "CNAME"]
        if matching:
            response.answer.append(dns.rrset.from_text_list(owner, 30, "IN", wanted, matching))
            break
        if not cname or wanted == "CNAME":
            break
        response.answer.append(dns.rrset.from_text_list(owner, 30, "IN", "CNAME", cname))
        if cname[0].lower() not in zone:
            break
        name = cname[0]
    return response


class Nameserver:
    """UDP and TCP on one loopback port; ``mode``: "ok", "servfail", "silent" or "forged"."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode, self.port, self.asked = mode, free_port(), []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(16)
        threading.Thread(target=self._serve_udp, daemon=True).start()
        threading.Thread(target=self._serve_tcp, daemon=True).start()

    def _serve_udp(self) -> None:
        while True:
            try:
                wire, peer = self.udp.recvfrom(65535)
            except OSError:
                return
            query = dns.message.from_wire(wire)
            self.asked.append(("udp", query.question[0].name.to_text()))
            if self.mode == "silent":
                continue
            if self.mode == "forged":  # another id first, from the same address: not the answer
                forged = _answer(query, False)
                forged.id = (query.id + 1) % 65536
                forged.answer = [dns.rrset.from_text("web.ns1.svc.cluster.local.", 30, "IN", "A", "6.6.6.6")]
                self.udp.sendto(forged.to_wire(), peer)
            response = _answer(query, self.mode == "servfail")
            try:
                data = response.to_wire(max_size=512)
            except dns.exception.TooBig:  # truncated, as a server does: the client asks over TCP
                response.answer = []
                response.flags |= dns.flags.TC
                data = response.to_wire()
            self.udp.sendto(data, peer)

    def _serve_tcp(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    length = struct.unpack("!H", conn.recv(2))[0]
                    query = dns.message.from_wire(conn.recv(length))
                except (OSError, struct.error, dns.exception.DNSException):
                    continue
                self.asked.append(("tcp", query.question[0].name.to_text()))
                if self.mode == "silent":
                    time.sleep(3)
                    continue
                data = _answer(query, self.mode == "servfail").to_wire()
                conn.sendall(struct.pack("!H", len(data)) + data)

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def nameserver(tmp_path, monkeypatch):
    server = Nameserver()
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver 127.0.0.1\nsearch {SEARCH}\noptions ndots:5\n")
    monkeypatch.setattr(netprobe, "DNS_PORT", server.port)
    monkeypatch.setattr(netprobe, "RESOLV_CONF", str(conf))
    yield server, conf
    server.close()


def reference(conf, port: int, name: str, rtype: str, search: bool, proto: str) -> dict:
    """What dnspython's Resolver says, in the agent's terms."""
    resolver = dns.resolver.Resolver(filename=str(conf))
    resolver.port = port
    resolver.timeout = resolver.lifetime = 3
    try:
        answer = resolver.resolve(name, rtype, tcp=proto == "tcp", search=search, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN as exc:
        return {"rcode": "NXDOMAIN", "qname": exc.qnames()[-1].to_text(), "answers": []}
    return {"rcode": "NOERROR", "qname": answer.qname.to_text(),
            "answers": sorted(r.to_text() for r in answer.rrset) if answer.rrset else []}


QUESTIONS = [
    ("web", "A", True), ("web.ns1", "A", True), ("web.ns1.svc.cluster.local.", "A", False),
    ("web", "A", False), ("alias", "A", True), ("twice", "A", True), ("alias", "CNAME", True),
    ("ext", "A", True), ("_http._tcp.web", "SRV", True),
    ("20.0.96.10.in-addr.arpa.", "PTR", False), ("nothere", "A", True), ("v6", "AAAA", True),
    ("v6", "A", True), ("big", "A", True), ("mixed.case.example.", "A", False),
    ("a.b.c.d.e.f", "A", True), ("a.b.c.d.e", "A", True), ("short", "A", True),
    ("kubernetes.default", "A", True),
]


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest.mark.parametrize("name, rtype, search", QUESTIONS)
def test_the_agent_asks_and_reads_as_dnspython_does(nameserver, name, rtype, search, proto):
    server, conf = nameserver
    want = reference(conf, server.port, name, rtype, search, proto)
    got = netprobe._dns_answer({"name": name, "type": rtype, "search": search}, proto, 3)
    assert {key: got[key] for key in want} == want


def test_a_truncated_udp_answer_is_asked_again_over_tcp(nameserver):
    server, _ = nameserver
    got = netprobe._dns_answer({"name": "big", "type": "A"}, "udp", 3)
    assert len(got["answers"]) == 100
    assert ("udp", "big.ns1.svc.cluster.local.") in server.asked and \
        ("tcp", "big.ns1.svc.cluster.local.") in server.asked


def test_the_search_list_is_tried_in_order_and_ndots_puts_a_long_name_first(nameserver):
    server, _ = nameserver
    netprobe._dns_answer({"name": "short", "type": "A"}, "udp", 3)
    assert [name for _, name in server.asked] == ["short.ns1.svc.cluster.local.", "short.svc.cluster.local."]
    server.asked.clear()
    netprobe._dns_answer({"name": "a.b.c.d.e.f", "type": "A"}, "udp", 3)
    assert [name for _, name in server.asked] == ["a.b.c.d.e.f."]


def test_a_cname_loop_ends():
    records = [("loop.", 5, "loop."), ("x.", 5, "y."), ("y.", 5, "x.")]
    assert netprobe._chased(records, "loop.", 1) == [] and netprobe._chased(records, "x.", 1) == []


def test_a_forged_datagram_with_another_id_is_not_taken_for_the_answer(tmp_path, monkeypatch):
    server = Nameserver("forged")
    try:
        (tmp_path / "resolv.conf").write_text(f"nameserver 127.0.0.1\nsearch {SEARCH}\n")
        monkeypatch.setattr(netprobe, "DNS_PORT", server.port)
        monkeypatch.setattr(netprobe, "RESOLV_CONF", str(tmp_path / "resolv.conf"))
        got = netprobe._dns_answer({"name": "web.ns1.svc.cluster.local.", "type": "A"}, "udp", 3)
    finally:
        server.close()
    assert got["answers"] == ["10.96.0.20"]


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_servfail_from_every_nameserver_is_a_failure_and_silence_a_timeout_in_time(tmp_path, monkeypatch, proto):
    failing, silent = Nameserver("servfail"), Nameserver("silent")
    try:
        conf = tmp_path / "resolv.conf"
        monkeypatch.setattr(netprobe, "RESOLV_CONF", str(conf))
        conf.write_text("nameserver 127.0.0.1\n")
        monkeypatch.setattr(netprobe, "DNS_PORT", failing.port)
        with pytest.raises(netprobe.DnsFailure, match="no nameserver answered: 127.0.0.1 answered SERVFAIL"):
            netprobe._dns_answer({"name": "web.", "type": "A"}, proto, 2)
        monkeypatch.setattr(netprobe, "DNS_PORT", silent.port)
        started = time.monotonic()
        with pytest.raises(socket.timeout, match="no DNS answer"):
            netprobe._dns_answer({"name": "web.", "type": "A"}, proto, 1)
        assert time.monotonic() - started < 1.5
    finally:
        failing.close()
        silent.close()


@pytest.mark.parametrize("message", [
    b"",
    b"\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01\xc0\x0c",  # record cut
    b"\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01\xc0\x1c\x00\x01",  # bad pointer
    b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # a pointer to itself
    b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x05web\x00\x00\x01\x00\x01",  # a label runs past
])
def test_a_malformed_answer_is_a_value_error_never_a_crash_or_a_loop(message):
    started = time.monotonic()
    with pytest.raises(ValueError):
        netprobe.dns_parse(message, 1, "web.", 1)
    assert time.monotonic() - started < 0.5

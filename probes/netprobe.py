#!/usr/bin/env python3
"""netprobe: the agent that runs in every probe pod (and in every lab namespace).

It is deliberately one self-contained file of the standard library alone: ICMP through raw
sockets, the self-report from rtnetlink, DNS questions in the protocol's own wire form, so that a
stock Python image runs it (``python -I -S``: no site packages, no environment).

It does three things, all served over one small HTTP control API:

* echo servers on TCP and UDP that answer with the address they observed the peer from (the only
  way to see NAT: the receiver reports what arrived), and an ICMP watcher that records the source of
  every tagged echo request it receives;
* ``GET /self``: its interfaces, addresses, MACs, MTU and routes, read from rtnetlink;
* ``POST /probe``: a batch of targets probed concurrently, each with a timeout, answered as one JSON
  document, so the harness asks each probe once per check instead of once per pair. A target is a
  connection (TCP, UDP, ICMP, or a TLS handshake) or a DNS query made as ``dig +search`` makes it: the pod's own
  resolv.conf (nameservers, search list, ndots) over UDP or TCP; "the name
  connects" then goes through getaddrinfo, as any program's would.

The control API listens on a Unix socket (the lab) or a TCP port (a live cluster, reached through
the API server's pod proxy). Where the API server cannot reach pod IPs, the harness execs into the
probe instead and ``relay`` carries one request, one line on standard input, to the control API.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import errno
import hmac
import ipaddress
import json
import os
import random
import select
import socket
import ssl
import stat
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

TOKEN_PREFIX = b"netprobe:"
MAX_TARGETS = 20000
MAX_CONCURRENCY = 256
MAX_TIMEOUT = 30.0
MAX_ATTEMPTS = 5
SETTLE_PAUSE = 0.25  # s between rounds of attempts while a target settles (after a Service change)
SETTLE_TIMEOUT = 0.5  # s an attempt waits while it settles; the attempts after the settle time wait the full timeout
# s a target must behave as the changed cluster should, on every try, before it counts as settled:
# kube-proxy applies a Service's change and its EndpointSlice's in separate syncs (minSyncPeriod,
# 1 s by default), so the rules can be right, wrong again, then right: two sync periods
STEADY_FOR = 2.0
DNS_TYPES = ("A", "AAAA", "CNAME", "SRV", "PTR")
_LOOKUPS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="getaddrinfo")  # bounded in time by
# the caller: a lookup glibc keeps retrying ends on its own, its answer unused
ICMP_MEMORY = 50000
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2  # Linux: set the DF bit, never fragment locally
IPV6_MTU_DISCOVER, IPV6_DONTFRAG = 23, 62  # Linux: the same for IPv6 (routers never fragment it)
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY, ICMP6_UNREACHABLE, ICMP6_TOO_BIG = 128, 129, 1, 2


def plain_ip(address: str) -> str:
    """A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d; report the IPv4 address."""
    return address[7:] if address.startswith("::ffff:") else address


def family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


# --- the echo servers -------------------------------------------------------------------------


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class _NewestKept:
    """Open connections, at most ``limit``: a new one beyond takes the place of the oldest, which
    is reset. Its client has had the most time to speak; a real client speaks at once, so a flood
    of silent connections pushes out its own, not the real one (refusing the newcomer instead
    would let the flood keep everyone out)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[asyncio.StreamWriter, None] = {}  # in the order they came

    def admit(self, writer: asyncio.StreamWriter) -> None:
        if len(self.open) >= self.limit:
            oldest = next(iter(self.open))
            del self.open[oldest]
            oldest.transport.abort()
        self.open[writer] = None

    def discard(self, writer: asyncio.StreamWriter) -> None:
        self.open.pop(writer, None)


class _TcpEcho:
    """The TCP echo: each connection says its token (the first bytes, at most 512, within
    ECHO_TIMEOUT) and is answered with who the agent saw. One event loop serves them all, so a
    connection costs a socket and nothing more; at most ECHO_CONNECTIONS are open, and a new one
    beyond that takes the place of the oldest (a flood of silent connections cannot keep a real
    prober, whose token comes at once, from being answered: refusing it would read as a broken
    network)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connections = _NewestKept(ECHO_CONNECTIONS)

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.admit(writer)
        try:
            hello = await asyncio.wait_for(reader.read(512), ECHO_TIMEOUT)
            peer, port = writer.get_extra_info("peername")[:2]
            writer.write(json.dumps({"name": self.name, "seen": plain_ip(peer), "seen_port": port,
                                     "token": hello.decode(errors="replace").strip()}).encode())
            await asyncio.wait_for(writer.drain(), ECHO_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            self.connections.discard(writer)
            writer.close()


class RunningEcho:
    """A TCP echo served by an event loop of its own, on a thread of its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: asyncio.AbstractServer) -> None:
        self.loop, self.server = loop, server

    def shutdown(self) -> None:
        def stop() -> None:
            self.server.close()
            self.loop.stop()
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(stop)


def start_tcp_echo(name: str, port: int) -> RunningEcho:
    """The TCP echo on ``port`` (IPv4 and IPv6 where the host has IPv6), serving once this returns."""
    if _ipv6_available():
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address = ("::", port)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = ("0.0.0.0", port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(ECHO_BACKLOG)  # a batch from every pod may arrive at once
    except OSError:
        sock.close()
        raise
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # one peer's trouble is not logged
    echo = _TcpEcho(name)
    server = loop.run_until_complete(asyncio.start_server(echo.connection, sock=sock))
    threading.Thread(target=loop.run_forever, daemon=True, name="tcp-echo").start()
    return RunningEcho(loop, server)


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; Python 3.11 does not name it
UDP_MAX = 65535  # the echo reads whole datagrams, and says how long each was (UDP-LARGE)
MAX_PAYLOAD = 65000  # the largest UDP datagram a request may ask for


def start_udp_echo(name: str, port: int) -> socket.socket:
    """Answers each datagram from the address it was sent to (IP_PKTINFO), as a UDP server on a
    host with several addresses must: a hostNetwork probe reached at its node's address through a
    Service would otherwise answer from the address of the route back (a pod bridge's, say), and
    the client's connected socket, and conntrack, would not know the reply."""
    if _ipv6_available():
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        sock.bind(("::", port))
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)  # IPv4, also v4-mapped on the dual-stack socket

    def serve() -> None:
        while True:
            try:
                data, ancillary, _, peer = sock.recvmsg(UDP_MAX, socket.CMSG_SPACE(64))
                # the token is the first line; a large datagram (UDP-LARGE) pads it after that
                reply = {"name": name, "seen": plain_ip(peer[0]), "seen_port": peer[1],
                         "token": data.split(b"\n", 1)[0].decode(errors="replace").strip(),
                         "length": len(data)}
                sock.sendmsg([json.dumps(reply).encode()], _reply_from(ancillary), 0, peer)
            except OSError:
                time.sleep(0.01)

    threading.Thread(target=serve, daemon=True, name="udp-echo").start()
    return sock


def _reply_from(ancillary: list) -> list:
    """The control message that makes a reply leave from the address the datagram came to."""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            _, _, destination = struct.unpack("i4s4s", data[:12])  # in_pktinfo
            return [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("i4s4s", 0, destination, bytes(4)))]
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 20:
            destination = data[:16]  # in6_pktinfo: the address, then the interface
            return [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, destination + struct.pack("i", 0))]
    return []


class IcmpWatcher:
    """Remembers the source address of every tagged ICMP echo request this namespace receives, in
    either family.

    A raw ICMP socket gets a copy of each ICMP packet delivered locally, IP header included, read
    with struct; a raw ICMPv6 socket gets the ICMPv6 message alone, its source from recvfrom. This
    is how the receiver of a ping reports who sent it. Without IPv6 in the namespace, only IPv4 is
    watched (and ``error6`` says why).
    """

    def __init__(self) -> None:
        self.seen: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.lock = threading.Lock()
        self.error: str | None = None
        self.error6: str | None = None
        try:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        except OSError as exc:  # no CAP_NET_RAW: ICMP verdicts say so instead of guessing
            self.sock = None
            self.error = f"cannot open a raw ICMP socket: {exc}"
            return
        threading.Thread(target=self._run, args=(self.sock, False), daemon=True, name="icmp-watch").start()
        try:
            sock6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        except OSError as exc:
            self.error6 = f"cannot open a raw ICMPv6 socket: {exc}"
            return
        threading.Thread(target=self._run, args=(sock6, True), daemon=True, name="icmp6-watch").start()

    def _run(self, sock: socket.socket, six: bool) -> None:
        while True:
            try:
                data, address = sock.recvfrom(65535)
            except OSError:
                time.sleep(0.01)
                continue
            parsed = parse_icmp6(data, address[0]) if six else parse_icmp(data)
            if parsed is None or parsed[1] != (ICMP6_ECHO_REQUEST if six else 8):  # echo requests only
                continue
            source, _, _, _, payload = parsed
            if not payload.startswith(TOKEN_PREFIX):
                continue
            token = payload[len(TOKEN_PREFIX):].split(b"\0", 1)[0].decode(errors="replace")
            with self.lock:
                self.seen[token] = source
                while len(self.seen) > ICMP_MEMORY:
                    self.seen.popitem(last=False)

    def lookup(self, tokens: list[str]) -> dict[str, str | None]:
        with self.lock:
            return {token: self.seen.get(token) for token in tokens}


# --- the prober --------------------------------------------------------------------------------


class NoEchoAfterHandshake(socket.timeout):
    """A TCP connection that was made (SYN and SYN-ACK went through) but whose echo did not answer in time."""


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, NoEchoAfterHandshake):
        return "timeout: connected, no echo"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH,
                                                 errno.EHOSTDOWN, errno.ENETDOWN):
        return "unreachable"
    return f"error: {exc}"


def _is_ip(value) -> bool:
    try:
        return isinstance(value, str) and bool(ipaddress.ip_address(value))
    except ValueError:
        return False


IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)  # linux/in6.h; Python < 3.12 lacks the name


def _tcp_once(ip: str, port: int, token: str, timeout: float, source_ip: str | None = None) -> dict:
    """One connection and its echo; from ``source_ip`` when given (a loopback hostPort over IPv6:
    the kernel has no route_localnet for IPv6, so ::1 cannot be the source of a NATed connection,
    and upstream's hostPort test binds the node's address as ``curl --interface`` does)."""
    deadline = time.monotonic() + timeout
    with socket.socket(family_of(ip), socket.SOCK_STREAM) as sock:
        if sock.family == socket.AF_INET6:
            # A reject (ICMPv6) that arrives while connect() still holds the socket is kept as a
            # soft error and wakes nothing: without IPV6_RECVERR the connection is refused only
            # on the SYN's retransmission, a second later (IPv4 queues the error always)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        sock.settimeout(timeout)
        if source_ip:
            sock.bind((source_ip, 0))
        sock.connect((ip, port))
        local = sock.getsockname()[0]
        chunks = []
        try:
            sock.sendall(token.encode() + b"\n")
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
        except (socket.timeout, TimeoutError):
            raise NoEchoAfterHandshake() from None
    if not chunks:  # accepted, then closed: no echo answered (a full echo closes so); not a pass
        raise OSError(errno.ECONNRESET, "closed without an answer")
    reply = json.loads(b"".join(chunks))
    if not isinstance(reply, dict):
        raise ValueError("the answer is not an echo's")
    return {"local": plain_ip(local), "seen": reply.get("seen"), "responder": reply.get("name")}


def _tls_once(ip: str, port: int, timeout: float) -> dict:
    """A TCP connection and a TLS handshake, as any in-cluster client of the API server starts
    (POD-APISERVER); the server's certificate is read, not verified: the handshake is the
    network's part, trust is the client's."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((ip, port), timeout=timeout) as raw:
        local = raw.getsockname()[0]
        with context.wrap_socket(raw, server_hostname="kubernetes.default.svc") as tls:
            return {"local": plain_ip(local), "tls": tls.version(),
                    "certificate": len(tls.getpeercert(binary_form=True) or b"")}


def _udp_once(ip: str, port: int, token: str, timeout: float, source_port: int | None = None,
              payload: int | None = None) -> dict:
    """One datagram and its echo. From a fixed ``source_port`` (SVC-UDP-BACKEND-CHANGE, as
    upstream's conntrack test sends): each datagram of a stream is then the same flow to
    conntrack, so an entry the proxy should have cleared keeps steering it."""
    family = family_of(ip)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        if source_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", source_port))
        sock.connect((ip, port))
        local = sock.getsockname()[0]
        message = token.encode()
        if payload:  # the token, a newline, and padding to ``payload`` bytes in all (UDP-LARGE)
            message = (message + b"\n").ljust(payload, b"x")
        sock.send(message)
        reply = json.loads(sock.recv(4096))
    if reply.get("token") != token:
        raise OSError("reply to another request")
    found = {"local": plain_ip(local), "seen": reply.get("seen"), "seen_port": reply.get("seen_port"),
             "responder": reply.get("name")}
    if payload:
        found.update(sent=len(message), received=reply.get("length"))
    return found


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of an ICMP message."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request (type 8), checksum included."""
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload


def parse_icmp(packet: bytes) -> tuple[str, int, int, int, bytes] | None:
    """(source address, type, id, seq, what follows the ICMP header) of an IPv4 packet as a raw
    ICMP socket receives it, IP header first; None for anything else."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if packet[9] != socket.IPPROTO_ICMP or len(packet) < ihl + 8:
        return None
    kind, _, _, ident, seq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
    return socket.inet_ntoa(packet[12:16]), kind, ident, seq, packet[ihl + 8:]


def echo_request6(ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMPv6 echo request (type 128); the kernel fills in the checksum of a raw ICMPv6
    socket (RFC 3542), since it covers the IPv6 pseudo-header."""
    return struct.pack("!BBHHH", ICMP6_ECHO_REQUEST, 0, 0, ident, seq) + payload


def parse_icmp6(message: bytes, source: str) -> tuple[str, int, int, int, bytes] | None:
    """(source address, type, id, seq, what follows the header) of an ICMPv6 message as a raw
    ICMPv6 socket receives it (no IPv6 header: ``source`` is recvfrom's); None if too short."""
    if len(message) < 8:
        return None
    kind, _, _, ident, seq = struct.unpack("!BBHHH", message[:8])
    return plain_ip(source.split("%", 1)[0]), kind, ident, seq, message[8:]


def _icmp_once(ip: str, token: str, timeout: float, size: int | None = None) -> dict:
    """One echo request, sent and answered through the kernel's routing.

    With ``size``, the IP packet is padded to exactly that many bytes and marked Don't Fragment:
    a path that cannot carry it must say so (ICMP) or it is a black hole.
    """
    if family_of(ip) == socket.AF_INET6:
        return _icmp6_once(ip, token, timeout, size)
    ident, seq = random.randrange(1, 0xFFFF), random.randrange(1, 0xFFFF)
    payload = TOKEN_PREFIX + token.encode()
    if size:
        payload += b"\0" * max(0, size - 20 - 8 - len(payload))  # IP header 20, ICMP header 8
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        if size:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        sock.connect((ip, 0))
        local = sock.getsockname()[0]
        sock.send(echo_request(ident, seq, payload))
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            parsed = parse_icmp(sock.recv(65535))
            if parsed is None:
                continue
            _, kind, got_id, got_seq, rest = parsed
            if kind == 0 and (got_id, got_seq) == (ident, seq):
                return {"local": plain_ip(local), "seen": None, "responder": None}
            # destination unreachable, about the packet we sent (its IP header follows)
            if kind == 3 and len(rest) >= 20 and socket.inet_ntoa(rest[16:20]) == ip:
                raise OSError(errno.EHOSTUNREACH, "ICMP destination unreachable")
    raise socket.timeout("no echo reply")


def _icmp6_once(ip: str, token: str, timeout: float, size: int | None = None) -> dict:
    """_icmp_once in IPv6: an ICMPv6 echo request; with ``size``, never fragmented by the sender
    (IPv6 routers never fragment), so a path that cannot carry it must send Packet Too Big."""
    ident, seq = random.randrange(1, 0xFFFF), random.randrange(1, 0xFFFF)
    payload = TOKEN_PREFIX + token.encode()
    if size:
        payload += b"\0" * max(0, size - 40 - 8 - len(payload))  # IPv6 header 40, ICMPv6 header 8
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        if size:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IP_PMTUDISC_DO)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, 1)
        sock.connect((ip, 0))
        local = sock.getsockname()[0]
        sock.send(echo_request6(ident, seq, payload))
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            data, address = sock.recvfrom(65535)
            parsed = parse_icmp6(data, address[0])
            if parsed is None:
                continue
            _, kind, got_id, got_seq, rest = parsed
            if kind == ICMP6_ECHO_REPLY and (got_id, got_seq) == (ident, seq):
                return {"local": plain_ip(local), "seen": None, "responder": None}
            # about the packet we sent: it follows the 8-byte header (whose second half is unused,
            # or the path's MTU), its IPv6 destination at bytes 24..40
            if kind in (ICMP6_UNREACHABLE, ICMP6_TOO_BIG) and len(rest) >= 40 and \
                    socket.inet_ntop(socket.AF_INET6, rest[24:40]) == str(ipaddress.ip_address(ip)):
                if kind == ICMP6_TOO_BIG:
                    raise OSError(errno.EMSGSIZE, "ICMPv6 packet too big")
                raise OSError(errno.EHOSTUNREACH, "ICMPv6 destination unreachable")
    raise socket.timeout("no echo reply")


def _dns_once(query: dict, proto: str, token: str, timeout: float) -> dict:
    """One DNS question through the pod's resolv.conf; NXDOMAIN is an answer (the verdict judges
    it), a timeout or a server failure is not. With ``settle``, asked again (every 0.25 s) until
    the answer is ``expect`` or ``settle`` seconds have passed: after a Service change, the
    cluster DNS has that long to follow it. With ``connect``, the name then connects (see
    _address_of) to the echo server behind it, over ``proto``."""
    found = _dns_answer(query, proto, timeout)
    settle, asked = float(query.get("settle", 0)), 1
    deadline = query.get("settle_until") or time.monotonic() + settle  # shared by the attempts
    while settle and not _answered_as(found, query.get("expect", [])) and time.monotonic() < deadline:
        time.sleep(0.25)
        found, asked = _dns_answer(query, proto, timeout), asked + 1
    found["asked"] = asked
    if query.get("connect"):
        ip = _address_of(query["name"], int(query["connect"]), proto, found["answers"], timeout)
        once = _tcp_once if proto == "tcp" else _udp_once
        try:
            found.update(once(ip, int(query["connect"]), token, timeout), connected_to=ip)
        except (OSError, ValueError) as exc:  # the name resolved: say so, and what the connection did
            raise OSError(f"{query['name']} resolved to {ip}, but {proto} to it failed: "
                          f"{_error_kind(exc)}") from None
    return found


def _answered_as(found: dict, expect: list[str]) -> bool:
    got = [found["rcode"]] if found["rcode"] != "NOERROR" else found["answers"]
    return sorted(a.lower() for a in got) == sorted(e.lower() for e in expect)


def _address_of(name: str, port: int, proto: str, answers: list[str], timeout: float) -> str:
    """Where "the name connects": over UDP, what getaddrinfo says, as any program's lookup (glibc
    asks over UDP); over TCP, the address the TCP answer gave, so a TCP item never depends on DNS
    over UDP."""
    if proto == "tcp":
        if not answers:
            raise OSError(f"{name} has no address to connect to")
        return answers[0]
    lookup = _LOOKUPS.submit(socket.getaddrinfo, name, port, type=socket.SOCK_DGRAM)
    try:  # glibc's own timeouts (5 s per server and try, per search name) exceed the target's
        return lookup.result(timeout=timeout)[0][4][0]
    except FutureTimeout:
        raise socket.timeout(f"getaddrinfo({name}) gave no answer in {timeout:g}s") from None
    except socket.gaierror as exc:
        raise OSError(f"getaddrinfo({name}) failed: {exc}") from None


# --- DNS, as a stub resolver asks --------------------------------------------------------------
#
# The standard library has no DNS client but getaddrinfo, which says neither the rcode nor the
# records nor which name of the search list answered: so the agent speaks the protocol (RFC 1035)
# itself, as dnspython's Resolver does, which the tests hold it to.

DNS_PORT = 53
RESOLV_CONF = "/etc/resolv.conf"  # as kubelet wrote it for the pod's dnsPolicy
DNS_TYPE_CODES = {"A": 1, "CNAME": 5, "PTR": 12, "AAAA": 28, "SRV": 33}
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
DNS_ESCAPED = b'"().;\\@$'  # characters dnspython writes with a backslash


class DnsFailure(OSError):
    """Every nameserver failed the question (SERVFAIL, REFUSED, a malformed answer…)."""


def dns_names_to_try(name: str, search: bool, conf: dict) -> list[str]:
    """The absolute names a question is asked as, in order, as glibc and dnspython do: an absolute
    name as it is; else, with the search list, the name with each suffix, and the name itself
    first when it has at least ``ndots`` dots (options ndots:N, default 1), last otherwise."""
    if name.endswith("."):
        return [name]
    if not search:
        return [name + "."]
    ndots = 1
    for option in conf.get("options", []):
        if option.startswith("ndots:") and option[6:].isdigit():
            ndots = min(int(option[6:]), 15)
    suffixes = [s.rstrip(".") for s in conf.get("search", []) if s.strip(".")]
    names = [f"{name}.{suffix}." for suffix in suffixes]
    if name.count(".") >= ndots:
        return [name + "."] + names
    return names + [name + "."]


def dns_query(qname: str, qtype: int) -> tuple[int, bytes]:
    """(id, the query's wire form): one question, recursion desired."""
    query_id = random.randrange(1 << 16)
    wire = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    for label in qname.rstrip(".").split("."):
        encoded = label.encode("ascii")
        if not 0 < len(encoded) <= 63:
            raise ValueError(f"{qname!r} is not a DNS name (a label of 1..63 characters each)")
        wire += bytes([len(encoded)]) + encoded
    if len(wire) - 12 > 254:
        raise ValueError(f"{qname!r} is longer than 253 characters")
    return query_id, wire + b"\0" + struct.pack("!HH", qtype, 1)


def _dns_name(message: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (compression pointers followed, at most 64 jumps) as dnspython
    writes it, absolute; and the offset after it where it was found."""
    labels, end, jumps = [], None, 0
    while True:
        if offset >= len(message):
            raise ValueError("a name runs past the end of the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message) or jumps > 64:
                raise ValueError("a bad compression pointer")
            end = offset + 2 if end is None else end
            offset, jumps = ((length & 0x3F) << 8) | message[offset + 1], jumps + 1
            continue
        if length & 0xC0:
            raise ValueError("an unknown label type")
        offset += 1
        if length == 0:
            break
        label = message[offset:offset + length]
        if len(label) < length:
            raise ValueError("a label runs past the end of the message")
        labels.append("".join(f"\\{chr(b)}" if b in DNS_ESCAPED else chr(b) if 0x20 < b < 0x7F
                              else f"\\{b:03d}" for b in label))
        offset += length
    return ".".join(labels) + ".", end if end is not None else offset


def dns_parse(message: bytes, query_id: int, qname: str, qtype: int) -> tuple[str, list[tuple[str, int, str]], bool]:
    """(rcode, [(owner, type, text)] of the answer section, truncated) of an answer to the query;
    ValueError if it is not one."""
    if len(message) < 12:
        raise ValueError("shorter than a DNS header")
    answer_id, flags, questions, answers = struct.unpack("!HHHH", message[:8])
    if answer_id != query_id or not flags & 0x8000:
        raise ValueError("not the answer to this query")
    offset, asked = 12, None
    for _ in range(questions):
        asked, offset = _dns_name(message, offset)
        asked_type = struct.unpack("!H", message[offset:offset + 2])[0] if offset + 4 <= len(message) else None
        offset += 4
        if asked.lower() != qname.lower() or asked_type != qtype:
            raise ValueError("an answer to another question")
    truncated = bool(flags & 0x0200)
    if questions != 1 and not truncated:
        raise ValueError("an answer without the question")
    records = []
    for _ in range(answers if not truncated else 0):
        owner, offset = _dns_name(message, offset)
        if offset + 10 > len(message):
            raise ValueError("a record runs past the end of the message")
        rtype, _, _, length = struct.unpack("!HHIH", message[offset:offset + 10])
        offset += 10
        data = message[offset:offset + length]
        if len(data) < length:
            raise ValueError("a record runs past the end of the message")
        if rtype == 1 and length == 4:
            text = socket.inet_ntop(socket.AF_INET, data)
        elif rtype == 28 and length == 16:
            text = socket.inet_ntop(socket.AF_INET6, data)
        elif rtype in (5, 12):
            text = _dns_name(message, offset)[0]
        elif rtype == 33 and length >= 7:
            priority, weight, port = struct.unpack("!HHH", data[:6])
            text = f"{priority} {weight} {port} {_dns_name(message, offset + 6)[0]}"
        else:
            text = None
        if text is not None:
            records.append((owner, rtype, text))
        offset += length
    return DNS_RCODES.get(flags & 0xF, f"RCODE{flags & 0xF}"), records, truncated


def _dns_exchange(server: str, query_id: int, wire: bytes, qname: str, qtype: int, tcp: bool,
                  deadline: float) -> tuple[str, list, bool]:
    """One question to one nameserver over UDP or TCP, until ``deadline``."""
    family = family_of(server)
    if tcp:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.connect((server, DNS_PORT))
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            length = struct.unpack("!H", _recv_exactly(sock, 2, deadline))[0]
            return dns_parse(_recv_exactly(sock, length, deadline), query_id, qname, qtype)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((server, DNS_PORT))
        sock.send(wire)
        while True:  # a stray or forged datagram is not the answer: keep waiting for it
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                return dns_parse(sock.recv(65535), query_id, qname, qtype)
            except ValueError:
                if time.monotonic() >= deadline:
                    raise socket.timeout("no answer to this query") from None


def _recv_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    data = b""
    while len(data) < count:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the nameserver closed the connection mid-answer")
        data += chunk
    return data


def _dns_ask(qname: str, qtype: int, servers: list[str], tcp: bool, deadline: float) -> tuple[str, list]:
    """(rcode, records) of the first nameserver that answers NOERROR or NXDOMAIN; the others are
    asked in turn, round after round, until ``deadline``. A truncated UDP answer is asked again
    over TCP. SERVFAIL, REFUSED or a malformed answer drop that nameserver for this question."""
    query_id, wire = dns_query(qname, qtype)
    left, problems = list(servers), []
    while left:
        for server in list(left):
            if time.monotonic() >= deadline:
                raise socket.timeout(f"no DNS answer: {'; '.join(problems) or 'no nameserver answered in time'}")
            try:
                rcode, records, truncated = _dns_exchange(server, query_id, wire, qname, qtype, tcp, deadline)
                if truncated and not tcp:
                    rcode, records, _ = _dns_exchange(server, query_id, wire, qname, qtype, True, deadline)
            except (socket.timeout, TimeoutError):
                problems.append(f"{server}: timed out")
                continue
            except (OSError, ValueError) as exc:
                problems.append(f"{server}: {exc}")
                left.remove(server)
                continue
            if rcode in ("NOERROR", "NXDOMAIN"):
                return rcode, records
            problems.append(f"{server} answered {rcode}")
            left.remove(server)
    raise DnsFailure(f"no nameserver answered: {'; '.join(problems)}")


def _chased(records: list, qname: str, qtype: int) -> list[str]:
    """The answers to the question: the records of its type owned by the name, or by the end of
    the CNAME chain that starts there (not for a CNAME question)."""
    name, seen = qname.lower(), set()
    while qtype != 5 and name not in seen:
        seen.add(name)
        alias = next((text for owner, rtype, text in records if rtype == 5 and owner.lower() == name), None)
        if alias is None:
            break
        name = alias.lower()
    return sorted(text for owner, rtype, text in records if rtype == qtype and owner.lower() == name)


def _dns_answer(query: dict, proto: str, timeout: float) -> dict:
    """One question through the pod's resolv.conf, every name of its search list in turn, as
    ``dig +search`` (and dnspython's Resolver) asks it: NXDOMAIN only once every name was;
    ``timeout`` bounds it all."""
    conf = resolv_conf(RESOLV_CONF)
    servers = conf["nameservers"] or ["127.0.0.1"]  # glibc's default too
    qtype = DNS_TYPE_CODES[query.get("type", "A")]
    deadline = time.monotonic() + timeout
    found = {"rcode": "NOERROR", "qname": None, "answers": [], "local": None, "seen": None,
             "responder": None}
    for qname in dns_names_to_try(query["name"], bool(query.get("search", True)), conf):
        rcode, records = _dns_ask(qname, qtype, servers, proto == "tcp", deadline)
        found.update(rcode=rcode, qname=qname)
        if rcode == "NOERROR":
            found["answers"] = _chased(records, qname, qtype)
            return found
    return found


def probe_target(target: dict) -> dict:
    """Probe one target, retrying up to its attempt count; report what happened on each.

    With ``settle`` (after a Service change), single attempts (each waiting at most
    SETTLE_TIMEOUT) are first made every SETTLE_PAUSE until one behaves as the changed cluster
    should, or ``settle`` seconds have passed: the cluster has that long to follow the change
    (``settled`` counts the tries that did not). What is reported is the usual attempts made
    after that, with the full timeout: a target that works only now and then is not hidden by
    the first lucky try. If those attempts fail while the window lasts, the cluster may still be
    on its way: a proxy that applies a Service's change and its EndpointSlice's in separate syncs
    answers, refuses, then answers again (CI43: a healthy flannel lab failed so). Attempts that
    were all refused are such a flap (``flapped``): the target is then settled again, this time
    until it has behaved on every try
    for STEADY_FOR seconds (``steady`` says whether it did), and the usual attempts are made
    once more. A healthy cluster that follows the change at once pays nothing for this.

    A target that must go unanswered (``unanswered``: a port the change removed) settles the
    other way: its usual attempts are made again until none of them is answered on every round
    for STEADY_FOR seconds. The same gap that refuses a kept port for a moment (a slice being
    replaced) would refuse a port the proxy never removed, and one silent round would then pass
    it; if the window ends before the silence holds, the last answered round is reported."""
    timeout, attempts = float(target.get("timeout", 2.0)), int(target.get("attempts", 1))
    settle = float(target.get("settle") or target.get("dns", {}).get("settle", 0))
    started = time.monotonic()
    waited: dict = {}
    if target.get("unanswered"):  # a round is silent when none of its attempts is answered
        rounds: list[dict] = []

        def silent() -> bool:
            rounds.append(_attempts(target, attempts, timeout))
            return not rounds[-1]["ok"]
        if settle:
            waited = _settle(silent, settle, started, STEADY_FOR)
        if not rounds:
            silent()
        answered = [r for r in rounds if r["ok"]]
        result = rounds[-1] if not settle or waited["steady"] or not answered else answered[-1]
    elif settle:
        # a question's own loop (_dns_once) asks until the expected answer within the window,
        # which all its tries share (each would otherwise wait it out once more for a wrong one);
        # a try behaves once it is answered (and, with ``connect``, the name connects)
        target = _with_dns_deadline(target, started + settle)

        def behaves() -> bool:
            return _attempts(target, 1, min(timeout, SETTLE_TIMEOUT))["ok"]
        waited = _settle(behaves, settle, started, 0.0)
        result = _attempts(target, attempts, timeout)
        if not result["ok"] and waited["steady"] and _refused_only(result) and time.monotonic() - started < settle:
            again = _settle(behaves, settle, started, STEADY_FOR)
            waited = {"settled": waited["settled"] + again["settled"],
                      "flapped": waited["flapped"] + 1 + again["flapped"], "steady": again["steady"]}
            result = _attempts(target, attempts, timeout)
    else:
        result = _attempts(target, attempts, timeout)
    if settle:
        result.update(waited)
    if target.get("size"):
        result["size"] = int(target["size"])
    result["latency_ms"] = round((time.monotonic() - started) * 1000, 3)
    return result


def _refused_only(result: dict) -> bool:
    """Whether every attempt was refused: the proxy's own "no endpoints" reject, which is what a
    change in flight shows. A timeout or an unreachable network is not taken for a flap: a
    Service with one backend out of reach answers now and then for good, and waiting out the
    window for each of its targets made a faulty run three minutes longer (CI50)."""
    return bool(result["errors"]) and all(e.endswith("refused") for e in result["errors"])


def _settle(behaves, settle: float, started: float, steady_for: float) -> dict:
    """Try ``behaves()`` every SETTLE_PAUSE until it has held on every try for ``steady_for``
    seconds (0: once), or until ``settle`` seconds after ``started``; say how it went."""
    settled = flapped = 0
    streak = None  # when the current run of tries that behaved began
    while time.monotonic() - started < settle:
        tried = time.monotonic()
        if behaves():
            streak = tried if streak is None else streak
            if time.monotonic() - streak >= steady_for:
                return {"settled": settled, "flapped": flapped, "steady": True}
        else:
            settled, flapped = settled + 1, flapped + (streak is not None)
            streak = None
        time.sleep(SETTLE_PAUSE)
    return {"settled": settled, "flapped": flapped, "steady": False}


def _with_dns_deadline(target: dict, deadline: float) -> dict:
    if "dns" not in target:
        return target
    return {**target, "dns": {**target["dns"], "settle_until": deadline}}


def _attempts(target: dict, attempts: int, timeout: float) -> dict:
    """Up to ``attempts`` tries of one target, each bounded by ``timeout``, until one works."""
    ip, proto = target.get("ip"), target["proto"]
    port = int(target.get("port", 0))
    token = target.get("token") or target["id"]
    result = {"id": target["id"], "ok": False, "error": None, "seen": None, "responder": None,
              "local": None, "errors": []}
    for _ in range(attempts):
        try:
            if "dns" in target:
                outcome = _dns_once(target["dns"], proto, token, timeout)
            elif proto == "tcp":
                outcome = _tcp_once(ip, port, token, timeout, target.get("source_ip"))
            elif proto == "udp":
                outcome = _udp_once(ip, port, token, timeout, target.get("source_port"), target.get("payload"))
            elif proto == "icmp":
                outcome = _icmp_once(ip, token, timeout, target.get("size"))
            elif proto == "tls":
                outcome = _tls_once(ip, port, timeout)
            else:
                raise ValueError(f"unknown protocol {proto!r}")
        except (OSError, ValueError) as exc:
            result["errors"].append(_error_kind(exc))
            continue
        result.update(outcome, ok=True)
        break
    result["attempts"] = len(result["errors"]) + result["ok"]
    result["error"] = None if result["ok"] else result["errors"][-1]
    return result


PROTOCOLS = ("tcp", "udp", "icmp", "tls")
MAX_ID = 512  # characters of a target's id
MAX_TOKEN = 1024  # characters of the token a target sends


def _is_int(value, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def check_shape(target) -> None:
    """A target is what the harness sends, or a 400 that says which field is not: an address that
    is an address, a port that is a port, a protocol the agent speaks."""
    if not isinstance(target, dict):
        raise ValueError(f"a target must be a JSON object, not {type(target).__name__}")
    target_id = target.get("id")
    if not isinstance(target_id, str) or not 0 < len(target_id) <= MAX_ID:
        raise ValueError(f"each target needs an id, a string of 1..{MAX_ID} characters")
    if target.get("proto") not in PROTOCOLS:
        raise ValueError(f"proto of {target_id} must be one of {', '.join(PROTOCOLS)}")
    if "token" in target and not (isinstance(target["token"], str) and len(target["token"]) <= MAX_TOKEN):
        raise ValueError(f"token of {target_id} must be a string of at most {MAX_TOKEN} characters")
    if "dns" in target:
        return
    try:
        ipaddress.ip_address(target.get("ip"))
    except ValueError:
        raise ValueError(f"ip of {target_id} must be an IPv4 or IPv6 address, not {target.get('ip')!r}") from None
    if target["proto"] != "icmp" and not _is_int(target.get("port"), 1, 65535):
        raise ValueError(f"port of {target_id} must be an integer 1..65535")
    if "size" in target and target["size"] is not None and not _is_int(target["size"], 28, 65535):
        raise ValueError(f"size of {target_id} must be an integer 28..65535")


def check_limits(request: dict) -> None:
    """A request beyond the agent's caps is refused with the cap it broke, never quietly trimmed:
    a caller that asked for 10 attempts and got 5 would judge the network on what it did not ask."""
    targets = request.get("targets", [])
    if not isinstance(targets, list):
        raise ValueError("targets must be a list")
    if len(targets) > MAX_TARGETS:
        raise ValueError(f"{len(targets)} targets, at most {MAX_TARGETS} per request")
    if not _is_int(request.get("concurrency", 64), 1, MAX_CONCURRENCY):
        raise ValueError(f"concurrency must be 1..{MAX_CONCURRENCY}")
    for target in targets:
        check_shape(target)
        for field, kinds in (("timeout", (int, float)), ("attempts", (int,)), ("settle", (int, float))):
            value = target.get(field)
            if value is not None and (type(value) not in kinds or value != value):  # bool, str, nan
                raise ValueError(f"{field} of {target['id']} must be a number")
        if "dns" in target and isinstance(target["dns"], dict) and "connect" in target["dns"] and \
                target["dns"]["connect"] is not None and not _is_int(target["dns"]["connect"], 1, 65535):
            raise ValueError(f"dns.connect of {target['id']} must be a port 1..65535")
        timeout, attempts = float(target.get("timeout", 2.0)), int(target.get("attempts", 1))
        if not (0 < timeout <= MAX_TIMEOUT):  # also refuses nan
            raise ValueError(f"timeout {timeout} of {target.get('id')} must be in (0, {MAX_TIMEOUT:g}] s")
        if not 1 <= attempts <= MAX_ATTEMPTS:
            raise ValueError(f"attempts {attempts} of {target.get('id')} must be 1..{MAX_ATTEMPTS}")
        if "source_ip" in target and (target["proto"] != "tcp" or not _is_ip(target["source_ip"])):
            raise ValueError(f"source_ip of {target.get('id')} must be an IP address, for tcp only")
        if "source_port" in target and (target["proto"] != "udp" or type(target["source_port"]) is not int
                                        or not 1024 <= target["source_port"] <= 65535):
            raise ValueError(f"source_port of {target.get('id')} must be an integer 1024..65535, for udp only")
        if "payload" in target and (target["proto"] != "udp" or type(target["payload"]) is not int
                                    or not len(str(target.get("token") or target.get("id"))) < target["payload"] <= MAX_PAYLOAD):
            raise ValueError(f"payload of {target.get('id')} must be an integer above the token's length "
                             f"and at most {MAX_PAYLOAD}, for udp only")
        if not 0 <= float(target.get("settle") or 0) <= MAX_TIMEOUT:  # also refuses nan
            raise ValueError(f"settle of {target.get('id')} must be in [0, {MAX_TIMEOUT:g}] s")
        if "dns" in target:
            query = target["dns"]
            if not isinstance(query, dict) or not isinstance(query.get("name"), str) or \
                    not 0 < len(query["name"]) <= 253:
                raise ValueError(f"the DNS query of {target.get('id')} needs a name of 1..253 characters")
            if query.get("type", "A") not in DNS_TYPES:
                raise ValueError(f"DNS type {query.get('type')!r} of {target.get('id')}: one of {DNS_TYPES}")
            if target["proto"] not in ("udp", "tcp"):
                raise ValueError(f"a DNS query goes over udp or tcp, not {target['proto']!r}")
            if "settle_until" in query:  # the agent's own: the deadline its tries share (probe_target)
                raise ValueError(f"dns.settle_until of {target.get('id')} is the agent's own; give settle")
            if not 0 <= float(query.get("settle", 0)) <= MAX_TIMEOUT:
                raise ValueError(f"settle of {target.get('id')} must be in [0, {MAX_TIMEOUT:g}] s")
            if not all(isinstance(e, str) for e in query.get("expect", [])):
                raise ValueError(f"expect of {target.get('id')} must be a list of strings")


def probe_batch(request: dict, cancelled: threading.Event | None = None) -> dict:
    """Every target of the request probed (``concurrency`` at once), in the request's order. Once
    ``cancelled`` is set (the client went away) no further target is started: nobody would read
    its result."""
    check_limits(request)
    targets = request.get("targets", [])
    workers = max(1, min(int(request.get("concurrency", 64)), len(targets) or 1))
    cancelled = cancelled or threading.Event()
    if workers == 1:  # one after the other: a group stops at its first failure
        return {"results": _in_turn(targets, cancelled)}

    def unless_cancelled(target: dict) -> dict:
        return _not_made(target, "the client went away") if cancelled.is_set() else probe_target(target)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(unless_cancelled, targets))
    return {"results": results}


def _not_made(target: dict, why: str) -> dict:
    return {"id": target["id"], "ok": False, "error": f"not made: {why}", "errors": [], "attempts": 0,
            "seen": None, "responder": None, "local": None}


def _in_turn(targets: list[dict], cancelled: threading.Event) -> list[dict]:
    """Targets probed one after the other. Once a target of a ``group`` (the connections of an
    affinity round to one address) fails, the rest of that group are not made: the item fails on
    that one, and each of them would wait out its own timeout."""
    failed: dict[str, str] = {}
    results = []
    for target in targets:
        group = target.get("group")
        if cancelled.is_set():
            results.append(_not_made(target, "the client went away"))
            continue
        if group is not None and group in failed:
            results.append(_not_made(target, f"{failed[group]} failed"))
            continue
        result = probe_target(target)
        if group is not None and not result["ok"]:
            failed[group] = target["id"]
        results.append(result)
    return results


# --- the self-report ---------------------------------------------------------------------------


# rtnetlink, as ip(8) speaks it (linux/rtnetlink.h, if_link.h, if_addr.h): only what the report reads
NETLINK_ROUTE, NLM_F_REQUEST, NLM_F_DUMP = 0, 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE = 18, 22, 26
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_OPERSTATE = 1, 3, 4, 16
IFA_ADDRESS = 1
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN = 254
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")


def _netlink_dump(kind: int, header: bytes) -> list[bytes]:
    """The messages of one rtnetlink dump request (``header``: its family header), bounded by a
    timeout on the socket."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.settimeout(5.0)
        sock.bind((0, 0))
        sock.send(struct.pack("=IHHII", 16 + len(header), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + header)
        messages = []
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, msg_type, _, _, _ = struct.unpack_from("=IHHII", data, offset)
                if length < 16:
                    return messages
                if msg_type == NLMSG_DONE:
                    return messages
                if msg_type == NLMSG_ERROR:
                    code = struct.unpack_from("=i", data, offset + 16)[0]
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return messages
                messages.append(data[offset + 16:offset + length])
                offset += (length + 3) & ~3


def _attributes(data: bytes, offset: int) -> dict[int, bytes]:
    """The rtattrs of a message from ``offset`` (type -> value; nested ones left as bytes)."""
    found = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def _address(family: int, raw: bytes | None) -> str | None:
    return socket.inet_ntop(family, raw) if raw else None


def self_report(name: str) -> dict:
    """What this namespace looks like from inside: links, addresses and main-table routes, read
    from rtnetlink with the standard library (the agent runs on a stock Python image)."""
    links = {}
    for message in _netlink_dump(RTM_GETLINK, struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)):
        _, _, index, _, _ = struct.unpack_from("=BxHiII", message)
        attrs = _attributes(message, 16)
        mac = attrs.get(IFLA_ADDRESS)
        state = attrs.get(IFLA_OPERSTATE, b"\0")[0]
        links[index] = {
            "name": attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode() or None,
            "mac": ":".join(f"{b:02x}" for b in mac) if mac else None,
            "mtu": struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else None,
            "state": OPERSTATES[state] if state < len(OPERSTATES) else str(state),
            "addresses": [],
        }
    for message in _netlink_dump(RTM_GETADDR, struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0)):
        family, prefixlen, _, _, index = struct.unpack_from("=BBBBI", message)
        address = _address(family, _attributes(message, 8).get(IFA_ADDRESS))
        if index in links and address:
            links[index]["addresses"].append(f"{address}/{prefixlen}")
    routes = []
    for message in _netlink_dump(RTM_GETROUTE, struct.pack("=BBBBBBBBI", socket.AF_UNSPEC, *[0] * 8)):
        family, dst_len, _, _, table, _, _, _, _ = struct.unpack_from("=BBBBBBBBI", message)
        attrs = _attributes(message, 12)
        if (struct.unpack("=I", attrs[RTA_TABLE])[0] if RTA_TABLE in attrs else table) != RT_TABLE_MAIN:
            continue
        dst = _address(family, attrs.get(RTA_DST))
        oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else None
        routes.append({"dst": f"{dst}/{dst_len}" if dst else "default",
                       "gateway": _address(family, attrs.get(RTA_GATEWAY)),
                       "dev": links.get(oif, {}).get("name"),
                       "family": "ipv6" if family == socket.AF_INET6 else "ipv4"})
    return {"name": name, "hostname": socket.gethostname(), "pid": os.getpid(),
            "interfaces": sorted(links.values(), key=lambda link: link["name"] or ""),
            "routes": routes, "resolv_conf": resolv_conf()}


def resolv_conf(path: str = "/etc/resolv.conf") -> dict:
    """The resolver settings this pod was given (kubelet writes them per dnsPolicy): the harness
    reads the cluster domain from the search list, and a DNS verdict shows what the pod used."""
    found: dict = {"nameservers": [], "search": [], "options": []}
    try:
        with open(path) as conf:
            for line in conf:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and words[0] == "nameserver":
                    found["nameservers"].append(words[1])
                elif words and words[0] in ("search", "domain"):
                    found["search"] = words[1:]
                elif words and words[0] == "options":
                    found["options"] += words[1:]
    except OSError as exc:
        found["error"] = f"cannot read {path}: {exc.strerror}"
    return found


# --- the control API ----------------------------------------------------------------------------
#
# Whoever can reach a probe could make it dial any address: so every request but the health check
# must carry the run's token, every read and every request is bounded, and one pool of workers per
# agent serves them (a flood is refused with 503, not given a thread each).

TOKEN_HEADER = "X-Netprobe-Token"  # the pod proxy passes it on (Authorization is the caller's own,
# for the API server; a Bearer token is accepted too, from a client that reaches the probe directly)
MAX_BODY = 4 << 20  # bytes of a request body (20,000 targets fit); 413 beyond, the body unread
BODY_BUDGET = 4 << 20  # bytes of the bodies whose requests are being served, from the read to the
# answer written, over all connections; a body waits for room (503 after READ_TIMEOUT). A batch's
# results and answer take about 40 times its body (20,000 targets: 1.2 MB, about 48 MiB), so
# this lets three such batches run at once under the pod's 256 MiB, not seven
MAX_CONTAINERS = 4 * MAX_TARGETS + 64  # JSON arrays and objects in a body (a target has at most 4)
READ_TIMEOUT = 10.0  # s a client has for its request line and headers (or to idle between requests),
# and then as much for its body
MAX_HEADER_LINE = 8192  # bytes of the request line and of each header line
MAX_HEADERS = 64  # header lines of a request
PENDING_CONNECTIONS = 256  # connections of one listener yet to show the token; a new one beyond that
# takes the place of the oldest
CONTROL_CONNECTIONS = 256  # connections of one listener whose requests carried the token; beyond: 503
MAX_HEAD = 32768  # bytes of a request line and its headers together
WRITE_TIMEOUT = 10.0  # s a client has to take its answer (the pod proxy and the harness read at once)
CONTROL_BACKLOG = 128  # connections the kernel holds until the event loop accepts them
KEEPALIVE_IDLE = 150.0  # s a connection may idle after an answer to the token's holder: longer than
# the pod proxy keeps an idle connection (90 s), so the proxy always closes first and never sends a
# request on a connection the agent is closing (a POST it cannot send again)
LINGER = 2.0  # s a closing connection's last answer is given to arrive (see _close)
CONTROL_WORKERS = 16  # threads doing the requests' work (probe batches, self-reports) at once
ECHO_CONNECTIONS = 1024  # TCP echo connections open at once; a new one beyond takes the oldest's place
ECHO_TIMEOUT = 5.0  # s an echo connection has to say its token (and to take its answer)
ECHO_BACKLOG = 1024  # connections the kernel holds until the echo's loop accepts them
PROBE_CAPACITY = MAX_CONCURRENCY  # probe threads of all requests together
CAPACITY_WAIT = 30.0  # s a request may wait for probe threads before it is refused (503)
UNAUTHENTICATED = ("healthz",)  # the readiness probe's: it says the agent's name and nothing else


class Busy(Exception):
    """The agent is at one of its bounds: answered 503, with the bound."""


class _Capacity:
    """Probe threads shared by every request: a request takes all it needs at once or waits."""

    def __init__(self, total: int) -> None:
        self.total, self.free = total, total
        self.cond = threading.Condition()

    def take(self, count: int, wait: float) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.free >= count, timeout=wait):
                raise Busy(f"{self.total - self.free} of {self.total} probe threads in use for "
                           f"{wait:g} s; try again")
            self.free -= count

    def give(self, count: int) -> None:
        with self.cond:
            self.free += count
            self.cond.notify_all()


CAPACITY = _Capacity(PROBE_CAPACITY)


def _bounded_batch(request: dict, cancelled: threading.Event | None = None) -> dict:
    """probe_batch with its threads taken from the agent's shared capacity."""
    check_limits(request)
    workers = max(1, min(int(request.get("concurrency", 64)), len(request.get("targets", [])) or 1))
    CAPACITY.take(workers, CAPACITY_WAIT)
    try:
        return probe_batch(request, cancelled)
    finally:
        CAPACITY.give(workers)


class BadRequest(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout",
           411: "Length Required", 413: "Content Too Large", 414: "URI Too Long", 417: "Expectation Failed",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}


def http_answer(status: int, body: dict | bytes, close: bool) -> bytes:
    """One whole HTTP/1.1 answer: a JSON body (``body``, or already encoded), always, whatever
    went wrong."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n")
    return head.encode() + data


BUSY_REPLY = http_answer(503, {"error": f"busy: {CONTROL_CONNECTIONS} connections of the token's holder "
                                        "are open, the agent's bound; try again"}, close=True)


class _Budget:
    """Bytes of request bodies the agent holds at once, over every connection: a body is read only
    once its length fits, so a crowd of large bodies waits (or is told busy) instead of each one
    taking its memory."""

    def __init__(self, total: int) -> None:
        self.total, self.free = total, total
        self.cond = asyncio.Condition()

    async def take(self, count: int, wait: float) -> None:
        async with self.cond:
            try:
                await asyncio.wait_for(self.cond.wait_for(lambda: self.free >= count), wait)
            except asyncio.TimeoutError:
                raise Busy(f"bodies of {self.total - self.free} bytes are being read, at most "
                           f"{self.total} at once; try again") from None
            self.free -= count

    async def give(self, count: int) -> None:
        async with self.cond:
            self.free += count
            self.cond.notify_all()


_PARSING = threading.Semaphore(1)  # large bodies are parsed one at a time: parsing takes memory


def parse_body(data: bytes) -> dict:
    """The JSON object of a request body, or a 400 that says why not. Before parsing, a body with
    more arrays and objects than any real request has is refused: parsing millions of empty
    lists would take hundreds of megabytes."""
    containers = data.count(b"[") + data.count(b"{")
    if containers > MAX_CONTAINERS:
        raise BadRequest(400, f"the body holds {containers} JSON arrays and objects, at most {MAX_CONTAINERS}")
    with _PARSING if len(data) > 65536 else contextlib.nullcontext():
        try:
            body = json.loads(data or b"{}")
        except RecursionError:
            raise BadRequest(400, "the body is nested too deeply") from None
        except ValueError as exc:
            raise BadRequest(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(400, f"the body must be a JSON object, not {type(body).__name__}")
    return body


ENDPOINTS = ("/healthz", "/self", "/probe", "/icmp-seen")
HEADER_NAME = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class Request:
    """One request's head, as the control API reads it."""

    def __init__(self, method: str, target: str, version: str, headers: dict[str, list[str]]) -> None:
        self.method, self.target, self.version, self.headers = method, target, version, headers
        path = target.split("?", 1)[0]
        if path.startswith(("http://", "https://")):  # the absolute form (RFC 9112 3.2.2)
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        self.endpoint = path[1:] if path in ENDPOINTS else None
        self.pipelined = False
        self.held = 0  # bytes of the body budget it holds until its answer is written

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        return "close" not in connection and (self.version == "HTTP/1.1" or "keep-alive" in connection)

    def content_length(self) -> int:
        if self.header("transfer-encoding") is not None:
            raise BadRequest(411, "a body needs a Content-Length (no chunked encoding)")
        values = self.headers.get("content-length", [])
        if len(values) > 1:
            raise BadRequest(400, "more than one Content-Length")
        if not values:
            return 0
        if values[0].startswith("-") and values[0][1:].isdigit():
            raise BadRequest(400, "Content-Length is negative")
        if not (values[0].isascii() and values[0].isdigit()) or len(values[0]) > 12:
            raise BadRequest(400, "Content-Length is not a number")
        return int(values[0])


async def read_head(reader: asyncio.StreamReader, started: list) -> Request | None:
    """The request line and headers; None if the client closed before a request began.
    ``started`` gets True once a byte of it came (a timeout after that is a 408, before it an idle
    connection closed quietly)."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio's LimitOverrunError: longer than the line bound
        raise BadRequest(414, f"the request line is longer than {MAX_HEADER_LINE} bytes") from None
    if not line:
        return None
    started.append(True)
    size = len(line)
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1].startswith(("/", "http://", "https://")):
        raise BadRequest(400, "not an HTTP request line")
    if parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(505, f"{parts[2]!r}: HTTP/1.0 and HTTP/1.1 only")
    headers: dict[str, list[str]] = {}
    for _ in range(MAX_HEADERS + 1):
        try:
            line = await reader.readline()
        except ValueError:
            raise BadRequest(431, f"a header line is longer than {MAX_HEADER_LINE} bytes") from None
        if not line:
            raise BadRequest(400, "the connection ended within the headers")
        if line in (b"\r\n", b"\n"):
            return Request(parts[0], parts[1], parts[2], headers)
        size += len(line)
        if size > MAX_HEAD:
            raise BadRequest(431, f"the request line and headers are longer than {MAX_HEAD} bytes")
        name, colon, value = line.decode("latin-1").rstrip("\r\n").partition(":")
        if not colon or not name or not set(name) <= HEADER_NAME or "\r" in value or "\0" in value:
            raise BadRequest(400, "a header line is not 'Name: value'")
        headers.setdefault(name.lower(), []).append(value.strip())
    raise BadRequest(431, f"more than {MAX_HEADERS} header lines")


class _Listener:
    """The connections of one listening socket (the lab's Unix socket is apart from the TCP port,
    so nothing on the network can crowd out the harness there). Connections that have not yet
    shown the token are "pending": at most PENDING_CONNECTIONS, a new one beyond taking the place
    of the oldest (_NewestKept). Once a request carried the token the connection is its holder's:
    at most CONTROL_CONNECTIONS of those, beyond which the holder is told 503."""

    def __init__(self) -> None:
        self.pending = _NewestKept(PENDING_CONNECTIONS)
        self.trusted = 0


class _Connection:
    """One connection's place in its listener: pending until a request carries the token, then
    its holder's (promoted at once, so a flood that pushes out pending connections cannot take a
    request being served)."""

    def __init__(self, listener: _Listener, writer: asyncio.StreamWriter) -> None:
        self.listener, self.writer, self.trusted = listener, writer, False

    def promote(self) -> bool:
        """Whether the holder's bound has room for it (always, once promoted)."""
        if not self.trusted:
            self.listener.pending.discard(self.writer)
            if self.listener.trusted >= CONTROL_CONNECTIONS:
                return False
            self.listener.trusted += 1
            self.trusted = True
        return True

    def leave(self) -> None:
        self.listener.pending.discard(self.writer)
        if self.trusted:
            self.listener.trusted -= 1
            self.trusted = False


class ControlServer:
    """The control API: one event loop serves every connection, so a client that is slow to send
    its request (or sends none) holds a socket and nothing else; the request line and headers,
    and then the body, each have READ_TIMEOUT to arrive whole. The work itself (a probe batch, the
    self-report) runs on a bounded pool of threads, and a batch whose (kept-alive) client went
    away stops starting targets."""

    def __init__(self, name: str, watcher: IcmpWatcher, token: str) -> None:
        self.name, self.watcher, self.expected = name, watcher, token.encode()
        self.budget = _Budget(BODY_BUDGET)
        self.pool = ThreadPoolExecutor(max_workers=CONTROL_WORKERS, thread_name_prefix="control")

    def authorized(self, request: Request) -> bool:
        tokens = request.headers.get(TOKEN_HEADER.lower(), [])
        authorization = request.headers.get("authorization", [])
        if len(tokens) > 1 or len(authorization) > 1:  # which one counts would be anybody's guess
            raise BadRequest(400, f"more than one {TOKEN_HEADER if len(tokens) > 1 else 'Authorization'}")
        given = tokens[0] if tokens else ""
        if not given and authorization and authorization[0][:7].lower() == "bearer ":  # a scheme
            given = authorization[0][7:]  # is case-insensitive (RFC 9110 11.1)
        return hmac.compare_digest(given.strip().encode(), self.expected)

    def serving(self, listener: _Listener):
        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.connection(listener, reader, writer)
        return connection

    async def connection(self, listener: _Listener, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        listener.pending.admit(writer)
        conn = _Connection(listener, writer)
        linger = True
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # answers go at once
            wait = READ_TIMEOUT  # a new connection's first request: whole within READ_TIMEOUT
            while await self.one_request(conn, reader, writer, wait) and not writer.transport.is_closing():
                wait = KEEPALIVE_IDLE  # after an answer with the token: the client's to keep
        except asyncio.TimeoutError:  # an answer it did not take within WRITE_TIMEOUT (caught
            writer.transport.abort()    # first: a TimeoutError is an OSError too)
            linger = False
        except (OSError, asyncio.IncompleteReadError):  # the client went away
            linger = False
        finally:
            conn.leave()
            await _close(writer, reader if linger else None)

    async def one_request(self, conn: "_Connection", reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter, wait: float) -> bool:
        """Serve one request whose head arrives within ``wait``; whether the connection may carry
        another."""
        started: list = []
        try:
            request = await asyncio.wait_for(read_head(reader, started), wait)
            if request is None:
                return False
            authorized = self.authorized(request)
            if request.method not in ("GET", "POST"):
                raise BadRequest(405, f"{request.method}: GET and POST only")
            if request.method == "GET" and request.content_length():  # unread, it would be taken for a request
                raise BadRequest(400, "a GET has no body")
        except asyncio.TimeoutError:
            if started:
                writer.write(http_answer(408, {"error": f"bad request: the request line and headers did "
                                                        f"not arrive within {wait:g} s"}, close=True))
            return False  # an idle connection is let go quietly
        except BadRequest as exc:
            writer.write(http_answer(exc.status, {"error": f"bad request: {exc}"}, close=True))
            return False
        if authorized and not conn.promote():  # the holder's own bound: told, and let go
            writer.write(BUSY_REPLY)
            return False
        if request.endpoint == "healthz" and request.method == "GET":
            keep = authorized and request.keep_alive  # the readiness probe's: no keep-alive without it
            writer.write(http_answer(200, {"name": self.name, "icmp": self.watcher.error or "ok"}, close=not keep))
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
            return keep
        if not authorized:  # nothing more is read: not the body, not a second request
            writer.write(http_answer(401, {"error": f"unauthorized: the run's token is required "
                                                    f"({TOKEN_HEADER})"}, close=True))
            return False
        try:
            status, answer = await self.answer(request, reader, writer)
            if status is None:  # the client left while its request was served
                return False
            keep = request.keep_alive and not request.pipelined and status < 500
            writer.write(http_answer(status, answer, close=not keep))
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
            return keep
        except BadRequest as exc:  # the framing may be off: the connection is not reused
            writer.write(http_answer(exc.status, {"error": f"bad request: {exc}"}, close=True))
            return False
        except Busy as exc:
            writer.write(http_answer(503, {"error": f"busy: {exc}"}, close=True))
            return False
        finally:
            if request.held:  # the body's bytes count until its answer is written
                await self.budget.give(request.held)
                request.held = 0

    async def answer(self, request: Request, reader, writer) -> tuple[int | None, bytes]:
        """(status, the JSON answer encoded); status None when the client left before it."""
        method, endpoint = request.method, request.endpoint
        if (method, endpoint) not in {("GET", "self"), ("POST", "probe"), ("POST", "icmp-seen")}:
            if method == "POST":  # a body not read: the connection ends (a GET has none: one_request)
                raise BadRequest(404, f"no such endpoint {method} {request.target}")
            return 404, json.dumps({"error": f"no such endpoint {method} {request.target}"}).encode()
        body = await self.body(request, reader, writer) if method == "POST" else {}
        work = {"self": lambda cancelled: (200, self_report(self.name)),
                "probe": lambda cancelled: (200, _bounded_batch(body, cancelled)),
                "icmp-seen": lambda cancelled: self.icmp_seen(body)}[endpoint]
        cancelled = threading.Event()
        job = asyncio.get_running_loop().run_in_executor(self.pool, _answered, work, cancelled)
        watch = asyncio.ensure_future(reader.read(1))  # the client closing while it waits
        try:
            done, _ = await asyncio.wait({job, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch in done:
                # an end of input from a kept-alive HTTP/1.1 client (the pod proxy, the harness)
                # is that client gone: its batch stops starting targets. One that asked to close
                # may have half-closed after its request, and still waits for the answer.
                if not watch.result() and request.keep_alive:
                    cancelled.set()
                    await asyncio.wait({job})
                    return None, b""
                request.pipelined = True  # a byte of a next request, or the end: no keep-alive
            return await job
        finally:
            watch.cancel()

    async def body(self, request: Request, reader: asyncio.StreamReader, writer) -> dict:
        length = request.content_length()
        if length > MAX_BODY:
            raise BadRequest(413, f"a body of {length} bytes; at most {MAX_BODY}")
        expect = (request.header("expect") or "").lower()
        if expect and expect != "100-continue":
            raise BadRequest(417, f"Expect: {expect} is not supported")
        await self.budget.take(length, READ_TIMEOUT)
        request.held = length
        deadline = time.monotonic() + READ_TIMEOUT  # from when the body may come
        try:
            if expect:  # authorized, and the body fits: now it may come
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            data = await asyncio.wait_for(reader.readexactly(length), max(0.01, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise BadRequest(408, f"the body did not arrive within {READ_TIMEOUT:g} s") from None
        except asyncio.IncompleteReadError as exc:
            raise BadRequest(400, f"the body ended after {len(exc.partial)} of {length} bytes") from None
        return await asyncio.get_running_loop().run_in_executor(self.pool, parse_body, data)

    def icmp_seen(self, body: dict) -> tuple[int, dict]:
        tokens = body.get("tokens", [])
        if not isinstance(tokens, list) or len(tokens) > MAX_TARGETS or not all(isinstance(t, str) for t in tokens):
            return 400, {"error": f"bad request: tokens must be a list of at most {MAX_TARGETS} strings"}
        return 200, {"seen": self.watcher.lookup(tokens), "error": self.watcher.error}


def _answered(work, cancelled: threading.Event) -> tuple[int, bytes]:
    """The work's status and answer, encoded here (not in the event loop: a large answer would
    hold it); a refusal or a failure of it as an answer, never a traceback."""
    try:
        status, answer = work(cancelled)
    except Busy as exc:
        status, answer = 503, {"error": f"busy: {exc}"}
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        status, answer = 400, {"error": f"bad request: {exc}"}
    except Exception as exc:  # noqa: BLE001
        status, answer = 500, {"error": f"internal: {type(exc).__name__}: {exc}"}
    return status, json.dumps(answer).encode()


async def _close(writer: asyncio.StreamWriter, reader: asyncio.StreamReader | None = None,
                 linger: float = LINGER) -> None:
    """Close a connection so that its last answer arrives: the client may still be sending (the
    rest of a body cut at its bound), and closing with unread bytes would reset the connection,
    which can discard the answer before the client reads it. So: the answer, then end of our
    side, then what the client still sends is read and dropped for at most ``linger`` seconds;
    an answer still not taken after that goes with the connection (reset)."""
    try:
        if reader is not None and writer.can_write_eof() and not writer.is_closing():
            await asyncio.wait_for(writer.drain(), linger)
            writer.write_eof()
            await asyncio.wait_for(_discard(reader), linger)
    except (OSError, asyncio.TimeoutError, RuntimeError):
        pass
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), linger)
    except (OSError, asyncio.TimeoutError):  # an answer the client does not take: dropped with it
        writer.transport.abort()


async def _discard(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def _serve_control(server: ControlServer, controls: list[str], announce: str) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: None)  # one client's trouble is not logged
    for control in controls:
        if control.startswith("unix:"):
            path = control[len("unix:"):]
            if os.path.exists(path):
                os.unlink(path)
            await asyncio.start_unix_server(server.serving(_Listener()), path + ".tmp", limit=MAX_HEADER_LINE,
                                            backlog=CONTROL_BACKLOG)
            os.chmod(path + ".tmp", 0o600)  # the harness (root) alone
            os.rename(path + ".tmp", path)  # the socket appears only once it accepts connections
        else:
            host, _, tcp_port = control.removeprefix("tcp:").rpartition(":")  # no host: every
            # address of each family the pod has (one listening socket per family)
            await asyncio.start_server(server.serving(_Listener()), host.strip("[]") or None, int(tcp_port),
                                       limit=MAX_HEADER_LINE, backlog=CONTROL_BACKLOG, reuse_address=True)
    print(announce, flush=True)
    await asyncio.Event().wait()  # serve until the process ends


def read_token(path: str | None) -> str:
    """The run's token, from the file the harness gave (a Secret's key on a cluster): a regular
    file holding 16..4096 visible ASCII characters (a trailing newline aside), or the agent does
    not start, with one line saying why."""
    if not path:
        raise SystemExit("netprobe serve: --token-file (or $NETPROBE_TOKEN_FILE) is required: the "
                         "control API answers only requests that carry the run's token")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hold the start
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SystemExit(f"netprobe serve: the token file {path} is not a regular file")
            data = os.read(fd, 4098)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SystemExit(f"netprobe serve: cannot read the token file {path}: {exc.strerror}") from None
    token = data.rstrip(b"\r\n")
    if len(token) > 4096:
        raise SystemExit(f"netprobe serve: the token in {path} is longer than 4096 characters")
    if not all(0x21 <= byte <= 0x7E for byte in token):
        raise SystemExit(f"netprobe serve: the token in {path} must be one line of visible ASCII characters")
    if len(token) < 16:
        raise SystemExit(f"netprobe serve: the token in {path} is shorter than 16 characters")
    return token.decode("ascii")


def serve(name: str, port: int, controls: list[str], token: str) -> None:
    """Echo on ``port``; the control API on each of ``controls`` (the lab: its Unix socket, and
    for a pod also the TCP port the API server's pod proxy reaches, as on a live cluster)."""
    watcher = IcmpWatcher()
    start_tcp_echo(name, port)
    start_udp_echo(name, port)
    announce = f"netprobe {name}: echo on tcp/udp {port}, control on {', '.join(controls)}"
    asyncio.run(_serve_control(ControlServer(name, watcher, token), controls, announce))


RELAY_LINE_LIMIT = 8 * 1024 * 1024  # bytes of the one request line relay reads (a batch's body: 4 MiB at most)


def relay(port: int, token_file: str | None, stdin=None, stdout=None) -> int:
    """One control request, as ``kubectl exec`` carries it: a JSON line on standard input
    (``method``, ``endpoint``, ``body``, ``timeout``), sent to this container's own control API (on
    $POD_IP, where it listens) with the run's token read from ``token_file`` (the Secret the
    container mounts: the token never travels, not even through the exec), and its answer as one
    JSON line on standard output (``status``, ``body`` as base64: the answer's bytes exactly).
    Anything else: ``{"error": …}`` and exit 1."""
    import base64
    import http.client
    stdin, stdout = stdin or sys.stdin.buffer, stdout or sys.stdout
    try:
        line = stdin.readline(RELAY_LINE_LIMIT + 1)
        if len(line) > RELAY_LINE_LIMIT or not line.endswith(b"\n"):
            raise ValueError("the request is not one line of at most 8 MiB")
        request = json.loads(line)
        method, endpoint = request["method"], request["endpoint"]
        if method not in ("GET", "POST") or f"/{endpoint}" not in ENDPOINTS:
            raise ValueError(f"not a control request: {method} /{endpoint}")
        timeout = min(max(float(request.get("timeout", 10.0)), 1.0), 600.0)
        body = None if request.get("body") is None else json.dumps(request["body"]).encode()
        headers = {"Content-Type": "application/json"}
        if token_file:
            headers[TOKEN_HEADER] = read_token(token_file)
        conn = http.client.HTTPConnection(os.environ.get("POD_IP") or "127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, f"/{endpoint}", body=body, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
        finally:
            conn.close()
        stdout.write(json.dumps({"status": answer.status, "body": base64.b64encode(payload).decode()}) + "\n")
        stdout.flush()
        return 0
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - one line saying why (a bad token file too)
        stdout.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        stdout.flush()
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netprobe", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the echo servers and the control API")
    serve_cmd.add_argument("--name", default=os.environ.get("NETPROBE_NAME", socket.gethostname()))
    serve_cmd.add_argument("--port", type=int, default=int(os.environ.get("NETPROBE_PORT", 8080)))
    serve_cmd.add_argument("--token-file", default=os.environ.get("NETPROBE_TOKEN_FILE"),
                           help="the file holding the run's token (default $NETPROBE_TOKEN_FILE)")
    serve_cmd.add_argument("--control", action="append", default=None,
                           help="unix:/path/to.sock or tcp:HOST:PORT, tcp::PORT for every address (repeatable; default "
                                "$NETPROBE_CONTROL or tcp:0.0.0.0:9000)")
    commands.add_parser("self", help="print the self-report as JSON")
    commands.add_parser("batch", help="read a probe request (JSON) on stdin, print the results")
    relay_cmd = commands.add_parser("relay", help="carry one control request (a JSON line on stdin) "
                                                  "to this container's control API; print its answer")
    relay_cmd.add_argument("--port", type=int, required=True, help="the control API's TCP port")
    relay_cmd.add_argument("--token-file", default=os.environ.get("NETPROBE_TOKEN_FILE"),
                           help="the file holding the run's token (default $NETPROBE_TOKEN_FILE)")
    args = parser.parse_args(argv)
    if args.command == "relay":
        return relay(args.port, args.token_file)
    if args.command == "serve":
        serve(args.name, args.port, args.control or [os.environ.get("NETPROBE_CONTROL", "tcp:0.0.0.0:9000")],
              read_token(args.token_file))
    elif args.command == "self":
        json.dump(self_report(socket.gethostname()), sys.stdout)
    else:
        json.dump(probe_batch(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

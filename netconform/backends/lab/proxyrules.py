"""What a node's kube-proxy has programmed, read back from its tables, in either mode.

The lab waits for kube-proxy by reading what it wrote (proxy.py says why: its healthz says healthy
before its rules are right). Both modes name every Service port ``namespace/service:port`` where
the lab can find it:

- iptables mode, ``iptables-save``: each endpoint's DNAT rule carries the port's name as its
  comment (``--comment "ns/web:tcp" … -j DNAT --to-destination 10.244.1.2:8080``), a port without
  endpoints a REJECT (``--comment "ns/empty:tcp has no endpoints" … -j REJECT``);
- nftables mode, ``nft list table ip kube-proxy``: each port has chains named after it
  (``service-HASH-ns/web/tcp/tcp``, its ``local-``/``external-`` policy chains, and with
  ClientIP affinity one ``endpoint-HASH-ns/web/tcp/tcp__10.244.1.2/8080`` per endpoint) whose
  ``dnat`` statements name the endpoints; a port without endpoints is an element of the
  ``no-endpoint-services`` map, commented ``ns/empty:tcp``, that goes to the reject chain
  (``pkg/proxy/nftables/proxier.go``).
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

from . import netns

MODES = ("iptables", "nftables")


@dataclass
class Programmed:
    """One node's Service ports as kube-proxy programmed them."""
    destinations: dict[str, set[str]] = field(default_factory=dict)  # "ns/svc:port" -> endpoint IPs
    rejected: set[str] = field(default_factory=set)  # "ns/svc:port" rejected for lack of endpoints


def read(namespace: str, mode: str, family: str = "ipv4") -> Programmed:
    """The node's programmed Service ports in ``family``; empty when its tables cannot be read
    (the caller keeps waiting, within its bound)."""
    return parse(mode, dump(namespace, mode, family))


def dump(namespace: str, mode: str, family: str = "ipv4") -> str:
    """kube-proxy's tables of ``family`` in the node's namespace as text, or "" when they cannot
    be read."""
    six = family == "ipv6"
    argv = [("ip6tables-save" if six else "iptables-save")] if mode == "iptables" else \
        ["nft", "list", "table", "ip6" if six else "ip", "kube-proxy"]
    try:
        done = netns.run(namespace, argv)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def parse(mode: str, text: str) -> Programmed:
    if mode not in MODES:
        raise ValueError(f"unknown kube-proxy mode {mode!r}; known: {', '.join(MODES)}")
    return parse_iptables(text) if mode == "iptables" else parse_nftables(text)


# an IPv6 endpoint is written in brackets: --to-destination [fd00:10:244:1::4]:8080
IPTABLES_DNAT = re.compile(r'--comment "?([^" ]+)"? .*-j DNAT .*--to-destination (?:\[([0-9a-f:]+)\]|([0-9.]+)):\d+')
IPTABLES_REJECT = re.compile(r'--comment "?([^" ]+) has no endpoints"? .*-j REJECT')


# Past 1,000 endpoints kube-proxy is in its "large cluster mode" and writes no comment on the
# endpoint chains (KUBE-SEP-…) nor on the jumps to them (pkg/proxy/iptables, largeClusterMode): a
# 50-node dual-stack lab has that many. There the port's name is read where it is still written,
# on the rules of, or jumping to, its service chains (KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-FW-
# followed by the same hash), and each endpoint chain those jump to gives its DNAT destination.
IPTABLES_RULE = re.compile(r"^-A (\S+) ")
IPTABLES_TARGET = re.compile(r" -j (\S+)")
IPTABLES_COMMENT = re.compile(r'--comment (?:"([^"]*)"|(\S+))')
PORT_NAME = re.compile(r"(?<!\S)([^/\s]+/[^:\s]+:\S*)")  # ns/svc:port, the comment's first such word
SERVICE_CHAIN = re.compile(r"^KUBE-(SVC|SVL|EXT|FW)-([A-Z0-9]+)$")
IPTABLES_DNAT_ONLY = re.compile(r"-j DNAT .*--to-destination (?:\[([0-9a-f:]+)\]|([0-9.]+)):\d+")


def parse_iptables(text: str) -> Programmed:
    programmed = Programmed()
    names: dict[str, str] = {}  # service chains' hash -> "ns/svc:port"
    jumps: dict[str, set[str]] = {}  # KUBE-SVC-/KUBE-SVL- chain -> the endpoint chains it jumps to
    dnat: dict[str, str] = {}  # endpoint chain -> its destination's IP
    for line in text.splitlines():
        if (found := IPTABLES_DNAT.search(line)):
            programmed.destinations.setdefault(found.group(1), set()).add(found.group(2) or found.group(3))
        elif (found := IPTABLES_REJECT.search(line)):
            programmed.rejected.add(found.group(1))
        if not (rule := IPTABLES_RULE.match(line)):
            continue
        chain, target = rule.group(1), (found.group(1) if (found := IPTABLES_TARGET.search(line)) else "")
        if (comment := IPTABLES_COMMENT.search(line)) and (name := PORT_NAME.search(comment.group(1) or comment.group(2))):
            for service_chain in (SERVICE_CHAIN.match(chain), SERVICE_CHAIN.match(target)):
                if service_chain:
                    names.setdefault(service_chain.group(2), name.group(1))
        if target.startswith("KUBE-SEP-") and chain.startswith(("KUBE-SVC-", "KUBE-SVL-")):
            jumps.setdefault(chain, set()).add(target)
        elif chain.startswith("KUBE-SEP-") and (found := IPTABLES_DNAT_ONLY.search(line)):
            dnat[chain] = found.group(1) or found.group(2)
    for chain, endpoints in jumps.items():
        if (name := names.get(chain.split("-", 2)[2])) is not None:
            programmed.destinations.setdefault(name, set()).update(dnat[e] for e in endpoints if e in dnat)
    return programmed


# chain service-HASH-ns/svc/tcp/port (or local-, external-, endpoint-…__IP/PORT)
NFT_CHAIN = re.compile(r"^\s*chain (?:service|local|external|endpoint)-[A-Z0-9]+-"
                       r"([^/\s]+)/([^/\s]+)/[a-z]+/([a-z0-9-]*)(?:__\S+)? \{")
NFT_DNAT_TO = re.compile(r"\bdnat (?:ip6? )?to (?:\[([0-9a-f:]+)\]|([0-9.]+)):\d+")  # one endpoint ([v6]:port)
NFT_MAP_ELEMENT = re.compile(r"\d+ : ([0-9a-f.:]+) \. \d+")  # numgen … map { 0 : 10.244.1.2 . 8080, … }
NFT_REJECTED = re.compile(r'comment "([^"]+)" : goto reject-chain')


def parse_nftables(text: str) -> Programmed:
    programmed = Programmed()
    key = None
    for line in text.splitlines():
        if (chain := NFT_CHAIN.match(line)):
            namespace, service, port = chain.groups()
            key = f"{namespace}/{service}:{port}"
            continue
        if line.strip().startswith(("chain ", "map ", "set ")):
            key = None
        if key is not None and "dnat" in line:
            found = [six or four for six, four in NFT_DNAT_TO.findall(line)] + NFT_MAP_ELEMENT.findall(line)
            programmed.destinations.setdefault(key, set()).update(found)
        programmed.rejected.update(NFT_REJECTED.findall(line))
    return programmed


def routes(programmed: Programmed, service_port: str) -> bool:
    """Whether ``service_port`` (``ns/svc:port``) is sent to some endpoint."""
    return bool(programmed.destinations.get(service_port))


# The lists and sets kube-proxy keeps ClientIP affinity in, by mode
IPTABLES_RECENT = re.compile(r"--name (\S+)")
NFT_AFFINITY_SET = re.compile(r"^\s*set (affinity-\S+) \{", re.MULTILINE)


def affinity_lists(mode: str, text: str) -> list[str]:
    """iptables mode: the xt_recent lists its KUBE-SVC chains check (``-m recent --rcheck …
    --name KUBE-SEP-…``); nftables mode: its ``affinity-…`` sets."""
    if mode == "iptables":
        return sorted({m.group(1) for line in text.splitlines()
                       if "--rcheck" in line and (m := IPTABLES_RECENT.search(line))})
    return sorted(set(NFT_AFFINITY_SET.findall(text)))


def missing(live, namespace: str, programmed: Programmed,
            others: dict[str, set[str]] | None = None, node: str | None = None) -> list[str]:
    """What ``programmed`` lacks of ``live``'s Services, as kube-proxy writes them: each port of a
    Service with a ClusterIP and backends goes to each backend's IP, each port of one without
    backends is rejected. ``others``: more Service ports (``ns/svc:port``, e.g. kube-dns's) and the
    endpoint IPs each must reach. Empty when the node is in step. A Service with
    internalTrafficPolicy Local goes to ``node``'s own backends only (a node without one has no
    rule to look for: kube-proxy drops its traffic)."""
    destinations = programmed.destinations
    lacking = [f"{key} -> {sorted(wanted)} (has {sorted(destinations.get(key, ()))})"
               for key, wanted in (others or {}).items() if destinations.get(key, set()) != wanted]
    for service in (s for s in live.services.values() if s.proxied):
        wanted = {live.endpoint(name).ip for name in service.backends}
        if service.internal_local and service.backends:
            wanted = {live.endpoint(name).ip for name in service.backends
                      if live.endpoint(name).node == node}
            if not wanted:
                continue
        for port in service.port_names:
            key = f"{namespace}/{service.name}:{port}"
            if wanted and destinations.get(key, set()) != wanted:
                lacking.append(f"{key} -> {sorted(wanted)} (has {sorted(destinations.get(key, ()))})")
            if not wanted and key not in programmed.rejected:
                lacking.append(f"{key}: no reject for a Service without endpoints")
    return lacking

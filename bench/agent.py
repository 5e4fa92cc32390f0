"""The probe agent's start-up time and memory, each way it can run, measured in one run so the
figures compare as ratios:

- ``stdlib``: ``python -I -S probes/netprobe.py`` (the ConfigMap route on the stock image, and
  every lab probe);
- ``site``: ``python probes/netprobe.py`` with the interpreter's site packages (an image that
  installs packages next to the agent);
- ``dnspython`` (with --baseline REV): the agent of an earlier revision, which imported dnspython
  for its DNS questions, run with site packages.

For each: the seconds from exec to the first answer of its control API (``GET /healthz``), its
resident memory then, and its peak after a batch of ``--targets`` TCP targets plus one DNS
question. Loopback only: each agent runs in a mount namespace of its own (``unshare -m``) that
sees a resolv.conf naming 127.0.0.1, where nothing answers. Not a test: run it as root, it takes
about a minute.

    sudo .tox/netconform/bin/python bench/agent.py [--rounds 5] [--targets 200] [--baseline 69ca7ff]
"""
from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AGENT = REPO / "probes" / "netprobe.py"
TOKEN = "bench-token-" + "x" * 30


def free_port() -> int:
    with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        return port


def memory(pid: int) -> tuple[float, float]:
    """(resident, peak resident) in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def ask(port: int, method: str, path: str, body: dict | None = None, timeout: float = 30) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"X-Netprobe-Token": TOKEN, "Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def one(command: list[str], targets: int, workdir: Path) -> tuple[float, float, float]:
    """(seconds to the first answer, MiB resident then, MiB peak after a batch)."""
    token = workdir / "token"
    token.write_text(TOKEN)
    control, echo = free_port(), free_port()
    resolv = workdir / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    own_resolv = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv)]
    started = time.monotonic()
    process = subprocess.Popen([*own_resolv, *command, "serve", "--name", "bench", "--port", str(echo), "--control",
                                f"tcp:127.0.0.1:{control}", "--token-file", str(token)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)
    try:
        while True:
            if process.poll() is not None or time.monotonic() - started > 30:
                raise SystemExit(f"{' '.join(command)}: the agent did not start")
            try:
                ask(control, "GET", "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.005)
        ready = time.monotonic() - started
        resident, _ = memory(process.pid)
        batch = [{"id": f"t{i}", "proto": "tcp", "ip": "127.0.0.1", "port": echo, "timeout": 5}
                 for i in range(targets)]
        batch.append({"id": "dns", "proto": "udp", "timeout": 0.3, "dns": {"name": "x.invalid.", "type": "A"}})
        answer = ask(control, "POST", "/probe", {"targets": batch})
        assert sum(r["ok"] for r in answer["results"]) == targets, answer["results"][:3]
        return ready, resident, memory(process.pid)[1]
    finally:
        process.kill()
        process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--baseline", help="a revision whose agent imported dnspython (e.g. 69ca7ff)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ways = {"stdlib": [sys.executable, "-I", "-S", str(AGENT)], "site": [sys.executable, str(AGENT)]}
        if args.baseline:
            old = workdir / "netprobe_old.py"
            old.write_text(subprocess.run(["git", "show", f"{args.baseline}:probes/netprobe.py"], cwd=REPO,
                                          capture_output=True, text=True, check=True).stdout)
            ways["dnspython"] = [sys.executable, str(old)]
        figures = {name: [one(command, args.targets, workdir) for _ in range(args.rounds)]
                   for name, command in ways.items()}
    base = statistics.median(r[0] for r in figures["stdlib"])
    base_memory = statistics.median(r[2] for r in figures["stdlib"])
    print(f"{'way':<10} {'start s':>8} {'ratio':>6} {'RSS MiB':>8} {'peak MiB':>9} {'ratio':>6}"
          f"   (median of {args.rounds}; a batch of {args.targets} TCP targets and one DNS question)")
    for name, rows in figures.items():
        start, resident, peak = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"{name:<10} {start:8.3f} {start / base:6.2f} {resident:8.1f} {peak:9.1f} {peak / base_memory:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

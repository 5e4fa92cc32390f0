#!/usr/bin/env python3
"""A byte relay between a TCP and a Unix socket, standard library only.

The lab's API server listens inside the control-plane namespace; the harness and the user's kubectl
run in the root namespace, which has no route or address into the lab. Two relays join them through
a Unix socket in the run's state directory, a path both namespaces see:

    root namespace:  127.0.0.1:PORT  --relay-->  state-dir/apiserver.sock
    control plane:   state-dir/apiserver.sock  --relay-->  127.0.0.1:6443 (kube-apiserver)

TLS passes through untouched: the client authenticates to the API server itself. Each direction
holds at most one chunk plus the transport's write buffer (drain() waits when the other side is
slow), connections are capped, and connecting to the target is bounded in time. Watches may stay
open for as long as their clients want. The relay ends on SIGTERM, and by itself once ``--while``
names a path that is gone (the run's state directory, removed by teardown or a sweep), so a relay
whose recording was lost with a killed harness does not outlive its run.

    relay.py --listen tcp:127.0.0.1:0 --connect unix:/run/.../apiserver.sock --while /run/...

Prints one line, ``listening on <address>``, once it accepts connections; then only logs to stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys

CHUNK = 64 * 1024  # bytes read at once from either side
MAX_CONNECTIONS = 256
CONNECT_TIMEOUT = 5.0  # seconds to reach the target
WATCH_INTERVAL = 1.0  # seconds between looks at the --while path
Address = tuple[str, "str | tuple[str, int]"]  # ("unix", path) or ("tcp", (host, port))


def parse_address(text: str) -> Address:
    """``tcp:HOST:PORT`` or ``unix:PATH``."""
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest:
        return kind, rest
    host, _, port = rest.rpartition(":")
    if kind == "tcp" and host and port.isdigit():
        return kind, (host, int(port))
    raise ValueError(f"not an address: {text!r} (tcp:HOST:PORT or unix:PATH)")


async def _open(address: Address):
    kind, where = address
    if kind == "unix":
        return await asyncio.open_unix_connection(where, limit=CHUNK)
    return await asyncio.open_connection(*where, limit=CHUNK)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until EOF, then pass the half-close on."""
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class Relay:
    def __init__(self, target: Address) -> None:
        self.target = target
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.slots.locked():
            client_writer.close()  # over the cap: refuse rather than queue without bound
            return
        async with self.slots:
            try:
                target_reader, target_writer = await asyncio.wait_for(_open(self.target), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as exc:
                print(f"relay: cannot reach {self.target[1]}: {exc}", file=sys.stderr, flush=True)
                client_writer.close()
                return
            try:
                await asyncio.gather(_pump(client_reader, target_writer), _pump(target_reader, client_writer))
            finally:
                for writer in (client_writer, target_writer):
                    writer.close()


async def _start(listen: Address, relay: Relay) -> tuple[asyncio.AbstractServer, str]:
    kind, where = listen
    if kind == "unix":
        if os.path.exists(where):
            os.unlink(where)  # a socket file left by a killed relay of this same run
        server = await asyncio.start_unix_server(relay.serve, where, limit=CHUNK)
        os.chmod(where, 0o600)  # root's, like the kubeconfig that authenticates through it
        return server, f"unix:{where}"
    server = await asyncio.start_server(relay.serve, *where, limit=CHUNK, family=socket.AF_INET)
    host, port = server.sockets[0].getsockname()[:2]
    return server, f"tcp:{host}:{port}"


async def _main(listen: Address, target: Address, while_path: str | None) -> None:
    server, address = await _start(listen, Relay(target))
    print(f"listening on {address}", flush=True)
    sys.stdout.close()  # the harness reads one line; nothing else goes there
    async with server:
        while while_path is None or os.path.exists(while_path):
            await asyncio.sleep(WATCH_INTERVAL)
    print(f"relay: {while_path} is gone: its run ended", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, type=parse_address)
    parser.add_argument("--connect", required=True, type=parse_address)
    parser.add_argument("--while", dest="while_path", help="end once this path is gone")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_main(args.listen, args.connect, args.while_path))
    except OSError as exc:
        print(f"relay: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How the harness talks to a probe's control API: JSON over HTTP, with a timeout on every call."""
from __future__ import annotations

import http.client
import json
import socket


class ProbeUnavailable(Exception):
    """The probe's control API did not answer: the probe crashed, hung or was never started."""


class ProbeChannel:
    """The control API of one probe. Subclasses say how to open the connection."""

    def __init__(self, name: str) -> None:
        self.name = name

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        raise NotImplementedError

    def path(self, endpoint: str) -> str:
        return f"/{endpoint}"

    def call(self, endpoint: str, body: dict | None = None, timeout: float = 10.0) -> dict:
        conn = self.connection(timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request("GET" if body is None else "POST", self.path(endpoint), body=data,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise ProbeUnavailable(f"{self.name}: {endpoint} answered HTTP {response.status}: "
                                       f"{payload[:200]!r}")
            return json.loads(payload)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise ProbeUnavailable(f"{self.name}: {endpoint} failed: {exc or type(exc).__name__}") from exc
        finally:
            conn.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("probe", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class UnixSocketChannel(ProbeChannel):
    """The lab's channel: every probe listens on a Unix socket in the run's state directory."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.socket_path = path

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        return _UnixHTTPConnection(self.socket_path, timeout)

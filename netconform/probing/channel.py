"""How the harness talks to a probe's control API: JSON over HTTP, with a timeout on every call."""
from __future__ import annotations

import http.client
import json
import socket


class ProbeUnavailable(Exception):
    """The probe's control API did not answer: the probe crashed, hung or was never started."""


class ChannelRefused(ProbeUnavailable):
    """The way to the probe refused the harness (an API server that forbids its pod proxy to this
    user): no probe can be asked, so the run cannot start."""


TOKEN_HEADER = "X-Netprobe-Token"  # as probes/netprobe.py reads it (not Authorization: through the
# API server's pod proxy that header carries the caller's own credentials, to the API server)


class ProbeChannel:
    """The control API of one probe. Subclasses say how a request reaches it, carrying ``token``,
    the run's secret that the probe wants on every request but its health check."""

    def __init__(self, name: str, token: str | None = None) -> None:
        self.name = name
        self.token = token

    def headers(self) -> dict[str, str]:
        return {TOKEN_HEADER: self.token} if self.token else {}

    def exchange(self, method: str, endpoint: str, body: dict | None,
                 timeout: float) -> tuple[int, bytes]:
        """Send one request to the probe's /endpoint; return (HTTP status, body)."""
        raise NotImplementedError

    def call(self, endpoint: str, body: dict | None = None, timeout: float = 10.0) -> dict:
        try:
            status, payload = self.exchange("GET" if body is None else "POST", endpoint, body, timeout)
            if status != 200:
                raise ProbeUnavailable(f"{self.name}: {endpoint} answered HTTP {status}: {payload[:200]!r}")
            return json.loads(payload)
        except ProbeUnavailable:
            raise
        except Exception as exc:  # every transport's errors: socket, HTTP, API client, JSON
            raise ProbeUnavailable(f"{self.name}: {endpoint} failed: {exc or type(exc).__name__}") from exc


class HTTPChannel(ProbeChannel):
    """A probe whose control API is spoken to directly, over one HTTP connection per call."""

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        raise NotImplementedError

    def exchange(self, method: str, endpoint: str, body: dict | None,
                 timeout: float) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        conn = self.connection(timeout)
        try:
            conn.request(method, f"/{endpoint}", body=data,
                         headers={"Content-Type": "application/json", **self.headers()})
            response = conn.getresponse()
            return response.status, response.read()
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


class UnixSocketChannel(HTTPChannel):
    """The lab's channel: every probe listens on a Unix socket in the run's state directory."""

    def __init__(self, name: str, path: str, token: str | None = None) -> None:
        super().__init__(name, token)
        self.socket_path = path

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        return _UnixHTTPConnection(self.socket_path, timeout)

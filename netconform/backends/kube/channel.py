"""A probe on a live cluster, reached through the API server's pod proxy: one authenticated HTTP
request per call, the same control API as on the lab (no exec, no port-forward)."""
from __future__ import annotations

from urllib.parse import quote

from ...probing.channel import ProbeChannel
from .api import KubeApi


class PodProxyChannel(ProbeChannel):
    def __init__(self, name: str, api: KubeApi, namespace: str, pod: str, port: int) -> None:
        super().__init__(name)
        self.api = api
        self.base = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}:{port}/proxy"

    def exchange(self, method: str, endpoint: str, body: dict | None,
                 timeout: float) -> tuple[int, bytes]:
        return self.api.raw(method, f"{self.base}/{endpoint}", body, timeout=(min(5.0, timeout), timeout))

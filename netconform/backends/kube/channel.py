"""A probe on a live cluster, reached through the API server's pod proxy: one authenticated HTTP
request per call, the same control API as on the lab (where the API server cannot reach pod IPs:
exec_channel.py; channels.py chooses)."""
from __future__ import annotations

import json
from urllib.parse import quote

import urllib3

from ...probing.channel import ChannelRefused, ProbeChannel
from .api import KubeApi


BROKEN_OFF_TRIES = 2  # a request whose answer broke off is sent once more, then the break is reported


class PodProxyChannel(ProbeChannel):
    """One probe's control API through the pod proxy. An answer that breaks off part-way (the
    connection closed before its Content-Length arrived) is asked for once more: the API server
    aborts a proxied answer now and then (1 in about 2,000 probe batches on the lab under load,
    "ReverseProxy read error during body copy" in its log), and the lost answer was never seen,
    so asking again is a new observation, not a second opinion."""

    def __init__(self, name: str, api: KubeApi, namespace: str, pod: str, port: int,
                 token: str | None = None) -> None:
        super().__init__(name, token)
        self.api = api
        self.base = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}:{port}/proxy"

    def exchange(self, method: str, endpoint: str, body: dict | None,
                 timeout: float) -> tuple[int, bytes]:
        for attempt in range(1, BROKEN_OFF_TRIES + 1):
            try:
                status, payload = self.api.raw(method, f"{self.base}/{endpoint}", body,
                                               timeout=(min(5.0, timeout), timeout), headers=self.headers())
                break
            except urllib3.exceptions.ProtocolError as exc:  # "Connection broken: IncompleteRead"
                if attempt == BROKEN_OFF_TRIES:
                    raise urllib3.exceptions.ProtocolError(
                        f"the answer broke off {BROKEN_OFF_TRIES} times in a row: {exc}") from exc
        if status in (401, 403):  # the API server's answer, not the probe's
            raise ChannelRefused(f"the API server at {self.api.host} refused to {method} "
                                 f"{self.base}/{endpoint}: {_message(payload)}")
        return status, payload


def reach_through_api(api: KubeApi, namespace: str, pod: str, port: int, timeout: float) -> dict:
    """APISERVER-POD: GET a probe's /healthz through the API server's pod proxy, so that the API
    server, not the harness, connects to the pod IP. ``{"ok": True, "responder": name}``, or
    ``{"ok": False, "error": …}``: an HTTP error of the proxy (it could not reach the pod) or a
    request that timed out while the API server answers others is the network's; an API server
    that does not answer at all, a pod it no longer knows (404) and a pod IP that answered with a
    refusal (reached: its probe is not running) are the harness's (``"harness": True``)."""
    path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}:{port}/proxy/healthz"
    try:
        status, payload = api.raw("GET", path, timeout=(min(5.0, timeout), timeout))
    except Exception as exc:  # noqa: BLE001 - a timeout, a reset: was it the pod or the API server?
        if _answers(api):
            return {"ok": False, "error": "timeout", "detail": f"the API server did not answer within "
                    f"{timeout:g} s (it answers other requests: it was still reaching the pod)"}
        return {"ok": False, "error": "harness", "harness": True,
                "detail": f"the API server could not be asked: {exc or type(exc).__name__}"}
    if status != 200:
        detail = payload[:300].decode(errors="replace").strip()
        if status in (401, 403):  # the run's credentials, not the network: pods/proxy not granted
            return {"ok": False, "error": "harness", "harness": True,
                    "detail": f"the API server refused the run's credentials its pod proxy (HTTP {status}): "
                              f"{_message(payload)}"}
        if status == 404:  # the pod is gone (deleted under the run): nothing about the network
            return {"ok": False, "error": "harness", "harness": True,
                    "detail": f"the API server no longer knows pod {pod} (HTTP 404): {detail}"}
        if "connection refused" in detail:  # the pod IP was reached; its probe was not listening
            return {"ok": False, "error": "harness", "harness": True,
                    "detail": f"the API server reached pod {pod}'s IP, but its probe refused the "
                              f"connection (not running): {detail}"}
        return {"ok": False, "error": f"HTTP {status}", "detail": detail}
    try:
        return {"ok": True, "responder": json.loads(payload).get("name")}
    except (ValueError, AttributeError):
        return {"ok": False, "error": "not a probe", "detail": repr(payload[:120])}


def _answers(api: KubeApi) -> bool:
    try:
        return api.raw("GET", "/version", timeout=(2.0, 5.0))[0] == 200
    except Exception:  # noqa: BLE001 - whatever it is, it did not answer
        return False


def _message(payload: bytes) -> str:
    """The message of the API server's Status body, or its first bytes."""
    try:
        return json.loads(payload)["message"]
    except (ValueError, KeyError, TypeError):
        return payload[:300].decode(errors="replace").strip()

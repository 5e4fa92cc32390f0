"""A probe reached by exec, for clusters whose API server cannot reach pod IPs (a managed control
plane with an overlay CNI, a private cluster): the pod proxy needs the API server to connect to the
pod; exec goes through the node's kubelet instead.

Each request is one exec of the agent's ``relay`` (probes/netprobe.py) in the probe's container:
the request is one JSON line on its standard input and its answer one JSON line on standard
output. The relay reads the run's token from the Secret the container mounts, so the token never
travels through the exec at all. The stream is Kubernetes' WebSocket exec protocol
(``v4.channel.k8s.io``: a channel byte before each message; 0 stdin, 1 stdout, 2 stderr, 3 the
exec's status), spoken with websocket-client, the official client's own transport, with a timeout on
the connection and on every read. The client's ``stream()`` helper is not used: it swaps the shared
API client's transport for the length of a call, which other threads' requests would go through.
"""
from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote, urlencode

import websocket
from kubernetes.stream.ws_client import create_websocket

from ...probing.channel import ChannelRefused, ProbeChannel, ProbeUnavailable
from .api import KubeApi

CONNECT_TIMEOUT = 10.0  # s to open the exec stream (the API server, then the node's kubelet)
PROTOCOL = "v4.channel.k8s.io"
# create_websocket() connects with websocket-client's default timeout, which is none: netconform is
# the process's only user of websocket-client, so the default is its own
websocket.setdefaulttimeout(CONNECT_TIMEOUT)
STDIN, STDOUT, STDERR, STATUS = 0, 1, 2, 3


class ExecChannel(ProbeChannel):
    """One probe's control API, one exec of ``relay`` per request."""

    def __init__(self, name: str, api: KubeApi, namespace: str, pod: str, container: str, port: int,
                 agent: tuple[str, ...], token_file: str) -> None:
        super().__init__(name, None)
        self.api, self.namespace, self.pod, self.container = api, namespace, pod, container
        command = [*agent, "relay", "--port", str(port), "--token-file", token_file]
        query = [("container", container), *(("command", word) for word in command),
                 ("stdin", "true"), ("stdout", "true"), ("stderr", "true")]
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/exec?{urlencode(query)}"
        self.url = api.host.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + path

    def exchange(self, method: str, endpoint: str, body: dict | None,
                 timeout: float) -> tuple[int, bytes]:
        request = {"method": method, "endpoint": endpoint, "body": body, "timeout": timeout}
        out, err, status = self._exec(json.dumps(request).encode() + b"\n", timeout + CONNECT_TIMEOUT)
        line = out.split(b"\n", 1)[0]
        try:
            answer = json.loads(line)
        except ValueError:
            raise ProbeUnavailable(f"{self.name}: exec of relay in {self.pod}/{self.container} gave no "
                                   f"answer ({_said(status) or 'no status'}; stderr: "
                                   f"{err[:300].decode(errors='replace').strip() or 'empty'})") from None
        if "error" in answer:
            raise ProbeUnavailable(f"{self.name}: relay in {self.pod}/{self.container}: {answer['error']}")
        return int(answer["status"]), base64.b64decode(answer["body"])

    def _exec(self, stdin: bytes, deadline_in: float) -> tuple[bytes, bytes, dict | None]:
        """Run the exec: send ``stdin`` on channel 0, gather stdout and stderr until the status
        arrives or the stream closes, within ``deadline_in`` seconds."""
        configuration = self.api.client.configuration
        _, _, headers, _, _ = self.api.client.param_serialize(
            method="GET", resource_path="/version", header_params={}, auth_settings=["BearerToken"])
        headers = {**{k.lower(): v for k, v in headers.items()}, "sec-websocket-protocol": PROTOCOL}
        deadline = time.monotonic() + deadline_in
        try:
            sock = create_websocket(configuration, self.url, headers)
        except websocket.WebSocketBadStatusException as exc:
            said = _bad_status(exc)
            if exc.status_code in (401, 403):  # the credentials lack pods/exec: no probe can be asked so
                raise ChannelRefused(f"the API server at {self.api.host} refused to exec into {self.pod}: "
                                     f"{said}") from None
            raise ProbeUnavailable(f"{self.name}: exec into {self.pod}/{self.container}: HTTP "
                                   f"{exc.status_code}: {said}") from None
        except Exception as exc:  # noqa: BLE001 - the stream could not be opened
            raise ProbeUnavailable(f"{self.name}: exec into {self.pod}/{self.container} failed: "
                                   f"{exc or type(exc).__name__}") from None
        self.api.requests["GET exec pods"] += 1
        out, err, status = bytearray(), bytearray(), None
        try:
            sock.send_binary(bytes([STDIN]) + stdin)
            while status is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProbeUnavailable(f"{self.name}: exec of relay in {self.pod}/{self.container} "
                                           f"did not answer within {deadline_in:g} s")
                sock.settimeout(left)
                try:
                    opcode, data = sock.recv_data()
                except websocket.WebSocketConnectionClosedException:
                    break
                except (websocket.WebSocketTimeoutException, TimeoutError):
                    continue  # the deadline check says so
                if opcode == websocket.ABNF.OPCODE_CLOSE or not data:
                    break
                channel, data = data[0], data[1:]
                if channel == STDOUT:
                    out += data
                elif channel == STDERR:
                    err += data
                elif channel == STATUS:
                    status = _status(data)
        except ProbeUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the stream broke
            raise ProbeUnavailable(f"{self.name}: exec stream broke: {exc or type(exc).__name__}") from None
        finally:
            sock.close()
        return bytes(out), bytes(err), status

def _bad_status(exc) -> str:
    """The API server's Status message of a refused exec handshake, or its body's first bytes."""
    body = exc.resp_body.decode(errors="replace") if isinstance(exc.resp_body, bytes) else str(exc.resp_body or "")
    try:
        return str(json.loads(body).get("message", body)).strip()[:300]
    except (ValueError, AttributeError):
        return body.strip()[:300]


def _status(data: bytes) -> dict:
    try:
        return json.loads(data) or {}
    except ValueError:
        return {"status": "Unknown", "message": data[:200].decode(errors="replace")}


def _said(status: dict | None) -> str:
    if not status:
        return ""
    return f"{status.get('status', '')} {status.get('message', '')}".strip()

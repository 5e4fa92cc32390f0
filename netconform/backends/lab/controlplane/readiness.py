"""When the control plane is ready, seen from the root namespace through the relay only.

The API server is ready when its ``/readyz`` answers 200 (which includes etcd and its bootstrap:
RBAC roles, system namespaces, the `kubernetes` Service). The controller manager and the scheduler
serve their health on the control plane's loopback, out of the harness's reach; each takes its
leader-election Lease in kube-system once it talks to the API server and before it starts its
controllers, so the Lease is their readiness. They start once the API server is ready, as kubeadm's
static pods effectively do: started earlier, they find RBAC not yet bootstrapped, are refused their
own configuration and exit. A component whose process ends fails the wait at once.
"""
from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Sequence

from ...base import BackendError, Progress
from .processes import Process

POLL = 0.2  # seconds between looks
REQUEST_TIMEOUT = 2.0
LEASES = {"kube-controller-manager": "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"
                                     "kube-controller-manager",
          "kube-scheduler": "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler"}


@dataclass(frozen=True)
class Client:
    """GETs against the API server through the relay, as the admin user. No proxy, whatever the
    environment says: the request goes to the relay on loopback and nowhere else."""

    server: str
    opener: urllib.request.OpenerDirector

    def get(self, path: str) -> tuple[int, bytes]:
        """(status, body); status 0 when nothing answered."""
        try:
            with self.opener.open(self.server + path, timeout=REQUEST_TIMEOUT) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""


def admin_client(server: str, ca: str, cert: str, key: str) -> Client:
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    return Client(server, urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                      urllib.request.HTTPSHandler(context=context)))


def wait(client: Client, names: Sequence[str], processes: Sequence[Process], deadline: float,
         timeout: float, progress: Progress, started: float,
         abandoned: Callable[[], bool] = lambda: False) -> None:
    """Return once each component in ``names`` is ready; else, at the monotonic ``deadline``, one
    BackendError naming the component that is not (or at once, one that ended, or when
    ``abandoned()`` turns true) and quoting the end of its log."""
    by_name = {p.name: p for p in processes}
    checks: dict[str, Callable[[], bool]] = {
        "kube-apiserver": lambda: client.get("/readyz")[0] == 200,
        **{name: _lease(client, path) for name, path in LEASES.items()}}
    waiting = {name: checks[name] for name in names}
    while waiting:
        if abandoned():
            raise BackendError("control plane: start abandoned (the run is being torn down)")
        for process in processes:
            if not process.running():
                raise BackendError(f"control plane: {process.name} ended with code "
                                   f"{process.popen.returncode}; the end of its log "
                                   f"({process.log}):\n{process.tail()}")
        for name, ready in list(waiting.items()):
            if ready():
                del waiting[name]
                progress(f"control plane: {name} ready ({time.monotonic() - started:.1f}s)")
        if waiting and time.monotonic() > deadline:
            name = _blame(client, next(iter(waiting)))
            raise BackendError(f"control plane: {name} not ready after {timeout:.0f}s; the end of "
                               f"its log ({by_name[name].log}):\n{by_name[name].tail()}")
        if waiting:
            time.sleep(POLL)


def _lease(client: Client, path: str) -> Callable[[], bool]:
    def held() -> bool:
        status, body = client.get(path)
        if status != 200:
            return False
        try:
            return bool(json.loads(body).get("spec", {}).get("holderIdentity"))
        except (ValueError, AttributeError):
            return False
    return held


def _blame(client: Client, name: str) -> str:
    """An API server that is not ready because etcd is not: name etcd, whose log says why."""
    if name != "kube-apiserver":
        return name
    status, body = client.get("/readyz?verbose")
    return "etcd" if status and b"[-]etcd " in body else name

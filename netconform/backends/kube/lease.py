"""One Lease per run, renewed while it runs: how ``--cleanup-only`` tells a live run from a dead one.

A run makes the Lease ``netconform-run`` (coordination.k8s.io/v1) in its namespace right after the
namespace, holder its run id, and renews it every RENEW_EVERY s from a thread of its own. A run
that ends releases it (no holder) before its namespace goes, so a namespace kept with --keep is
anyone's to clean up at once; a run that dies stops renewing, and its Lease expires LEASE_SECONDS
after the last renewal. The times are the renewing machine's clock, so clean-up on another machine
allows SKEW more.
"""
from __future__ import annotations

import threading
from datetime import datetime, timezone

from kubernetes.client.exceptions import ApiException

from ..base import BackendError
from .api import KubeApi, status_message

NAME = "netconform-run"
LEASE_SECONDS = 60
RENEW_EVERY = 15.0  # s: four renewals per lease time, so one or two lost ones do not expire it
SKEW = 30.0  # s of clock difference between the run's machine and the one cleaning up


def now() -> datetime:
    return datetime.now(timezone.utc)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # a MicroTime


class RunLease:
    """The run's Lease: made once, renewed until ``release``."""

    def __init__(self, api: KubeApi, namespace: str, run_id: str) -> None:
        self.api, self.namespace, self.run_id = api, namespace, run_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed_renewals = 0  # in a row; said in the run's metadata if it ever mattered

    def create(self) -> None:
        stamp = _stamp(now())
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": NAME, "namespace": self.namespace,
                             "labels": {"app.kubernetes.io/managed-by": "netconform",
                                        "netconform.io/run": self.run_id}},
                "spec": {"holderIdentity": self.run_id, "leaseDurationSeconds": LEASE_SECONDS,
                         "acquireTime": stamp, "renewTime": stamp}}
        try:
            self.api.call("create the run's Lease", self.api.coordination.create_namespaced_lease,
                          self.namespace, body)
        except ApiException as exc:
            raise BackendError(f"cannot create Lease {self.namespace}/{NAME}: {status_message(exc)}") from None
        self._thread = threading.Thread(target=self._renew_loop, name="run-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            try:
                self._patch({"spec": {"renewTime": _stamp(now())}})
                self.failed_renewals = 0
            except Exception:  # noqa: BLE001 - one lost renewal; the next one tries again
                self.failed_renewals += 1

    def _patch(self, body: dict) -> None:
        self.api.coordination.patch_namespaced_lease(NAME, self.namespace, body, _request_timeout=(3.0, 5.0),
                                                     _content_type="application/merge-patch+json")

    def release(self) -> None:
        """Stop renewing, and say the run is over (no holder): best effort, bounded."""
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join(timeout=6.0)
        try:
            self._patch({"spec": {"holderIdentity": None}})
        except Exception:  # noqa: BLE001 - the Lease then expires on its own
            pass


def liveness(namespace, lease, at: datetime) -> str | None:
    """Why the run of ``namespace`` still counts as alive at ``at`` (None: it does not). ``lease``:
    its Lease, or None when it has none (a run that died before making it, or one made by a
    version without Leases): then only a namespace younger than a lease time is alive."""
    if lease is None:
        made = namespace.metadata.creation_timestamp
        age = (at - made).total_seconds() if made else float("inf")
        return f"made {age:.0f} s ago, no Lease yet" if age < LEASE_SECONDS + SKEW else None
    spec = lease.spec
    if not spec.holder_identity or spec.renew_time is None:
        return None  # released: the run ended (a namespace it kept with --keep)
    since = (at - spec.renew_time).total_seconds()
    duration = spec.lease_duration_seconds or LEASE_SECONDS
    return f"Lease renewed {max(since, 0):.0f} s ago" if since < duration + SKEW else None

"""One Lease per run, renewed while it runs: how ``--cleanup-only`` tells a live run from a dead one.

A run makes the Lease ``netconform-run`` (coordination.k8s.io/v1) in its namespace right after the
namespace, holder its run id, and renews it every RENEW_EVERY s from a thread of its own. A run
that ends releases it (no holder) before its namespace goes, so a namespace kept with --keep is
anyone's to clean up at once; a run that dies stops renewing, and its Lease expires LEASE_SECONDS
after the last renewal. A Lease someone deleted is made again at the next renewal. Clean-up judges
by the API server's clock alone: the time the server recorded the Lease's last write (its
managedFields) against the server's Date, so a machine whose clock is off, the run's or the one
cleaning up, changes nothing; SKEW allows for the second-resolution of both.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from kubernetes.client.exceptions import ApiException

from ..base import BackendError
from .api import KubeApi, status_message

NAME = "netconform-run"
LEASE_SECONDS = 60
RENEW_EVERY = 15.0  # s: four renewals per lease time, so one or two lost ones do not expire it
REQUEST_TIMEOUT = (3.0, 5.0)  # s to connect, to answer: each of the Lease's requests
SKEW = 5.0  # s of slack on top of the lease time (one-second stamps, a renewal on its way)
LONGEST_LEASE = 600  # s: a Lease that claims more (not one a run made) counts as this long


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
        self.failed_renewals = 0  # in a row
        self.longest_gap = 0.0  # s without a renewal that the API server took (metadata, when > RENEW_EVERY)
        self.remade = 0  # times the Lease was found gone (deleted under the run), to be made again

    def create(self) -> None:
        self._create()
        self._renewed = time.monotonic()
        self._thread = threading.Thread(target=self._renew_loop, name="run-lease", daemon=True)
        self._thread.start()

    def _body(self) -> dict:
        stamp = _stamp(now())
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": NAME, "namespace": self.namespace,
                             "labels": {"app.kubernetes.io/managed-by": "netconform",
                                        "netconform.io/run": self.run_id}},
                "spec": {"holderIdentity": self.run_id, "leaseDurationSeconds": LEASE_SECONDS,
                         "acquireTime": stamp, "renewTime": stamp}}

    def _create(self) -> None:
        try:
            self.api.call("create the run's Lease", self.api.coordination.create_namespaced_lease,
                          self.namespace, self._body(), _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            raise BackendError(f"cannot create Lease {self.namespace}/{NAME}: {status_message(exc)}") from None

    def _renew_loop(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            try:
                try:
                    self._patch({"spec": {"holderIdentity": self.run_id, "renewTime": _stamp(now())}})
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    self.remade += 1  # found gone (deleted under the run): a live run keeps one
                    self._create()
                self.failed_renewals = 0
                self.longest_gap = max(self.longest_gap, time.monotonic() - self._renewed)
                self._renewed = time.monotonic()
            except Exception:  # noqa: BLE001 - one lost renewal; the next one tries again
                self.failed_renewals += 1
                self.longest_gap = max(self.longest_gap, time.monotonic() - self._renewed)

    def metadata(self) -> dict:
        """How the Lease fared, when it did not fare well: a gap longer than the lease time let
        a --cleanup-only elsewhere take the run for dead."""
        gap = max(self.longest_gap, time.monotonic() - self._renewed) if self._thread else 0.0
        if gap <= 2 * RENEW_EVERY and not self.remade:
            return {}
        return {"lease": {"longest_gap_s": round(gap, 1), "remade": self.remade,
                          "expired_meanwhile": gap > LEASE_SECONDS}}
    def _patch(self, body: dict) -> None:
        self.api.coordination.patch_namespaced_lease(NAME, self.namespace, body, _request_timeout=REQUEST_TIMEOUT,
                                                     _content_type="application/merge-patch+json")

    def release(self) -> None:
        """Stop renewing, and say the run is over (no holder): best effort, bounded."""
        self._stop.set()
        if self._thread is None:
            return
        # a renewal in flight ends within its request's bounds (and a re-made Lease's): then the
        # release is the last write, and a --keep namespace is at once anyone's to clean up
        self._thread.join(timeout=2 * sum(REQUEST_TIMEOUT) + 1.0)
        try:
            self._patch({"spec": {"holderIdentity": None}})
        except Exception:  # noqa: BLE001 - the Lease then expires on its own
            pass


def last_written(lease) -> datetime | None:
    """When the API server recorded the Lease's last write (its managedFields' times, the
    server's clock), or its renewTime (the run's clock) when it keeps no managedFields."""
    times = [entry.time for entry in (lease.metadata.managed_fields or []) if entry.time]
    return max(times) if times else lease.spec.renew_time


def liveness(namespace, lease, at: datetime) -> str | None:
    """Why the run of ``namespace`` still counts as alive at ``at``, the API server's time (None:
    it does not). ``lease``: its Lease, or None when it has none (a run that died before making
    it, or one made by a version without Leases): then only a namespace younger than a lease time
    is alive."""
    if lease is None:
        made = namespace.metadata.creation_timestamp
        age = (at - made).total_seconds() if made else float("inf")
        return f"made {age:.0f} s ago, no Lease yet" if age < LEASE_SECONDS + SKEW else None
    spec = lease.spec
    written = last_written(lease)
    if not spec.holder_identity or written is None:
        return None  # released: the run ended (a namespace it kept with --keep)
    since = (at - written).total_seconds()
    duration = min(max(spec.lease_duration_seconds or LEASE_SECONDS, 1), LONGEST_LEASE)
    return f"Lease renewed {max(since, 0):.0f} s ago" if since < duration + SKEW else None

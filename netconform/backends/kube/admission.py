"""Who refused the run's pods: the API server's admission, read from its refusal's message.

An admission policy (Pod Security ``enforce``, a ValidatingAdmissionPolicy, a webhook such as
Kyverno's or Gatekeeper's, a ResourceQuota) may refuse the probe pods. A pod the run creates itself
is refused to its face (the create fails); a DaemonSet's pods are refused to the DaemonSet
controller, which says so only in a FailedCreate event on the DaemonSet and tries again with
backoff, for ever: without reading that event a run waits out --ready-timeout for pods that will
never exist. The messages are the API server's own (``pods "x" is forbidden: …``, kube-apiserver's
admission plugins and ``Error creating: %v``, the controller's event)."""
from __future__ import annotations

import re

# what a message says refused the pod -> how the run names it
_WHO = (
    (re.compile(r'violates PodSecurity "([^"]+)"'),
     lambda m: f'Pod Security admission, level "{m.group(1)}" (the namespace\'s '
               f'pod-security.kubernetes.io/enforce label, or the cluster\'s default level)'),
    (re.compile(r"ValidatingAdmissionPolicy '([^']+)' with binding '([^']+)'"),
     lambda m: f"ValidatingAdmissionPolicy {m.group(1)} (binding {m.group(2)})"),
    (re.compile(r'admission webhook "([^"]+)" denied the request'),
     lambda m: f"admission webhook {m.group(1)}"),
    (re.compile(r"exceeded quota: ([^,]+)"), lambda m: f"ResourceQuota {m.group(1)}"),
)
# a refusal, not a passing failure: the controller retrying would meet the same answer
_REFUSED = ("is forbidden", "denied the request")
_RBAC = re.compile(r'User "[^"]*" cannot [a-z]+ resource')  # authorization's refusal, not admission's


def refused_by(message: str) -> str | None:
    """Who refused, as the run names it, when ``message`` is an admission refusal; else None."""
    if not any(words in message for words in _REFUSED) or _RBAC.search(message):
        return None
    for pattern, name in _WHO:
        found = pattern.search(message)
        if found:
            return name(found)
    return "the API server's admission"


def refused_daemonset_pods(events: list) -> str | None:
    """One line for the first DaemonSet whose pods admission refused (its FailedCreate event)."""
    for event in events:
        if event.reason != "FailedCreate" or (event.involved_object.kind or "") != "DaemonSet":
            continue
        message = (event.message or "").removeprefix("Error creating: ")
        who = refused_by(message)
        if who:
            return (f"{who} refused the probe pods of DaemonSet {event.involved_object.name}: "
                    f"{message[:600]}")
    return None


def naming(message: str) -> str:
    """``message``, led by who refused when it is an admission refusal."""
    who = refused_by(message)
    return f"{who}: {message}" if who else message

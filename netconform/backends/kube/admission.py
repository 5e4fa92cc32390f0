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
# refusals that pass on their own: the ServiceAccount admission plugin in a namespace made a moment
# ago, before the ServiceAccount controller made its "default" (the controller tries again)
_PASSING = ("error looking up service account",)


def refused_by(message: str) -> str | None:
    """Who refused, as the run names it, when ``message`` is an admission refusal; else None."""
    if not any(words in message for words in _REFUSED) or _RBAC.search(message) or \
            any(words in message for words in _PASSING):
        return None
    for pattern, name in _WHO:
        found = pattern.search(message)
        if found:
            return name(found)
    return "the API server's admission"


def refused_daemonset_pods(events: list) -> str | None:
    """One line for the first DaemonSet whose pods admission refused, and refused again (two
    FailedCreate events, for two of its pods or two tries, or one counted twice): one refusal
    alone may be a quota a moment full, and the controller tries again."""
    refused: dict[str, list[tuple[str, str, int]]] = {}
    for event in events:
        if event.reason != "FailedCreate" or (event.involved_object.kind or "") != "DaemonSet":
            continue
        message = (event.message or "").removeprefix("Error creating: ")
        who = refused_by(message)
        if who:
            refused.setdefault(event.involved_object.name, []).append((who, message, event.count or 1))
    for name, seen in refused.items():
        if len(seen) >= 2 or seen[0][2] >= 2:
            who, message, _ = seen[-1]
            return f"{who} refused the probe pods of DaemonSet {name}: {message[:600]}"
    return None


def naming(message: str) -> str:
    """``message``, led by who refused when it is an admission refusal."""
    who = refused_by(message)
    return f"{who}: {message}" if who else message

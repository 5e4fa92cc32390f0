"""Who refused the run's pods, read from the API server's own messages (backends/kube/admission.py)."""
from types import SimpleNamespace

from netconform.backends.kube.admission import naming, refused_by, refused_daemonset_pods

PSA = ('pods "host-x7k2p" is forbidden: violates PodSecurity "restricted:latest": host namespaces '
       '(hostNetwork=true), hostPort (container "probe" uses hostPorts 18080, 19000)')
VAP = ("pods \"host-x7k2p\" is forbidden: ValidatingAdmissionPolicy 'no-host-network' with binding "
       "'runs' denied request: hostNetwork is not allowed")
WEBHOOK = ('admission webhook "validation.gatekeeper.sh" denied the request: [psp-host-network] '
           'Shared host network namespace is not allowed: host-x7k2p')
QUOTA = 'pods "host-x7k2p" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=10, limited: pods=10'
RBAC = 'pods is forbidden: User "alice" cannot create resource "pods" in API group "" in the namespace "x"'


def test_each_admission_is_named():
    assert refused_by(PSA).startswith('Pod Security admission, level "restricted:latest"')
    assert refused_by(VAP) == "ValidatingAdmissionPolicy no-host-network (binding runs)"
    assert refused_by(WEBHOOK) == "admission webhook validation.gatekeeper.sh"
    assert refused_by(QUOTA) == "ResourceQuota pods"
    assert refused_by('pods "x" is forbidden: something new') == "the API server's admission"


def test_what_is_not_an_admission_refusal_is_not_named_one():
    assert refused_by(RBAC) is None  # authorization: the run's permissions, said as such
    assert refused_by("etcdserver: request timed out") is None  # passing: the controller tries again
    assert naming(RBAC) == RBAC and naming(VAP).startswith("ValidatingAdmissionPolicy no-host-network")


def _event(reason, kind, name, message, count=1):
    return SimpleNamespace(reason=reason, message=message, type="Warning", count=count,
                           involved_object=SimpleNamespace(kind=kind, name=name))


def test_a_daemonset_whose_pods_were_refused_twice_is_one_line():
    events = [_event("FailedCreate", "DaemonSet", "probe-a", "Error creating: etcdserver: request timed out"),
              _event("FailedScheduling", "Pod", "probe-b-x", PSA),
              _event("FailedCreate", "DaemonSet", "host", f"Error creating: {PSA}"),
              _event("FailedCreate", "DaemonSet", "host", f"Error creating: {PSA.replace('x7k2p', 'b9q4z')}")]
    line = refused_daemonset_pods(events)
    assert line.startswith('Pod Security admission, level "restricted:latest"') and "\n" not in line
    assert 'refused the probe pods of DaemonSet host: pods "host-b9q4z" is forbidden' in line
    assert refused_daemonset_pods(events[:3]) is None  # refused once: the controller tries again
    assert refused_daemonset_pods([_event("FailedCreate", "DaemonSet", "host", QUOTA, count=3)]).startswith(
        "ResourceQuota pods refused")


def test_a_namespace_too_new_for_its_service_account_is_not_a_refusal():
    passing = ('pods "host-x7k2p" is forbidden: error looking up service account netconform-ab12cd/default: '
               'serviceaccount "default" not found')
    assert refused_by(passing) is None
    assert refused_daemonset_pods([_event("FailedCreate", "DaemonSet", "host", passing, count=5)]) is None

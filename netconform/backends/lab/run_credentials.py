"""The credentials a ``--backend=kube`` run on the lab uses: a user of its own bound to the
ClusterRole ``netconform-run`` (manifests/kube/rbac.yaml), not the lab's admin.

So every such run proves that the permissions the README lists are enough for everything a run
does on a live cluster; one that is missing fails the run with the API server's refusal, as it
would for a user whose cluster administrator applied that file.
"""
from __future__ import annotations

from pathlib import Path

from kubernetes.client.exceptions import ApiException

from ..base import BackendError
from ..kube.api import KubeApi, status_message
from ..kube.manifests import run_role

USER = "netconform-run"  # the user the kubeconfig names (its client certificate's CN)


def bind_run_role(api: KubeApi, user: str = USER, role: dict | None = None) -> None:
    """Create the ClusterRole (``role``, default the manifest's) and bind ``user`` to it."""
    role = role or run_role()
    name = role["metadata"]["name"]
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": f"{name}-{user}"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}
    for what, create, body in (("ClusterRole", api.rbac.create_cluster_role, role),
                               ("ClusterRoleBinding", api.rbac.create_cluster_role_binding, binding)):
        try:
            api.call(f"create {what} {body['metadata']['name']}", create, body)
        except ApiException as exc:
            if exc.status != 409:  # a run before on the same lab made it: the same object
                raise BackendError(f"lab: cannot create {what} {body['metadata']['name']}: "
                                   f"{status_message(exc)}") from None


def run_kubeconfig(control_plane, api: KubeApi, directory: Path, role: dict | None = None) -> Path:
    """A kubeconfig for USER, bound to the run's ClusterRole, written in ``directory``."""
    bind_run_role(api, USER, role)
    return control_plane.kubeconfig_for(directory / f"{USER}.kubeconfig", USER)

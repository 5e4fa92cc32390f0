"""The lab's control plane: upstream etcd, kube-apiserver, kube-controller-manager and
kube-scheduler in a node namespace of their own, reached from the root namespace through a relay."""
from .node import ControlPlane, ControlPlaneSpec
from .standalone import StandaloneControlPlane

__all__ = ["ControlPlane", "ControlPlaneSpec", "StandaloneControlPlane"]

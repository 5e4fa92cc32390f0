#!/usr/bin/env bash
# kube-router for pod networking and network policy, kube-proxy kept; node podCIDRs from the cluster.
set -euo pipefail
VERSION=v2.7.1
POD_SUBNET=10.244.0.0/16
DAEMONSET=kube-system/kube-router
kubectl apply -f "https://raw.githubusercontent.com/cloudnativelabs/kube-router/${VERSION}/daemonset/kubeadm-kuberouter.yaml"
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=300s
echo "kube-router ${VERSION}, pods in ${POD_SUBNET}"

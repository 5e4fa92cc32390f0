#!/usr/bin/env bash
# Cilium with Helm, kube-proxy kept, pod CIDRs taken from the nodes (ipam.mode=kubernetes).
set -euo pipefail
VERSION=1.19.3
POD_SUBNET=10.244.0.0/16
DAEMONSET=kube-system/cilium
helm repo add cilium https://helm.cilium.io/ >/dev/null
helm install cilium cilium/cilium --version "${VERSION}" --namespace "${DAEMONSET%/*}" \
  --set ipam.mode=kubernetes --set kubeProxyReplacement=false --set image.pullPolicy=IfNotPresent
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=600s
echo "cilium ${VERSION}, pods in ${POD_SUBNET}"

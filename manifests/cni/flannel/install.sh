#!/usr/bin/env bash
# Flannel (VXLAN) from its release manifest; its net-conf.json network is 10.244.0.0/16.
set -euo pipefail
VERSION=v0.28.4
POD_SUBNET=10.244.0.0/16
DAEMONSET=kube-flannel/kube-flannel-ds
kubectl apply -f "https://github.com/flannel-io/flannel/releases/download/${VERSION}/kube-flannel.yml"
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=300s
echo "flannel ${VERSION}, pods in ${POD_SUBNET}"

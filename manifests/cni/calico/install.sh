#!/usr/bin/env bash
# Calico from its manifest (iptables data plane, kube-proxy kept); its default pool is 192.168.0.0/16.
set -euo pipefail
VERSION=v3.32.2
POD_SUBNET=192.168.0.0/16
DAEMONSET=kube-system/calico-node
kubectl apply -f "https://raw.githubusercontent.com/projectcalico/calico/${VERSION}/manifests/calico.yaml"
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=300s
echo "calico ${VERSION}, pods in ${POD_SUBNET}"

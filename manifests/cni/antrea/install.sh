#!/usr/bin/env bash
# Antrea from its release manifest; it takes each node's podCIDR from the cluster (NodeIPAM).
set -euo pipefail
VERSION=v2.7.0
POD_SUBNET=10.244.0.0/16
DAEMONSET=kube-system/antrea-agent
kubectl apply -f "https://github.com/antrea-io/antrea/releases/download/${VERSION}/antrea.yml"
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=300s
echo "antrea ${VERSION}, pods in ${POD_SUBNET}"

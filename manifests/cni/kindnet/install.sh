#!/usr/bin/env bash
# kindnet ships with kind: nothing to install, wait for its node agent.
set -euo pipefail
VERSION=kind-v0.33.0
POD_SUBNET=10.244.0.0/16
DAEMONSET=kube-system/kindnet
echo "kindnet from ${VERSION}, pods in ${POD_SUBNET}"
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=300s

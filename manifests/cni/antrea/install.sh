#!/usr/bin/env bash
# Antrea from its release manifest; it takes each node's podCIDR from the cluster (NodeIPAM).
set -euo pipefail
VERSION=v2.7.0
POD_SUBNET=10.244.0.0/16
DAEMONSET=kube-system/antrea-agent
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
fetch "https://github.com/antrea-io/antrea/releases/download/${VERSION}/antrea.yml" "${work}/antrea.yml"
require_pinned_images "${work}/antrea.yml"
kubectl apply -f "${work}/antrea.yml"
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=300s
echo "antrea ${VERSION}, pods in ${POD_SUBNET}"

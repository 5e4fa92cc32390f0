#!/usr/bin/env bash
# Calico from its manifest (iptables data plane, kube-proxy kept); its default pool is 192.168.0.0/16.
set -euo pipefail
VERSION=v3.32.2
POD_SUBNET=192.168.0.0/16
DAEMONSET=kube-system/calico-node
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
fetch "https://raw.githubusercontent.com/projectcalico/calico/${VERSION}/manifests/calico.yaml" "${work}/calico.yaml"
require_pinned_images "${work}/calico.yaml"
kubectl apply -f "${work}/calico.yaml"
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=300s
echo "calico ${VERSION}, pods in ${POD_SUBNET}"

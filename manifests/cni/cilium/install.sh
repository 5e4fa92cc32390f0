#!/usr/bin/env bash
# Cilium with Helm, kube-proxy kept, pod CIDRs taken from the nodes (ipam.mode=kubernetes).
set -euo pipefail
VERSION=1.19.3
POD_SUBNET=10.244.0.0/16
DAEMONSET=kube-system/cilium
# With kube-proxy kept (kubeProxyReplacement=false) Cilium does hostPort only by chaining the
# portmap plugin (docs.cilium.io, "Portmap (HostPort)"), and HOSTPORT is a MUST row; kind's node
# image ships portmap.
SETTINGS=(--version "${VERSION}" --namespace "${DAEMONSET%/*}"
  --set ipam.mode=kubernetes --set kubeProxyReplacement=false --set cni.chainingMode=portmap
  --set image.pullPolicy=IfNotPresent)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
helm repo add cilium https://helm.cilium.io/ >/dev/null
helm template cilium cilium/cilium "${SETTINGS[@]}" >"${work}/cilium.yaml"
require_pinned_images "${work}/cilium.yaml"  # what the install below applies
helm install cilium cilium/cilium "${SETTINGS[@]}"
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=600s
echo "cilium ${VERSION}, pods in ${POD_SUBNET}"

#!/usr/bin/env bash
# kube-router for pod networking and network policy, kube-proxy kept; node podCIDRs from the cluster.
set -euo pipefail
VERSION=v2.7.1
POD_SUBNET=10.244.0.0/16
DAEMONSET=kube-system/kube-router
IMAGE=docker.io/cloudnativelabs/kube-router
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# The stock kubeadm-kuberouter.yaml, made fit for the suite:
# - it runs ${IMAGE} untagged (:latest, pulled Always) whatever VERSION says: pin the release's tag;
# - its conflist (bridge, host-local) has no portmap, so hostPort (HOSTPORT, a MUST row) would not
#   work: chain portmap after bridge as upstream's kubeadm-kuberouter-all-features-hostport.yaml
#   does. That manifest itself is not used: it also runs kube-router's service proxy, and this
#   job keeps kube-proxy. kube-router's image installs bridge, host-local, portmap and loopback
#   into /opt/cni/bin itself (its cni-install).
kubeadm_for_the_suite() {
  sed -e "s#image: ${IMAGE}\$#image: ${IMAGE}:${VERSION}#" \
    -e '/^       \]$/i\          ,{"type":"portmap","capabilities":{"snat":true,"portMappings":true}}'
}

if [[ "${1:-}" == --patch-only ]]; then  # stdin to stdout, for tests/ci
  kubeadm_for_the_suite
  exit
fi
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
fetch "https://raw.githubusercontent.com/cloudnativelabs/kube-router/${VERSION}/daemonset/kubeadm-kuberouter.yaml" "${work}/stock.yaml"
kubeadm_for_the_suite <"${work}/stock.yaml" >"${work}/kube-router.yaml"
# the edits are tied to the stock file's layout: refuse to apply if either did not take
grep -q '"type":"portmap"' "${work}/kube-router.yaml" || { echo "portmap not chained" >&2; exit 1; }
require_pinned_images "${work}/kube-router.yaml"
kubectl apply -f "${work}/kube-router.yaml"
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=300s
echo "kube-router ${VERSION}, pods in ${POD_SUBNET}"

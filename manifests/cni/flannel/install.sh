#!/usr/bin/env bash
# Flannel (VXLAN) from its release manifest; its net-conf.json network is 10.244.0.0/16.
set -euo pipefail
VERSION=v0.28.4
POD_SUBNET=10.244.0.0/16
DAEMONSET=kube-flannel/kube-flannel-ds
# Its conflist delegates to bridge (with host-local) and chains portmap, and the runtime adds
# loopback: kind's node image lacks bridge, so the plugins release goes into the nodes first.
CNI_PLUGINS=(bridge host-local portmap loopback)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_br_netfilter  # flanneld exits without it (flannel's README and main.go)
install_cni_plugins "${CNI_PLUGINS[@]}"
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
fetch "https://github.com/flannel-io/flannel/releases/download/${VERSION}/kube-flannel.yml" "${work}/flannel.yml"
require_pinned_images "${work}/flannel.yml"
kubectl apply -f "${work}/flannel.yml"
kubectl -n "${DAEMONSET%/*}" rollout status "daemonset/${DAEMONSET#*/}" --timeout=300s
echo "flannel ${VERSION}, pods in ${POD_SUBNET}"

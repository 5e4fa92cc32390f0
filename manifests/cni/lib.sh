# shellcheck shell=bash
# What the install.sh recipes share (sourced, not run): fetching a pinned manifest and refusing one
# whose images are not pinned, and putting the CNI plugins a conflist needs into every kind node.

KIND_CLUSTER="${KIND_CLUSTER:-netconform}"  # the nightly's cluster_name (and manifests/kind/*.yaml)

# containernetworking/plugins v1.9.1, the release kind's node image builds its own plugins from
# (kubernetes-sigs/kind images/base/Dockerfile, CNI_PLUGINS_VERSION). Upstream publishes the
# tarballs' sha256 only as release assets (.tgz.sha256, its .github/workflows/release.yaml), which
# cannot be read here; these are the ones kubernetes-sigs/kubespray pins for v1.9.1
# (roles/kubespray_defaults/vars/main/checksums.yml, cni_binary_checksums).
CNI_PLUGINS_VERSION=v1.9.1
CNI_PLUGINS_SHA256_AMD64=b98f74a0f8522f0a83867178729c1aa70f2158f90c45a2ca8fa791db1c76b303
CNI_PLUGINS_SHA256_ARM64=56171987d3947707c3563db2f4001bccaf50fd63468611b9f3cbecb1375ee7ec

# kind_nodes: the node containers of the kind cluster, one a line; none is an error.
kind_nodes() {
  local found
  found=$(kind get nodes --name "${KIND_CLUSTER}")
  if [[ -z "${found}" ]]; then
    echo "no nodes in kind cluster ${KIND_CLUSTER}" >&2
    return 1
  fi
  echo "${found}"
}

# fetch URL FILE: fail on an HTTP error instead of handing an error page to kubectl.
fetch() {
  curl -fsSL --retry 3 -o "$2" "$1"
}

# require_pinned_images FILE: every image names a tag or a digest. An untagged image is whatever
# :latest is that night, and the recipe's pinned VERSION would then say nothing about the run.
require_pinned_images() {
  local untagged
  untagged=$(grep -E '^[[:space:]-]*image:' "$1" |
    grep -vE 'image:[[:space:]]*"?[^"[:space:]]*(:[^/"[:space:]]+|@sha256:[0-9a-f]{64})"?[[:space:]]*$' || true)
  if [[ -n "${untagged}" ]]; then
    echo "untagged image(s) in $1:" >&2
    echo "${untagged}" >&2
    return 1
  fi
}

# install_cni_plugins PLUGIN...: those binaries of the pinned plugins release, its tarball checked
# against the sha256 above, into /opt/cni/bin of every node of the kind cluster (kind's node image
# ships host-local, loopback, ptp and portmap only; the nodes are containers, hence docker cp).
install_cni_plugins() {
  local arch sha dir tarball node plugin
  local -a nodes
  case "$(uname -m)" in  # kind's nodes run the runner's platform
    x86_64) arch=amd64 sha=${CNI_PLUGINS_SHA256_AMD64} ;;
    aarch64 | arm64) arch=arm64 sha=${CNI_PLUGINS_SHA256_ARM64} ;;
    *) echo "no pinned CNI plugins for $(uname -m)" >&2; return 1 ;;
  esac
  mapfile -t nodes < <(kind_nodes)
  [[ ${#nodes[@]} -gt 0 ]]  # kind_nodes has said why
  dir=$(mktemp -d)
  tarball="${dir}/cni-plugins-linux-${arch}-${CNI_PLUGINS_VERSION}.tgz"
  fetch "https://github.com/containernetworking/plugins/releases/download/${CNI_PLUGINS_VERSION}/${tarball##*/}" "${tarball}"
  echo "${sha}  ${tarball}" | sha256sum --check --quiet
  tar -xzf "${tarball}" -C "${dir}"
  for node in "${nodes[@]}"; do
    for plugin in "$@"; do
      docker cp "${dir}/${plugin}" "${node}:/opt/cni/bin/${plugin}"
      docker exec "${node}" test -x "/opt/cni/bin/${plugin}"
    done
  done
  rm -rf "${dir}"
  echo "CNI plugins ${CNI_PLUGINS_VERSION} ($*) on ${nodes[*]}"
}

# require_br_netfilter: flanneld exits when a node lacks /proc/sys/net/bridge/bridge-nf-call-iptables
# (br_netfilter not loaded), so look where it looks and say why here rather than in its logs. The
# nodes share the host's kernel: the workflow loads the module on the runner.
require_br_netfilter() {
  local node
  node=$(kind_nodes | head -n 1)
  if ! docker exec "${node}" test -e /proc/sys/net/bridge/bridge-nf-call-iptables; then
    echo "br_netfilter is not loaded: sudo modprobe br_netfilter (kind's nodes share the host's kernel)" >&2
    return 1
  fi
}

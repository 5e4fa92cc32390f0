"""The lab's CoreDNS add-on is kubeadm's: manifests/kube/addons/coredns.yaml.j2 against
cmd/kubeadm/app/phases/addons/dns/manifests.go of every pinned release (in the build's GOMODCACHE),
rendered with the same values on both sides. Fails, naming the build command, when the sources are
not there."""
from __future__ import annotations

import re

import pytest
import yaml

from netconform.backends.lab import addons
from netconform.upstream import cache_root
from netconform.upstream.releases import RELEASES, Release

PINNED = list(RELEASES.values())
VALUES = {".DNSIP": addons.DNS_IP, ".DNSDomain": addons.DOMAIN, ".DeploymentName": "coredns",
          ".Replicas": "2", ".Image": "img", ".ControlPlaneTaintKey": "node-role.kubernetes.io/control-plane"}


def kubeadm_objects(source: str) -> list[dict]:
    """kubeadm's manifests, its Go template filled in by hand (fields and the DNSDomain `if`)."""
    docs = []
    for text in re.findall(r"\t(?:CoreDNS\w+) = `\n(.*?)`", source, re.S):
        text = re.sub(r"\s*\{\{- if \.DNSDomain \}\}(.*?)\s*\{\{- end \}\}", r"\1", text, flags=re.S)  # {{- trims
        for field, value in VALUES.items():
            text = text.replace("{{ " + field + " }}", value)
        assert "{{" not in text, text
        docs.append(yaml.safe_load(text))
    return docs


@pytest.mark.parametrize("rel", PINNED, ids=[r.minor for r in PINNED])
def test_the_coredns_addon_is_kubeadms(rel: Release):
    path = cache_root() / "gomod" / f"k8s.io/kubernetes@{rel.kubernetes}" / \
        "cmd/kubeadm/app/phases/addons/dns/manifests.go"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run python -m netconform.upstream build --release {rel.minor}")
    theirs = sorted(kubeadm_objects(path.read_text()), key=lambda o: o["kind"])
    ours = sorted(addons.render(2, "img"), key=lambda o: o["kind"])
    assert [o["kind"] for o in ours] == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment",
                                         "Service", "ServiceAccount"]
    assert ours == theirs

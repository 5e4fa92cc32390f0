"""Lab conflists: per-node values filled in, IPAM kept in the run, clear errors for bad files."""
import ipaddress
import json
import re

import pytest

from netconform.backends.lab.conflists import ConflistError, check_subnets, load, pod_subnets
from netconform.profiles import PROFILES

VALUES = {"POD_CIDR": "10.244.2.0/24", "NODE_IP": "172.18.0.3", "NODE_NAME": "node-2"}


@pytest.mark.parametrize("name", sorted(n for n, p in PROFILES.items() if p.backend == "lab"))
def test_shipped_profiles_get_the_node_cidr_and_a_run_local_ipam_dir(name, tmp_path):
    conf = load(PROFILES[name].conflist, VALUES, tmp_path / "ipam")
    ipam = conf["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.244.2.0/24"}]]
    assert ipam["dataDir"] == str(tmp_path / "ipam")
    assert conf["cniVersion"] == "1.0.0" and conf["plugins"][0]["ipMasq"] is False


DUAL_EXAMPLE = PROFILES["bridge"].conflist.parent / "examples" / "bridge-dual.conflist"


def test_the_dual_stack_example_gets_each_family_s_range_once_and_is_refused_on_an_ipv4_lab(tmp_path):
    conf = load(DUAL_EXAMPLE, {**VALUES, "POD_CIDR_V6": "fd00:10:244:2::/64"}, tmp_path / "ipam")
    ipam = conf["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.244.2.0/24"}], [{"subnet": "fd00:10:244:2::/64"}]]
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    with pytest.raises(ConflistError, match=r"hands out \$\{POD_CIDR_V6\}.*run it with --ip-family=dual"):
        load(DUAL_EXAMPLE, VALUES, tmp_path / "ipam")


@pytest.mark.parametrize("name", sorted(n for n, p in PROFILES.items() if p.backend == "lab" and p.overlay == "routes"))
def test_an_ipv6_only_node_gets_its_ipv6_range_and_the_ipv6_default_route_alone(name, tmp_path):
    values = {**VALUES, "POD_CIDR": "fd00:10:244:2::/64", "NODE_IP": "fd00:18::3"}
    ipam = load(PROFILES[name].conflist, values, tmp_path / "ipam")["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "fd00:10:244:2::/64"}]]
    assert ipam.get("routes", [{"dst": "::/0"}]) == [{"dst": "::/0"}]


def test_the_ipv6_only_example_gets_the_nodes_ipv6_range_and_is_written_for_an_ipv6_only_lab(tmp_path):
    """manifests/lab/examples/bridge-ipv6.conflist: for --ip-family=ipv6, where ${POD_CIDR} is the
    node's IPv6 range; its route is IPv6's own, so nothing is rewritten."""
    example = DUAL_EXAMPLE.with_name("bridge-ipv6.conflist")
    values = {**VALUES, "POD_CIDR": "fd00:10:244:2::/64", "NODE_IP": "fd00:18::3"}
    ipam = load(example, values, tmp_path / "ipam")["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "fd00:10:244:2::/64"}]] and ipam["routes"] == [{"dst": "::/0"}]
    assert pod_subnets(load(example, values, tmp_path / "ipam"))[0].version == 6


def test_a_single_plugin_conf_is_wrapped_as_libcni_does(tmp_path):
    path = tmp_path / "one.conf"
    path.write_text(json.dumps({"cniVersion": "0.4.0", "name": "n", "type": "bridge",
                                "ipam": {"type": "host-local", "subnet": "${POD_CIDR}",
                                         "dataDir": "/somewhere"}}))
    conf = load(path, VALUES, tmp_path)
    assert conf["plugins"] == [{"type": "bridge", "ipam": {  # IPAM state never leaves the run
        "type": "host-local", "subnet": "10.244.2.0/24", "dataDir": str(tmp_path)}}]


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"cniVersion": "1.0.0", "name": "n"}', "neither 'plugins' nor 'type'"),
    ('{"cniVersion": "1.0.0", "name": "n", "plugins": [{"ipam": {}}]}', "'type'"),
    ('{"name": "n", "plugins": [{"type": "bridge"}]}', "'cniVersion'"),
])
def test_broken_conflists_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.conflist"
    path.write_text(text)
    with pytest.raises(ConflistError, match=message):
        load(path, VALUES, tmp_path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConflistError, match="cannot read CNI config .*nope"):
        load(tmp_path / "nope.conflist", VALUES, tmp_path)


@pytest.mark.parametrize("kind", ["../../../bin/true", "/usr/bin/true", "bin/true", ".", "..", "",
                                  "bridge\0"])
def test_a_plugin_type_must_be_a_bare_file_name(tmp_path, kind):
    """The CNI spec looks a type up by name in CNI_PATH: a path would run any binary on the host."""
    path = tmp_path / "escape.conflist"
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "n",
                                "plugins": [{"type": "bridge"}, {"type": kind}]}))
    with pytest.raises(ConflistError) as caught:
        load(path, VALUES, tmp_path)
    assert f"plugin 2 has type {kind!r}, which is not a bare file name" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_bare_plugin_type_is_kept(tmp_path):
    path = tmp_path / "ok.conflist"
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "n",
                                "plugins": [{"type": "my-plugin.v2"}]}))
    assert load(path, VALUES, tmp_path)["plugins"] == [{"type": "my-plugin.v2"}]


def host_local(**ipam) -> dict:
    return {"cniVersion": "1.0.0", "name": "n",
            "plugins": [{"type": "bridge", "ipam": {"type": "host-local", **ipam}}, {"type": "portmap"}]}


@pytest.mark.parametrize("conf, subnets", [
    (host_local(subnet="10.244.1.0/24"), ["10.244.1.0/24"]),
    (host_local(ranges=[[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:1::/64"}]]),
     ["10.244.1.0/24", "fd00:1::/64"]),
    (host_local(subnet="10.244.1.7/24"), ["10.244.1.0/24"]),  # host bits set: host-local takes it
    (host_local(subnet="not-a-cidr", ranges=[["odd", {"gateway": "x"}], 3]), []),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "macvlan", "ipam": {"type": "dhcp"}}]},
     []),
])
def test_pod_subnets_are_read_from_both_host_local_forms(conf, subnets):
    assert [str(s) for s in pod_subnets(conf)] == subnets


LAB = {"the lab underlay": "172.18.0.0/24", "the Service range": "10.96.0.0/12"}


def nets(*cidrs: str) -> list:
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


def test_distinct_pod_subnets_are_accepted():
    check_subnets({"node-1": nets("10.244.1.0/24", "fd00:1::/64"),
                   "node-2": nets("10.244.2.0/24", "fd00:2::/64"), "node-3": []}, LAB)


@pytest.mark.parametrize("by_node, message", [
    ({"node-1": nets("10.244.0.0/16"), "node-2": nets("10.244.0.0/16")},
     "pod subnets overlap: node-1 has 10.244.0.0/16 and node-2 has 10.244.0.0/16"),
    ({"node-1": nets("10.244.1.0/24"), "node-2": nets("10.244.0.0/16")},
     "pod subnets overlap: node-1 has 10.244.1.0/24 and node-2 has 10.244.0.0/16"),
    ({"node-1": nets("10.244.1.0/24"), "node-2": nets("fd00::/64"), "node-3": nets("fd00::/48")},
     "pod subnets overlap: node-2 has fd00::/64 and node-3 has fd00::/48"),
    ({"node-1": nets("172.18.0.0/16")}, "node-1's pod subnet 172.18.0.0/16 overlaps the lab underlay"),
    ({"node-1": nets("10.244.1.0/24"), "node-2": nets("10.100.0.0/24")},
     "node-2's pod subnet 10.100.0.0/24 overlaps the Service range 10.96.0.0/12"),
])
def test_overlapping_pod_subnets_are_refused(by_node, message):
    with pytest.raises(ConflistError, match=re.escape(message)):
        check_subnets(by_node, LAB)


def test_a_hard_coded_subnet_overlaps_across_nodes(tmp_path):
    """The mistake this guards against: one subnet for every node instead of ${POD_CIDR}."""
    path = tmp_path / "fixed.conflist"
    path.write_text(json.dumps(host_local(ranges=[[{"subnet": "10.244.0.0/16"}]])))
    by_node = {node: pod_subnets(load(path, {**VALUES, "NODE_NAME": node}, tmp_path))
               for node in ("node-1", "node-2")}
    with pytest.raises(ConflistError, match="pod subnets overlap"):
        check_subnets(by_node, LAB)


def test_a_cni_install_s_conflist_is_the_first_config_file_by_name_as_libcni_reads_it(tmp_path):
    from netconform.backends.lab.conflists import ConflistError, load_dir
    net_d = tmp_path / "net.d"
    net_d.mkdir()
    with pytest.raises(ConflistError, match="no CNI configuration in"):
        load_dir(net_d)
    (net_d / "README").write_text("not a config")
    (net_d / "20-other.conflist").write_text('{"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "ptp"}]}')
    (net_d / "10-flannel.conflist").write_text('{"cniVersion": "0.4.0", "name": "cbr0", "plugins": '
                                               '[{"type": "flannel"}, {"type": "portmap"}]}')
    assert [p["type"] for p in load_dir(net_d)["plugins"]] == ["flannel", "portmap"]
    (net_d / "00-evil.conflist").write_text('{"cniVersion": "1.0.0", "name": "e", "plugins": [{"type": "../../bin/sh"}]}')
    with pytest.raises(ConflistError, match="not a bare file name"):
        load_dir(net_d)
    (net_d / "00-evil.conflist").write_text("{")
    with pytest.raises(ConflistError, match="00-evil.conflist"):
        load_dir(net_d)

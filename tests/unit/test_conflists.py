"""Lab conflists: per-node values filled in, IPAM kept in the run, clear errors for bad files."""
import json

import pytest

from netconform.backends.lab.conflists import ConflistError, load
from netconform.profiles import PROFILES

VALUES = {"POD_CIDR": "10.244.2.0/24", "NODE_IP": "172.18.0.3", "NODE_NAME": "node-2"}


@pytest.mark.parametrize("name", sorted(n for n, p in PROFILES.items() if p.backend == "lab"))
def test_shipped_profiles_get_the_node_cidr_and_a_run_local_ipam_dir(name, tmp_path):
    conf = load(PROFILES[name].conflist, VALUES, tmp_path / "ipam")
    ipam = conf["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.244.2.0/24"}]]
    assert ipam["dataDir"] == str(tmp_path / "ipam")
    assert conf["cniVersion"] == "1.0.0" and conf["plugins"][0]["ipMasq"] is False


def test_a_single_plugin_conf_is_wrapped_as_libcni_does(tmp_path):
    path = tmp_path / "one.conf"
    path.write_text(json.dumps({"cniVersion": "0.4.0", "name": "n", "type": "bridge",
                                "ipam": {"type": "host-local", "subnet": "${POD_CIDR}",
                                         "dataDir": "/somewhere"}}))
    conf = load(path, VALUES, tmp_path)
    assert conf["plugins"] == [{"type": "bridge", "ipam": {
        "type": "host-local", "subnet": "10.244.2.0/24", "dataDir": "/somewhere"}}]


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

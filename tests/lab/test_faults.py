"""Mutation test: every lab fault turns the requirements it targets red and no others."""
import pytest

from netconform.backends.lab.faults import FAULTS
from netconform.requirements import CATALOG

from .conftest import leftovers, needs_root, run_suite

pytestmark = needs_root


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_turns_its_requirements_red_and_spares_the_rest(name, tmp_path):
    fault = FAULTS[name]
    # short attempts: a fault's timeouts cost two seconds, not four; a healthy retry still heals
    run = run_suite(tmp_path, f"--lab-fault={name}", "--probe-timeout=1")
    must_failed = any(row["level"] == "MUST" and row["verdict"] == "fail" for row in run.results["summary"])
    assert must_failed or not any(CATALOG[req].level == "MUST" for req in fault.breaks)
    assert run.returncode == (1 if must_failed else 2), run.output[-3000:]
    assert run.results["verdict"] == ("NOT CONFORMANT" if must_failed else "INCOMPLETE")
    assert f"fault injected: {name}" in run.output
    verdicts = {row["id"]: row["verdict"] for row in run.results["summary"] if row["total"]}
    for broken in fault.breaks:
        assert verdicts[broken] == "fail", (broken, verdicts)
    spared = {req: v for req, v in verdicts.items() if req not in fault.breaks + fault.also}
    assert spared and all(v == "pass" for v in spared.values()), \
        {req: v for req, v in spared.items() if v != "pass"}
    assert run.results["meta"]["lab_faults"] == [name]
    assert leftovers(run.prefix) == []


def test_every_must_and_should_requirement_has_a_fault_that_breaks_it():
    broken = {req for fault in FAULTS.values() for req in fault.breaks}
    wanted = {r.id for r in CATALOG.values() if r.level in ("MUST", "SHOULD") and r.implemented} | {"MTU"}
    assert wanted - broken == set()

"""The run's one verdict (network-model.md, "The verdict") from per-requirement rows and counts."""
import pytest

from netconform.requirements import Requirement
from netconform.verdict import (CONFORMANT, INCOMPLETE, NOT_CONFORMANT, Selection, decide, headline,
                                row_status)

MUST = Requirement("POD-POD-CROSS", "MUST", "t", "r")


def row(rid="POD-POD-CROSS", level="MUST", verdict="pass", note="", gaps=""):
    return {"id": rid, "level": level, "verdict": verdict, "note": note, "gaps": gaps}


def status(outcomes, planned=None, selected=None, req=MUST, not_applicable=None, skips=()):
    n = len(outcomes)
    selection = Selection({req.id: n if planned is None else planned},
                          {req.id: n if selected is None else selected}, not_applicable or {})
    return row_status(req, outcomes, list(skips), selection)


def test_every_must_row_passing_is_conformant():
    verdict = decide([row(), row("NODE-POD"), row("SVC-HAIRPIN", "SHOULD", "fail")])
    assert (verdict.word, verdict.exit_code) == (CONFORMANT, 0)


@pytest.mark.parametrize("missing", ["not run", "not implemented", "error", "skipped", "incomplete"])
def test_a_must_row_without_a_full_pass_makes_it_incomplete(missing):
    verdict = decide([row(), row("NODE-POD", verdict=missing, note="why")])
    assert (verdict.word, verdict.exit_code) == (INCOMPLETE, 2)
    assert any("NODE-POD" in reason for reason in verdict.reasons)


def test_a_must_row_checked_in_part_is_incomplete_and_names_the_gap():
    verdict = decide([row(), row("HOSTPORT", gaps="shared hostPorts")])
    assert verdict.word == INCOMPLETE
    assert "MUST requirements checked in part: HOSTPORT (not yet: shared hostPorts)" in verdict.reasons


def test_an_interrupted_run_is_incomplete_even_when_everything_it_ran_passed():
    verdict = decide([row()], interrupted="by SIGTERM during x, after 3 of 9 item(s)")
    assert verdict.word == INCOMPLETE and verdict.exit_code == 2
    assert verdict.reasons[0] == "interrupted: by SIGTERM during x, after 3 of 9 item(s)"


def test_a_must_failure_wins_over_everything_missing():
    verdict = decide([row(verdict="fail"), row("NODE-POD", verdict="not run")], interrupted="by x")
    assert (verdict.word, verdict.exit_code) == (NOT_CONFORMANT, 1)


def test_a_known_deviation_on_a_must_row_is_not_conformant_and_says_so():
    rows = [row(verdict="known deviation")]
    verdict = decide(rows)
    assert verdict.word == NOT_CONFORMANT
    assert headline(verdict, rows) == "NOT CONFORMANT, known deviation: POD-POD-CROSS"


def test_declared_not_applicable_rows_are_named_in_the_verdict_line():
    rows = [row(), row("HOSTNET-POD", verdict="not applicable", note="hostNetwork forbidden")]
    verdict = decide(rows)
    assert verdict.word == CONFORMANT
    assert headline(verdict, rows) == "CONFORMANT, with 1 requirement(s) declared not applicable"
    assert "declared not applicable: HOSTNET-POD (hostNetwork forbidden)" in verdict.reasons


@pytest.mark.parametrize("fail_on, code", [("must", 0), ("should", 1), ("may", 1)])
def test_should_failures_change_the_exit_code_only_when_asked(fail_on, code):
    verdict = decide([row(), row("SVC-HAIRPIN", "SHOULD", "fail")], fail_on=fail_on)
    assert verdict.word == CONFORMANT and verdict.exit_code == code


def test_row_status_from_items_and_selection():
    assert status(["passed"] * 4).status == "pass"
    assert status(["passed", "failed"]).status == "fail"
    assert status(["passed", "xfailed"]).status == "known deviation"
    assert status(["passed", "error"]).status == "error"
    assert (status([], planned=4, selected=0).status, status([], planned=4, selected=0).note) == \
        ("not run", "deselected")
    assert status([], planned=0, selected=0).note == "not selected"
    assert status(["passed"] * 2, selected=4).status == "incomplete"  # interrupted
    assert status(["passed"] * 2, planned=4).status == "incomplete"  # some pairs deselected
    skipped = status(["skipped"], skips=["needs a second node; this cluster has 1"])
    assert (skipped.status, skipped.note) == ("skipped", "needs a second node; this cluster has 1")
    assert status(["passed"], not_applicable={MUST.id: "why"}).status == "not applicable"
    assert status([], req=Requirement("DNS-SVC", "MUST", "t", "r", implemented=False)).status == \
        "not implemented"


def test_a_family_the_cluster_has_and_the_run_cannot_probe_leaves_every_row_incomplete():
    """A requirement holds only in every family the cluster has: passing in IPv4 alone on a
    dual-stack cluster says nothing of IPv6, so no row passes; a failure in IPv4 still fails."""
    selection = Selection({MUST.id: 2}, {MUST.id: 2}, {}, ("ipv6",))
    gap = row_status(MUST, ["passed", "passed"], [], selection)
    assert gap.status == "incomplete" and "not implemented" in gap.note and "ipv6" in gap.note
    assert row_status(MUST, ["passed", "failed"], [], selection).status == "fail"
    verdict = decide([row(verdict=gap.status, note=gap.note)])
    assert verdict.word == INCOMPLETE and any("ipv6" in reason for reason in verdict.reasons)

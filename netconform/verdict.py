"""The run's one verdict (shared/docs/network-model.md, "The verdict"), as pure functions.

Per requirement, a status from its items and from what the run selected; from the statuses, one of
CONFORMANT / NOT CONFORMANT / INCOMPLETE with the reasons a reader needs, and the exit code.
Nothing here knows pytest: the plugin hands in counts and records, and shows what comes back.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .requirements import Requirement

CONFORMANT, NOT_CONFORMANT, INCOMPLETE = "CONFORMANT", "NOT CONFORMANT", "INCOMPLETE"
EXIT_CODES = {CONFORMANT: 0, NOT_CONFORMANT: 1, INCOMPLETE: 2}
PASSING = ("pass", "flaky")
FAILING = ("fail", "known deviation")
FAIL_ON = {"must": ("MUST",), "should": ("MUST", "SHOULD"), "may": ("MUST", "SHOULD", "MAY")}


@dataclass(frozen=True)
class Selection:
    """What a run set out to do, per requirement: items collected and items selected to run."""

    planned: dict[str, int] = field(default_factory=dict)
    selected: dict[str, int] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)  # ID -> the user's reason
    # IP families the cluster has that this version cannot probe yet: no row can pass for them
    untested_families: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowStatus:
    status: str  # pass, flaky, fail, known deviation, error, skipped, incomplete, not run,
    #              not implemented, not applicable
    note: str = ""  # why, for anything but a plain pass


def row_status(req: Requirement, outcomes: list[str], skip_reasons: list[str],
               selection: Selection) -> RowStatus:
    """One requirement's status from its items' outcomes (passed, failed, error, skipped, xfailed,
    xpassed; flaky passes are 'passed' here and told apart by the caller)."""
    if req.id in selection.not_applicable:
        return RowStatus("not applicable", selection.not_applicable[req.id])
    if not req.implemented:
        return RowStatus("not implemented", "this version of netconform has no check for it yet")
    counts = Counter(outcomes)
    planned, selected = selection.planned.get(req.id, 0), selection.selected.get(req.id, 0)
    if counts["failed"]:
        return RowStatus("fail", f"{counts['failed']} of {len(outcomes)} item(s) failed")
    if counts["xfailed"]:
        return RowStatus("known deviation", f"{counts['xfailed']} item(s) failed as a known deviation")
    if counts["error"]:
        return RowStatus("error", f"{counts['error']} item(s) could not be checked (harness error)")
    if selected == 0:
        return RowStatus("not run", "deselected" if planned else "not selected")
    if len(outcomes) < selected:
        return RowStatus("incomplete", f"{len(outcomes)} of {selected} selected item(s) ran")
    if counts["skipped"] == len(outcomes):
        reasons = sorted(set(skip_reasons)) or ["skipped"]
        return RowStatus("skipped", "; ".join(reasons))
    if counts["skipped"]:
        return RowStatus("incomplete", f"{counts['skipped']} of {len(outcomes)} item(s) skipped: "
                                       f"{'; '.join(sorted(set(skip_reasons)))}")
    if selected < planned:
        return RowStatus("incomplete", f"{selected} of {planned} item(s) selected")
    if selection.untested_families:
        return RowStatus("incomplete", f"not implemented: the cluster also has "
                                       f"{' and '.join(selection.untested_families)}, which this version "
                                       f"does not probe yet; a requirement holds only in every family")
    return RowStatus("pass", "")


@dataclass(frozen=True)
class RunVerdict:
    word: str
    exit_code: int
    reasons: tuple[str, ...]  # one line each: what failed, or what is missing for a verdict


def decide(rows: list[dict], interrupted: str | None = None, fail_on: str = "must") -> RunVerdict:
    """The verdict from the summary rows ({id, level, verdict, note, gaps}) of every requirement."""
    must = [r for r in rows if r["level"] == "MUST"]
    failed = [r for r in must if r["verdict"] in FAILING]
    reasons: list[str] = []
    if failed:
        reasons.append("failed: " + ", ".join(
            r["id"] + (" (known deviation)" if r["verdict"] == "known deviation" else "") for r in failed))
    if interrupted:
        reasons.append(f"interrupted: {interrupted}")
    groups: dict[str, list[str]] = {}
    for r in must:
        if r["verdict"] in FAILING or r["verdict"] == "not applicable":
            continue
        if r["verdict"] in PASSING:
            if r.get("gaps"):
                groups.setdefault("checked in part", []).append(f"{r['id']} (not yet: {r['gaps']})")
            continue
        label = {"not run": r.get("note") or "not run", "not implemented": "not implemented",
                 "error": "in error", "skipped": "skipped", "incomplete": "incomplete"}[r["verdict"]]
        plain = label in ("not implemented", "deselected", "not selected", "not run")
        detail = f" ({r['note']})" if r.get("note") and not plain else ""
        groups.setdefault(label, []).append(r["id"] + detail)
    missing = [f"MUST requirements {label}: {', '.join(ids)}" for label, ids in groups.items()]
    if failed:
        word = NOT_CONFORMANT
    elif interrupted or missing:
        word = INCOMPLETE
    else:
        word = CONFORMANT
    reasons += missing
    not_applicable = [f"{r['id']} ({r['note']})" for r in rows if r["verdict"] == "not applicable"]
    if not_applicable:
        reasons.append(f"declared not applicable: {', '.join(not_applicable)}")
    code = EXIT_CODES[word]
    if word != NOT_CONFORMANT and any(r["verdict"] in FAILING for r in rows
                                      if r["level"] in FAIL_ON[fail_on]):
        code = 1
        reasons.append(f"--fail-on={fail_on}: failed: " + ", ".join(
            r["id"] for r in rows if r["verdict"] in FAILING and r["level"] in FAIL_ON[fail_on]))
    return RunVerdict(word, code, tuple(reasons))


def headline(verdict: RunVerdict, rows: list[dict]) -> str:
    """The verdict line: the word, and what qualifies it (known deviations, not applicable rows)."""
    extra = []
    known = [r["id"] for r in rows if r["level"] == "MUST" and r["verdict"] == "known deviation"]
    if verdict.word == NOT_CONFORMANT and known:
        extra.append(f"known deviation: {', '.join(known)}")
    declared = [r["id"] for r in rows if r["verdict"] == "not applicable"]
    if verdict.word == CONFORMANT and declared:
        extra.append(f"with {len(declared)} requirement(s) declared not applicable")
    return verdict.word + (f", {'; '.join(extra)}" if extra else "")

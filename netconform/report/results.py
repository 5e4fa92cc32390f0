"""The record of one run: what each item checked, what it saw, and the verdict per requirement."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..requirements import CATALOG, LEVELS
from ..verdict import CONFORMANT, Selection, decide, headline, row_status

SCHEMA = "netconform/results/v2"  # v2: verdict, verdict_reasons, exit_code, row notes


@dataclass
class ItemRecord:
    id: str  # 'POD-POD-CROSS[tcp/ipv4:node-1/probe-a->node-2/probe-b]'
    nodeid: str  # pytest's node id
    requirement: str
    level: str
    protocol: str
    source: dict  # {"name", "node", "ip"}
    destination: dict | None
    outcome: str  # passed, failed, xfailed, xpassed, skipped, error (the harness could not check)
    flaky: bool = False
    kind: str = ""  # the verdict's kind: pass, flaky, timeout, refused, unreachable, nat, ...
    reason: str = ""
    observed: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)  # routes and interfaces of the nodes involved
    deviation: str | None = None
    duration: float = 0.0
    family: str = "ipv4"  # the IP family of the addresses the item used: ipv4 or ipv6


def requirement_summary(records: list[ItemRecord], selection: Selection | None = None) -> list[dict]:
    """Per requirement: counts by outcome, a status and why (see netconform.verdict), in catalog order."""
    selection = selection or _selection_of(records)
    rows = []
    for req in CATALOG.values():
        mine = [r for r in records if r.requirement == req.id]
        counts = Counter(r.outcome for r in mine)
        flaky = sum(1 for r in mine if r.flaky and r.outcome == "passed")
        status = row_status(req, [r.outcome for r in mine],
                            [r.reason for r in mine if r.outcome == "skipped"], selection)
        verdict = "flaky" if status.status == "pass" and flaky else status.status
        rows.append({"id": req.id, "level": req.level, "title": req.title, "rule": req.rule,
                     "verdict": verdict, "note": status.note, "gaps": req.gaps,
                     "total": len(mine), "flaky": flaky, "families": _by_family(mine),
                     **{k: counts[k] for k in ("passed", "failed", "error", "xfailed",
                                               "xpassed", "skipped")}})
    return rows


def _by_family(records: list[ItemRecord]) -> dict[str, dict[str, int]]:
    """Per IP family: its items, and how many passed (a requirement holds only in every family)."""
    found: dict[str, dict[str, int]] = {}
    for record in records:
        counts = found.setdefault(record.family, {"total": 0, "passed": 0})
        counts["total"] += 1
        counts["passed"] += record.outcome == "passed"
    return dict(sorted(found.items()))


def _selection_of(records: list[ItemRecord]) -> Selection:
    """Without the run's own counts: every recorded item was planned and selected."""
    counts = Counter(r.requirement for r in records)
    return Selection(dict(counts), dict(counts))


def build(meta: dict, records: list[ItemRecord], selection: Selection | None = None,
          interrupted: str | None = None, fail_on: str = "must", coverage: dict | None = None) -> dict:
    summary = requirement_summary(records, selection)
    for row in summary:  # pairs tested / pairs that exist, where the run planned the row
        row["pairs"] = (coverage or {}).get("requirements", {}).get(row["id"])
    verdict = decide(summary, interrupted, fail_on)
    return {"schema": SCHEMA, "meta": meta, "verdict": verdict.word,
            "headline": headline(verdict, summary), "verdict_reasons": list(verdict.reasons),
            "exit_code": verdict.exit_code, "conformant": verdict.word == CONFORMANT,
            "interrupted": interrupted, "levels": list(LEVELS), "summary": summary, "coverage": coverage,
            "items": [asdict(r) for r in sorted(records, key=lambda r: r.id)]}


def write(path: Path, document: dict) -> None:
    """Write atomically: a run stopped while writing leaves the previous file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document, indent=2, sort_keys=False))
    partial.replace(path)


def read(path: Path) -> dict:
    document = json.loads(Path(path).read_text())
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a netconform results file ({SCHEMA})")
    return document

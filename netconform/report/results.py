"""The record of one run: what each item checked, what it saw, and the verdict per requirement."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..requirements import CATALOG, LEVELS

SCHEMA = "netconform/results/v1"


@dataclass
class ItemRecord:
    id: str  # 'POD-POD-CROSS[tcp:node-1/probe-a->node-2/probe-b]'
    nodeid: str  # pytest's node id
    requirement: str
    level: str
    protocol: str
    source: dict  # {"name", "node", "ip"}
    destination: dict | None
    outcome: str  # passed, failed, xfailed, xpassed, skipped, error
    flaky: bool = False
    kind: str = ""  # the verdict's kind: pass, flaky, timeout, refused, unreachable, nat, ...
    reason: str = ""
    observed: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)  # routes and interfaces of the nodes involved
    deviation: str | None = None
    duration: float = 0.0


def requirement_summary(records: list[ItemRecord]) -> list[dict]:
    """Per requirement: counts by outcome and one verdict, in catalog order."""
    rows = []
    for req in CATALOG.values():
        mine = [r for r in records if r.requirement == req.id]
        counts = Counter(r.outcome for r in mine)
        flaky = sum(1 for r in mine if r.flaky and r.outcome == "passed")
        if not mine:
            verdict = "not run"
        elif counts["failed"] or counts["error"]:
            verdict = "fail"
        elif counts["xfailed"] or counts["xpassed"]:
            verdict = "known deviation"
        elif counts["passed"] == 0:
            verdict = "skipped"
        elif flaky:
            verdict = "flaky"
        else:
            verdict = "pass"
        rows.append({"id": req.id, "level": req.level, "title": req.title, "rule": req.rule,
                     "verdict": verdict, "total": len(mine), "flaky": flaky,
                     **{k: counts[k] for k in ("passed", "failed", "error", "xfailed",
                                               "xpassed", "skipped")}})
    return rows


def conformant(summary: list[dict]) -> bool:
    """No MUST requirement failed (SHOULD failures are reported, MAY never fatal)."""
    return not any(row["level"] == "MUST" and row["verdict"] == "fail" for row in summary)


def build(meta: dict, records: list[ItemRecord]) -> dict:
    summary = requirement_summary(records)
    return {"schema": SCHEMA, "meta": meta, "conformant": conformant(summary),
            "levels": list(LEVELS), "summary": summary,
            "items": [asdict(r) for r in sorted(records, key=lambda r: r.id)]}


def write(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False))


def read(path: Path) -> dict:
    document = json.loads(Path(path).read_text())
    if document.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a netconform results file ({SCHEMA})")
    return document

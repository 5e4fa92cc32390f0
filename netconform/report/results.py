"""The record of one run: what each item checked, what it saw, and the verdict per requirement."""
from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..requirements import CATALOG, LEVELS
from ..verdict import CONFORMANT, Selection, decide, headline, row_status

# v2: verdict, verdict_reasons, exit_code, row notes; v3: each node's evidence once, in
# "evidence", and an item's "evidence" the keys of its nodes'; "coverage", each row's "pairs";
# v4: an item leaves out the fields that hold their default (UNSAID), and names its pytest test
# function by its index in the document's "tests" instead of repeating its node id
SCHEMA = "netconform/results/v4"
READABLE = ("netconform/results/v2", "netconform/results/v3", SCHEMA)  # what the matrix across CNIs reads
# fields an item in the file leaves out when they hold these values (most items pass): read() puts them back
UNSAID = {"flaky": False, "reason": "", "deviation": None, "evidence": [], "observed": {}}


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
    # routes and interfaces of the nodes involved, {node: evidence}; in results.json the keys of
    # the document's "evidence" (shared_evidence): a node's tables are written once, not per item
    evidence: dict | list = field(default_factory=dict)
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
            **shared_evidence([asdict(r) for r in sorted(records, key=lambda r: r.id)])}


def shared_evidence(items: list[dict]) -> dict:
    """{"evidence": {key: a node's interfaces and routes}, "items": items naming their keys}.

    Every failed item carried the full tables of both its nodes (7.4 KB on average): a node
    fault on a large cluster repeated the same tables thousands of times. The probes report
    once, so the tables of one node are the same for all its items; the key is the node's name
    (with a suffix should two items ever carry different tables for one node)."""
    shared: dict[str, dict] = {}
    for item in items:
        keys = []
        for node, tables in (item["evidence"] or {}).items():
            key, n = node, 1
            while key in shared and shared[key] != tables:
                n += 1
                key = f"{node}#{n}"
            shared.setdefault(key, tables)
            keys.append(key)
        item["evidence"] = keys
    return {"evidence": shared, "items": items}


def write(path: Path, document: dict) -> None:
    """Write atomically (a run stopped while writing leaves the previous file, never half of
    one) and as a stream: the document's head indented, then one item per line, so a run of
    100,000 items never holds its whole text in memory at once. Items are written compact
    (_compact): at 50 nodes the node ids and the default fields were a fifth of the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    items = document.get("items", [])
    tests: dict[str, int] = {}
    for item in items:
        function = _test_function(item)
        if function is not None:
            tests.setdefault(function, len(tests))
    head = {**{k: v for k, v in document.items() if k != "items"}, "tests": list(tests)}
    with partial.open("w") as out:
        out.write(json.dumps(head, indent=2)[:-2])  # without its closing "\n}"
        out.write(',\n  "items": [')
        for n, item in enumerate(items):
            out.write(("," if n else "") + "\n    " + json.dumps(_compact(item, tests), separators=(",", ":")))
        out.write("\n  ]\n}\n")
    partial.replace(path)


def _test_function(item: dict) -> str | None:
    """The node id of the item's test function, when its node id is that function's with the
    item's own parameters ('suites/test_dns.py::test_dns_srv' for DNS-SRV[tcp/ipv4:…]); else None."""
    params = item["id"][len(item["requirement"]):]
    nodeid = item.get("nodeid", "")
    if params.startswith("[") and nodeid.endswith(params) and len(nodeid) > len(params):
        return nodeid[:-len(params)]
    return None


def _compact(item: dict, tests: dict[str, int]) -> dict:
    out = {k: v for k, v in item.items() if k not in UNSAID or v != UNSAID[k]}
    function = _test_function(item)
    if function is not None:
        del out["nodeid"]
        out["test"] = tests[function]
    return out


def _full(item: dict, tests: list[str]) -> dict:
    """An item as the run made it, from its compact form (_compact)."""
    if "test" in item:
        item["nodeid"] = tests[item.pop("test")] + item["id"][len(item["requirement"]):]
    for key, value in UNSAID.items():
        if key not in item:
            item[key] = copy.copy(value)
    return item


def read(path: Path) -> dict:
    """A results file, its items whole again (as build() made them) whatever schema wrote them."""
    document = json.loads(Path(path).read_text())
    if not isinstance(document, dict) or document.get("schema") not in READABLE:
        raise ValueError(f"{path} is not a netconform results file ({SCHEMA})")
    tests = document.pop("tests", [])
    document["items"] = [_full(item, tests) for item in document.get("items", [])]
    return document

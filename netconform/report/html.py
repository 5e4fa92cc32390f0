"""report.html: a conformance summary, a node×node matrix per requirement, and failing evidence."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..requirements import CATALOG

TEMPLATES = Path(__file__).parent / "templates"
BAD = ("failed", "error")
# Past this many nodes a matrix is drawn as a heatmap: a colour per cell, the counts only where an
# item failed (in its tooltip), node numbers as headers; a 100-node cluster's matrices in
# words would make the page tens of megabytes
HEATMAP_ABOVE = 20
NOT_NODES = ("svc", "outside")  # the "node" of a Service's and of the outside client's endpoints


def matrices(items: list[dict]) -> list[dict]:
    """For each requirement with pairs, and each IP family it ran in: cells[source node][destination
    node] = counts and kinds."""
    by_requirement: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for item in items:
        if item["destination"]:
            by_requirement[(item["requirement"], item.get("family", "ipv4"))].append(item)
    found = []
    for requirement, family in sorted(by_requirement, key=lambda k: (list(CATALOG).index(k[0])
                                                                     if k[0] in CATALOG else len(CATALOG), k[1])):
        mine = by_requirement[(requirement, family)]
        nodes = sorted({i["source"]["node"] for i in mine} | {i["destination"]["node"] for i in mine},
                       key=_natural)
        cells: dict[tuple, dict] = {}
        for item in mine:
            cell = cells.setdefault((item["source"]["node"], item["destination"]["node"]),
                                    {"total": 0, "bad": 0, "known": 0, "kinds": set()})
            cell["total"] += 1
            if item["outcome"] in BAD:
                cell["bad"] += 1
                cell["kinds"].add(item["kind"])
            elif item["outcome"] in ("xfailed", "xpassed"):
                cell["known"] += 1
        rows = [{"node": src, "cells": [_cell(cells.get((src, dst))) for dst in nodes]}
                for src in nodes]
        found.append({"requirement": requirement, "family": family, "nodes": nodes, "rows": rows,
                      "heatmap": sum(n not in NOT_NODES for n in nodes) > HEATMAP_ABOVE})
    return found


def _cell(cell: dict | None) -> dict:
    if cell is None:
        return {"text": "", "css": "none", "title": "no pair"}
    passed = cell["total"] - cell["bad"] - cell["known"]
    css = "fail" if cell["bad"] else "known" if cell["known"] else "pass"
    title = ", ".join(sorted(cell["kinds"])) if cell["kinds"] else css
    return {"text": f"{passed}/{cell['total']}", "css": css,
            "title": title if css == "pass" else f"{passed}/{cell['total']} passed: {title}"}


def _natural(name: str) -> tuple:
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (name, 0)


def render(document: dict) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    items = document["items"]
    return env.get_template("report.html.j2").render(
        doc=document, meta=document["meta"], summary=document["summary"],
        matrices=matrices(items), failures=[i for i in items if i["outcome"] in BAD],
        deviations=[i for i in items if i["outcome"] in ("xfailed", "xpassed")])


def write(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(document))

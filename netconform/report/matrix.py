"""The cross-CNI matrix: many runs' results.json in, one HTML page out. Rows are requirements,
grouped by level; columns are CNIs; each cell is the run's verdict with its counts, linking to that
run's own report."""
from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..requirements import CATALOG, LEVELS
from . import results
from .html import TEMPLATES

CSS = {"pass": "pass", "fail": "fail", "known deviation": "known", "flaky": "flaky",
       "not run": "not-run", "skipped": "skipped", "error": "error", "incomplete": "incomplete",
       "not implemented": "not-implemented", "not applicable": "not-applicable"}
VERDICT_CSS = {"CONFORMANT": "pass", "NOT CONFORMANT": "fail", "INCOMPLETE": "incomplete"}


def column(path: Path, output_dir: Path) -> dict:
    """One run: its name, where its report is (relative to the page) and its verdict per row."""
    document = results.read(path)
    meta = document["meta"]
    report = path.parent / "report.html"
    return {
        "name": meta.get("cni", path.parent.name),
        "where": meta.get("backend", ""),
        "proxy_mode": meta.get("proxy_mode"),
        "verdict": document["verdict"],
        "css": VERDICT_CSS[document["verdict"]],
        "reasons": document["verdict_reasons"],
        "link": os.path.relpath(report, output_dir) if report.exists() else None,
        "rows": {row["id"]: row for row in document["summary"]},
    }


def cell(row: dict | None) -> dict:
    if row is None or row["verdict"] == "not run":
        return {"text": "not run", "css": "not-run", "counts": ""}
    known = row["xfailed"] + row["xpassed"]
    counts = f"{row['passed']}/{row['total']}" + (f", {known} known" if known else "")
    return {"text": row["verdict"], "css": CSS.get(row["verdict"], "none"), "counts": counts}


def build(paths: list[Path], output: Path) -> dict:
    columns = [column(Path(p), output.parent) for p in paths]
    by_name: dict[str, list[dict]] = {}
    for col in columns:
        by_name.setdefault(col["name"], []).append(col)
    for name, same in by_name.items():  # two runs of one CNI: tell them apart
        modes = [col["proxy_mode"] for col in same]
        if len(same) > 1 and None not in modes and len(set(modes)) == len(modes):
            for col in same:  # by kube-proxy's mode, when that is what differs (./run matrix)
                col["name"] = f"{name} ({col['proxy_mode']})"
        else:  # by number (say two lab conflists)
            for number, col in enumerate(same[1:], 2):
                col["name"] = f"{name} ({number})"
    groups = []
    for level in LEVELS:
        rows = [{"id": req.id, "title": req.title,
                 "cells": [cell(col["rows"].get(req.id)) for col in columns]}
                for req in CATALOG.values() if req.level == level]
        groups.append({"level": level, "rows": rows})
    return {"columns": columns, "groups": groups}


def write(paths: list[Path], output: Path) -> None:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(env.get_template("matrix.html.j2").render(**build(paths, output)))

"""The cross-CNI matrix: many runs' results.json in, one HTML page out. Rows are requirements,
grouped by level; columns are CNIs; each cell is the run's verdict with its counts, linking to that
run's own report. Given the columns expected (the nightly's CNIs), one without results stays on the
page as "not run" instead of vanishing from it.

    python -m netconform.report.matrix [RESULTS.json...] [--expect CNI...] [--output FILE]
"""
from __future__ import annotations

import argparse
import os
import sys
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
        "name": column_name(meta, path.parent.name),
        "where": meta.get("backend", ""),
        "proxy_mode": meta.get("proxy_mode"),
        "verdict": document["verdict"],
        "css": VERDICT_CSS[document["verdict"]],
        "reasons": document["verdict_reasons"],
        "link": os.path.relpath(report, output_dir) if report.exists() else None,
        "rows": {row["id"]: row for row in document["summary"]},
    }


def column_name(meta: dict, fallback: str) -> str:
    """The CNI, and the cluster's IP families unless it is IPv4 alone: 'kindnet', 'kindnet-dual',
    'kindnet-ipv6' (one CNI on clusters of each family is a column each, as the nightly names them)."""
    name = meta.get("cni", fallback)
    listed = meta.get("cluster_ip_families") or ()
    families = {listed} if isinstance(listed, str) else set(listed)
    suffix = "-dual" if families == {"ipv4", "ipv6"} else "-ipv6" if families == {"ipv6"} else ""
    return name if name.endswith(suffix) else f"{name}{suffix}"  # a conflist named bridge-dual


def not_run(name: str) -> dict:
    """An expected column whose run left no results.json (its job failed before the suite ended)."""
    return {"name": name, "where": "", "proxy_mode": None, "verdict": "not run", "css": "not-run",
            "reasons": ["no results.json: the run did not happen or did not finish"], "link": None,
            "rows": {}}


def cell(row: dict | None) -> dict:
    if row is None or row["verdict"] == "not run":
        return {"text": "not run", "css": "not-run", "counts": ""}
    known = row["xfailed"] + row["xpassed"]
    counts = f"{row['passed']}/{row['total']}" + (f", {known} known" if known else "")
    return {"text": row["verdict"], "css": CSS.get(row["verdict"], "none"), "counts": counts}


def build(paths: list[Path], output: Path, expect: list[str] | None = None) -> dict:
    """The page's data. With ``expect``, columns come in that order, each expected name without a
    run as "not run", and runs of other names after them."""
    columns = [column(Path(p), output.parent) for p in paths]
    if expect:
        rank = {name: n for n, name in enumerate(expect)}
        found = {col["name"] for col in columns}
        columns += [not_run(name) for name in expect if name not in found]
        columns.sort(key=lambda col: rank.get(col["name"], len(rank)))  # stable: runs keep their order
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


def write(paths: list[Path], output: Path, expect: list[str] | None = None) -> dict:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    page = build(paths, output, expect)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(env.get_template("matrix.html.j2").render(**page))
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netconform.report.matrix",
                                     description="One HTML page comparing CNIs.")
    # none at all is a page too: every expected column "not run" says more than no page
    parser.add_argument("results", nargs="*", type=Path, help="results.json of each run")
    parser.add_argument("--expect", nargs="+", default=None, metavar="CNI",
                        help="the columns the page must show, in this order; one without results "
                             "reads \"not run\"")
    parser.add_argument("--output", type=Path, default=Path("reports/matrix.html"))
    args = parser.parse_args(argv)
    if not args.results and not args.expect:
        parser.error("give results.json files, --expect, or both")
    swallowed = [name for name in args.expect or () if name.endswith(".json") or "/" in name]
    if swallowed:  # --expect takes every word after it: files given there are not read
        parser.error(f"--expect {swallowed[0]}: that is a file, not a column; give the results "
                     "files before --expect")
    try:
        page = write(args.results, args.output, args.expect)
    except (OSError, ValueError, KeyError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    missing = [col["name"] for col in page["columns"] if col["verdict"] == "not run"]
    print(f"matrix of {len(args.results)} run(s): {args.output}"
          + (f" (not run: {', '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A run compared with an earlier one (``--baseline old/results.json``): which items fail now that
passed then (a regression, introduced between the two runs), which failed then and pass now
(fixed), which fail in both (unchanged). Items are matched by their id, which names requirement,
protocol, family, source and destination, so two runs of the same cluster and options match item
for item; an item only one of the runs has is counted apart, never called new or fixed.

A pure function of the two documents: the report, the terminal and results.json show what it
returns.
"""
from __future__ import annotations

from pathlib import Path

from . import results

BAD = ("failed", "error")  # outcomes that are not a pass: a network failure, or the harness's error
PASSED = ("passed", "xpassed")  # a skipped item, or a known deviation (xfailed), is neither: counted apart
SHOWN = 20  # ids the terminal names per list (results.json and the report keep every one)


def load(path: Path) -> dict:
    """The baseline, read before the run starts: a file that is not a results file (any schema the
    matrix reads) is one line, and the run does not begin."""
    try:
        document = results.read(path)
        if not all(isinstance(item.get("id"), str) and isinstance(item.get("outcome"), str)
                   for item in document["items"]):
            raise TypeError("an item without its id or outcome")
        if not isinstance(document.get("meta", {}), dict) or not isinstance(document.get("verdict", ""), str):
            raise TypeError("its meta is not a mapping, or its verdict not a word")
        return document
    except OSError as exc:
        raise ValueError(f"--baseline {path}: {exc.strerror or exc}") from None
    # anything a file of another shape makes read() raise: deep nesting (RecursionError), a test
    # index out of range (IndexError), a field of another type
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) and str(path) in str(exc) else \
            f"{path} is not a netconform results file ({exc if isinstance(exc, TypeError) else exc.__class__.__name__})"
        raise ValueError(f"--baseline: {reason}") from None


def compare(baseline: dict, document: dict, path: Path | str) -> dict:
    """The comparison results.json keeps under "baseline"."""
    before = {item["id"]: item["outcome"] for item in baseline.get("items", [])}
    now = {item["id"]: item["outcome"] for item in document.get("items", [])}
    both = before.keys() & now.keys()
    meta = baseline.get("meta") if isinstance(baseline.get("meta"), dict) else {}
    return {
        "path": str(Path(path).resolve()),
        "verdict": baseline.get("verdict"),
        "started": meta.get("started"),
        "compared": len(both),
        # a failure is evidence about the network; an error is the harness's, kept apart (the spec)
        "new_failures": sorted(i for i in both if now[i] == "failed" and before[i] in PASSED),
        "new_errors": sorted(i for i in both if now[i] == "error" and before[i] in PASSED),
        "fixed": sorted(i for i in both if before[i] in BAD and now[i] in PASSED),
        "unchanged": sorted(i for i in both if before[i] in BAD and now[i] in BAD),
        # skipped or a known deviation in either run: neither new nor fixed
        "not_judged": sum(1 for i in both if before[i] not in PASSED + BAD or now[i] not in PASSED + BAD),
        # failing now, but the baseline did not run the item (another selection, size or family)
        "failing_not_in_baseline": sorted(i for i in now.keys() - before.keys() if now[i] in BAD),
        "only_in_baseline": len(before.keys() - now.keys()),
        "only_now": len(now.keys() - before.keys()),
    }


def lines(comparison: dict) -> list[str]:
    """What the terminal says of the comparison, after the verdict."""
    c = comparison
    said = [f"compared with {c['path']} ({c['verdict']}, {c['started']}): {c['compared']:,} item(s) in both; "
            f"{len(c['new_failures'])} new failure(s), "
            + (f"{len(c['new_errors'])} new error(s) (the harness's), " if c["new_errors"] else "")
            + f"{len(c['fixed'])} fixed, "
            f"{len(c['unchanged'])} still failing"
            + (f"; {len(c['failing_not_in_baseline'])} failing that the baseline did not run"
               if c["failing_not_in_baseline"] else "")
            + (f"; {c['not_judged']} skipped or a known deviation in one of them" if c["not_judged"] else "")
            + (f"; {c['only_now']} item(s) only in this run, {c['only_in_baseline']} only in the baseline"
               if c["only_now"] or c["only_in_baseline"] else "")]
    if not c["compared"]:
        said.append("  the two runs have no item in common: another selection, size or family")
    for title, key in (("new failure", "new_failures"), ("new error", "new_errors"), ("fixed", "fixed")):
        for item in c[key][:SHOWN]:
            said.append(f"  {title}: {item}")
        if len(c[key]) > SHOWN:
            said.append(f"  … and {len(c[key]) - SHOWN} more {title} item(s) (results.json: baseline)")
    return said

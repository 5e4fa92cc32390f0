"""One HTML page comparing CNIs: python reports/matrix.py RESULTS.json... [--output FILE]

Rows are the requirements of the network model, grouped by level; columns are the runs (one
results.json each, as a conformance run writes it); each cell links back to that run's report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from netconform.report import matrix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reports/matrix.py", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.json of each run")
    parser.add_argument("--output", type=Path, default=Path("reports/matrix.html"))
    args = parser.parse_args(argv)
    try:
        matrix.write(args.results, args.output)
    except (OSError, ValueError, KeyError) as exc:
        print(f"reports/matrix.py: {exc}", file=sys.stderr)
        return 2
    print(f"matrix of {len(args.results)} run(s): {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

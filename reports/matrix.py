"""One HTML page comparing CNIs: python reports/matrix.py RESULTS.json... [--expect CNI...] [--output FILE]

The same as ``python -m netconform.report.matrix`` (the nightly workflow's form): rows are the
requirements of the network model, grouped by level; columns are the runs (one results.json each,
as a conformance run writes it), and with ``--expect`` every expected CNI, "not run" where its run
left no results; each cell links back to that run's report.
"""
from __future__ import annotations

import sys

from netconform.report.matrix import main

if __name__ == "__main__":
    sys.exit(main())

"""The matrix command on real lab runs (bridge, ptp, a bridge conflist with ipMasq), read back from
the page a headless browser renders."""
import subprocess
import sys

import pytest

from .browser import CHROMIUM, TableReader, browser_dom
from .conftest import SHARED_RUNS, REPO, needs_root

pytestmark = [needs_root, pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]


@SHARED_RUNS
def test_the_matrix_of_three_lab_profiles_reads_back_in_a_browser(tmp_path, bridge_run, ptp_run, ipmasq_run):
    page = tmp_path / "site" / "index.html"
    done = subprocess.run([sys.executable, "reports/matrix.py", str(bridge_run.report_dir / "results.json"),
                           str(ptp_run.report_dir / "results.json"), str(ipmasq_run.report_dir / "results.json"),
                           "--output", str(page)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    reader = TableReader("matrix")
    reader.feed(browser_dom(page))
    header, *rows = reader.rows
    assert header == ["requirement", "bridge", "ptp", "bridge-ipmasq"]
    by_id = {row[0]: row[1:] for row in rows if len(row) == 4}
    assert by_id["POD-POD-CROSS"] == ["pass 72/72", "pass 72/72", "fail 0/72"]
    assert by_id["POD-POD-SAME"] == ["pass 18/18"] * 3
    # clients: the three nodes' probe-b, not web's backends (probe-a), over TCP and UDP
    assert by_id["SVC-CLUSTERIP"][:2] == ["pass 6/6", "pass 6/6"]
    assert by_id["SVC-SOURCE-IP"][:2] == ["pass 6/6", "pass 6/6"]  # a SHOULD row
    assert by_id["verdict"] == ["CONFORMANT", "CONFORMANT", "NOT CONFORMANT"]
    levels = [row[0] for row in rows if len(row) == 1]
    assert levels == ["MUST", "SHOULD", "MAY"]

"""The HTML report, rendered by a real headless browser, shows the summary table of a real run."""
import pytest

from .browser import CHROMIUM, TableReader, browser_dom
from .conftest import SHARED_RUNS, needs_root

pytestmark = [needs_root, pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]


@SHARED_RUNS
def test_the_browser_shows_every_must_and_service_requirement_passing(bridge_run):
    reader = TableReader("summary")
    reader.feed(browser_dom(bridge_run.report_dir / "report.html"))
    header, *rows = reader.rows
    assert header[:4] == ["requirement", "level", "check", "verdict"]
    by_id = {row[0]: row for row in rows}
    for requirement in ("POD-POD-SAME", "POD-POD-CROSS", "POD-IP-SELF", "NODE-POD",
                        "HOSTNET-POD", "LOCALHOST"):
        assert by_id[requirement][1] == "MUST" and by_id[requirement][3] == "pass"
    # total items: 3 protocols x 24 pairs; then per family, the pairs tested, "why"
    assert by_id["POD-POD-CROSS"][-4] == "72"
    assert by_id["POD-POD-CROSS"][-3] == "ipv4 72/72"
    assert by_id["POD-POD-CROSS"][-2] == "24 of 24"  # every pair on 3 nodes: --pairs auto samples above 10
    for requirement in ("SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-NODEPORT", "SVC-HAIRPIN",
                        "SVC-AFFINITY", "SVC-NO-ENDPOINTS", "SVC-ETP-LOCAL", "HOSTPORT"):
        assert by_id[requirement][3] == "pass", by_id[requirement]  # Services beside the MUST rows
    for requirement in ("DNS-SVC", "DNS-HEADLESS", "DNS-SRV", "DNS-POD-A", "DNS-PTR", "DNS-HOSTNET"):
        assert by_id[requirement][3] == "pass", by_id[requirement]  # real CoreDNS behind kube-dns
    for requirement in ("SVC-PORT-PROTOCOLS", "SVC-TYPE-CHANGE", "SVC-ENDPOINTSLICE-MANUAL", "DNS-POD-HOSTNAME"):
        assert by_id[requirement][3] == "pass", by_id[requirement]  # the rows that change Services
    assert by_id["SVC-UDP-BACKEND-CHANGE"][3] == "pass"  # pods made and deleted while the run goes on
    assert by_id["SCTP"][3] == "not implemented"  # a MAY row, not yet
    matrix = TableReader("matrix-POD-POD-CROSS-ipv4")
    matrix.feed(browser_dom(bridge_run.report_dir / "report.html"))
    assert matrix.rows[0] == ["from \\ to", "node-1", "node-2", "node-3"]
    assert matrix.rows[1] == ["node-1", "", "12/12", "12/12"]


@SHARED_RUNS
def test_the_report_says_how_long_each_phase_took(bridge_run):
    reader = TableReader("meta")
    reader.feed(browser_dom(bridge_run.report_dir / "report.html"))
    phases = {row[0]: row[1] for row in reader.rows if len(row) == 2}["phases"]
    for phase in ("setup", "probing", "teardown"):
        assert phase in phases, phases

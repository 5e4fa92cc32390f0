"""The HTML report, rendered by a real headless browser, shows the summary table of a real run."""
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from .conftest import needs_root

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [needs_root, pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]


class TableReader(HTMLParser):
    """Collect the cell texts of the table with a given id, from the DOM the browser built."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, 0, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and (dict(attrs).get("id") == self.table_id or self.inside):
            self.inside += 1
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if self.inside and tag == "table":
            self.inside -= 1
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def browser_dom(page) -> str:
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--disable-component-update",
                           "--no-first-run", "--disable-sync", f"--user-data-dir={page.parent / 'chromium'}",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_browser_shows_every_must_and_service_requirement_passing(bridge_run):
    reader = TableReader("summary")
    reader.feed(browser_dom(bridge_run.report_dir / "report.html"))
    header, *rows = reader.rows
    assert header[:4] == ["requirement", "level", "check", "verdict"]
    by_id = {row[0]: row for row in rows}
    for requirement in ("POD-POD-SAME", "POD-POD-CROSS", "POD-IP-SELF", "NODE-POD",
                        "HOSTNET-POD", "LOCALHOST"):
        assert by_id[requirement][1] == "MUST" and by_id[requirement][3] == "pass"
    assert by_id["POD-POD-CROSS"][-1] == "72"  # total items: 3 protocols x 24 pairs
    for requirement in ("SVC-CLUSTERIP", "SVC-SOURCE-IP", "SVC-NODEPORT", "SVC-HAIRPIN",
                        "SVC-AFFINITY", "SVC-NO-ENDPOINTS", "SVC-ETP-LOCAL", "HOSTPORT"):
        assert by_id[requirement][3] == "pass", by_id[requirement]  # Services beside the MUST rows
    assert by_id["DNS"][3] == "not run"
    matrix = TableReader("matrix-POD-POD-CROSS")
    matrix.feed(browser_dom(bridge_run.report_dir / "report.html"))
    assert matrix.rows[0] == ["from \\ to", "node-1", "node-2", "node-3"]
    assert matrix.rows[1] == ["node-1", "", "12/12", "12/12"]

"""The catalog follows the specification, and says truthfully which rows the suites check."""
import re
from pathlib import Path

import pytest

from netconform.requirements import CATALOG

from ..suites import suite_checks

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO.parent / "shared" / "docs" / "network-model.md"


def declared_checks() -> set[str]:
    return {check.requirement for check in suite_checks()}


def test_implemented_rows_are_exactly_the_rows_the_suites_check():
    implemented = {r.id for r in CATALOG.values() if r.implemented}
    assert implemented == declared_checks()


def test_every_row_and_level_of_the_specification_is_in_the_catalog():
    if not SPEC.exists():  # the specification lives beside the repository, in shared/
        pytest.skip(f"no specification at {SPEC}")
    rows = dict(re.findall(r"^\| `([A-Z0-9-]+)` \| (MUST|SHOULD|MAY) \|", SPEC.read_text(), re.M))
    assert rows, "no requirement rows found in the specification"
    assert {rid: r.level for rid, r in CATALOG.items()} == rows

"""The checks the conformance suites declare, loaded from suites/ as pytest would import them:
for tests that look at the suites (the catalog) or judge them without pytest (the mutation test)."""
import importlib.util
from pathlib import Path

from netconform.checks import Check

SUITES = Path(__file__).resolve().parents[1] / "suites"


def suite_checks() -> list[Check]:
    checks = []
    for path in sorted(SUITES.glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"suite_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        checks += [f.netconform_check for f in vars(module).values() if hasattr(f, "netconform_check")]
    return checks

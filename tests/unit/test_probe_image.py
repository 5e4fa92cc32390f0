"""The probe agent imports the standard library alone (ICMP through raw sockets, the self-report
through rtnetlink, DNS in its wire form), so that a stock Python image runs it as it is: the
ConfigMap route needs nothing installed, and the image built from probes/Dockerfile adds only
the file."""
import ast
import sys
from pathlib import Path

PROBES = Path(__file__).resolve().parents[2] / "probes"


def imported_packages() -> set[str]:
    tree = ast.parse((PROBES / "netprobe.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


def test_the_agent_imports_the_standard_library_alone():
    assert imported_packages() == set()


def test_the_dockerfile_adds_the_agent_to_a_stock_python_and_nothing_else():
    dockerfile = (PROBES / "Dockerfile").read_text()
    assert "pip install" not in dockerfile and not (PROBES / "requirements.txt").exists()
    assert "COPY netprobe.py /usr/local/bin/netprobe" in dockerfile
    assert 'ENTRYPOINT ["python", "-I", "-S", "/usr/local/bin/netprobe"]' in dockerfile

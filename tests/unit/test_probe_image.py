"""The probe image holds what the probe agent imports: the stdlib and dnspython (imported as
``dns``), pinned. ICMP and the self-report are the standard library's (raw sockets, rtnetlink), so
that a stock Python image can run the agent; DNS stays with a well-kept library."""
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


def test_the_agent_needs_only_pinned_packages_of_the_image():
    pinned = {line.split("==")[0] for line in (PROBES / "requirements.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    assert imported_packages() == {"dns"}
    assert pinned == {"dnspython"}
    assert all("==" in line for line in (PROBES / "requirements.txt").read_text().splitlines()
               if line and not line.startswith("#"))


def test_the_dockerfile_installs_the_requirements_and_runs_the_agent():
    dockerfile = (PROBES / "Dockerfile").read_text()
    assert "COPY requirements.txt" in dockerfile and "pip install --no-cache-dir -r" in dockerfile
    assert "COPY netprobe.py /usr/local/bin/netprobe" in dockerfile
    assert 'ENTRYPOINT ["python", "/usr/local/bin/netprobe"]' in dockerfile

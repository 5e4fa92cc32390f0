"""The hostile user's cases, in one place: interrupts, nonsense input, concurrent runs, big labs,
untrusted plugins and clusters. Each test names the behaviour it guards against; add yours here.

Helpers come from tests/lab/conftest.py (runs of the real suite in a subprocess, leftovers).
"""
from ..lab.conftest import (PREFIX, REPO, SuiteRun, lab_namespaces, leftovers, made_since, needs_root,  # noqa: F401
                            run_suite, start_and_wait_for, suite_command)

"""Loads the netconform pytest plugin for the suites (suites/) and the suite's own tests (tests/)."""
pytest_plugins = ["netconform.pytest_plugin"]

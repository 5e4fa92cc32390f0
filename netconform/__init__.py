"""netconform: a conformance test suite for the Kubernetes network model.

The harness lives here: backends (where probes run), the requirement catalog, the probing engine
and the reports. The suites under ``suites/`` only declare what is checked.
"""
__version__ = "0.1.0"

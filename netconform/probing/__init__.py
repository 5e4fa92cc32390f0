"""The probing engine: batches of connections run by the probes, and the verdicts on them."""

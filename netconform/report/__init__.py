"""Results of a run: results.json (one record per item) and report.html (summary, matrices, evidence)."""

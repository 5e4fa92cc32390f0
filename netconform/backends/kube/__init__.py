"""The live-cluster backend: probes deployed with the official kubernetes client."""

"""The embedded lab: an emulated multi-node cluster made of network namespaces on this machine."""

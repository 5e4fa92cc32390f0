"""Pinned upstream components (Kubernetes, etcd, CoreDNS) built from source with Go.

``releases.py`` names the versions, ``modules/`` pins their dependencies, ``build.py`` builds them
into a cache once; ``python -m netconform.upstream`` is the command line. Go is used here only to
build these; nothing else in netconform needs it.
"""
from netconform.upstream.build import NotBuilt, binary, cache_root, ensure_built
from netconform.upstream.gotool import GoError
from netconform.upstream.releases import DEFAULT_RELEASE, RELEASES, Release

__all__ = ["DEFAULT_RELEASE", "RELEASES", "GoError", "NotBuilt", "Release", "binary", "cache_root",
           "ensure_built"]

"""Every image a live run pulls, by full name and digest, and the same images in a mirror.

An air-gapped cluster pulls only from its own registry: `netconform images` lists what to copy
there (the list is what the run's manifests name, computed by the same code), and
`--image-registry` makes the run pull those copies. The repository path and the digest are kept,
so a copy made by `crane copy` or `skopeo copy` of each listed source is exactly what the run asks
for, and the kubelet still checks the content against the digest.
"""
from __future__ import annotations

import re

from .manifests import STOCK_PYTHON

DOCKER_HUB = "docker.io"
# a registry host (with a port) and an optional path under it: what a mirror's address looks like
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


def qualified(image: str) -> str:
    """The image's full name, as the container runtime resolves a short one: a first component
    that is not a host (no '.' or ':', not localhost) is a Docker Hub repository, and a
    one-component name is an official image under library/."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"{DOCKER_HUB}/{image if rest else 'library/' + image}"


def mirrored(image: str, registry: str) -> str:
    """``image`` pulled from ``registry`` instead: its host replaced, its path, tag and digest kept
    (docker.io/library/python:3.12-slim@sha256:… -> REGISTRY/library/python:3.12-slim@sha256:…)."""
    return f"{registry.rstrip('/')}/{qualified(image).partition('/')[2]}"


def check_registry(registry: str) -> str:
    """--image-registry's value, or ValueError with the reason: a host[:port][/path], no scheme."""
    value = registry.strip().rstrip("/")
    if "://" in value:
        raise ValueError(f"--image-registry {registry!r}: a registry, not a URL (drop {value.split('://')[0]}://)")
    if not _REGISTRY.match(value):
        raise ValueError(f"--image-registry {registry!r}: expected HOST[:PORT][/PATH], lower case, "
                         "e.g. registry.example.com:5000/mirror")
    return value


def run_images(probe_image: str | None = None, registry: str | None = None) -> list[tuple[str, str]]:
    """(the image as published, the image the run pulls) for every image a live run uses: the
    probes' (--probe-image, else the stock Python that runs the agent from its ConfigMap)."""
    source = qualified(probe_image or STOCK_PYTHON)
    return [(source, mirrored(source, registry) if registry else source)]


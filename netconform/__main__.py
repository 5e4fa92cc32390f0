"""`python -m netconform` (or `netconform`): commands beside the pytest run.

    netconform images [--probe-image IMAGE] [--image-registry HOST[:PORT][/PATH]]

prints every image a live run pulls, one per line, by full name and digest; with
--image-registry, each line is the image and its copy in the mirror (what the run will pull), so
that `while read -r src dst; do crane copy "$src" "$dst"; done` fills an air-gapped registry.
"""
from __future__ import annotations

import argparse
import sys

USAGE_ERROR = 4  # as the run's exit codes (network-model.md)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netconform", description="netconform's commands beside "
                                     "the conformance run (which is `pytest suites`, or `pytest --cni=…`)")
    commands = parser.add_subparsers(dest="command", required=True)
    images = commands.add_parser("images", help="the images a live run pulls, with digests")
    images.add_argument("--probe-image", metavar="IMAGE", help="as the run's --probe-image")
    images.add_argument("--image-registry", metavar="HOST[:PORT][/PATH]", help="as the run's --image-registry")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's usage error is 2, which is INCOMPLETE for a run
        return USAGE_ERROR if exc.code else 0
    from .backends.kube.images import check_registry, run_images
    try:
        registry = check_registry(args.image_registry) if args.image_registry is not None else None
    except ValueError as exc:
        print(f"netconform: {exc}", file=sys.stderr)
        return USAGE_ERROR
    for source, pulled in run_images(args.probe_image, registry):
        print(f"{source} {pulled}" if registry else source)
    return 0


if __name__ == "__main__":
    sys.exit(main())

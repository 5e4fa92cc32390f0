"""Ranges of the numeric options, checked while the command line is parsed.

A value out of range is a usage error (exit 4, one line) before anything is created: an option that
is checked only when it is used fails after the lab is built, or quietly means something else.
The ranges are printed in ``--help``; the probe agent enforces the same caps (probes/netprobe.py).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

# The probe agent's caps: a request beyond them is refused (probes/netprobe.py MAX_TIMEOUT, MAX_ATTEMPTS).
PROBE_TIMEOUT = (0.5, 30.0)  # below half a second, a busy host's scheduling delay reads as a drop
PROBE_ATTEMPTS = (1, 5)
# The lab's addressing: node-N is 172.18.0.(N+1) and owns 10.244.N.0/24, so at most 200 nodes
# (the outside client is 172.18.0.250); probe pods are named probe-a … probe-z.
LAB_NODES = (1, 200)
LAB_PODS_PER_NODE = (1, 26)
READY_TIMEOUT = (1.0, 3600.0)
CNI_TIMEOUT = (1.0, 600.0)
# Items a run may collect before anything is built: beyond this, collection alone takes minutes
# and gigabytes (one item per pair: items grow with the square of the pods).
MAX_ITEMS = 150_000
PAIRS_SEED = (0, 2**31 - 1)
PEERS_PER_NODE = (1, 5000)


def _text(bounds: tuple) -> str:
    low, high = bounds
    if isinstance(low, int) and isinstance(high, int):
        return f"{low}..{high}"
    return f"{low:g}..{high:g}"


def bounded(kind: type, bounds: tuple, unit: str = "") -> Callable[[str], int | float]:
    """An argparse type: a number of ``kind`` within ``bounds`` (inclusive), else a usage error."""
    low, high = bounds

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}"
                                             ) from None
        if isinstance(value, float) and not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: {_text(bounds)}{unit}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def path_value(text: str) -> Path:
    """An argparse type: a path that is not empty (an empty one would quietly mean '.')."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def range_help(text: str, bounds: tuple, unit: str = "") -> str:
    return f"{text} ({_text(bounds)}{unit})"

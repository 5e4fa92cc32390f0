"""Make ``--opt VALUE`` mean what ``--opt=VALUE`` means.

pytest decides its rootdir and reads its ini file before plugins add their options; until then an
unknown ``--report-dir`` is a flag and the ``DIR`` after it a test path. When that path exists, it
moves the rootdir: another ini file (or none), other ``addopts`` and ``testpaths``, other items.
The cure is to join each of this plugin's options to its value and start pytest again, once.
"""
from __future__ import annotations

import os
import sys

import pytest

RESTARTED = "NETCONFORM_ARGS_JOINED"  # set for the restarted process, so it never restarts again


def value_options(parser: pytest.Parser, groups: tuple[str, ...]) -> set[str]:
    """The long names of the plugin's options that take a value (flags take none)."""
    names = set()
    for group in groups:
        for option in parser.getgroup(group).options:
            attrs = option.attrs()
            if attrs.get("nargs") == 0 or attrs.get("action") in ("store_true", "store_false", "count"):
                continue  # a flag: the word after it is not its value
            names |= {n for n in option.names() if n.startswith("--")}
    return names


def join_option_values(args: list[str], options: set[str]) -> list[str]:
    """['--report-dir', 'x'] -> ['--report-dir=x'] for the given options; everything else as is.
    Stops at '--', after which every word is a test path."""
    joined, i = [], 0
    while i < len(args):
        word = args[i]
        if word == "--":
            joined += args[i:]
            break
        if word in options and i + 1 < len(args):
            joined.append(f"{word}={args[i + 1]}")
            i += 2
            continue
        joined.append(word)
        i += 1
    return joined


def moves_rootdir(args: list[str], options: set[str]) -> bool:
    """Whether some option's separate value is an existing path, which pytest would take for a
    test path when it looks for its rootdir."""
    return any(word in options and i + 1 < len(args) and os.path.exists(args[i + 1])
               for i, word in enumerate(args))


def restart_with(config: pytest.Config, args: list[str]) -> None:
    """Replace this process by pytest with ``args`` (nothing has been created yet). Only when pytest
    was started from the command line with exactly the arguments it parsed; otherwise say how to
    write the options."""
    original = list(config.invocation_params.args)
    if os.environ.get(RESTARTED) or sys.argv[1:] != original:
        raise pytest.UsageError("netconform: write options with their value joined by '=' "
                                "(e.g. --report-dir=DIR): pytest took a separate value for a test path")
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:  # pytest already captures fds 1 and 2: give the new process the real ones
        capture.stop_global_capturing()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *args], {**os.environ, RESTARTED: "1"})

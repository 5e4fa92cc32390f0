"""Settings for the whole of the suite's own tests."""
import signal


def pytest_configure(config) -> None:
    """Started as a background job, this process (and each run it starts) would ignore SIGINT, and
    the tests that press Ctrl-C on a run would see it ignored; a child execs with SIGINT at its
    default only if this process does not ignore it."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config, items) -> None:
    """``--dist loadgroup`` sends the tests marked ``xdist_group(name)`` to one worker by a
    ``@name`` suffix of their node ids. pytest-xdist 3.8 writes it to ``item._nodeid``, which
    pytest 9 no longer reads (a node id is ``item._id`` there), so the groups were silently
    ignored; this writes it where pytest 9 reads it, in the workers, as xdist would."""
    if getattr(config.option, "loadgroup", False) is not True:
        return
    for item in items:
        groups = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                         for mark in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid and hasattr(item, "_id"):
            item._id = type(item._id).parse(f"{item.nodeid}@{'_'.join(groups)}")

"""Settings for the whole of the suite's own tests."""
import signal


def pytest_configure(config) -> None:
    """Started as a background job, this process (and each run it starts) would ignore SIGINT, and
    the tests that press Ctrl-C on a run would see it ignored; a child execs with SIGINT at its
    default only if this process does not ignore it."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

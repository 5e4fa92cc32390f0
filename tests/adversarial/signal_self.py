"""A pytest plugin loaded into a lab run (`-p tests.adversarial.signal_self`) that sends its own
process a signal just before the first item of a chosen requirement: an interrupt at a known point
of the run, as a user's Ctrl-C or a CI runner's SIGTERM would land, without a race."""
import os
import signal
import time
from pathlib import Path

SIGNAL = "NETCONFORM_TEST_SIGNAL"  # SIGINT or SIGTERM
BEFORE = "NETCONFORM_TEST_SIGNAL_BEFORE"  # a requirement id, e.g. POD-POD-CROSS
STAMP = "NETCONFORM_TEST_SIGNAL_STAMP"  # a file: the time the signal was sent
_sent = False


def pytest_runtest_setup(item) -> None:
    global _sent
    name, before = os.environ.get(SIGNAL), os.environ.get(BEFORE)
    if _sent or not name or not before or item.get_closest_marker(before) is None:
        return
    _sent = True
    Path(os.environ[STAMP]).write_text(str(time.time()))
    os.kill(os.getpid(), getattr(signal, name))
    time.sleep(1)  # the handler runs here, in the main thread

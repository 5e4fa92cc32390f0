"""The images a live run pulls (`netconform images`) and `--image-registry`'s rewriting."""
import subprocess
import sys

import pytest

from netconform.backends.kube.images import check_registry, mirrored, qualified, run_images
from netconform.backends.kube.manifests import STOCK_PYTHON

from ..lab.conftest import REPO

DIGEST = STOCK_PYTHON.partition("@")[2]


@pytest.mark.parametrize("short, full", [
    ("python:3.12-slim", "docker.io/library/python:3.12-slim"),
    ("bitnami/python@sha256:aa", "docker.io/bitnami/python@sha256:aa"),
    ("ghcr.io/o/probe:v1", "ghcr.io/o/probe:v1"),
    ("localhost/probe", "localhost/probe"),
    ("registry:5000/probe", "registry:5000/probe"),
])
def test_a_short_name_is_qualified_as_the_container_runtime_resolves_it(short, full):
    assert qualified(short) == full


def test_a_mirror_keeps_the_path_tag_and_digest():
    assert mirrored(STOCK_PYTHON, "mirror.local:5000/hub") == f"mirror.local:5000/hub/library/python:3.12-slim@{DIGEST}"
    assert mirrored("ghcr.io/o/probe@sha256:bb", "mirror.local/") == "mirror.local/o/probe@sha256:bb"


@pytest.mark.parametrize("bad, message", [
    ("https://mirror.local", "a registry, not a URL"),
    ("", "expected HOST"), ("Mirror.Local", "expected HOST"), ("mirror local", "expected HOST"),
    ("mirror.local/a@sha256:x", "expected HOST"), ("mirror.local:port", "expected HOST"),
])
def test_a_registry_that_is_not_one_is_refused_with_the_reason(bad, message):
    with pytest.raises(ValueError, match=message):
        check_registry(bad)


def test_every_image_of_a_run_is_listed_by_digest():
    assert run_images() == [(f"docker.io/library/{STOCK_PYTHON}",) * 2]
    assert "@sha256:" in run_images()[0][0]  # pinned: a mirror copy is checked against it


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "netconform", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_netconform_images_prints_them_and_their_mirror_copies():
    plain = run_cli("images")
    assert (plain.returncode, plain.stdout) == (0, f"docker.io/library/{STOCK_PYTHON}\n"), plain.stderr
    mirror = run_cli("images", "--image-registry", "mirror.local:5000/hub")
    assert mirror.stdout.split() == [f"docker.io/library/{STOCK_PYTHON}",
                                     f"mirror.local:5000/hub/library/{STOCK_PYTHON}"]
    own = run_cli("images", "--probe-image", "ghcr.io/o/probe@sha256:bb", "--image-registry", "m.local")
    assert own.stdout.split() == ["ghcr.io/o/probe@sha256:bb", "m.local/o/probe@sha256:bb"]


@pytest.mark.parametrize("args, said", [
    (("images", "--image-registry", "https://m"), "netconform: --image-registry 'https://m': a registry, not a URL"),
    (("bogus",), "invalid choice: 'bogus'"),
    ((), "the following arguments are required: command"),
])
def test_a_bad_command_line_is_one_message_and_exit_4(args, said):
    done = run_cli(*args)
    assert done.returncode == 4 and said in done.stderr and "Traceback" not in done.stderr, done.stderr

"""A kubeconfig that leads somewhere odd: a server that is not Kubernetes, one that never answers,
a $KUBECONFIG list with missing files. Each ends in seconds with one line (exit 4), or works as
kubectl would; none gives a traceback or holds the run for a minute."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ..kube.conftest import workers
from ..kube.fakeapi import KINDNET, TOKEN, FakeApiServer, World
from .conftest import REPO

# A refusal comes in seconds, a hang only after the client's minute-long timeouts; with the own
# tests on two workers beside a lab, a refusal has been measured at up to 20.4 s
QUICK = 30

HOLD = 30.0  # the longest the silent server keeps a connection open (the test's own bound)


def command(report_dir: Path, *args: str) -> list[str]:
    """The suite on a live cluster, options joined to their values (one rootdir, whatever exists)."""
    return [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider",
            f"--report-dir={report_dir}", *args]


def run(report_dir: Path, *args: str, env: dict | None = None,
        timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(command(report_dir, *args), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    return done, time.monotonic() - started


def kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig whose one context points at ``server``."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def one_error(done: subprocess.CompletedProcess) -> str:
    """The single line that explains the failure: pytest's ERROR line for a run, netconform's own
    line for --cleanup-only; and nothing that looks like a traceback."""
    out = done.stdout + done.stderr
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith(("ERROR", "netconform:"))]
    assert len(lines) == 1, out[-3000:]
    return lines[0]


@contextmanager
def http_server(answers: dict[str, tuple[int, str, bytes]]) -> Iterator[str]:
    """A small HTTP server on loopback: path -> (status, content type, body); '*' for the rest."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, kind, body = answers.get(self.path.split("?")[0], answers["*"])
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never says a word, each held at most HOLD seconds."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop, held = threading.Event(), []

    def serve() -> None:
        deadline = time.monotonic() + HOLD
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


HTML = (200, "text/html", b"<html><body>Welcome to nginx!</body></html>")
NOT_K8S_JSON = (200, "application/json", b'{"status": "ok", "service": "billing"}')
VERSION = (200, "application/json", b'{"major": "1", "minor": "37", "gitVersion": "v1.37.0"}')


@pytest.mark.parametrize("answers, message", [
    ({"*": HTML}, r"does not answer as a Kubernetes API server \(GET /version: HTTP 200, not JSON\)"),
    ({"*": NOT_K8S_JSON}, r"does not answer as a Kubernetes API server \(GET /version: HTTP 200, "
                          r"JSON without gitVersion\)"),
    ({"/version": VERSION, "*": NOT_K8S_JSON},
     r"does not answer as a Kubernetes API server \(list (nodes|namespaces): the answer is not a "
     r"valid V1(Node|Namespace)List\)"),
    ({"/version": VERSION, "*": (200, "application/json", b"null")},
     r"does not answer as a Kubernetes API server \(list (nodes|namespaces): an empty answer\)"),
], ids=["html", "other-json", "version-then-garbage", "version-then-null"])
@pytest.mark.parametrize("mode", ["run", "cleanup-only"])
def test_a_server_that_is_not_kubernetes_is_named_as_such(tmp_path, answers, message, mode):
    """Was: a pydantic ValidationError as INTERNALERROR (exit 3) with a long traceback."""
    with http_server(answers) as url:
        args = ["--cni=kindnet"] if mode == "run" else ["--cleanup-only"]
        done, took = run(tmp_path / "report", f"--kubeconfig={kubeconfig(tmp_path / 'kc', url)}", *args)
    assert done.returncode == 4, done.stdout + done.stderr
    line = one_error(done)
    assert url in line and re.search(message, line), line
    assert took < QUICK


def test_a_server_that_never_answers_is_given_up_in_seconds(tmp_path):
    """Was: ~61 s of silence (30 s read timeout, one retry), then a urllib3 message."""
    with silent_server() as url:
        done, took = run(tmp_path / "report", f"--kubeconfig={kubeconfig(tmp_path / 'kc', url)}",
                         "--cni=kindnet")
    assert done.returncode == 4, done.stdout + done.stderr
    assert one_error(done) == (f"ERROR: netconform: the API server at {url} accepted the connection "
                               f"but did not answer within 10s")
    assert took < QUICK, f"took {took:.1f}s"


@pytest.fixture
def fake_cluster(tmp_path) -> Iterator[FakeApiServer]:
    with FakeApiServer(World(workers(), existing=[KINDNET])) as api:
        api.kubeconfig_path = api.kubeconfig(tmp_path / "kubeconfig")
        yield api


def test_kubeconfig_list_skips_missing_files_as_kubectl_does(fake_cluster, tmp_path):
    """Was: "no kubeconfig at <first file>" although the second one exists."""
    listed = os.pathsep.join([str(tmp_path / "missing"), str(fake_cluster.kubeconfig_path)])
    done, _ = run(tmp_path / "report", "--cni=kindnet", "--collect-only", "-q",
                  env={"KUBECONFIG": listed})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kind-worker2/probe-a" in done.stdout
    assert fake_cluster.requests["GET /api/v1/nodes"] >= 1


def test_a_kubeconfig_list_of_missing_files_is_one_line(tmp_path):
    listed = os.pathsep.join([str(tmp_path / "missing-a"), str(tmp_path / "missing-b")])
    done, took = run(tmp_path / "report", "--cni=kindnet", env={"KUBECONFIG": listed})
    assert done.returncode == 4, done.stdout + done.stderr
    assert one_error(done) == \
        f"ERROR: netconform: no kubeconfig at {listed} (set --kubeconfig or $KUBECONFIG)"
    assert took < QUICK


def test_a_refused_connection_says_refused(tmp_path):
    """Connection refused is not a timeout (urllib3 makes it a ConnectTimeoutError subclass)."""
    with socket.socket() as closed:  # bound, never listening: every connection is refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        done, took = run(tmp_path / "report", f"--kubeconfig={kubeconfig(tmp_path / 'kc', url)}",
                         "--cni=kindnet")
    assert done.returncode == 4, done.stdout + done.stderr
    assert one_error(done) == (f"ERROR: netconform: cannot reach the API server at {url}: "
                               f"Failed to establish a new connection: [Errno 111] Connection refused")
    assert took < QUICK

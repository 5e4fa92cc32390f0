"""The agent's relay (probes/netprobe.py ``relay``): what an exec into a probe runs to carry one
control request to the container's own control API, against a real agent."""
import base64
import json
import os
import subprocess
import sys

import pytest

from .test_probe_agent import SCRIPT, free_port
from .test_probe_agent_hostile import TOKEN, start_agent


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    folder = tmp_path_factory.mktemp("relay")
    token_file, wrong = folder / "token", folder / "wrong"
    token_file.write_text(TOKEN + "\n")
    wrong.write_text("not-the-runs-token-at-all\n")
    port, echo = free_port(), free_port()
    process = start_agent("relayed", echo, "127.0.0.1", port, token_file)
    try:
        yield port, token_file, wrong
    finally:
        process.kill()
        process.communicate(timeout=10)


def relay(port: int, line: bytes, token_file=None) -> tuple[int, dict]:
    args = ["--token-file", str(token_file)] if token_file else []
    done = subprocess.run([sys.executable, "-I", "-S", str(SCRIPT), "relay", "--port", str(port), *args],
                          input=line, capture_output=True, timeout=30, env={**os.environ, "POD_IP": "127.0.0.1"})
    return done.returncode, json.loads(done.stdout.decode().splitlines()[0])


def test_a_request_line_is_carried_with_the_mounted_token_and_its_answer_comes_back_exactly(control):
    port, token_file, wrong = control
    line = json.dumps({"method": "POST", "endpoint": "probe", "body": {"targets": []}, "timeout": 5}).encode() + b"\n"
    code, answer = relay(port, line, token_file)
    assert code == 0 and answer["status"] == 200
    assert json.loads(base64.b64decode(answer["body"])) == {"results": []}
    # the token comes from the file alone: one in the request line is not used
    sneaky = json.dumps({"method": "GET", "endpoint": "self", "token": TOKEN}).encode() + b"\n"
    assert relay(port, sneaky, wrong)[1]["status"] == 401
    assert relay(port, sneaky)[1]["status"] == 401


@pytest.mark.parametrize("line, words", [
    (b"not json\n", "JSONDecodeError"),
    (b'{"method": "DELETE", "endpoint": "self"}\n', "not a control request: DELETE /self"),
    (b'{"method": "GET", "endpoint": "../etc"}\n', "not a control request"),
    (b'{"method": "GET", "endpoint": "self"}', "not one line"),  # no newline: cut short
])
def test_anything_else_is_one_error_line_and_exit_1(control, line, words):
    code, answer = relay(control[0], line, control[1])
    assert code == 1 and words in answer["error"]

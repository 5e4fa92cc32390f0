"""The CNI runtime against fake plugins: untrusted output is checked, every call is bounded, a hung
plugin is killed with everything it started, DELs run in parallel, the CNI path is the user's.

The fakes are shell scripts in tmp_path, run in the test's own namespace (node_netns=None): no
root and no lab needed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from netconform.backends.lab.cni import CniError, CniRuntime, PodSandbox, delete_all, pod_ip

GOOD = json.dumps({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
                   "ips": [{"address": "10.244.1.2/24", "interface": 0}]})


def fake_plugin(folder: Path, body: str, name: str = "fake") -> Path:
    """An executable plugin that runs `body` as a shell script."""
    plugin = folder / name
    plugin.write_text(f"#!/bin/sh\n{body}\n")
    plugin.chmod(0o755)
    return plugin


def runtime(folder: Path, timeout: float = 5.0, types: tuple[str, ...] = ("fake",)) -> CniRuntime:
    conflist = {"cniVersion": "1.0.0", "name": "test",
                "plugins": [{"type": kind} for kind in types]}
    return CniRuntime(conflist, None, folder / "cache", (str(folder),), timeout)


def sandbox(name: str = "probe-a") -> PodSandbox:
    return PodSandbox(f"test-{name}", f"test-{name}", name)


def test_a_valid_result_gives_the_pod_ip(tmp_path):
    fake_plugin(tmp_path, f"cat >/dev/null; echo '{GOOD}'")
    assert pod_ip(runtime(tmp_path).add(sandbox())) == "10.244.1.2"


@pytest.mark.parametrize("stdout, problem", [
    ("surely not json", "printed no JSON result: 'surely not json'"),
    ("", "printed no JSON result"),
    ("[1, 2]", "result is not a JSON object"),
    ('"text"', "result is not a JSON object"),
    ('{"ips": {"address": "10.0.0.1/24"}}', "has 'ips' that is not a list"),
    ('{"ips": ["10.0.0.1/24"]}', "has an 'ips' entry without a string 'address'"),
    ('{"ips": [{"address": 167772161}]}', "has an 'ips' entry without a string 'address'"),
    ('{"ips": [{"address": "10.0.0.1"}]}', "address '10.0.0.1' that is not in CIDR form"),
    ('{"ips": [{"address": "bogus/24"}]}', "address 'bogus/24' that is not in CIDR form"),
    ('{"ips": [], "interfaces": {"eth0": 1}}', "has 'interfaces' that is not a list"),
])
def test_bad_add_output_names_plugin_command_and_stderr(tmp_path, stdout, problem):
    fake_plugin(tmp_path, f"cat >/dev/null; printf '%s' '{stdout}'; echo 'fake: something odd' >&2")
    with pytest.raises(CniError) as caught:
        runtime(tmp_path).add(sandbox())
    message = str(caught.value)
    assert message.startswith("fake: ADD ") and problem in message
    assert message.endswith("stderr: fake: something odd")


def test_output_that_is_not_text_is_reported_not_a_crash(tmp_path):
    fake_plugin(tmp_path, r"cat >/dev/null; printf '\377\376{'; printf '\377' >&2")
    with pytest.raises(CniError) as caught:
        runtime(tmp_path).add(sandbox())
    assert str(caught.value) == "fake: ADD printed no JSON result: '\ufffd\ufffd{'; stderr: \ufffd"


def test_a_long_stderr_is_cut_to_one_short_line(tmp_path):
    fake_plugin(tmp_path, "cat >/dev/null; echo nonsense; for i in $(seq 400); do echo line $i >&2; done")
    with pytest.raises(CniError) as caught:
        runtime(tmp_path).add(sandbox())
    message = str(caught.value)
    assert "\n" not in message and len(message) < 500 and message.endswith("…")
    assert "stderr: line 1 line 2" in message


@pytest.mark.parametrize("stdout", ["[]", "42", '{"unrelated": true}', "not json"])
def test_a_failing_plugin_with_odd_output_still_gives_a_cni_error(tmp_path, stdout):
    fake_plugin(tmp_path, f"cat >/dev/null; echo '{stdout}'; echo 'fake: cannot' >&2; exit 1")
    with pytest.raises(CniError, match="^fake failed: "):
        runtime(tmp_path).add(sandbox())


def test_a_plugin_error_object_is_reported_with_its_code(tmp_path):
    error = json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "no luck", "details": "none left"})
    fake_plugin(tmp_path, f"cat >/dev/null; echo '{error}'; exit 1")
    with pytest.raises(CniError, match=r"^fake failed: no luck none left \(code 11\)$"):
        runtime(tmp_path).add(sandbox())


def test_a_hung_plugin_is_killed_with_what_it_started(tmp_path):
    """The plugin's shell and its child both die: nothing keeps running or holds the pipes."""
    pids = tmp_path / "pids"
    fake_plugin(tmp_path, f"echo $$ >> {pids}; sleep 300 & echo $! >> {pids}; wait")
    began = time.monotonic()
    with pytest.raises(CniError, match=r"^fake: no answer within 2s$"):
        runtime(tmp_path, timeout=2).add(sandbox())
    assert time.monotonic() - began < 8
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2 and not [pid for pid in started if alive(pid)]


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_dels_run_in_parallel_and_each_timeout_is_a_problem(tmp_path):
    """A plugin that hangs on DEL costs about one timeout for all pods, not one per pod."""
    fake_plugin(tmp_path, 'cat >/dev/null; [ "$CNI_COMMAND" = DEL ] && exec sleep 300; exit 0')
    cni = runtime(tmp_path, timeout=1)
    pods = [sandbox(f"probe-{n}") for n in range(12)]
    began = time.monotonic()
    problems = delete_all((f"node-1/{pod.pod_name}", cni, pod, None) for pod in pods)
    assert time.monotonic() - began < 8  # serially: 12 s
    assert sorted(problems) == sorted(f"CNI DEL node-1/{pod.pod_name}: fake: no answer within 1s"
                                      for pod in pods)


def test_del_runs_the_chain_in_reverse_with_the_cached_result(tmp_path):
    log = tmp_path / "log"
    for kind in ("first", "second"):
        fake_plugin(tmp_path, f"echo {kind} $CNI_COMMAND >> {log}; cat > {log}.{kind}.$CNI_COMMAND; "
                              f"[ $CNI_COMMAND = ADD ] && echo '{GOOD}'; exit 0", name=kind)
    cni = runtime(tmp_path, types=("first", "second"))
    cni.add(sandbox())
    assert delete_all([("node-1/probe-a", cni, sandbox(), None)]) == []
    assert log.read_text().split("\n")[:4] == ["first ADD", "second ADD", "second DEL", "first DEL"]
    del_config = json.loads((tmp_path / "log.first.DEL").read_text())
    assert del_config["prevResult"]["ips"][0]["address"] == "10.244.1.2/24"


def test_the_cni_path_is_where_plugins_are_found_and_what_they_are_given(tmp_path, monkeypatch):
    build = tmp_path / "build"
    build.mkdir()
    seen = tmp_path / "cni_path"
    fake_plugin(build, f'cat >/dev/null; echo "$CNI_PATH" > {seen}; echo \'{GOOD}\'')
    monkeypatch.chdir(tmp_path)  # a relative directory, as a user types it, becomes an absolute CNI_PATH
    conflist = {"cniVersion": "1.0.0", "name": "t", "plugins": [{"type": "fake"}]}
    CniRuntime(conflist, None, tmp_path / "cache", ("build", "/usr/lib/cni"), 5).add(sandbox())
    assert seen.read_text().strip() == f"{build}:/usr/lib/cni"


def test_a_missing_plugin_names_the_searched_path(tmp_path):
    conflist = {"cniVersion": "1.0.0", "name": "t", "plugins": [{"type": "nowhere"}]}
    with pytest.raises(CniError, match=f"'nowhere' not found in {tmp_path}/a:{tmp_path}/b "):
        CniRuntime(conflist, None, tmp_path, (f"{tmp_path}/a", f"{tmp_path}/b"), 5)


@pytest.mark.parametrize("kind", ["../../../bin/true", "/bin/true", "sub/dir", ".", "..", ""])
def test_a_type_that_is_not_a_bare_name_is_never_looked_up(tmp_path, kind):
    (tmp_path / "sub").mkdir()
    fake_plugin(tmp_path / "sub", "exit 0", name="dir")
    conflist = {"cniVersion": "1.0.0", "name": "t", "plugins": [{"type": kind}]}
    with pytest.raises(CniError, match="is not a bare file name"):
        CniRuntime(conflist, None, tmp_path, (str(tmp_path),), 5)

"""The probe agent against hostile clients, as a real process on loopback.

Whoever reaches a probe's control port (anyone in the cluster network can) must not be able to
make it dial anything, exhaust it, or crash it. Each attack gets its documented answer quickly, and
afterwards a valid request is still answered in normal time.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netconform.probing.channel import TOKEN_HEADER

from .test_probe_agent import SCRIPT, free_port, netprobe

TOKEN = "the-runs-token-" + "x" * 20
NORMAL = 2.0  # s a valid request takes at most on loopback, even on a loaded machine


class Agent:
    def __init__(self, control: int, echo: int, process: subprocess.Popen) -> None:
        self.control, self.echo, self.process = control, echo, process

    def request(self, method: str, path: str, body=None, headers=None, token: str | None = TOKEN,
                timeout: float = 10.0) -> tuple[int, dict, float]:
        """(status, JSON answer, seconds it took)."""
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.control, timeout=timeout)
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        try:
            conn.request(method, path, body=data, headers={**({TOKEN_HEADER: token} if token else {}),
                                                             **(headers or {})})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}"), time.monotonic() - started
        finally:
            conn.close()

    def valid(self) -> float:
        """A valid probe request (one TCP target: the agent's own echo); the seconds it took."""
        status, answer, took = self.request("POST", "/probe", {"targets": [
            {"id": "ok", "ip": "127.0.0.1", "port": self.echo, "proto": "tcp"}]})
        assert status == 200 and answer["results"][0]["ok"], answer
        return took

    def raw(self, data: bytes, wait: float = 10.0) -> bytes:
        """Send bytes as they are; what the agent answered before it closed (or ``wait`` ran out)."""
        with socket.create_connection(("127.0.0.1", self.control), timeout=wait) as sock:
            sock.sendall(data)
            received = b""
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except socket.timeout:
                pass
            return received


def start_agent(name: str, echo: int, host: str, control: int, token_file: Path) -> subprocess.Popen:
    """A real agent process, its control API on ``host:control``, once that accepts connections."""
    process = subprocess.Popen([sys.executable, str(SCRIPT), "serve", "--name", name, "--port", str(echo),
                                "--control", f"tcp:{host}:{control}", "--token-file", str(token_file)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(200):
        try:
            socket.create_connection((host, control), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return process


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    token_file = tmp_path_factory.mktemp("agent") / "token"
    token_file.write_text(TOKEN + "\n")
    control, echo = free_port(), free_port()
    process = start_agent("target", echo, "127.0.0.1", control, token_file)
    try:
        yield Agent(control, echo, process)
    finally:
        process.kill()
        output = process.communicate(timeout=10)[0]
    assert "Traceback" not in output, output  # whatever came, an answer and never a traceback


@pytest.fixture
def listener():
    """A TCP port that records every connection made to it: what an abused agent would dial."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    dialed = []

    def accept():
        while True:
            try:
                conn, _ = server.accept()
                dialed.append(conn)
            except socket.timeout:
                continue
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], dialed
    server.close()


@pytest.mark.parametrize("token", [None, "", "wrong-token-of-the-same-sort-xxxxxx", TOKEN + "x", TOKEN[:-1]])
def test_without_the_token_nothing_is_dialed(agent, listener, token):
    port, dialed = listener
    status, answer, took = agent.request("POST", "/probe", {"targets": [
        {"id": "abuse", "ip": "127.0.0.1", "port": port, "proto": "tcp"}]}, token=token)
    assert status == 401 and "token" in answer["error"] and took < NORMAL
    time.sleep(0.3)
    assert dialed == []
    assert agent.valid() < NORMAL


def test_the_token_also_works_as_a_bearer_and_only_the_health_check_needs_none(agent):
    status, _, _ = agent.request("POST", "/probe", {"targets": []}, token=None,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    status, _, _ = agent.request("POST", "/probe", {"targets": []}, token=None,
                                 headers={"Authorization": f"bearer {TOKEN}"})  # the scheme: any case
    assert status == 200
    status, answer, _ = agent.request("GET", "/healthz", token=None)
    assert status == 200 and answer["name"] == "target"  # the readiness probe's: its name, no more
    assert agent.request("GET", "/self", token=None)[0] == 401
    assert agent.request("POST", "/icmp-seen", {"tokens": []}, token=None)[0] == 401


def test_a_body_of_100_mb_announced_is_refused_unread(agent):
    started = time.monotonic()
    answer = agent.raw(f"POST /probe HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n"
                       f"Content-Length: {100 << 20}\r\n\r\n".encode() + b"{" * 1000)
    assert answer.startswith(b"HTTP/1.1 413") and b"at most" in answer
    assert time.monotonic() - started < NORMAL  # closed at once: the agent waits for none of it
    assert agent.valid() < NORMAL


def test_an_unauthorized_body_is_not_read_either(agent):
    started = time.monotonic()
    answer = agent.raw(f"POST /probe HTTP/1.1\r\nHost: x\r\nContent-Length: {100 << 20}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 401") and time.monotonic() - started < NORMAL


@pytest.mark.parametrize("body, headers, status, message", [
    (b"{not json", {}, 400, "not JSON"),
    (b"[1, 2]", {}, 400, "must be a JSON object"),
    (b'{"targets": "all"}', {}, 400, "targets must be a list"),
    (b'{"targets": [42]}', {}, 400, "a target must be a JSON object"),
    (b'{"targets": [{"ip": "127.0.0.1", "port": 1, "proto": "tcp"}]}', {}, 400, "needs an id"),
    (b'{"targets": [{"id": "t", "ip": "127.0.0.1", "port": 1, "proto": "sctp"}]}', {}, 400, "proto of t"),
    (b'{"targets": [{"id": "t", "ip": "example.org", "port": 1, "proto": "tcp"}]}', {}, 400, "ip of t must be"),
    (b'{"targets": [{"id": "t", "ip": null, "port": 1, "proto": "tcp"}]}', {}, 400, "ip of t must be"),
    (b'{"targets": [{"id": "t", "ip": "127.0.0.1", "port": 0, "proto": "tcp"}]}', {}, 400, "port of t"),
    (b'{"targets": [{"id": "t", "ip": "127.0.0.1", "port": "80", "proto": "udp"}]}', {}, 400, "port of t"),
    (b'{"targets": [{"id": "t", "ip": "127.0.0.1", "proto": "icmp", "size": 9}]}', {}, 400, "size of t"),
    (b'{"targets": [], "concurrency": 100000}', {}, 400, "concurrency must be"),
    (b'{"tokens": "x"}', {"path": "/icmp-seen"}, 400, "tokens must be a list"),
    (b"{}", {"Content-Length": "ten"}, 400, "Content-Length is not a number"),
    (b"{}", {"Content-Length": "-5"}, 400, "Content-Length is negative"),
    (b"[" * 5000 + b"]" * 5000, {}, 400, "nested too deeply"),
    (b"[" + b"[]," * 100000 + b"[]]", {}, 400, "JSON arrays and objects, at most"),
    (b'{"targets": [{"id": "t", "ip": "127.0.0.1", "port": 1, "proto": "tcp", "attempts": 1e400}]}', {}, 400,
     "attempts of t must be a number"),
    (b'{"targets": [], "concurrency": 1e400}', {}, 400, "concurrency must be"),
    (b'{"targets": [{"id": "t", "proto": "udp", "dns": {"name": "web", "connect": 70000}}]}', {}, 400,
     "dns.connect of t must be a port"),
])
def test_malformed_requests_get_400_with_the_reason(agent, body, headers, status, message):
    path = headers.pop("path", "/probe")
    got, answer, took = agent.request("POST", path, body, headers=headers)
    assert (got, took < NORMAL) == (status, True) and message in answer["error"], answer
    assert agent.valid() < NORMAL


def test_chunked_bodies_are_refused(agent):
    answer = agent.raw(f"POST /probe HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 411")


def test_a_target_list_over_the_limit_is_refused_not_trimmed(agent, listener):
    port, dialed = listener
    targets = [{"id": f"t{i}", "ip": "127.0.0.1", "port": port, "proto": "tcp"}
               for i in range(netprobe.MAX_TARGETS + 1)]
    status, answer, took = agent.request("POST", "/probe", {"targets": targets})
    assert status == 400 and f"at most {netprobe.MAX_TARGETS} per request" in answer["error"]
    time.sleep(0.3)
    assert dialed == [] and took < NORMAL * 2


def test_a_connection_that_sends_nothing_is_let_go_and_holds_nobody_up(agent):
    """The agent closes a silent connection after its read timeout; meanwhile it answers others."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", agent.control), timeout=netprobe.READ_TIMEOUT + 5) as silent:
        half = socket.create_connection(("127.0.0.1", agent.control), timeout=netprobe.READ_TIMEOUT + 5)
        half.sendall(b"POST /probe HTTP/1.1\r\nHost: x\r\n")  # and then nothing: a slow loris
        assert agent.valid() < NORMAL
        assert silent.recv(100) == b""  # closed by the agent
        closed_after = time.monotonic() - started
        answer = half.recv(4096)  # and the half-sent request with it, told why
        assert answer.startswith(b"HTTP/1.1 408") and b"headers did not arrive within" in answer
        half.close()
    assert netprobe.READ_TIMEOUT - 1 < closed_after < netprobe.READ_TIMEOUT + 3
    assert agent.valid() < NORMAL


def test_a_body_that_trickles_is_cut_at_the_bound(agent):
    with socket.create_connection(("127.0.0.1", agent.control), timeout=30) as sock:
        sock.sendall(f"POST /probe HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n"
                     "Content-Length: 1000\r\n\r\n{".encode())
        started = time.monotonic()
        answer = b""
        while time.monotonic() - started < netprobe.READ_TIMEOUT + 5:
            try:
                sock.sendall(b" ")
            except OSError:
                break
            sock.settimeout(netprobe.READ_TIMEOUT * 0.4)
            try:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
            except socket.timeout:
                continue
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < netprobe.READ_TIMEOUT + 5
    assert agent.valid() < NORMAL


def test_100_parallel_clients_each_get_an_answer_and_the_agent_stays_up(agent):
    outcomes = []

    def client():
        try:
            status, _, took = agent.request("POST", "/probe", {"targets": [
                {"id": "p", "ip": "127.0.0.1", "port": agent.echo, "proto": "tcp"}]}, timeout=30)
            outcomes.append((status, took))
        except OSError as exc:
            outcomes.append((repr(exc), 0))
    threads = [threading.Thread(target=client) for _ in range(100)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=40)
    assert len(outcomes) == 100
    assert {status for status, _ in outcomes} <= {200, 503}, outcomes
    assert sum(status == 200 for status, _ in outcomes) >= netprobe.CONTROL_WORKERS
    assert time.monotonic() - started < 20
    assert agent.valid() < NORMAL


def test_a_flood_of_silent_connections_cannot_keep_a_real_client_out(agent):
    """More silent connections than the agent keeps pending (no token needed to open them): each
    new one takes the place of the oldest, so a client that sends its request at once is served
    in normal time, and the flood's oldest connections are the ones closed."""
    flood = [socket.create_connection(("127.0.0.1", agent.control), timeout=5)
             for _ in range(netprobe.PENDING_CONNECTIONS + 50)]
    try:
        time.sleep(0.3)
        started = time.monotonic()
        answer = agent.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", wait=5)
        assert answer.startswith(b"HTTP/1.1 200") and time.monotonic() - started < NORMAL
        assert agent.valid() < NORMAL
        flood[0].settimeout(2)
        assert flood[0].recv(100) == b""  # the oldest: pushed out
    finally:
        for sock in flood:
            sock.close()


def test_the_token_holders_connections_have_their_own_bound(agent):
    """Connections whose requests carried the token are counted apart (a flood cannot push them
    out); beyond CONTROL_CONNECTIONS of them the holder is told 503."""
    held = []
    try:
        for _ in range(netprobe.CONTROL_CONNECTIONS):
            conn = http.client.HTTPConnection("127.0.0.1", agent.control, timeout=5)
            conn.request("GET", "/healthz", headers={TOKEN_HEADER: TOKEN})
            assert conn.getresponse().read()
            held.append(conn)
        status, answer, took = agent.request("POST", "/probe", {"targets": []})
        assert status == 503 and "connections of the token's holder" in answer["error"] and took < NORMAL
    finally:
        for conn in held:
            conn.close()
    time.sleep(0.5)
    assert agent.valid() < NORMAL


def test_probe_threads_are_shared_by_all_requests_and_bounded():
    capacity = netprobe._Capacity(8)
    capacity.take(6, wait=0.1)
    with pytest.raises(netprobe.Busy, match="6 of 8 probe threads in use"):
        capacity.take(3, wait=0.2)
    threading.Timer(0.2, capacity.give, args=(6,)).start()
    capacity.take(8, wait=5)  # given back: taken whole


def test_an_agent_without_a_token_does_not_start(tmp_path):
    for args, message in (([], "--token-file (or $NETPROBE_TOKEN_FILE) is required"),
                          (["--token-file", str(tmp_path / "absent")], "cannot read the token file"),
                          (["--token-file", str(_write(tmp_path / "short", "abc"))], "shorter than 16")):
        done = subprocess.run([sys.executable, str(SCRIPT), "serve", "--port", str(free_port()),
                               "--control", f"tcp:127.0.0.1:{free_port()}", *args],
                              capture_output=True, text=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin"})
        assert done.returncode != 0 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_control_api_listens_on_the_address_it_is_given_alone(tmp_path):
    """Manifests bind it to the pod's IP (status.podIP): an IPv6 one too; not on other addresses."""
    token = _write(tmp_path / "token", TOKEN)
    control = free_port()
    process = start_agent("v6", free_port(), "::1", control, token)
    try:
        conn = http.client.HTTPConnection("::1", control, timeout=5)
        conn.request("GET", "/healthz")
        assert json.loads(conn.getresponse().read())["name"] == "v6"
        conn.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", control), timeout=2).close()
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_an_echo_that_closes_without_an_answer_is_not_a_pass():
    """An echo at its bound closes new connections at once: that is no answer, never a success."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def read_then_close():
        conn, _ = server.accept()
        conn.recv(512)  # the token, read: the close is a clean FIN, as the echo's
        conn.close()
    threading.Thread(target=read_then_close, daemon=True).start()
    try:
        result = netprobe.probe_target({"id": "t", "ip": "127.0.0.1", "port": server.getsockname()[1],
                                        "proto": "tcp", "timeout": 3})
    finally:
        server.close()
    assert not result["ok"] and "closed without an answer" in result["error"], result


def test_a_request_without_the_token_does_not_keep_its_connection(agent):
    """An unauthenticated client gets one answer per connection: it cannot hold a worker by
    keeping a connection alive (the readiness probe opens one per check anyway)."""
    answer = agent.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", wait=5)
    assert answer.count(b"HTTP/1.1 200") == 1 and b"Connection: close" in answer


def test_a_declared_body_that_never_comes_is_408_at_the_bound(agent):
    started = time.monotonic()
    answer = agent.raw(f"POST /probe HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n"
                       "Content-Length: 100\r\n\r\n{".encode(), wait=netprobe.READ_TIMEOUT + 5)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < netprobe.READ_TIMEOUT + 2


@pytest.mark.parametrize("content, message", [
    (None, "is not a regular file"),  # /dev/zero: a token of NUL bytes
    ("x" * 5000, "longer than 4096"),
    ("éé-a-token-of-the-run-0123456789", "visible ASCII"),
    ("a-token-of-the-run-0123456789\nsecond-line-0123456789", "visible ASCII"),
    ("fifo", "is not a regular file"),
])
def test_a_token_file_that_is_not_one_line_of_ascii_stops_the_start(tmp_path, content, message):
    if content is None:
        path = Path("/dev/zero")
    elif content == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    else:
        path = _write(tmp_path / "token", content)
    done = subprocess.run([sys.executable, str(SCRIPT), "serve", "--port", str(free_port()),
                           "--control", f"tcp:127.0.0.1:{free_port()}", "--token-file", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_clients_that_trickle_their_headers_hold_nobody_up_and_are_cut_at_the_bound(agent):
    """A slow loris: more connections than the agent has worker threads, each sending a header
    line every few seconds, never finishing. They cost the agent a socket each, not a thread: a
    valid request is answered in normal time meanwhile, and each is told 408 at READ_TIMEOUT."""
    lorises = [socket.create_connection(("127.0.0.1", agent.control), timeout=netprobe.READ_TIMEOUT + 5)
               for _ in range(netprobe.CONTROL_WORKERS * 2)]
    started = time.monotonic()
    try:
        for sock in lorises:
            sock.sendall(b"POST /probe HTTP/1.1\r\n")
        for second in range(3):
            time.sleep(netprobe.READ_TIMEOUT / 4)
            for sock in lorises:
                sock.sendall(f"X-Slow-{second}: 1\r\n".encode())
            assert agent.valid() < NORMAL
        answers = [sock.recv(4096) for sock in lorises]
    finally:
        for sock in lorises:
            sock.close()
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers[:2]
    assert time.monotonic() - started < netprobe.READ_TIMEOUT + 3


@pytest.mark.parametrize("head, status, message", [
    (b"Content-Length: 2\r\nContent-Length: 2\r\n", b"400", b"more than one Content-Length"),
    (b"Content-Length: +2\r\n", b"400", b"Content-Length is not a number"),
    (b"Content-Length: 1_0\r\n", b"400", b"Content-Length is not a number"),
    (b" folded: header\r\n", b"400", b"not 'Name: value'"),
    (b"".join(b"X-%d: 1\r\n" % i for i in range(100)), b"431", b"header lines"),
    (b"X-Long: " + b"a" * 10000 + b"\r\n", b"431", b"longer than"),
    (b"Expect: something-else\r\nContent-Length: 2\r\n", b"417", b"not supported"),
])
def test_framing_the_agent_does_not_take_is_refused_in_json(agent, head, status, message):
    answer = agent.raw(f"POST /probe HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n".encode() + head
                       + b"\r\n{}", wait=5)
    assert answer.startswith(b"HTTP/1.1 " + status) and message in answer, answer[:300]
    assert b"Content-Type: application/json" in answer and b"Connection: close" in answer
    assert agent.valid() < NORMAL


@pytest.mark.parametrize("line, status", [
    (b"GET /" + b"a" * 10000 + b" HTTP/1.1", b"414"),
    (b"GET /healthz HTTP/2.0", b"505"),
    (b"\x16\x03\x01\x02\x00\x01", b"400"),  # a TLS hello, say
    (b"GET healthz", b"400"),
])
def test_a_request_line_the_agent_does_not_take_is_refused_in_json(agent, line, status):
    answer = agent.raw(line + b"\r\nHost: x\r\n\r\n", wait=5)
    assert answer.startswith(b"HTTP/1.1 " + status) and b'{"error": "bad request: ' in answer, answer[:300]


def test_expect_100_continue_is_answered_only_with_the_token(agent):
    """A client that asks before sending its body hears "continue" only once its token is
    checked; without it, 401 and the connection ends, its body never invited."""
    with socket.create_connection(("127.0.0.1", agent.control), timeout=5) as sock:
        sock.sendall(b"POST /probe HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401") and b"100 Continue" not in answer
    body = json.dumps({"targets": [{"id": "ok", "ip": "127.0.0.1", "port": agent.echo, "proto": "tcp"}]}).encode()
    with socket.create_connection(("127.0.0.1", agent.control), timeout=5) as sock:
        sock.sendall(f"POST /probe HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\nExpect: 100-continue\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode())
        assert sock.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = b""
        while b'"results"' not in answer:
            answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")


def test_a_batch_whose_client_left_starts_no_more_targets(agent, listener):
    """Targets one after the other, each waiting 1 s for an answer that never comes: the client
    leaves after the first; the agent starts at most one more, not the eight left."""
    port, dialed = listener
    body = json.dumps({"concurrency": 1, "targets": [
        {"id": f"t{i}", "ip": "127.0.0.1", "port": port, "proto": "tcp", "timeout": 1} for i in range(10)]})
    with socket.create_connection(("127.0.0.1", agent.control), timeout=5) as sock:
        sock.sendall(f"POST /probe HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        time.sleep(1.3)
    time.sleep(4)
    assert 1 <= len(dialed) <= 3, len(dialed)
    assert agent.valid() < NORMAL


def test_a_kept_alive_connection_serves_request_after_request(agent):
    """The pod proxy keeps its connections to a probe: many requests, one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", agent.control, timeout=10)
    try:
        for _ in range(20):
            conn.request("POST", "/probe", body=json.dumps({"targets": [
                {"id": "k", "ip": "127.0.0.1", "port": agent.echo, "proto": "tcp"}]}),
                headers={TOKEN_HEADER: TOKEN})
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["results"][0]["ok"]
        first = conn.sock
        conn.request("GET", "/self", headers={TOKEN_HEADER: TOKEN})
        assert conn.getresponse().status == 200 and conn.sock is first
    finally:
        conn.close()


def test_a_kept_alive_connection_may_idle_longer_than_a_new_one_may_stay_silent(agent):
    """After an answer to the token's holder the connection may idle up to KEEPALIVE_IDLE (longer
    than the pod proxy keeps an idle connection: the proxy closes first, and never sends a POST
    on a connection the agent is closing); a new connection has READ_TIMEOUT for its request."""
    assert netprobe.KEEPALIVE_IDLE > 90 > netprobe.READ_TIMEOUT
    conn = http.client.HTTPConnection("127.0.0.1", agent.control, timeout=netprobe.READ_TIMEOUT + 10)
    try:
        for pause in (0, netprobe.READ_TIMEOUT + 1):
            time.sleep(pause)
            conn.request("GET", "/self", headers={TOKEN_HEADER: TOKEN})
            response = conn.getresponse()
            assert response.status == 200 and "interfaces" in json.loads(response.read())
        assert conn.sock is not None  # the same connection all along
    finally:
        conn.close()


def test_a_get_with_a_body_is_refused_not_taken_for_a_second_request(agent):
    answer = agent.raw(f"GET /self HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\nContent-Length: 40\r\n\r\n"
                       f"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode(), wait=5)
    assert answer.startswith(b"HTTP/1.1 400") and b"a GET has no body" in answer and answer.count(b"HTTP/1.1") == 1


def test_a_flood_of_silent_connections_to_the_echo_cannot_make_a_probe_fail(agent):
    """Silent connections to the TCP echo beyond its bound: a prober's connection, whose token
    comes at once, takes the place of the oldest and is answered. A refusal would read as a
    broken network."""
    flood = [socket.create_connection(("127.0.0.1", agent.echo), timeout=5)
             for _ in range(netprobe.ECHO_CONNECTIONS + 100)]
    try:
        time.sleep(0.3)
        status, answer, _ = agent.request("POST", "/probe", {"targets": [
            {"id": f"e{i}", "ip": "127.0.0.1", "port": agent.echo, "proto": "tcp"} for i in range(20)]})
        assert status == 200 and all(r["ok"] for r in answer["results"]), answer
    finally:
        for sock in flood:
            sock.close()


@pytest.mark.parametrize("version, connection", [("HTTP/1.0", ""), ("HTTP/1.1", "Connection: close\r\n")])
def test_a_client_that_half_closes_after_its_request_gets_its_answer(agent, version, connection):
    body = json.dumps({"targets": [{"id": "h", "ip": "127.0.0.1", "port": agent.echo, "proto": "tcp"}]})
    with socket.create_connection(("127.0.0.1", agent.control), timeout=5) as sock:
        sock.sendall(f"POST /probe {version}\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n{connection}"
                     f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b'"ok": true' in answer, answer[:300]


@pytest.mark.parametrize("request_bytes, status, message", [
    (f"GET /self HTTP/1.1\r\n{TOKEN_HEADER}: wrong\r\n{TOKEN_HEADER}: {TOKEN}\r\n\r\n", b"400",
     b"more than one X-Netprobe-Token"),
    (f"GET /self HTTP/1.1\r\nX-A: x\r{TOKEN_HEADER}: {TOKEN}\r\n\r\n", b"400", b"not 'Name: value'"),
    (f"GET /self HTTP/1.1\r\nX Y: 1\r\n{TOKEN_HEADER}: {TOKEN}\r\n\r\n", b"400", b"not 'Name: value'"),
    (f"HEAD /self HTTP/1.1\r\n{TOKEN_HEADER}: {TOKEN}\r\n\r\n", b"405", b"GET and POST only"),
    (f"GET /healthz HTTP/1.1\r\nContent-Length: 30\r\n\r\nGET /self HTTP/1.1\r\n\r\n", b"400",
     b"a GET has no body"),
    (f"POST /x/y/probe HTTP/1.1\r\n{TOKEN_HEADER}: {TOKEN}\r\nContent-Length: 2\r\n\r\n{{}}", b"404",
     b"no such endpoint"),
    ("GET /self HTTP/1.1\r\n" + "X-Pad: " + "a" * 8000 + "\r\n" * 1 + ("X-Pad2: " + "b" * 8000 + "\r\n") * 4
     + "\r\n", b"431", b"longer than 32768 bytes"),
])
def test_ambiguous_heads_are_refused_not_guessed(agent, request_bytes, status, message):
    answer = agent.raw(request_bytes.encode(), wait=5)
    assert answer.startswith(b"HTTP/1.1 " + status) and message in answer, answer[:300]
    assert answer.count(b"HTTP/1.1 ") == 1  # and nothing after it is taken for a request


def test_an_absolute_form_target_is_the_same_endpoint(agent):
    answer = agent.raw(f"GET http://probe.example/self HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n"
                       "Connection: close\r\n\r\n".encode(), wait=5)
    assert answer.startswith(b"HTTP/1.1 200") and b"interfaces" in answer


def test_an_answer_never_read_does_not_keep_its_connection(agent):
    """A client that sends a batch and never reads: its answer (larger than the kernel's buffers
    take) cannot be written, and the connection is reset once WRITE_TIMEOUT has passed, not held
    for as long as the client likes with megabytes queued."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens: each target is refused at once
    targets = [{"id": f"{i:06d}" + "x" * 94, "ip": "127.0.0.1", "port": port, "proto": "tcp"}
               for i in range(netprobe.MAX_TARGETS)]
    body = json.dumps({"concurrency": 256, "targets": targets}, separators=(",", ":")).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", agent.control))
    try:
        sock.sendall(f"POST /probe HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(netprobe.WRITE_TIMEOUT + netprobe.LINGER * 2 + 10)  # reading nothing, as a stuck client
        received, head = 0, b""
        sock.settimeout(5)
        try:
            while chunk := sock.recv(1 << 20):
                head = head or chunk[:300]
                received += len(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        sock.close()
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) if b"Content-Length: " in head else None
    assert length is None or received < length, (received, length)  # not the whole answer: dropped
    assert agent.valid() < NORMAL

"""Applications run by the real canopyd: the external C++ example
(examples/external-cpp) started through a prototype, scaled, limited,
restarted and killed, with real clients on real sockets."""

import http.client
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from canopy_daemon import (PeakRss, application_processes, processes_titled, stream_through,
                           wait_until)

HELLO = os.environ.get("CANOPY_HELLO_CPP")
pytestmark = pytest.mark.skipif(not HELLO, reason="the external C++ example was not built")

PORT = 18300
LISTENER = f"127.0.0.1:{PORT}"


def configure(canopy, applications, expect=200, settings=None):
    tree = {
        "settings": settings or {},
        "listeners": {LISTENER: {"pass": "routes"}},
        "routes": [{"match": {"uri": f"/{name}/*"}, "action": {"pass": f"applications/{name}"}}
                   for name in applications]
        + [{"action": {"pass": f"applications/{next(iter(applications))}"}}],
        "applications": applications,
    }
    answer = canopy.put("/config", tree)
    assert answer.status == expect, f"{answer}\n{canopy.log()}"
    return answer


def hello_app(**keys):
    app = {"type": "external", "executable": HELLO}
    app.update(keys)
    return app


def fetch(path, method="GET", body=None, headers=None, timeout=30, chunked=False):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {},
                           encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def workers(name):
    return application_processes(name)


def app_status(canopy, name):
    return canopy.get("/status").json["applications"][name]


class Load:
    """Clients sending GET / in a loop until stopped; counts the answers."""

    def __init__(self, clients=4, path="/"):
        self.statuses = {}
        self.errors = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(path,)) for _ in range(clients)]

    def run(self, path):
        while not self.stopping.is_set():
            try:
                status, _, body = fetch(path, timeout=10)
            except OSError as error:
                with self.lock:
                    self.errors.append(repr(error))
                continue
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        wait_until(lambda: sum(self.statuses.values()) > 20)
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join()


def test_hello_runs_in_two_processes_under_a_prototype(canopy):
    configure(canopy, {"hello": hello_app(processes=2)})
    status, headers, body = fetch("/")
    assert (status, body) == (200, b"Hello, world!\n")
    assert headers["Content-Length"] == "14"
    assert len(workers("hello")) == 2
    prototypes = processes_titled('canopy: "hello" prototype')
    assert len(prototypes) == 1
    for pid in workers("hello"):
        assert os.readlink(f"/proc/{pid}/exe") == HELLO
    state = app_status(canopy, "hello")
    assert state["processes"]["running"] == 2
    assert state["processes"]["starting"] == 0
    assert '"hello" prototype started' in canopy.log()


def test_request_fields_reach_the_app(canopy):
    configure(canopy, {"hello": hello_app()})
    status, _, body = fetch("/headers?x=1&y", headers={"X-Custom": "value"})
    assert status == 200
    text = body.decode()
    assert "GET" in text and "/headers?x=1&y" in text
    assert "x=1&y" in text and "X-Custom: value" in text
    assert "127.0.0.1" in text


def test_echo_streams_bodies_both_ways(canopy):
    configure(canopy, {"hello": hello_app()})
    payload = os.urandom(3 * 1024 * 1024 + 17)
    status, _, body = fetch("/echo", "POST", payload)
    assert status == 200 and body == payload
    # Chunked upload: no Content-Length.
    pieces = [os.urandom(size) for size in (1, 1000, 65536, 300000)]
    status, _, body = fetch("/echo", "POST", iter(pieces), chunked=True)
    assert status == 200 and body == b"".join(pieces)
    # Keep-alive and pipelined requests on one connection.
    with socket.create_connection(("127.0.0.1", PORT)) as client:
        client.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                       b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.settimeout(10)
        received = b""
        while received.count(b"HTTP/1.1 200") < 2 or not received.endswith(b"world!\n"):
            chunk = client.recv(65536)
            assert chunk, received
            received += chunk
        assert b"hello" in received


def test_unknown_path_is_the_apps_404_and_head_has_no_body(canopy):
    configure(canopy, {"hello": hello_app()})
    assert fetch("/nothing-here")[0] == 404
    status, headers, body = fetch("/", "HEAD")
    assert status == 200 and body == b""


def test_spare_max_and_idle_timeout(canopy):
    configure(canopy, {"hello": hello_app(processes={"max": 3, "spare": 1, "idle_timeout": 1})})
    assert wait_until(lambda: len(workers("hello")) == 1)
    # Requests whose bodies do not come keep a process each busy: the
    # example's echo waits for the body before it answers.
    held = []
    for _ in range(5):
        client = socket.create_connection(("127.0.0.1", PORT))
        client.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        held.append(client)
    assert wait_until(lambda: app_status(canopy, "hello")["processes"]["running"] == 3)
    time.sleep(0.5)
    assert len(workers("hello")) == 3, "never more than max"
    assert app_status(canopy, "hello")["requests"]["active"] == 5
    # A plain request still queues and is served once one is free.
    for client in held:
        client.sendall(b"x" * 100)
    for client in held:
        client.settimeout(10)
        assert client.recv(65536).startswith(b"HTTP/1.1 200")
        client.close()
    # Idle beyond `spare` for idle_timeout: back to one.
    assert wait_until(lambda: len(workers("hello")) == 1, timeout=10)
    assert app_status(canopy, "hello")["processes"]["running"] == 1
    assert fetch("/")[0] == 200


def test_a_killed_process_is_replaced_under_load(canopy):
    configure(canopy, {"hello": hello_app(processes=2)})
    before = workers("hello")
    with Load() as load:
        os.kill(before[0], signal.SIGKILL)
        assert wait_until(lambda: len(set(workers("hello")) - set(before)) == 1, timeout=10)
        time.sleep(0.3)
    assert not load.errors, load.errors
    # Only requests the killed process held can fail, with 502.
    assert set(load.statuses) <= {200, 502}
    assert load.statuses.get(502, 0) <= 1
    assert load.statuses[200] > 50
    assert app_status(canopy, "hello")["processes"]["running"] == 2


def test_the_request_a_crashing_process_held_gets_502(canopy):
    configure(canopy, {"hello": hello_app()})
    client = socket.create_connection(("127.0.0.1", PORT))
    client.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    assert wait_until(lambda: app_status(canopy, "hello")["requests"]["active"] == 1)
    time.sleep(0.2)
    os.kill(workers("hello")[0], signal.SIGKILL)
    client.settimeout(10)
    assert client.recv(65536).startswith(b"HTTP/1.1 502")
    client.close()
    assert wait_until(lambda: fetch("/")[0] == 200)


def test_limits_requests_replaces_the_process_gracefully(canopy):
    configure(canopy, {"hello": hello_app(limits={"requests": 3})})
    seen = set()
    for _ in range(10):
        assert fetch("/")[0] == 200
        seen.update(workers("hello"))
    assert len(seen) >= 3


def test_limits_timeout_answers_503_and_replaces_the_stuck_process(canopy):
    configure(canopy, {"hello": hello_app(limits={"timeout": 1})})
    stuck = workers("hello")
    client = socket.create_connection(("127.0.0.1", PORT))
    client.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    client.settimeout(10)
    started = time.monotonic()
    assert client.recv(65536).startswith(b"HTTP/1.1 503")
    assert time.monotonic() - started < 5
    client.close()
    assert wait_until(lambda: workers("hello") and workers("hello") != stuck)
    assert fetch("/")[0] == 200


def test_restart_replaces_every_process_without_failing_requests(canopy):
    configure(canopy, {"hello": hello_app(processes=2)})
    before = set(workers("hello"))
    with Load() as load:
        answer = canopy.get("/control/applications/hello/restart")
        assert answer.status == 200, answer
        assert wait_until(lambda: not set(workers("hello")) & before, timeout=10)
        time.sleep(0.3)
    assert load.statuses.keys() == {200}, load.statuses
    assert not load.errors
    assert len(workers("hello")) == 2


def test_reconfiguring_one_app_restarts_only_that_app(canopy):
    configure(canopy, {"one": hello_app(), "two": hello_app()})
    one, two = workers("one"), workers("two")
    configure(canopy, {"one": hello_app(), "two": hello_app(environment={"X": "1"})})
    assert workers("one") == one
    assert wait_until(lambda: workers("two") and workers("two") != two)
    assert fetch("/two/")[0] in (200, 404)
    # Removing an app stops its processes.
    configure(canopy, {"one": hello_app()})
    assert wait_until(lambda: not workers("two"))
    assert wait_until(lambda: not processes_titled('canopy: "two" prototype'))


def test_a_process_that_cannot_start_refuses_the_configuration(canopy):
    answer = configure(canopy, {"broken": hello_app(executable="/nonexistent/app")}, expect=500)
    assert "broken" in answer.json["detail"]
    answer = configure(canopy, {"quits": hello_app(executable="/bin/true")}, expect=500)
    assert 'Failed to start application "quits"' in answer.json["detail"]
    assert canopy.get("/config").json.get("applications", {}) == {}
    # The old configuration carries on.
    configure(canopy, {"hello": hello_app()})
    assert fetch("/")[0] == 200


def test_app_output_goes_to_files_or_the_log(canopy):
    out, err = canopy.dir / "app.out", canopy.dir / "app.err"
    script = f'echo to-stdout; echo to-stderr >&2; exec "{HELLO}"'
    configure(canopy, {"hello": hello_app(executable="/bin/sh", arguments=["-c", script],
                                          stdout=str(out), stderr=str(err))})
    assert wait_until(lambda: out.exists() and "to-stdout" in out.read_text())
    assert wait_until(lambda: "to-stderr" in err.read_text())
    script = 'echo logged-out; echo logged-err >&2; exec "' + HELLO + '"'
    configure(canopy, {"logged": hello_app(executable="/bin/sh", arguments=["-c", script])})
    assert wait_until(lambda: "logged-out" in canopy.log() and "logged-err" in canopy.log())


def test_user_working_directory_and_environment(canopy):
    configure(canopy, {"hello": hello_app(working_directory="/tmp", environment={"GREETING": "hi"})})
    pid = workers("hello")[0]
    assert os.readlink(f"/proc/{pid}/cwd") == "/tmp"
    environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"GREETING=hi" in environment
    uid = int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
    assert uid != 0


def test_100_mib_each_way_at_flat_memory(canopy):
    configure(canopy, {"hello": hello_app()},
              settings={"http": {"max_body_size": 200 * 1024 * 1024}})
    size = 100 * 1024 * 1024
    with PeakRss(interval=0.05, router=canopy.child("canopy: router"),
                 app=workers("hello")[0]) as peaks:
        result = stream_through(PORT, "/echo", size)
    assert result["head"].startswith(b"HTTP/1.1 200"), result
    assert result["complete"] and result["count"] == size, result
    assert peaks["router"] < 64 * 1024, peaks
    assert peaks["app"] < 64 * 1024, peaks


def test_websocket_echo_with_a_real_client(canopy):
    import asyncio

    import websockets  # python3-websockets (Debian 12: 10.4, asyncio client)

    configure(canopy, {"hello": hello_app()})

    async def talk():
        async with websockets.connect(f"ws://{LISTENER}/ws", max_size=None) as connection:
            await connection.send("hello")
            assert await asyncio.wait_for(connection.recv(), 10) == "hello"
            payload = os.urandom(200000)
            await connection.send(payload)
            assert await asyncio.wait_for(connection.recv(), 10) == payload
            # Fragmented message, reassembled by the app's echo.
            await connection.send(["part one, ", "part two"])
            assert await asyncio.wait_for(connection.recv(), 10) == "part one, part two"
            pong = await connection.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
            await connection.close(code=1000, reason="done")
            assert connection.close_code == 1000

    asyncio.run(talk())
    assert fetch("/")[0] == 200
    assert app_status(canopy, "hello")["requests"]["active"] == 0


def test_a_broken_websocket_handshake_is_refused_by_the_router(canopy):
    configure(canopy, {"hello": hello_app()})
    with socket.create_connection(("127.0.0.1", PORT)) as client:
        client.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                       b"Sec-WebSocket-Key: short\r\n\r\n")
        client.settimeout(10)
        assert client.recv(65536).startswith(b"HTTP/1.1 400")


def test_a_process_that_keeps_crashing_is_retried_with_back_off(canopy):
    flag = canopy.dir / "crash"
    script = f'if [ -e "{flag}" ]; then echo crashing >&2; exit 1; fi; exec "{HELLO}"'
    configure(canopy, {"flaky": hello_app(executable="/bin/sh", arguments=["-c", script])})
    assert fetch("/")[0] == 200
    flag.touch()
    os.kill(workers("flaky")[0], signal.SIGKILL)
    time.sleep(3)
    attempts = canopy.log().count("a process failed to start")
    # 100 ms doubling: a handful of attempts in 3 s, not a respawn storm.
    assert 2 <= attempts <= 8, canopy.log()
    # Meanwhile requests are answered, not left waiting.
    assert fetch("/", timeout=10)[0] == 503
    flag.unlink()
    assert wait_until(lambda: fetch("/")[0] == 200, timeout=15)


def test_a_restarted_router_starts_the_applications_again(canopy):
    configure(canopy, {"hello": hello_app(processes=2)})
    before = set(workers("hello"))
    os.kill(canopy.child("canopy: router"), signal.SIGKILL)
    assert wait_until(lambda: fetch_status("/") == 200, timeout=15)
    # The old processes lost their router and left; new ones serve.
    assert wait_until(lambda: len(workers("hello")) == 2 and not set(workers("hello")) & before,
                      timeout=10)


def fetch_status(path):
    try:
        return fetch(path, timeout=5)[0]
    except OSError:
        return None


def test_a_file_the_app_hands_over_is_sent_by_the_router(canopy):
    configure(canopy, {"hello": hello_app()})
    expected = Path(HELLO).read_bytes()
    status, headers, body = fetch("/self")
    assert status == 200 and body == expected
    assert headers["Content-Length"] == str(len(expected))
    # HTTP/1.0 and several in a row on one connection.
    with socket.create_connection(("127.0.0.1", PORT)) as client:
        client.sendall(b"GET /self HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        client.settimeout(10)
        received = b""
        while len(received) < 3 * len(expected):
            chunk = client.recv(1 << 20)
            assert chunk
            received += chunk
        assert received.count(b"HTTP/1.1 200") >= 3

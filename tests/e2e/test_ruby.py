"""The Ruby module (modules/ruby) under the real canopyd: a plain Rack app
(ruby_apps/rack, partly under Rack::Lint), Sinatra, hooks, threads, the
working directory on $LOAD_PATH and refused configurations."""

import hashlib
import http.client
import json
import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from canopy_daemon import Canopy, PeakRss, application_processes, wait_until

# The shared output directory of every language module (`make run`'s --modulesdir).
MODULES = os.environ.get("CANOPY_MODULES_DIR") or os.environ.get("CANOPY_PYTHON_MODULES_DIR")
pytestmark = pytest.mark.skipif(
    not MODULES or not list(Path(MODULES).glob("ruby*.canopy.so")),
    reason="the ruby module was not built")

PORT = 18600
APPS = Path(__file__).resolve().parent / "ruby_apps"


def ruby_app(directory, script="config.ru", **keys):
    app = {"type": "ruby 3.1", "script": str(APPS / directory / script)}
    app.update(keys)
    return app


CONFIG = {
    "listeners": {f"127.0.0.1:{PORT}": {"pass": "routes"}},
    "routes": [
        {"match": {"uri": "/threads/*"}, "action": {"pass": "applications/threads"}},
        {"match": {"uri": "/sinatra/*"}, "action": {"pass": "applications/sinatra"}},
        {"action": {"pass": "applications/rack"}},
    ],
    "applications": {
        "rack": ruby_app("rack"),
        "threads": ruby_app("rack", threads=4),
        "sinatra": {"type": "ruby", "working_directory": str(APPS / "sinatra"),
                    "script": "config.ru"},
    },
    "settings": {"http": {"max_body_size": 64 * 1024 * 1024}},
}


@pytest.fixture(scope="module")
def daemon():
    canopy = Canopy(modules_dir=MODULES).start()
    answer = canopy.put("/config", CONFIG)
    assert answer.status == 200, f"{answer}\n{canopy.log()}"
    yield canopy
    canopy.close()


def fetch(path, method="GET", body=None, headers=None, chunked=False, port=PORT, timeout=30):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {},
                           encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def fetch_json(path, **kwargs):
    status, _, body = fetch(path, **kwargs)
    assert status == 200, (path, status, body)
    return json.loads(body)


@pytest.fixture
def shared_dir(daemon, request):
    """A directory the workers (user nobody) may read and write."""
    directory = daemon.dir / request.node.name
    directory.mkdir()
    directory.chmod(0o777)
    return directory


def raw_request(request, port=PORT):
    """Sends raw bytes with Connection: close; returns the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(request)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    return received


def test_the_module_is_discovered_with_its_runtime_version(daemon):
    assert "module: ruby 3.1." in daemon.log()


def test_hello_and_the_rack_env(daemon):
    status, headers, body = fetch("/")
    assert (status, body) == (200, b"Hello from Rack\n")
    assert headers["Content-Type"] == "text/plain"
    # Array bodies get a Content-Length.
    assert headers["Content-Length"] == str(len(body))

    env = fetch_json("/env/caf%C3%A9?x=1&y=%20", headers={
        "X-Custom": "value", "Content-Type": "text/x-test"})
    assert env["REQUEST_METHOD"] == "GET"
    assert env["REQUEST_URI"] == "/env/caf%C3%A9?x=1&y=%20"
    assert env["PATH_INFO"] == "/env/café"
    assert env["SCRIPT_NAME"] == ""
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(PORT)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_SOFTWARE"] == "Canopy"
    assert env["CONTENT_TYPE"] == "text/x-test"
    assert "CONTENT_LENGTH" not in env
    # The Rack SPEC forbids the HTTP_ forms of these two.
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_X_CUSTOM"] == "value"
    assert env["HTTP_HOST"] == f"127.0.0.1:{PORT}"
    assert env["rack.version"] == [1, 3]
    assert env["rack.url_scheme"] == "http"
    assert (env["rack.multithread"], env["rack.multiprocess"], env["rack.run_once"],
            env["rack.hijack?"]) == (False, True, False, False)
    assert env["errors"] and env["input"]
    assert env["encodings"] == ["ASCII-8BIT"]

    # Repeated fields are joined with ", ".
    answer = raw_request(b"GET /env HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n"
                         b"Connection: close\r\n\r\n")
    env = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert env["HTTP_X_A"] == "1, 2"
    assert env["SERVER_NAME"] == "h"


def test_rack_lint_accepts_the_env_and_the_input(daemon):
    assert fetch("/lint/env")[0] == 200
    status, _, body = fetch("/lint/echo", "POST", b"linted body",
                            headers={"Content-Type": "text/plain"})
    assert (status, body) == (200, b"linted body")
    status, _, body = fetch("/lint/gets", "POST", b"a\nb\n")
    assert status == 200 and json.loads(body)["lines"] == ["a\n", "b\n"]


def test_header_values_from_arrays_and_newlines_are_separate_fields(daemon):
    answer = raw_request(b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = answer.split(b"\r\n\r\n", 1)[0].decode().lower().split("\r\n")
    assert head[0] == "http/1.1 200 ok"
    assert head.count("x-joined: one") == 1 and head.count("x-joined: two") == 1
    assert head.count("set-cookie: a=1") == 1 and head.count("set-cookie: b=2") == 1
    assert "x-single: alone" in head


def test_rack_input_read_gets_each_and_rewind(daemon):
    payload = os.urandom(3 * 1024 * 1024 + 5)
    status, _, body = fetch("/echo", "POST", payload)
    assert status == 200 and body == payload

    lines = fetch_json("/gets", method="POST", body=b"one\ntwo\n\nlast")
    assert lines == {"lines": ["one\n", "two\n", "\n", "last"], "after": None, "read": "",
                     "read_n": None}
    # A chunked body (no Content-Length) ends where the body ends.
    lines = fetch_json("/gets", method="POST", body=iter([b"al", b"pha\nbe", b"ta\n"]),
                       chunked=True)
    assert lines["lines"] == ["alpha\n", "beta\n"]

    status, _, body = fetch("/each", "POST", b"x\ny\nz")
    assert (status, body) == (200, b"[x\n][y\n][z]")

    pieces = fetch_json("/read-pieces", method="POST", body=b"abcdefgh")
    assert pieces == {"pieces": ["abc", "def", "gh"], "again": "abcdefgh",
                      "encoding": "ASCII-8BIT"}


def test_a_50_mib_upload_is_rewindable_at_flat_memory(daemon):
    # The first request starts the worker and shows who it is.
    pid = fetch_json("/env")["pid"]
    assert application_processes("rack") == [pid]
    size = 50 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    expected = hashlib.sha256(block * 50).hexdigest()

    def body():
        for _ in range(50):
            yield block

    with PeakRss(app=pid) as peaks:
        answer = fetch_json("/digest", method="POST", body=body(),
                            headers={"Content-Length": str(size)})
    assert answer["digests"] == [[size, expected], [size, expected]]
    # Beyond 1 MiB rack.input lives in an unlinked temporary file.
    assert 0 < peaks["app"] < 64 * 1024, peaks
    assert fetch_json("/env")["pid"] == pid


def test_an_each_body_is_streamed_as_it_is_produced(daemon, shared_dir):
    signal = shared_dir / "got-the-first-piece"
    with socket.create_connection(("127.0.0.1", PORT), timeout=30) as client:
        client.sendall(f"GET /stream?{signal} HTTP/1.1\r\nHost: x\r\n"
                       "Connection: close\r\n\r\n".encode())
        received = b""
        while b"first\n" not in received:
            chunk = client.recv(65536)
            assert chunk, received
            received += chunk
        # The application is still inside its body: it waits for this file.
        signal.write_text("seen")
        while chunk := client.recv(65536):
            received += chunk
    assert b"transfer-encoding: chunked" in received.lower()
    assert b"second\n" in received, received


def test_a_to_path_body_is_sent_byte_exact(daemon, shared_dir):
    data = os.urandom(2 * 1024 * 1024 + 77)
    served = shared_dir / "served.bin"
    served.write_bytes(data)
    served.chmod(0o644)
    status, headers, body = fetch(f"/file?{served}")
    assert status == 200 and body == data
    assert headers["Content-Type"] == "application/octet-stream"


def test_a_streaming_body_is_called_with_a_stream(daemon):
    status, _, body = fetch("/call")
    assert (status, body) == (200, b"streamed by call")


def test_close_is_called_after_the_body_and_after_it_raised(daemon, shared_dir):
    marker = shared_dir / "closed"
    status, _, body = fetch(f"/close?{marker}")
    assert (status, body) == (200, b"part one\npart two\n")
    assert wait_until(marker.exists)
    marker.unlink()
    # The body raises after its first part went out: the response is cut
    # (or the router answers 503 if it had not sent the head yet).
    try:
        status, _, _ = fetch(f"/close-after-raise?{marker}")
    except http.client.IncompleteRead:
        pass
    else:
        assert status == 503
    assert wait_until(marker.exists)
    assert wait_until(lambda: "IOError: the body failed on purpose" in daemon.log())


def test_errors_answer_500_with_the_backtrace_in_the_log(daemon):
    pid = fetch_json("/env")["pid"]
    for path in ("/raise", "/not-string", "/bad-status"):
        status, _, body = fetch(path)
        assert (status, body) == (500, b"Internal Server Error\n"), path
        assert fetch("/")[0] == 200
    log = daemon.log()
    assert "GET /raise: the application failed" in log
    assert "ArgumentError: the application failed on purpose" in log
    assert "config.ru:" in log and "in `call'" in log  # the backtrace
    assert "the response body yielded a Symbol, but every part must be a String" in log
    assert 'invalid response status "abc"' in log
    assert fetch_json("/env")["pid"] == pid


def test_rack_errors_reach_the_log(daemon):
    assert fetch("/errors")[0] == 204
    assert wait_until(lambda: "a line for the log from rack.errors" in daemon.log())
    assert wait_until(lambda: "and another" in daemon.log())


def test_four_threads_serve_four_slow_requests_together(daemon):
    results = []

    def one():
        results.append(fetch("/threads/barrier"))

    clients = [threading.Thread(target=one) for _ in range(4)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    answers = [json.loads(body) for status, _, body in results if status == 200]
    assert len(answers) == 4, results
    # All four were inside the application at once, in one process.
    assert all(answer["together"] for answer in answers), answers
    assert len({answer["pid"] for answer in answers}) == 1
    assert len({answer["thread"] for answer in answers}) == 4
    assert fetch_json("/threads/env")["rack.multithread"] is True


def test_threads_send_one_frozen_string_at_the_same_time(daemon):
    results = []

    def some():
        for _ in range(4):
            results.append(fetch("/threads/shared"))

    clients = [threading.Thread(target=some) for _ in range(8)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    expected = b"shared body " * 25_000
    assert [(status, body == expected) for status, _, body in results] == [(200, True)] * 32


def test_sinatra(daemon):
    status, _, body = fetch("/sinatra/hello/ada?colour=green")
    assert (status, body) == (200, b"Hello ada, you asked for green\n")
    status, _, body = fetch("/sinatra/form", "POST", b"name=Ada+L&colour=green",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, body) == (200, b"name=Ada L colour=green\n")

    upload = os.urandom(300 * 1024)
    boundary = uuid.uuid4().hex
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n"
            f"a note\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"data.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + upload + f"\r\n--{boundary}--\r\n".encode()
    status, headers, body = fetch("/sinatra/upload", "POST", form, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"filename": "data.bin", "size": len(upload),
                                "sha256": hashlib.sha256(upload).hexdigest(), "note": "a note"}

    assert fetch("/sinatra/missing")[0] == 404
    assert fetch("/sinatra/private")[:3:2] == (403, b"go away\n")
    assert fetch("/sinatra/boom")[:3:2] == (500, b"handled: sinatra route failed\n")


def test_hooks_run_around_workers_and_threads(make_canopy):
    canopy = make_canopy(modules_dir=MODULES).start()
    hooks_log = canopy.dir / "hooks.log"
    hooks_log.touch(mode=0o666)
    hooks_log.chmod(0o666)
    app = ruby_app("hooks", hooks=str(APPS / "hooks" / "hooks.rb"), threads=2,
                   environment={"HOOKS_LOG": str(hooks_log)})
    answer = canopy.put("/config", {
        "listeners": {f"127.0.0.1:{PORT + 1}": {"pass": "applications/hooked"}},
        "applications": {"hooked": app}})
    assert answer.status == 200, f"{answer}\n{canopy.log()}"
    status, _, body = fetch("/", port=PORT + 1)
    assert status == 200
    first = int(body.split()[1])

    def events():
        return hooks_log.read_text().splitlines() if hooks_log.exists() else []

    assert wait_until(lambda: events().count(f"thread_boot {first}") == 2), events()
    assert f"worker_boot {first}" in events()
    assert canopy.get("/control/applications/hooked/restart").status == 200
    assert wait_until(lambda: f"worker_shutdown {first}" in events()), events()
    assert events().count(f"thread_shutdown {first}") == 2
    # The order within the old worker: boot, threads, threads' end, end.
    mine = [line.split()[0] for line in events() if line.endswith(f" {first}")]
    assert mine[0] == "worker_boot" and mine[-1] == "worker_shutdown", mine
    status, _, body = fetch("/", port=PORT + 1)
    second = int(body.split()[1])
    assert status == 200 and second != first
    assert wait_until(lambda: f"worker_boot {second}" in events()), events()


def test_the_working_directory_is_on_the_load_path(make_canopy):
    canopy = make_canopy(modules_dir=MODULES).start()
    directory = APPS / "loadpath"
    answer = canopy.put("/config", {
        "listeners": {f"127.0.0.1:{PORT + 1}": {"pass": "applications/app"}},
        "applications": {"app": {"type": "ruby", "working_directory": str(directory),
                                 "script": "config.ru"}}})
    assert answer.status == 200, f"{answer}\n{canopy.log()}"
    status, _, body = fetch("/", port=PORT + 1)
    assert (status, body) == (
        200, f"loaded helper.rb from the working directory {directory}\n".encode())


def test_refused_configurations(make_canopy):
    canopy = make_canopy(modules_dir=MODULES).start()
    listener = {f"127.0.0.1:{PORT + 1}": {"pass": "applications/app"}}

    def put(app):
        return canopy.put("/config", {"listeners": listener, "applications": {"app": app}})

    answer = put(ruby_app("broken", "syntax_error.ru"))
    assert answer.status == 500, answer
    detail = answer.json["detail"]
    assert "the ruby module could not set the application up" in detail, detail
    assert "SyntaxError" in detail and "syntax_error.ru" in detail, detail
    assert "unexpected end-of-input" in canopy.log()

    answer = put(ruby_app("broken", "missing.ru"))
    assert answer.status == 500, answer
    assert "missing.ru\" cannot be read: No such file or directory" in answer.json["detail"]

    answer = put(ruby_app("broken", "not_an_app.ru"))
    assert answer.status == 500, answer
    assert "not_an_app.ru" in answer.json["detail"], answer.json

    answer = put(ruby_app("rack", hooks=str(APPS / "broken" / "syntax_error.ru")))
    assert answer.status == 500 and "cannot load the hooks file" in answer.json["detail"]

    assert put(ruby_app("rack", threads=0)).status == 400
    assert put({"type": "ruby"}).status == 400
    assert put(ruby_app("rack", module="x")).status == 400
    assert canopy.get("/config").json.get("applications", {}) == {}
    # The refusals cost nothing: a good application still starts.
    assert put(ruby_app("rack")).status == 200
    assert fetch("/", port=PORT + 1)[2] == b"Hello from Rack\n"

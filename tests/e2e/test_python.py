"""The Python module (modules/python) under the real canopyd: WSGI apps from
python_apps/, a Flask app, errors, threads and a refused configuration."""

import hashlib
import http.client
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from canopy_daemon import Canopy, wait_until

MODULES = os.environ.get("CANOPY_PYTHON_MODULES_DIR")
pytestmark = pytest.mark.skipif(
    not MODULES or not list(Path(MODULES).glob("python*.canopy.so")),
    reason="the python module was not built")

PORT = 18400
APPS = str(Path(__file__).resolve().parent / "python_apps")


def python_app(**keys):
    app = {"type": "python 3.11", "path": APPS, "module": "wsgi_apps"}
    app.update(keys)
    return app


CONFIG = {
    "listeners": {f"127.0.0.1:{PORT}": {"pass": "routes"}},
    "routes": [
        {"match": {"uri": "/threads/*"}, "action": {"pass": "applications/threads"}},
        {"match": {"uri": ["/pre", "/pre/*"]}, "action": {"pass": "applications/pre"}},
        {"match": {"uri": "/flask/*"}, "action": {"pass": "applications/flask"}},
        {"action": {"pass": "applications/wsgi"}},
    ],
    "applications": {
        "wsgi": python_app(),
        "threads": python_app(path=[APPS], threads=4, thread_stack_size=1 << 20),
        "pre": python_app(prefix="/pre/"),
        "flask": python_app(module="flask_app", callable="app", prefix="/flask"),
    },
}


@pytest.fixture(scope="module")
def daemon():
    canopy = Canopy(modules_dir=MODULES).start()
    answer = canopy.put("/config", CONFIG)
    assert answer.status == 200, f"{answer}\n{canopy.log()}"
    yield canopy
    canopy.close()


def fetch(path, method="GET", body=None, headers=None, chunked=False, timeout=30):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {},
                           encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_the_module_is_discovered_with_its_runtime_version(daemon):
    assert 'module: python 3.11.' in daemon.log()


def test_hello(daemon):
    status, headers, body = fetch("/")
    assert (status, body) == (200, b"Hello from WSGI\n")
    assert headers["Content-Type"] == "text/plain"


def test_environ(daemon):
    status, _, body = fetch("/environ/caf%C3%A9?x=1&y=%20", headers={
        "X-Custom": "value", "X-Repeated": "one", "Content-Type": "text/x-test"})
    assert status == 200
    environ = json.loads(body)
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["REQUEST_URI"] == "/environ/caf%C3%A9?x=1&y=%20"
    # Decoded, as latin-1 characters of the UTF-8 bytes (PEP 3333).
    assert environ["PATH_INFO"] == "/environ/caf\u00c3\u00a9"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["QUERY_STRING"] == "x=1&y=%20"
    assert environ["CONTENT_TYPE"] == "text/x-test"
    assert "CONTENT_LENGTH" not in environ
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == str(PORT)
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["headers"]["HTTP_X_CUSTOM"] == "value"
    assert environ["headers"]["HTTP_HOST"] == f"127.0.0.1:{PORT}"
    assert environ["types"] == ["str"]
    assert environ["wsgi"] == {
        "version": [1, 0], "multithread": False, "multiprocess": True, "run_once": False,
        "input_terminated": True, "input_has": ["read", "readline", "readlines", "__iter__"],
        "file_wrapper": True, "errors_write": True}
    # Repeated fields are joined.
    with socket.create_connection(("127.0.0.1", PORT)) as client:
        client.sendall(b"GET /environ HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n"
                       b"Connection: close\r\n\r\n")
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    environ = json.loads(received.split(b"\r\n\r\n", 1)[1])
    assert environ["headers"]["HTTP_X_A"] == "1, 2"
    assert environ["SERVER_NAME"] == "h"


def test_post_echo_5_mib_and_chunked_upload(daemon):
    payload = os.urandom(5 * 1024 * 1024 + 3)
    status, _, body = fetch("/echo", "POST", payload)
    assert status == 200 and body == payload
    pieces = [os.urandom(size) for size in (1, 1000, 65536, 300000)]
    status, _, body = fetch("/echo", "POST", iter(pieces), chunked=True)
    assert status == 200 and body == b"".join(pieces)


def test_readline_iteration(daemon):
    status, _, body = fetch("/lines", "POST", b"first line\nabcdef\nthird\nfourth\nlast")
    assert status == 200
    assert json.loads(body) == {"first": "first line\n", "limited": "abc",
                                "rest": ["def\n", "third\n", "fourth\n", "last"], "after": ""}
    status, _, body = fetch("/readlines", "POST", iter([b"a\nb", b"b\n", b"c"]), chunked=True)
    assert json.loads(body) == ["a\n", "bb\n", "c"]


def test_streaming_from_a_generator_and_write(daemon):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    connection.request("GET", "/stream")
    response = connection.getresponse()
    assert response.status == 200
    assert response.headers.get("Transfer-Encoding") == "chunked"
    started = time.monotonic()
    first = response.read1(64)
    # The first part arrives well before the generator has finished (5 x 150 ms).
    assert first.startswith(b"part 0\n") and time.monotonic() - started < 0.5
    rest = response.read()
    connection.close()
    assert first + rest == b"".join(f"part {index}\n".encode() for index in range(5))
    assert fetch("/write")[2] == b"written, then returned"


def test_close_is_called(daemon):
    before = json.loads(fetch("/closed")[2])["closed"]
    assert fetch("/closing")[2] == b"closing iterable"
    assert json.loads(fetch("/closed")[2])["closed"] == before + 1


def test_file_wrapper(daemon):
    expected = (Path(APPS) / "wsgi_apps.py").read_bytes()
    status, headers, body = fetch("/file")
    assert status == 200 and body == expected
    assert headers["Content-Length"] == str(len(expected))


def test_errors_answer_500_and_the_process_keeps_serving(daemon):
    pid = json.loads(fetch("/environ")[2])["pid"]
    for path in ("/fail", "/str", "/bad-headers"):
        status, _, body = fetch(path)
        assert status == 500, path
        assert fetch("/")[0] == 200
    assert wait_until(lambda: "ValueError: the application failed on purpose" in daemon.log())
    assert "Traceback (most recent call last)" in daemon.log()
    assert "yielded a str, but every item must be bytes" in daemon.log()
    assert "headers must be a list" in daemon.log()
    # After the headers went out the connection is cut instead (unless the
    # router had not sent the head yet when the abort came: then it answers 503).
    try:
        status, _, _ = fetch("/fail-midway")
    except http.client.IncompleteRead:
        pass
    else:
        assert status == 503
    assert wait_until(lambda: "failed after the headers went out" in daemon.log())
    assert json.loads(fetch("/environ")[2])["pid"] == pid


def test_a_client_that_leaves_ends_an_endless_stream(daemon):
    before = json.loads(fetch("/forever-closed")[2])["closed"]
    with socket.create_connection(("127.0.0.1", PORT)) as client:
        client.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        while received < 1 << 20:
            received += len(client.recv(65536))
    assert wait_until(
        lambda: json.loads(fetch("/forever-closed")[2])["closed"] == before + 1, timeout=10)


def test_wsgi_errors_reach_the_log(daemon):
    assert fetch("/errors")[0] == 204
    assert wait_until(lambda: "a line for the log from wsgi.errors" in daemon.log())


def test_four_threads_serve_four_slow_requests_together(daemon):
    results = []

    def one():
        status, _, body = fetch("/threads/slow")
        results.append((status, json.loads(body)))

    clients = [threading.Thread(target=one) for _ in range(4)]
    started = time.monotonic()
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    elapsed = time.monotonic() - started
    assert [status for status, _ in results] == [200] * 4
    assert len({answer["pid"] for _, answer in results}) == 1
    assert len({answer["thread"] for _, answer in results}) == 4
    assert all(answer["multithread"] for _, answer in results)
    assert elapsed < 2.5, elapsed


def test_prefix(daemon):
    environ = json.loads(fetch("/pre/inner/path?q=1")[2])
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/pre", "/inner/path")
    environ = json.loads(fetch("/pre")[2])
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/pre", "")


def test_flask(daemon):
    status, _, body = fetch("/flask/form", "POST", b"name=Ada&colour=green",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, body) == (200, b"name=Ada colour=green")
    status, headers, body = fetch("/flask/cookie/set")
    assert status == 200 and "flavour=hazelnut" in headers["Set-Cookie"]
    assert fetch("/flask/cookie/get", headers={"Cookie": "flavour=hazelnut"})[2] == \
        b"flavour=hazelnut"
    status, headers, body = fetch("/flask/json?a=b")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"framework": "flask", "script_root": "/flask", "path": "/json",
                                "args": {"a": "b"}}
    assert fetch("/flask/missing")[0] == 404
    status, headers, body = fetch("/flask/stream")
    assert (status, body) == (200, b"chunk 0;chunk 1;chunk 2;")


def test_flask_upload_and_errors(daemon):
    document = os.urandom(3 * 1024 * 1024 + 7)
    boundary = "canopy-e2e-boundary"
    body = (f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="note"\r\n\r\n'
            f"quarterly\r\n--{boundary}\r\n"
            'Content-Disposition: form-data; name="document"; filename="report.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + document + \
        f"\r\n--{boundary}--\r\n".encode()
    status, _, answer = fetch("/flask/upload", "POST", body,
                              headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, answer
    assert json.loads(answer) == {"filename": "report.bin", "size": len(document),
                                  "sha256": hashlib.sha256(document).hexdigest(),
                                  "note": "quarterly"}

    # Flask answers its own errors; the traceback goes through wsgi.errors.
    status, _, answer = fetch("/flask/boom")
    assert status == 500 and b"Internal Server Error" in answer
    assert "RuntimeError: flask view failed on purpose" in daemon.log()
    assert fetch("/flask/refuse")[0] == 403
    assert fetch("/flask/json")[0] == 200  # the process serves on


def test_refused_configurations(make_canopy):
    canopy = make_canopy(modules_dir=MODULES).start()
    listener = {f"127.0.0.1:{PORT + 1}": {"pass": "applications/app"}}

    def put(app):
        return canopy.put("/config", {"listeners": listener, "applications": {"app": app}})

    answer = put(python_app(module="broken_import"))
    assert answer.status == 500, answer
    assert "broken_import" in answer.json["detail"], answer.json
    assert "canopy_no_such_dependency" in canopy.log()
    # `module` and `targets` exclude each other.
    assert put(python_app(targets={"a": {"module": "wsgi_apps"}})).status == 400
    assert put(python_app(prefix="no-slash")).status == 400
    assert put(python_app(threads=0)).status == 400
    assert put({"type": "python", "callable": "app"}).status == 400
    assert put(python_app(callable="missing")).status == 500
    assert canopy.get("/config").json.get("applications", {}) == {}


def test_home_is_a_virtual_environment(make_canopy):
    canopy = make_canopy(modules_dir=MODULES)
    venv = canopy.dir / "venv"
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "venv_marker.py").write_text('MARKER = "from the venv"\n')
    canopy.start()
    listener = {f"127.0.0.1:{PORT + 1}": {"pass": "applications/app"}}
    answer = canopy.put("/config", {"listeners": listener,
                                    "applications": {"app": python_app(home=str(venv))}})
    assert answer.status == 200, f"{answer}\n{canopy.log()}"
    connection = http.client.HTTPConnection("127.0.0.1", PORT + 1, timeout=10)
    connection.request("GET", "/sys")
    answer = json.loads(connection.getresponse().read())
    connection.close()
    assert answer["prefix"] == str(venv)
    assert answer["base_prefix"] == "/usr"
    assert answer["marker"] == "from the venv"
    assert answer["argv"] == ["canopy"]
    assert answer["flags"] == [1, 1]

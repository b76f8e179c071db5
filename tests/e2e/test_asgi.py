"""ASGI in the Python module (modules/python) under the real canopyd: HTTP
with streamed bodies both ways and http.disconnect, WebSocket driven by
python3-websockets, lifespan, ASGI 2, factory, targets, errors, threads and
100 MiB echoed at flat memory. The apps are in python_apps/asgi_apps.py."""

import asyncio
import http.client
import json
import os
import re
import socket
import threading
from pathlib import Path

import pytest
import websockets

from canopy_daemon import (Canopy, PeakRss, application_processes, stream_through,
                           wait_until)

MODULES = os.environ.get("CANOPY_PYTHON_MODULES_DIR")
pytestmark = pytest.mark.skipif(
    not MODULES or not list(Path(MODULES).glob("python*.canopy.so")),
    reason="the python module was not built")

PORT = 18700
APPS = str(Path(__file__).resolve().parent / "python_apps")
ECHO_SIZE = 100 * 1024 * 1024


def asgi_app(events, **keys):
    app = {"type": "python 3.11", "path": APPS, "module": "asgi_apps",
           "environment": {"ASGI_EVENTS": str(events)}}
    app.update(keys)
    return app


def events_file(canopy):
    path = canopy.dir / "events"
    path.touch()
    path.chmod(0o666)  # the apps may run as nobody
    return path


def lines(path):
    return path.read_text().splitlines()


@pytest.fixture(scope="module")
def daemon():
    canopy = Canopy(modules_dir=MODULES).start()
    events = events_file(canopy)
    config = {
        "settings": {"http": {"max_body_size": 2 * ECHO_SIZE}},
        "listeners": {f"127.0.0.1:{PORT}": {"pass": "routes"}},
        "routes": [
            {"match": {"uri": "/legacy/*"}, "action": {"pass": "applications/legacy"}},
            {"match": {"uri": "/threads/*"}, "action": {"pass": "applications/threads"}},
            {"match": {"uri": "/pre/*"}, "action": {"pass": "applications/pre"}},
            {"action": {"pass": "applications/asgi"}},
        ],
        "applications": {
            # No "protocol": detected (a coroutine function: ASGI 3).
            "asgi": asgi_app(events),
            # A class taking the scope: ASGI 2, detected too.
            "legacy": asgi_app(events, callable="Legacy"),
            "threads": asgi_app(events, protocol="asgi", threads=4, prefix="/threads"),
            "pre": asgi_app(events, prefix="/pre"),
        },
    }
    answer = canopy.put("/config", config)
    assert answer.status == 200, f"{answer}\n{canopy.log()}"
    canopy.events = events
    yield canopy
    canopy.close()


def fetch(path, method="GET", body=None, headers=None, chunked=False, port=PORT):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {},
                           encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_hello_and_scope(daemon):
    status, headers, body = fetch("/")
    assert (status, body) == (200, b"Hello from ASGI\n")
    assert headers["Content-Type"] == "text/plain"
    status, _, body = fetch("/scope?x=1&y=%20", headers={"X-Custom": "value"})
    assert status == 200
    scope = json.loads(body)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == ""
    assert scope["server"] == ["127.0.0.1", PORT]
    assert scope["client"][0] == "127.0.0.1"
    assert ["x-custom", "value"] in scope["headers"]
    assert ["host", f"127.0.0.1:{PORT}"] in scope["headers"]
    assert scope["loop_running"] is True
    # The lifespan startup ran in this worker before it served, and its
    # state is copied into each scope.
    assert scope["state"]["started_by"] in application_processes("asgi")
    assert f"startup {scope['state']['started_by']}" in lines(daemon.events)


def test_prefix_is_root_path_and_path_keeps_it(daemon):
    status, _, body = fetch("/pre/scope")
    scope = json.loads(body)
    assert (scope["root_path"], scope["path"]) == ("/pre", "/pre/scope")


def test_streaming_request_body_read_piece_by_piece(daemon):
    pieces = [os.urandom(size) for size in (1, 1000, 65536, 300000)]

    def slowly():
        yield from pieces

    status, _, body = fetch("/upload-pieces", "POST", slowly(), chunked=True)
    assert status == 200
    received = json.loads(body)
    # Every message but the last says more_body; together they are the body.
    assert sum(size for size, _ in received) == sum(map(len, pieces))
    assert [more for _, more in received] == [True] * (len(received) - 1) + [False]
    assert len(received) > 1
    # A Content-Length body ends with more_body False on its last bytes.
    status, _, body = fetch("/upload-pieces", "POST", b"x" * 10)
    assert json.loads(body) == [[10, False]]
    status, _, body = fetch("/upload-pieces")
    assert json.loads(body) == [[0, False]]


def test_streaming_response(daemon):
    status, headers, body = fetch("/stream")
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    assert headers["X-Streamed"] == "yes"
    assert body == b"".join(f"piece {index}\n".encode() for index in range(5)) + b"end\n"


def test_client_leaving_mid_stream_is_an_http_disconnect(daemon):
    with socket.create_connection(("127.0.0.1", PORT)) as client:
        client.sendall(b"GET /endless?leaver HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while received.count(b"tick") < 10:
            received += client.recv(65536)
        assert received.startswith(b"HTTP/1.1 200")
    assert wait_until(lambda: "disconnect leaver" in lines(daemon.events)), lines(daemon.events)
    assert fetch("/")[2] == b"Hello from ASGI\n"


def test_client_leaving_a_silent_request_is_an_http_disconnect(daemon):
    # The app has sent nothing and waits: the router watches the socket.
    with socket.create_connection(("127.0.0.1", PORT)) as client:
        client.sendall(b"GET /long-poll?silent HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_until(lambda: "waiting silent" in lines(daemon.events)), lines(daemon.events)
    assert wait_until(lambda: "http.disconnect silent" in lines(daemon.events)), \
        lines(daemon.events)


def test_a_pipelined_request_is_not_taken_for_a_client_leaving(daemon):
    with socket.create_connection(("127.0.0.1", PORT)) as client:
        client.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        threading.Event().wait(0.1)  # the next request comes while the app works
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 2, received
    assert received.index(b"slow answer") < received.index(b"Hello from ASGI"), received


def test_errors_answer_500_and_the_process_keeps_serving(daemon):
    before = application_processes("asgi")
    for path in ("/error", "/not-bytes", "/wrong-order", "/longer"):
        status, _, body = fetch(path)
        assert (status, body) == (500, b"Internal Server Error\n"), path
    # The worker's log lines reach the log file through main: wait for them.
    for text in ("RuntimeError: the application broke on purpose",
                 "Traceback (most recent call last)",
                 "TypeError: http.response.body: body must be bytes, not str",
                 "http.response.body sent before http.response.start",
                 "more bytes than the Content-Length (5)"):
        assert wait_until(lambda: text in daemon.log()), text
    # Fewer bytes than announced once the head went: the connection is cut,
    # the client sees a short body rather than waiting for the rest.
    with socket.create_connection(("127.0.0.1", PORT)) as client:
        client.sendall(b"GET /shorter HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"\r\n\r\nthree"), received
    assert wait_until(
        lambda: "the response ended after 5 of its Content-Length (10) bytes" in daemon.log())
    assert fetch("/")[0] == 200
    assert application_processes("asgi") == before


def test_asgi2_double_callable(daemon):
    status, _, body = fetch("/legacy/")
    assert (status, body) == (200, b"ASGI 2.0 double callable\n")


def test_threads_each_serve_with_their_own_loop(daemon):
    # Each request blocks its thread's loop: four at once need several threads.
    answers = []

    def one():
        answers.append(fetch("/threads/thread"))

    clients = [threading.Thread(target=one) for _ in range(4)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    assert [status for status, _, _ in answers] == [200] * 4
    assert len({body for _, _, body in answers}) > 1, (answers, daemon.log())
    assert len(application_processes("threads")) == 1


def test_websocket_echo_subprotocol_headers_and_close_codes(daemon):
    async def session():
        url = f"ws://127.0.0.1:{PORT}/ws"
        async with websockets.connect(url, subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
            assert ws.response_headers["X-Accepted-By"] == "canopy-test"
            await ws.send("hello")
            assert await ws.recv() == "echo: hello"
            await ws.send(bytes(range(256)) * 1000)
            assert await ws.recv() == (bytes(range(256)) * 1000)[::-1]
            await ws.send("close please")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "asked to")
        # The client closes: the app sees its code.
        async with websockets.connect(url) as ws:
            assert ws.subprotocol is None
            await ws.send("x")
            assert await ws.recv() == "echo: x"
            await ws.close(code=4321)
        # Refused before accept: 403.
        with pytest.raises(websockets.InvalidStatusCode) as refused:
            async with websockets.connect(f"ws://127.0.0.1:{PORT}/ws-refuse"):
                pass
        assert refused.value.status_code == 403

    asyncio.run(session())
    assert wait_until(lambda: "ws-disconnect 4321" in lines(daemon.events)), lines(daemon.events)


def test_websocket_client_vanishing_is_a_disconnect(daemon):
    async def session():
        ws = await websockets.connect(f"ws://127.0.0.1:{PORT}/ws")
        await ws.send("there")
        assert await ws.recv() == "echo: there"
        ws.transport.abort()  # no close frame: the TCP connection just ends

    asyncio.run(session())
    assert wait_until(lambda: "ws-disconnect 1006" in lines(daemon.events)), lines(daemon.events)


def test_100_mib_echo_at_flat_memory(daemon):
    router = daemon.child("canopy: router")
    apps = application_processes("asgi")
    assert router and len(apps) == 1, (router, apps, daemon.children())
    app = apps[0]
    with PeakRss(router=router, app=app) as peaks:
        result = stream_through(PORT, "/echo", ECHO_SIZE)
    assert result["head"].startswith(b"HTTP/1.1 200"), result["head"]
    assert result.get("complete") and result["count"] == ECHO_SIZE, result
    assert 0 < peaks["router"] < 64 * 1024, peaks
    assert 0 < peaks["app"] < 64 * 1024, peaks
    assert application_processes("asgi") == [app]


def test_reading_and_sending_in_two_tasks_at_once(daemon):
    size = 32 * 1024 * 1024
    result = stream_through(PORT, f"/duplex?{size}", size)
    assert result["head"].startswith(b"HTTP/1.1 200"), result["head"]
    assert result.get("complete"), result
    assert result["count"] == size + len(f"read {size}\n"), result


def test_lifespan_shutdown_runs_when_the_app_stops(make_canopy):
    canopy = make_canopy(modules_dir=MODULES).start()
    events = events_file(canopy)
    listener = {f"127.0.0.1:{PORT + 1}": {"pass": "applications/app"}}
    answer = canopy.put("/config", {"listeners": listener,
                                    "applications": {"app": asgi_app(events)}})
    assert answer.status == 200, answer
    assert fetch("/", port=PORT + 1)[0] == 200
    worker, = application_processes("app")
    assert canopy.delete("/config/applications/app").status == 400  # still referenced
    assert canopy.put("/config/listeners", {}).status == 200
    assert canopy.delete("/config/applications/app").status == 200
    assert wait_until(lambda: f"shutdown {worker}" in lines(events)), lines(events)
    assert lines(events) == [f"startup {worker}", f"shutdown {worker}"]


def test_lifespan_startup_failure_refuses_the_configuration(make_canopy):
    canopy = make_canopy(modules_dir=MODULES).start()
    events = events_file(canopy)
    listener = {f"127.0.0.1:{PORT + 1}": {"pass": "applications/app"}}
    answer = canopy.put("/config", {"listeners": listener, "applications": {
        "app": asgi_app(events, callable="failing_startup")}})
    assert answer.status == 500, answer
    # The application's own words, through canopy_app_start_failed.
    assert answer.json["detail"] == (
        'Failed to start application "app": the application failed its lifespan startup: '
        'the database is unreachable'), answer.json
    assert wait_until(lambda: "the database is unreachable" in canopy.log())
    assert canopy.get("/config").json.get("applications", {}) == {}


def test_factory_for_asgi_and_wsgi(make_canopy):
    canopy = make_canopy(modules_dir=MODULES).start()
    events = events_file(canopy)
    answer = canopy.put("/config", {
        "listeners": {f"127.0.0.1:{PORT + 1}": {"pass": "applications/asgi"},
                      f"127.0.0.1:{PORT + 2}": {"pass": "applications/wsgi"}},
        "applications": {
            "asgi": asgi_app(events, callable="make_application", factory=True),
            "wsgi": asgi_app(events, callable="make_wsgi", factory=True),
        }})
    assert answer.status == 200, f"{answer}\n{canopy.log()}"
    assert fetch("/", port=PORT + 1)[2] == b"made by the ASGI factory\n"
    assert fetch("/", port=PORT + 2)[2] == b"made by the WSGI factory\n"
    # The factory's app ends its lifespan at once: served without it.
    assert wait_until(lambda: "does not support the ASGI lifespan protocol" in canopy.log())


def test_targets_select_the_entry_point(make_canopy):
    canopy = make_canopy(modules_dir=MODULES).start()
    events = events_file(canopy)
    port = PORT + 1
    answer = canopy.put("/config", {
        "listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
        "routes": [
            {"match": {"uri": "/one/*"}, "action": {"pass": "applications/multi/main"}},
            {"match": {"uri": "/two/*"}, "action": {"pass": "applications/multi/other"}},
            {"match": {"uri": "/wsgi/*"}, "action": {"pass": "applications/wsgi/second"}},
            {"match": {"uri": "/flask/*"}, "action": {"pass": "applications/wsgi/flask"}},
            {"action": {"pass": "applications/multi"}},
        ],
        "applications": {
            "multi": {"type": "python 3.11", "path": APPS,
                      "environment": {"ASGI_EVENTS": str(events)},
                      "targets": {
                          "main": {"module": "asgi_apps", "prefix": "/one"},
                          "other": {"module": "asgi_other", "callable": "app",
                                    "prefix": "/two/"},
                      }},
            "wsgi": {"type": "python 3.11", "path": APPS, "targets": {
                "second": {"module": "wsgi_apps"},
                "flask": {"module": "flask_app", "callable": "app", "prefix": "/flask"},
            }},
        }})
    assert answer.status == 200, f"{answer}\n{canopy.log()}"
    status, _, body = fetch("/one/scope", port=port)
    assert status == 200 and json.loads(body)["root_path"] == "/one"
    assert fetch("/two/x", port=port)[2] == \
        b"other target, root_path=/two path=/two/x state=other\n"
    # No target named: the first one.
    assert fetch("/", port=port)[2] == b"Hello from ASGI\n"
    # Each ASGI target ran its own lifespan in the one worker.
    worker, = application_processes("multi")
    assert {f"startup {worker}", f"startup other {worker}"} <= set(lines(events))
    assert fetch("/wsgi/", port=port)[2] == b"Hello from WSGI\n"
    status, _, body = fetch("/flask/json", port=port)
    assert status == 200 and json.loads(body)["script_root"] == "/flask", body


def test_targets_refused_configurations(make_canopy):
    canopy = make_canopy(modules_dir=MODULES).start()
    listener = {f"127.0.0.1:{PORT + 1}": {"pass": "applications/app"}}

    def put(app):
        return canopy.put("/config", {"listeners": listener, "applications": {"app": app}})

    base = {"type": "python 3.11", "path": APPS}
    # With targets, the top-level entry point keys are not allowed.
    assert put({**base, "module": "asgi_apps", "targets": {"a": {"module": "asgi_apps"}}}
               ).status == 400
    assert put({**base, "prefix": "/p", "targets": {"a": {"module": "asgi_apps"}}}).status == 400
    assert put({**base, "targets": {"a": {"callable": "application"}}}).status == 400
    assert put({**base, "targets": {}}).status == 400
    # A target the application lacks.
    answer = canopy.put("/config", {
        "listeners": {f"127.0.0.1:{PORT + 1}": {"pass": "applications/app/missing"}},
        "applications": {"app": {**base, "targets": {"a": {"module": "asgi_apps"}}}}})
    assert answer.status == 400, answer
    # WSGI and ASGI mixed without "protocol".
    answer = put({**base, "targets": {"a": {"module": "asgi_apps"},
                                      "b": {"module": "wsgi_apps"}}})
    assert answer.status == 500 and "mix WSGI and ASGI" in answer.json["detail"], answer.json
    assert canopy.get("/config").json.get("applications", {}) == {}


def test_django_as_an_asgi_application(make_canopy):
    """Debian's Django 3.2 through django.core.asgi: a template, a CSRF-checked
    form. Django refuses lifespan scopes: served without lifespan."""
    canopy = make_canopy(modules_dir=MODULES).start()
    port = PORT + 1
    answer = canopy.put("/config", {
        "listeners": {f"127.0.0.1:{port}": {"pass": "applications/django"}},
        "applications": {"django": {"type": "python", "path": APPS,
                                    "module": "django_site.asgi"}}})
    assert answer.status == 200, f"{answer}\n{canopy.log()}"
    status, headers, body = fetch("/greet/", port=port)
    assert status == 200, f"{body!r}\n{canopy.log()}"
    cookie = re.search(r"csrftoken=([A-Za-z0-9]+)", headers["Set-Cookie"]).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([A-Za-z0-9]+)"',
                      body.decode()).group(1)
    form = {"Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookie}"}
    status, _, body = fetch("/greet/", "POST", f"csrfmiddlewaretoken={token}&name=Ada+%26+Bob",
                            headers=form, port=port)
    assert status == 200, body
    assert '<p id="greeting">Hello, Ada &amp; Bob!</p>' in body.decode()
    assert fetch("/greet/", "POST", "name=Eve", headers=form, port=port)[0] == 403
    assert wait_until(lambda: "does not support the ASGI lifespan protocol" in canopy.log())

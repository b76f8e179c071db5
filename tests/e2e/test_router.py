"""The router as HTTP clients meet it: listeners, routes, variables, framing."""

import http.client
import os
import signal
import socket
import threading
import time

import pytest

from canopy_daemon import wait_until


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def configure(canopy, config):
    answer = canopy.put("/config", config)
    assert answer.status == 200, answer
    return answer


def raw(port, data, timeout=5.0, host="127.0.0.1"):
    """Sends bytes, returns everything the server answers until it closes."""
    with socket.create_connection((host, port), timeout=timeout) as client:
        client.sendall(data)
        chunks = []
        try:
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            pass
    return b"".join(chunks)


def get(port, path, headers=None, method="GET", body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture
def served(canopy):
    port = free_port()
    configure(canopy, {
        "listeners": {f"127.0.0.1:{port}": {"pass": "routes/main"}},
        "routes": {
            "main": [
                {"match": {"uri": "/hello"},
                 "action": {"return": 200, "response_headers": {"X-Uri": "$uri",
                                                                "X-Host": "$host"}}},
                {"match": {"method": "POST", "uri": "/post"}, "action": {"return": 201}},
                {"match": {"headers": {"X-Key": "secret*"}}, "action": {"return": 202}},
                {"match": {"arguments": {"a": "1"}, "uri": "/args"}, "action": {"return": 203}},
                {"match": {"cookies": {"session": "!"}, "uri": "/cookie"},
                 "action": {"return": 204}},
                {"match": {"uri": "~^/regex/[0-9]+$"}, "action": {"return": 205}},
                {"match": {"source": "127.0.0.0/8", "uri": "/local"}, "action": {"return": 206}},
                {"match": {"uri": "/moved"},
                 "action": {"return": 301, "location": "/new$request_uri"}},
                {"match": {"uri": "/chain"}, "action": {"pass": "routes/other"}},
                {"match": {"uri": "/gone"}, "action": {"return": 410}},
            ],
            "other": [{"action": {"return": 207}}],
        },
    })
    canopy.port = port
    return canopy


def test_routes_match_every_kind_of_condition(served):
    port = served.port
    status, headers, _ = get(port, "/hello", headers={"Host": "Example.COM.:80"})
    assert status == 200
    assert headers["X-Uri"] == "/hello"
    assert headers["X-Host"] == "example.com"
    assert headers["Server"].startswith("Canopy/")
    assert "Date" in headers
    assert get(port, "/post", method="POST", body=b"x")[0] == 201
    assert get(port, "/post")[0] == 404
    assert get(port, "/x", headers={"X-Key": "secret-1"})[0] == 202
    assert get(port, "/args?a=1")[0] == 203
    assert get(port, "/args?a=2")[0] == 404
    assert get(port, "/cookie", headers={"Cookie": "session=abc"})[0] == 204
    assert get(port, "/regex/42")[0] == 205
    assert get(port, "/regex/x")[0] == 404
    assert get(port, "/local")[0] == 206
    assert get(port, "/chain")[0] == 207
    assert get(port, "/nothing")[0] == 404


def test_return_with_location_and_error_pages(served):
    status, headers, body = get(served.port, "/moved?q=1")
    assert status == 301
    assert headers["Location"] == "/new/moved?q=1"
    assert body == b""
    status, headers, body = get(served.port, "/gone")
    assert status == 410
    assert headers["Content-Type"] == "text/html"
    assert b"410" in body
    status, headers, body = get(served.port, "/gone", method="HEAD")
    assert status == 410 and body == b""


def test_paths_are_decoded_and_normalized_before_matching(served):
    assert get(served.port, "/a/../hel%6Co")[0] == 200
    assert get(served.port, "/..%2F..%2Fetc")[0] in (400, 404)
    answer = raw(served.port, b"GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")


def test_keep_alive_and_pipelining(served):
    requests = b"".join(
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" for _ in range(5)
    ) + b"GET /gone HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw(served.port, requests)
    assert answer.count(b"HTTP/1.1 200 OK") == 5
    assert answer.count(b"HTTP/1.1 410") == 1


def test_request_bodies_are_read_past_on_a_kept_connection(served):
    body = b"x" * 100000
    request = (b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + body +
               b"POST /post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n0\r\n\r\n"
               b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = raw(served.port, request)
    assert answer.count(b"HTTP/1.1 201") == 2
    assert answer.count(b"HTTP/1.1 200") == 1


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    (b"POST /post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n", 400),
    (b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    (b"GET /hello HTTP/1.1\r\n\r\n", 400),
    (b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET hello HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
])
def test_hostile_requests_get_the_right_status_and_a_closed_connection(served, request_bytes,
                                                                      status):
    answer = raw(served.port, request_bytes + b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(f"HTTP/1.1 {status}".encode()), answer[:200]
    # The framing is unsure: nothing after it is served.
    assert answer.count(b"HTTP/1.1") == 1


def test_body_over_max_body_size_is_413(canopy):
    port = free_port()
    configure(canopy, {
        "listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
        "routes": [{"action": {"return": 200}}],
        "settings": {"http": {"max_body_size": 1000}},
    })
    answer = raw(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413")
    chunked = (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3e9\r\n" + b"y" * 1001 + b"\r\n0\r\n\r\n")
    assert raw(port, chunked).startswith(b"HTTP/1.1 413")


def test_slow_clients_are_timed_out(canopy):
    port = free_port()
    configure(canopy, {
        "listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
        "routes": [{"action": {"return": 200}}],
        "settings": {"http": {"header_read_timeout": 1, "idle_timeout": 1}},
    })
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
        answer = client.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408")
        assert client.recv(4096) == b""
    assert time.monotonic() - started < 8
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        assert idle.recv(4096) == b""  # an idle keep-alive slot is closed


def test_listeners_come_and_go_without_dropping_kept_ones(canopy):
    first, second = free_port(), free_port()
    routes = [{"action": {"return": 200}}]
    configure(canopy, {"listeners": {f"127.0.0.1:{first}": {"pass": "routes"}}, "routes": routes})
    # A client keeps a connection open across the change.
    connection = http.client.HTTPConnection("127.0.0.1", first, timeout=5)
    connection.request("GET", "/")
    assert connection.getresponse().read() == b"" or True
    configure(canopy, {"listeners": {f"127.0.0.1:{first}": {"pass": "routes"},
                                     f"127.0.0.1:{second}": {"pass": "routes"}},
                       "routes": [{"action": {"return": 202}}]})
    connection.request("GET", "/")
    assert connection.getresponse().status == 202
    assert get(second, "/")[0] == 202
    configure(canopy, {"listeners": {f"127.0.0.1:{second}": {"pass": "routes"}},
                       "routes": routes})
    # Gone: refused, or reset when the attempt raced the socket's closing.
    with pytest.raises((ConnectionRefusedError, ConnectionResetError)):
        get(first, "/")
    assert get(second, "/")[0] == 200
    connection.close()


def test_bind_failure_refuses_the_change_and_keeps_the_old_one(canopy):
    port = free_port()
    configure(canopy, {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
                       "routes": [{"action": {"return": 200}}]})
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        answer = canopy.put(f"/config/listeners/127.0.0.1:{taken}", {"pass": "routes"})
        assert answer.status == 500
        assert "in use" in answer.json["detail"]
    assert get(port, "/")[0] == 200
    assert list(canopy.get("/config/listeners").json) == [f"127.0.0.1:{port}"]


def test_ipv6_and_unix_listeners(canopy):
    port = free_port()
    path = canopy.dir / "app.sock"
    configure(canopy, {"listeners": {f"[::1]:{port}": {"pass": "routes"},
                                     f"unix:{path}": {"pass": "routes"}},
                       "routes": [{"action": {"return": 204}}]})
    with socket.create_connection(("::1", port), timeout=5) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 204")
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 204")
    assert oct(os.stat(path).st_mode & 0o777) == "0o666"
    configure(canopy, {"listeners": {}, "routes": []})
    # Main removes the socket file after the router closed the listener;
    # the configuration's answer does not wait for that.
    assert wait_until(lambda: not path.exists()), "the unix socket file stayed"


def test_router_restart_keeps_serving_the_same_configuration(served):
    router = served.child("canopy: router")
    os.kill(router, signal.SIGKILL)
    assert wait_until(lambda: served.child("canopy: router") not in (None, router))

    def answered():
        try:
            return get(served.port, "/hello")[0] == 200
        except OSError:
            return False
    assert wait_until(answered), served.log()


def test_status_counts_connections_and_requests(served):
    before = served.get("/status/requests/total").json
    for _ in range(3):
        get(served.port, "/hello")
    assert served.get("/status/requests/total").json == before + 3
    connections = served.get("/status/connections").json
    assert connections["accepted"] >= 3
    assert connections["active"] >= 0


def test_server_version_setting(canopy):
    port = free_port()
    configure(canopy, {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
                       "routes": [{"action": {"return": 200}}],
                       "settings": {"http": {"server_version": False}}})
    assert get(port, "/")[1]["Server"] == "Canopy"


def test_many_clients_in_parallel(served):
    failures = []

    def client():
        for _ in range(20):
            try:
                if get(served.port, "/hello")[0] != 200:
                    failures.append("status")
            except OSError as error:
                failures.append(str(error))

    threads = [threading.Thread(target=client) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def read_when(path, condition, timeout=5.0):
    def current():
        try:
            text = path.read_text()
        except FileNotFoundError:
            return ""
        return text if condition(text) else ""
    return wait_until(current, timeout=timeout)


def test_access_log_in_the_combined_format_and_rotation(canopy):
    port = free_port()
    log = canopy.dir / "access.log"
    configure(canopy, {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
                       "routes": [{"action": {"return": 204}}],
                       "access_log": str(log)})
    get(port, "/first?x=1", headers={"User-Agent": "probe/1", "Referer": "http://r/"})
    text = read_when(log, lambda text: "/first" in text)
    assert text, canopy.log()
    line = text.strip().splitlines()[-1]
    assert line.startswith("127.0.0.1 - - [")
    assert '"GET /first?x=1 HTTP/1.1" 204 0 "http://r/" "probe/1"' in line

    rotated = canopy.dir / "access.log.1"
    log.rename(rotated)
    os.kill(canopy.process.pid, signal.SIGUSR1)
    assert wait_until(lambda: log.exists())
    get(port, "/second")
    assert read_when(log, lambda text: "/second" in text)
    assert "/second" not in rotated.read_text()


def test_access_log_json_format_and_condition(canopy):
    port = free_port()
    log = canopy.dir / "access.json"
    configure(canopy, {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
                       "routes": [{"action": {"return": 200}}],
                       "access_log": {"path": str(log),
                                      "format": {"uri": "$uri", "status": "$status",
                                                 "agent": "$header_user_agent"},
                                      "if": "$arg_log"}})
    get(port, "/skipped")
    get(port, "/kept?log=1", headers={"User-Agent": 'quote"agent'})
    text = read_when(log, lambda text: "kept" in text)
    import json as jsonlib
    records = [jsonlib.loads(line) for line in text.splitlines()]
    assert records == [{"uri": "/kept", "status": "200", "agent": 'quote"agent'}]


def test_access_log_that_cannot_be_opened_refuses_the_change(canopy):
    answer = canopy.put("/config/access_log", '"/proc/nope/access.log"')
    assert answer.status == 500
    assert "access log" in answer.json["detail"]


def test_forwarded_client_address_from_a_trusted_proxy(canopy):
    port = free_port()
    configure(canopy, {
        "listeners": {f"127.0.0.1:{port}": {
            "pass": "routes",
            "forwarded": {"client_ip": "X-Forwarded-For", "source": "127.0.0.1"}}},
        "routes": [{"match": {"source": "203.0.113.7"}, "action": {"return": 200}},
                   {"action": {"return": 403}}]})
    assert get(port, "/", headers={"X-Forwarded-For": "203.0.113.7"})[0] == 200
    assert get(port, "/")[0] == 403


def test_wildcard_and_abstract_listeners(canopy):
    port = free_port()
    name = f"canopy-test-{port}"
    configure(canopy, {"listeners": {f"*:{port}": {"pass": "routes"},
                                     f"unix:@{name}": {"pass": "routes"}},
                       "routes": [{"action": {"return": 204}}]})
    assert get(port, "/")[0] == 204
    with socket.socket(socket.AF_UNIX) as client:
        client.connect("\0" + name)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 204")


def test_unsafe_header_fields_are_discarded_unless_asked_not_to(canopy):
    port = free_port()
    routes = [{"match": {"headers": {"X_Under": "*"}}, "action": {"return": 200}},
              {"action": {"return": 404}}]
    configure(canopy, {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}}, "routes": routes})
    assert get(port, "/", headers={"X_Under": "1"})[0] == 404
    configure(canopy, {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}}, "routes": routes,
                       "settings": {"http": {"discard_unsafe_fields": False}}})
    assert get(port, "/", headers={"X_Under": "1"})[0] == 200


def test_expect_continue_is_answered_without_waiting_for_the_body(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as client:
        client.sendall(b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                       b"Expect: 100-continue\r\n\r\n")
        answer = client.recv(4096)
    assert answer.startswith(b"HTTP/1.1 201")


def test_no_connection_is_refused_while_the_configuration_changes(canopy):
    port = free_port()
    listener = {f"127.0.0.1:{port}": {"pass": "routes"}}
    configure(canopy, {"listeners": listener, "routes": [{"action": {"return": 200}}]})
    stop = threading.Event()
    failures = []
    served = [0]

    def hammer():
        while not stop.is_set():
            try:
                status = get(port, "/")[0]
                if status not in (200, 201):
                    failures.append(status)
                served[0] += 1
            except OSError as error:
                failures.append(repr(error))

    clients = [threading.Thread(target=hammer) for _ in range(4)]
    for client in clients:
        client.start()
    for round_number in range(10):
        status = 200 if round_number % 2 else 201
        configure(canopy, {"listeners": listener, "routes": [{"action": {"return": status}}],
                           "settings": {"listen_threads": 1 + round_number % 3}})
    stop.set()
    for client in clients:
        client.join()
    assert failures == []
    assert served[0] > 10


def test_unfinished_features_are_refused_with_a_reason(canopy):
    port = free_port()
    base = {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}}}
    for extra, word in [({"routes": [{"action": {"return": 200}}],
                          "settings": {"http": {"log_route": True}}}, "log_route")]:
        answer = canopy.put("/config", dict(base, **extra))
        assert answer.status == 500, (extra, answer)
        assert word in answer.json["detail"]
    assert canopy.get("/config/listeners").json == {}

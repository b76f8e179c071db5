"""`proxy` and `upstreams`: the router passing requests to HTTP/1.1 servers.

The backends are Python's own http.server (ThreadingHTTPServer speaking
HTTP/1.1 with keep-alive) on IPv4, IPv6 and a Unix socket, a second
listener of the same canopyd, and a `websockets` server; the clients are
http.client, curl, raw sockets and `websockets`.
"""

import asyncio
import hashlib
import http.client
import http.server
import json
import os
import socket
import socketserver
import subprocess
import threading
import time
import urllib.parse

import pytest
import websockets

from canopy_daemon import PeakRss, rss_kib, stream_through, wait_until

MIB = 1024 * 1024


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class BackendHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Backend/1.0"

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix" if isinstance(self.client_address, str) else self.client_address[0]

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def answer(self, status, body, headers=(), length=True):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        """The whole body as a running sha256 and size: nothing kept."""
        digest, size = hashlib.sha256(), 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                length = int(self.rfile.readline().split(b";")[0], 16)
                if length == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    break
                data = self.rfile.read(length)
                digest.update(data)
                size += len(data)
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length", 0))
            while remaining:
                data = self.rfile.read(min(remaining, 1 << 16))
                digest.update(data)
                size += len(data)
                remaining -= len(data)
        return size, digest.hexdigest()

    def do_request(self):
        with self.server.lock:
            self.server.requests += 1
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/hang":
            self.server.hung.wait(60)
            self.close_connection = True
            return
        if url.path == "/status":
            code = int(query["code"])
            self.send_response(code)
            self.end_headers()
            return
        if url.path == "/download":
            size = int(query["size"])
            block = bytes(range(256)) * 256
            mode = query.get("mode", "length")
            self.send_response(200)
            if mode == "length":
                self.send_header("Content-Length", str(size))
            elif mode == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
            else:  # the end of the body is the end of the connection
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command == "HEAD":
                return
            sent = 0
            while sent < size:
                piece = block[: min(len(block), size - sent)]
                if mode == "chunked":
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    self.wfile.write(piece)
                sent += len(piece)
            if mode == "chunked":
                self.wfile.write(b"0\r\n\r\n")
            return
        size, digest = self.read_body()
        body = json.dumps({
            "server": self.server.name,
            "method": self.command,
            "target": self.path,
            "version": self.request_version,
            "headers": [[name, value] for name, value in self.headers.items()],
            "body_size": size,
            "body_sha256": digest,
        }).encode()
        self.answer(200, body, [("Content-Type", "application/json"),
                                ("Connection", "X-Backend-Hop"), ("X-Backend-Hop", "1"),
                                ("Keep-Alive", "timeout=5"), ("X-Backend", self.server.name)])

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_request


class ThreadingUnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class ThreadingServer6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Backend:
    """An http.server backend in a thread: `family` is ipv4, ipv6 or unix."""

    def __init__(self, name="backend", family="ipv4", directory=None, handler=BackendHandler):
        if family == "ipv4":
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            self.address = f"127.0.0.1:{self.server.server_address[1]}"
        elif family == "ipv6":
            self.server = ThreadingServer6(("::1", 0), handler)
            self.address = f"[::1]:{self.server.server_address[1]}"
        else:
            path = os.path.join(directory, f"{name}.sock")
            self.server = ThreadingUnixServer(path, handler)
            os.chmod(path, 0o666)  # the router runs unprivileged
            self.address = f"unix:{path}"
        self.server.daemon_threads = True
        self.server.name = name
        self.server.lock = threading.Lock()
        self.server.connections = 0
        self.server.requests = 0
        self.server.hung = threading.Event()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def connections(self):
        return self.server.connections

    @property
    def requests(self):
        return self.server.requests

    def close(self):
        self.server.hung.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends(canopy):
    made = []

    def make(name="backend", family="ipv4", handler=BackendHandler):
        # Unix sockets in the daemon's directory, which its router can reach.
        backend = Backend(name, family, str(canopy.dir), handler)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def configure(canopy, config):
    answer = canopy.put("/config", config)
    assert answer.status == 200, answer
    return answer


def proxied(canopy, address, listener_extra=None, settings=None):
    """A listener whose every request goes to `address`; returns its port."""
    port = free_port()
    listener = {"pass": "routes"}
    listener.update(listener_extra or {})
    config = {"listeners": {f"127.0.0.1:{port}": listener},
              "routes": [{"action": {"proxy": f"http://{address}"}}]}
    if settings:
        config["settings"] = settings
    configure(canopy, config)
    return port


def request(port, path, method="GET", body=None, headers=None, timeout=10):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def seen_headers(body):
    return {name.lower(): value for name, value in json.loads(body)["headers"]}


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "unix"])
def test_proxy_to_every_address_family(canopy, backends, family):
    backend = backends("b", family)
    port = proxied(canopy, backend.address)
    status, headers, body = request(
        port, "/some/path?x=1&y=%20", headers={
            "Host": "example.com:8080", "X-Custom": "kept",
            "Connection": "X-Private", "X-Private": "dropped", "Keep-Alive": "timeout=1",
            "TE": "trailers"})
    assert status == 200
    answer = json.loads(body)
    assert answer["target"] == "/some/path?x=1&y=%20"
    assert answer["version"] == "HTTP/1.1"
    seen = seen_headers(body)
    # Host as the client sent it; end-to-end fields kept; hop-by-hop ones not.
    assert seen["host"] == "example.com:8080"
    assert seen["x-custom"] == "kept"
    for hop in ["x-private", "keep-alive", "te"]:
        assert hop not in seen, hop
    assert seen["x-forwarded-for"] == "127.0.0.1"
    # The answer: the backend's fields minus its hop-by-hop ones; the
    # router's Server and framing.
    assert headers["X-Backend"] == "b"
    assert headers["Content-Type"] == "application/json"
    assert headers["Server"].startswith("Canopy")
    assert "X-Backend-Hop" not in headers
    assert "Keep-Alive" not in headers
    assert int(headers["Content-Length"]) == len(body)


def test_keep_alive_connections_to_the_backend_are_reused(canopy, backends):
    backend = backends()
    port = proxied(canopy, backend.address, settings={"listen_threads": 1})
    for index in range(20):
        status, _, body = request(port, f"/n{index}")
        assert status == 200
        assert json.loads(body)["target"] == f"/n{index}"
    assert backend.requests == 20
    assert backend.connections == 1


def test_a_retiring_worker_ends_despite_kept_upstream_connections(canopy, backends):
    backend = backends()
    port = proxied(canopy, backend.address, settings={"listen_threads": 4})
    router = canopy.child("canopy: router")
    for _ in range(16):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/")
        assert connection.getresponse().status == 200
        connection.close()

    def threads():
        return len(os.listdir(f"/proc/{router}/task"))

    before = threads()
    configure(canopy, {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
                       "routes": [{"action": {"proxy": f"http://{backend.address}"}}],
                       "settings": {"listen_threads": 1}})
    assert wait_until(lambda: threads() == before - 3), (before, threads())
    status, _, _ = request(port, "/")
    assert status == 200


class IdleClosingHandler(BackendHandler):
    """Closes a kept-alive connection after 0.3 s without a request, as
    servers with a short keep-alive timeout do, without saying so."""

    timeout = 0.3


def test_connections_the_backend_closed_are_not_used_again(canopy, backends):
    backend = backends("idle-closing", handler=IdleClosingHandler)
    port = proxied(canopy, backend.address, settings={"listen_threads": 1})
    for index in range(4):
        status, headers, _ = request(port, f"/{index}")
        assert status == 200
        assert headers["X-Backend"] == "idle-closing"
        time.sleep(0.6)  # the backend closes the kept connection meanwhile
    assert backend.requests == 4
    assert backend.connections == 4


def test_large_bodies_stream_both_ways_at_flat_memory(canopy, backends):
    backend = backends()
    port = proxied(canopy, backend.address, settings={"http": {"max_body_size": 64 * MIB}})
    router = canopy.child("canopy: router")
    assert router is not None
    size = 20 * MIB
    request(port, "/warm-up", method="POST", body=b"x" * 100000)
    before = rss_kib(router)
    assert before > 0
    with PeakRss(router=router) as peaks:
        result = stream_through(port, "/upload", size)
    # The backend answered after reading all 20 MiB (its JSON, framed by
    # Content-Length, arrived whole); test_upload_body_arrives_intact checks
    # the bytes themselves.
    assert result["complete"], result.get("head")
    assert result["head"].startswith(b"HTTP/1.1 200")

    for mode in ["length", "chunked", "close"]:
        with PeakRss(router=router) as download_peaks:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", f"/download?size={size}&mode={mode}")
            response = connection.getresponse()
            assert response.status == 200
            if mode == "length":
                assert response.headers["Content-Length"] == str(size)
            else:
                assert response.headers["Transfer-Encoding"] == "chunked"
            received = 0
            while data := response.read(1 << 20):
                received += len(data)
            connection.close()
        assert received == size, mode
        assert download_peaks["router"] - before < 16 * 1024, (mode, download_peaks, before)
    assert peaks["router"] - before < 16 * 1024, (peaks, before)


def test_upload_body_arrives_intact(canopy, backends):
    backend = backends()
    port = proxied(canopy, backend.address)
    payload = os.urandom(3 * MIB + 17)
    status, _, body = request(port, "/upload", method="PUT", body=payload)
    assert status == 200
    answer = json.loads(body)
    assert answer["body_size"] == len(payload)
    assert answer["body_sha256"] == hashlib.sha256(payload).hexdigest()


def test_chunked_request_body_is_passed_chunked(canopy, backends):
    backend = backends()
    port = proxied(canopy, backend.address)
    pieces = [b"first-", b"", b"second-" * 1000, os.urandom(70000)]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/chunks", body=iter(pieces), encode_chunked=True)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 200
    answer = json.loads(body)
    whole = b"".join(pieces)
    assert answer["body_size"] == len(whole)
    assert answer["body_sha256"] == hashlib.sha256(whole).hexdigest()
    assert seen_headers(body)["transfer-encoding"] == "chunked"


def test_expect_100_continue_with_curl(canopy, backends, tmp_path):
    backend = backends()
    port = proxied(canopy, backend.address)
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(200000))
    result = subprocess.run(
        ["curl", "-sS", "-v", "-H", "Expect: 100-continue", "--data-binary", f"@{payload}",
         f"http://127.0.0.1:{port}/upload"], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert b"HTTP/1.1 100 Continue" in result.stderr
    answer = json.loads(result.stdout)
    assert answer["body_size"] == 200000
    assert "expect" not in {name.lower() for name, _ in answer["headers"]}


def test_bodyless_answers(canopy, backends):
    backend = backends()
    port = proxied(canopy, backend.address)
    for code in [204, 304]:
        status, headers, body = request(port, f"/status?code={code}")
        assert status == code and body == b""
        assert "Content-Length" not in headers and "Transfer-Encoding" not in headers
    # HEAD: the length a GET would get, and no body (the connection stays
    # usable: the next request on it is answered).
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("HEAD", "/download?size=1000")
    response = connection.getresponse()
    assert response.status == 200 and response.read() == b""
    assert response.headers["Content-Length"] == "1000"
    connection.request("GET", "/download?size=10")
    response = connection.getresponse()
    assert response.read() == bytes(range(10))
    connection.close()


def test_x_forwarded_for_follows_the_listener_rules(canopy, backends):
    backend = backends()
    sent = {"X-Forwarded-For": "203.0.113.9, 10.0.0.5"}
    cases = [
        (None, "127.0.0.1"),  # no rule: nothing the client says is believed
        ({"client_ip": "X-Forwarded-For", "source": "10.0.0.0/8"}, "127.0.0.1"),  # untrusted peer
        ({"client_ip": "X-Forwarded-For", "source": "127.0.0.1"}, "10.0.0.5, 127.0.0.1"),
        ({"client_ip": "X-Forwarded-For", "source": ["127.0.0.1", "10.0.0.0/8"],
          "recursive": True}, "203.0.113.9, 10.0.0.5, 127.0.0.1"),
    ]
    for rule, expected in cases:
        port = proxied(canopy, backend.address, {"forwarded": rule} if rule else None)
        status, _, body = request(port, "/xff", headers=sent)
        assert status == 200
        assert seen_headers(body)["x-forwarded-for"] == expected, rule
    # The legacy client_ip form works the same.
    port = proxied(canopy, backend.address,
                   {"client_ip": {"header": "X-Forwarded-For", "source": "127.0.0.1"}})
    _, _, body = request(port, "/xff", headers=sent)
    assert seen_headers(body)["x-forwarded-for"] == "10.0.0.5, 127.0.0.1"


def test_upstreams_weighted_round_robin(canopy, backends):
    light, heavy, never = backends("light"), backends("heavy"), backends("never")
    port = free_port()
    configure(canopy, {
        "listeners": {f"127.0.0.1:{port}": {"pass": "upstreams/pool"}},
        "upstreams": {"pool": {"servers": {light.address: {"weight": 1},
                                           heavy.address: {"weight": 3},
                                           never.address: {"weight": 0}}}},
    })
    order = []
    for _ in range(40):
        status, headers, _ = request(port, "/")
        assert status == 200
        order.append(headers["X-Backend"])
    assert light.requests == 10 and heavy.requests == 30 and never.requests == 0
    # Smooth: never more than three of the heavy one in a row.
    assert "heavy,heavy,heavy,heavy" not in ",".join(order)


def test_a_dead_server_is_skipped_and_all_dead_is_502(canopy, backends):
    live = backends("live")
    dead = f"127.0.0.1:{free_port()}"
    port = free_port()
    configure(canopy, {
        "listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
        "routes": [{"match": {"uri": "/all-dead"}, "action": {"pass": "upstreams/dead"}},
                   {"match": {"uri": "/empty"}, "action": {"pass": "upstreams/empty"}},
                   {"action": {"pass": "upstreams/pool"}}],
        "upstreams": {"pool": {"servers": {live.address: {}, dead: {}}},
                      "dead": {"servers": {dead: {}}},
                      "empty": {"servers": {}}},
    })
    for _ in range(10):
        status, headers, _ = request(port, "/")
        assert status == 200
        assert headers["X-Backend"] == "live"
    assert live.requests == 10
    assert wait_until(lambda: f"connecting to upstream {dead} failed" in canopy.log())
    status, _, body = request(port, "/all-dead")
    assert status == 502
    assert b"Error 502" in body
    status, _, _ = request(port, "/empty", headers={"Host": ""})
    assert status == 502
    assert wait_until(lambda: 'upstream "empty": no server is available' in canopy.log())


def test_a_backend_that_never_answers_is_504(canopy, backends):
    backend = backends()
    port = proxied(canopy, backend.address, settings={"http": {"body_read_timeout": 1}})
    status, _, body = request(port, "/hang", timeout=30)
    assert status == 504
    assert b"Error 504" in body
    assert wait_until(lambda: f"upstream {backend.address} timed out" in canopy.log())
    # A refused connection: 502, with the address in the log.
    closed = f"127.0.0.1:{free_port()}"
    port = proxied(canopy, closed)
    status, _, _ = request(port, "/")
    assert status == 502
    assert wait_until(lambda: f"connecting to upstream {closed} failed" in canopy.log())


def test_proxy_to_another_listener_of_the_same_canopyd(canopy):
    www = canopy.dir / "www"  # reachable by the unprivileged router
    www.mkdir()
    (www / "page.txt").write_bytes(b"served by the second listener\n")
    front, back = free_port(), free_port()
    configure(canopy, {
        "listeners": {f"127.0.0.1:{front}": {"pass": "routes/front"},
                      f"127.0.0.1:{back}": {"pass": "routes/back"}},
        "routes": {
            "front": [{"match": {"uri": "/old/*"},
                       "action": {"rewrite": "/page.txt", "proxy": f"http://127.0.0.1:{back}",
                                  "response_headers": {"X-Via": "front"}}},
                      {"action": {"proxy": f"http://127.0.0.1:{back}"}}],
            "back": [{"match": {"uri": "/page.txt"},
                      "action": {"share": str(www) + "$uri"}},
                     {"match": {"uri": "/teapot"}, "action": {"return": 418}},
                     {"action": {"return": 200}}],
        },
    })
    result = subprocess.run(["curl", "-sS", "-i", f"http://127.0.0.1:{front}/page.txt"],
                            capture_output=True, timeout=10)
    assert result.returncode == 0
    assert result.stdout.startswith(b"HTTP/1.1 200")
    assert result.stdout.endswith(b"\r\n\r\nserved by the second listener\n")
    status, headers, body = request(front, "/old/anything")
    assert status == 200 and body == b"served by the second listener\n"
    assert headers["X-Via"] == "front"
    status, _, body = request(front, "/teapot")
    assert status == 418
    status, headers, body = request(front, "/other")
    assert status == 200 and body == b""
    assert headers["Content-Length"] == "0"


def test_reconfiguration_keeps_a_proxied_request_in_flight(canopy, backends):
    backend = backends()
    port = proxied(canopy, backend.address)
    size = 8 * MIB
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", f"/download?size={size}&mode=chunked")
    response = connection.getresponse()
    first = response.read(65536)
    # The route and the listener change under the transfer.
    configure(canopy, {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
                       "routes": [{"action": {"return": 204}}]})
    rest = 0
    while data := response.read(1 << 20):
        rest += len(data)
    connection.close()
    assert len(first) + rest == size
    status, _, _ = request(port, "/download?size=1")
    assert status == 204


def test_websocket_passthrough(canopy, tmp_path):
    ready = threading.Event()
    state = {}

    async def echo(websocket, path=None):
        state["path"] = getattr(websocket, "path", path)
        async for message in websocket:
            await websocket.send(message if isinstance(message, bytes) else "echo:" + message)

    def serve():
        loop = asyncio.new_event_loop()
        state["loop"] = loop

        async def main():
            async with websockets.serve(echo, "127.0.0.1", 0) as server:
                state["port"] = server.sockets[0].getsockname()[1]
                ready.set()
                state["stop"] = loop.create_future()
                await state["stop"]

        loop.run_until_complete(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        port = proxied(canopy, f"127.0.0.1:{state['port']}")

        async def client():
            async with websockets.connect(f"ws://127.0.0.1:{port}/chat?room=1") as websocket:
                await websocket.send("hello")
                text = await websocket.recv()
                blob = os.urandom(300000)
                await websocket.send(blob)
                echoed = await websocket.recv()
                return text, echoed == blob

        text, same = asyncio.run(asyncio.wait_for(client(), 20))
        assert text == "echo:hello"
        assert same
        assert state["path"] == "/chat?room=1"
        # A plain request on the same listener still works afterwards.
        status, _, _ = request(port, "/")
        assert status in (400, 426)  # the websockets server refuses plain HTTP
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set_result, None)
        thread.join(10)


class RawBackend:
    """Answers every connection with fixed bytes after reading a head."""

    def __init__(self, answer):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.answer = answer
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with client:
                received = b""
                while b"\r\n\r\n" not in received:
                    data = client.recv(65536)
                    if not data:
                        break
                    received += data
                client.sendall(self.answer)

    def close(self):
        self.listener.close()


@pytest.mark.parametrize("answer,reason", [
    (b"garbage\r\n\r\n", "invalid status line"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", "Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
     "both Transfer-Encoding and Content-Length"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "switched protocols"),
    (b"", "closed the connection"),
])
def test_a_broken_upstream_answer_is_502(canopy, answer, reason):
    backend = RawBackend(answer)
    try:
        port = proxied(canopy, backend.address)
        status, _, body = request(port, "/")
        assert status == 502
        assert b"Error 502" in body
        assert wait_until(lambda: reason in canopy.log()), canopy.log()[-2000:]
    finally:
        backend.close()


def test_pipelined_and_http10_clients(canopy, backends):
    backend = backends()
    port = proxied(canopy, backend.address,
                   {"forwarded": {"client_ip": "X-Forwarded-For", "source": "127.0.0.1"}})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
                       b"POST /second HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"3\r\nabc\r\n0\r\n\r\n"
                       b"GET /third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        received = b""
        while data := client.recv(65536):
            received += data
    answers = received.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 3
    targets = [json.loads(answer.split(b"\r\n\r\n", 1)[1])["target"] for answer in answers]
    assert targets == ["/first", "/second", "/third"]
    # HTTP/1.0 and a chunked upstream answer: close-delimited, whole.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /download?size=100000&mode=chunked HTTP/1.0\r\n\r\n")
        received = b""
        while data := client.recv(65536):
            received += data
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding" not in head.lower()
    assert body == (bytes(range(256)) * 400)[:100000]
    # An HTTP/1.0 request without Host: the upstream (HTTP/1.1) gets one.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
        received = b""
        while data := client.recv(65536):
            received += data
    assert seen_headers(received.partition(b"\r\n\r\n")[2])["host"] == backend.address


def test_proxied_requests_are_in_the_access_log(canopy, backends):
    backend = backends()
    port = free_port()
    log = canopy.dir / "access.log"
    configure(canopy, {
        "listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
        "routes": [{"action": {"proxy": f"http://{backend.address}"}}],
        "access_log": {"path": str(log), "format": "$request_line $status $body_bytes_sent"},
    })
    status, _, _ = request(port, "/download?size=1234")
    assert status == 200
    assert wait_until(lambda: log.exists() and
                      "GET /download?size=1234 HTTP/1.1 200 1234" in log.read_text())


def test_proxy_behind_a_tls_listener(canopy, backends, tmp_path):
    """Client bytes through the TLS session, upstream bytes plain: both
    directions streamed, the upload's 100-continue inside TLS too."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=proxy.example", "-addext", "subjectAltName=DNS:proxy.example",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    answer = canopy.put("/certificates/site", cert.read_text() + key.read_text())
    assert answer.status == 200, answer
    backend = backends()
    port = free_port()
    configure(canopy, {
        "listeners": {f"127.0.0.1:{port}": {"pass": "routes", "tls": {"certificate": "site"}}},
        "routes": [{"action": {"proxy": f"http://{backend.address}"}}],
    })
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(3 * MIB))
    base = ["curl", "-sS", "--cacert", str(cert), "--resolve",
            f"proxy.example:{port}:127.0.0.1"]
    result = subprocess.run(base + ["-H", "Expect: 100-continue", "--data-binary",
                                    f"@{payload}", f"https://proxy.example:{port}/upload"],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["body_size"] == 3 * MIB
    assert answer["body_sha256"] == hashlib.sha256(payload.read_bytes()).hexdigest()
    result = subprocess.run(base + [f"https://proxy.example:{port}/download?size={5 * MIB}"
                                    "&mode=chunked"], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (bytes(range(256)) * (5 * 4096))[: 5 * MIB]

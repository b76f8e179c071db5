"""Hostile input on the real control socket.

Each request is answered with a clear error (or its connection is closed),
the daemon keeps serving, and the configuration is unchanged afterwards.
"""

import http.client
import json
import socket
import threading
import time

import pytest

from canopy_daemon import UnixHTTPConnection

BASELINE = {"listeners": {}, "routes": [{"action": {"return": 204}}], "applications": {}}


@pytest.fixture
def daemon(canopy):
    assert canopy.put("/config", BASELINE).status == 200
    baseline = canopy.get("/config")
    yield canopy
    # The daemon still serves, promptly, and nothing changed.
    started = time.monotonic()
    after = canopy.get("/config")
    assert after.status == 200
    assert time.monotonic() - started < 5
    assert after.json == BASELINE
    assert after.headers["ETag"] == baseline.headers["ETag"]
    assert canopy.process.poll() is None, canopy.log()


def raw_request(daemon, data, timeout=30):
    """Sends raw bytes; returns (status, parsed JSON body) or None when the
    daemon closed the connection without an answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(daemon.control))
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: read what it said
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    finally:
        sock.close()
    if not received:
        return None
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def request_bytes(method, target, body=b"", headers=()):
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost",
             f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def put_raw(daemon, target, body):
    return raw_request(daemon, request_bytes("PUT", target, body))


def test_malformed_json(daemon):
    for body in [b'{"listeners": ', b'{"routes": [}', b"{'routes': []}", b"routes",
                 b'{"routes": [] "x": 1}', b""]:
        answer = put_raw(daemon, "/config", body)
        assert answer is not None, body
        status, parsed = answer
        assert status == 400, (body, parsed)
        assert parsed["error"] == "Invalid JSON.", (body, parsed)
        assert parsed["detail"], parsed
        assert "offset" in parsed["location"], parsed


def test_sixteen_mib_body(daemon):
    # Valid JSON, but the 16 MiB string sits under a key the schema lacks.
    blob = "a" * (16 * 1024 * 1024)
    body = json.dumps({"settings": {"http": {"huge": blob}}}).encode()
    assert len(body) > 16 * 1024 * 1024
    started = time.monotonic()
    answer = put_raw(daemon, "/config", body)
    assert time.monotonic() - started < 20
    assert answer is not None
    status, parsed = answer
    assert status == 400, parsed
    assert parsed["error"] == "Invalid configuration."
    assert parsed["detail"] == 'Unknown parameter "huge".'
    assert parsed["path"] == "/config/settings/http/huge"
    # A valid 16 MiB configuration passes a dry run (and changes nothing).
    valid = json.dumps({"settings": {"http": {"body_temp_path": "/" + blob}}}).encode()
    status, parsed = put_raw(daemon, "/config?dry_run=1", valid)
    assert status == 200, parsed
    assert parsed == {"success": "The configuration is valid; nothing was changed."}


def test_a_client_sending_one_byte_a_second_blocks_nobody(daemon):
    data = request_bytes("PUT", "/config", json.dumps({"routes": []}).encode())
    stop = threading.Event()
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.connect(str(daemon.control))
    sent = []

    def dribble():
        for byte in data:
            if stop.is_set():
                return
            try:
                slow.send(bytes([byte]))
            except OSError:
                return
            sent.append(byte)
            stop.wait(1.0)

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)  # the slow request is under way
        for _ in range(5):
            started = time.monotonic()
            answer = daemon.get("/config")
            assert answer.status == 200
            assert answer.json == BASELINE
            assert time.monotonic() - started < 2.0
            # Writes are served too (and queue behind nothing).
            started = time.monotonic()
            dry = daemon.put("/config?dry_run=1", {"routes": []})
            assert dry.status == 200, dry
            assert time.monotonic() - started < 2.0
            time.sleep(0.3)
        assert 2 <= len(sent) < len(data)  # still dribbling, not finished
    finally:
        stop.set()
        thread.join(timeout=5)
        slow.close()
    assert not thread.is_alive()


def test_invalid_utf8_in_a_json_string(daemon):
    for body in [b'{"listeners": {}, "routes": [{"action": {"share": "/srv/\xff\xfe"}}]}',
                 b'{"access_log": "/var/log/\xc3"}',
                 b'{"access_log": "/var/log/\xed\xa0\x80"}',  # an encoded surrogate
                 b'{"access_log": "/var/log/\xc0\xaf"}']:  # an overlong "/"
        answer = put_raw(daemon, "/config", body)
        assert answer is not None, body
        status, parsed = answer
        assert status == 400, (body, parsed)
        assert parsed["error"] == "Invalid JSON.", (body, parsed)
        assert parsed["detail"], parsed
    # Invalid UTF-8 in a key too.
    status, parsed = put_raw(daemon, "/config/settings", b'{"\xff": 1}')
    assert status == 400 and parsed["error"] == "Invalid JSON.", parsed


def test_one_hundred_thousand_levels_of_nesting(daemon):
    for body in [b"[" * 100000, b"[" * 100000 + b"]" * 100000,
                 b'{"a":' * 100000 + b"1" + b"}" * 100000]:
        started = time.monotonic()
        answer = put_raw(daemon, "/config", body)
        assert time.monotonic() - started < 10
        assert answer is not None
        status, parsed = answer
        assert status == 400, parsed
        assert parsed["error"] == "Invalid JSON."
        assert "deep" in parsed["detail"], parsed


def test_a_path_segment_of_ten_thousand_bytes(daemon):
    segment = "x" * 10000
    for method in ["GET", "PUT", "DELETE"]:
        body = b"{}" if method == "PUT" else b""
        answer = raw_request(daemon, request_bytes(method, f"/config/{segment}", body))
        if answer is None:
            continue  # closed without an answer is allowed
        status, parsed = answer
        assert 400 <= status < 500, (method, status, parsed)
        assert parsed["error"], parsed
    # Within the head limit, a segment longer than Unit allows (256 bytes).
    long_segment = "y" * 1000
    answer = daemon.get(f"/config/{long_segment}")
    assert answer.status == 404, answer
    answer = daemon.put(f"/config/{long_segment}", {})
    assert answer.status == 400, answer
    assert answer.json["error"] == "Invalid path.", answer


def test_twenty_concurrent_puts_of_whole_configurations(canopy):
    configurations = [
        {"listeners": {}, "routes": [{"action": {"return": 200 + index}}],
         "applications": {}, "settings": {"http": {"idle_timeout": 100 + index}}}
        for index in range(20)
    ]
    answers = [None] * 20
    barrier = threading.Barrier(20)

    def put(index):
        connection = UnixHTTPConnection(str(canopy.control), timeout=60)
        try:
            body = json.dumps(configurations[index])
            barrier.wait(timeout=10)
            connection.request("PUT", "/config", body=body)
            response = connection.getresponse()
            answers[index] = (response.status, json.loads(response.read()))
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as error:
            answers[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=put, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert all(not thread.is_alive() for thread in threads)
    for answer in answers:
        assert answer == (200, {"success": "Reconfiguration done."}), answer
    final = canopy.get("/config").json
    assert final in configurations
    stored = json.loads((canopy.state_dir / "conf.json").read_text())
    assert stored == final
